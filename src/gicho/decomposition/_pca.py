"""Principal component analysis: :class:`PCA` (see :mod:`gicho.decomposition`)."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin

from gicho._validation import check_choice, check_feature_names, check_is_fitted, describe
from gicho.decomposition._solvers import (
    Spectrum,
    check_input,
    column_means,
    covariance_spectrum,
    extreme_scale,
    is_dask,
    is_torch,
    mean_and_covariance,
    numerical_rank,
    randomized_spectrum,
    svd_spectrum,
    unscaled_variances,
)
from gicho.moments import Moments

__all__ = ["PCA"]

SOLVERS = ("auto", "svd", "covariance", "randomized")
# solver="auto" follows scikit-learn's choice: the covariance route for tall, narrow data...
_AUTO_COVARIANCE_MAX_FEATURES = 1000
_AUTO_COVARIANCE_MIN_ASPECT = 10
# ...the exact SVD for small problems, randomized SVD for few components of large ones.
_AUTO_SMALL_PROBLEM = 500
_AUTO_RANDOMIZED_MAX_FRACTION = 0.8
# n_power_iterations="auto": more iterations when few components are asked (scikit-learn).
_AUTO_POWER_ITERATIONS = (7, 4)
_AUTO_FEW_COMPONENTS_FRACTION = 0.1


def _as_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if is_torch(x) else np.asarray(x)


def _check_n_components(value: Any, n_samples: int, n_features: int) -> int | float:
    """An int in [1, min(n, p)] or a float fraction of variance in (0, 1)."""
    limit = min(n_samples, n_features)
    if value is None:
        return limit
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            "argument `n_components` must be None, an int or a float in (0, 1); "
            f"got {describe(value)}"
        )
    if isinstance(value, numbers.Integral):
        if not 1 <= value <= limit:
            raise ValueError(
                f"argument `n_components` must lie in [1, min(n_samples, n_features)] = [1, {limit}] "
                f"for data of shape ({n_samples}, {n_features}); got {value}"
            )
        return int(value)
    if not 0.0 < value < 1.0:
        raise ValueError(
            "argument `n_components` as a float is the fraction of variance to keep and must "
            f"lie in (0, 1) (pass an int for a number of components); got {value!r}"
        )
    return float(value)


class PCA(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Principal component analysis: centre, then project on the axes of greatest variance.

    With centred data :math:`X_c = X - 1 m^T = U S V^T`, the principal axes are the rows of
    :math:`V^T`, the eigenvectors of the sample covariance :math:`C = X_c^T X_c / (n - 1)`,
    and the variance along axis *i* is :math:`\\lambda_i = s_i^2 / (n - 1)`.

    Parameters
    ----------
    n_components : int, float or None, default None
        Components kept: an int in [1, min(n_samples, n_features)]; a float in (0, 1) keeps
        the fewest components whose cumulative explained-variance ratio exceeds it (needs a
        full spectrum: solver "auto", "svd" or "covariance"); None keeps min(n_samples,
        n_features).
    whiten : bool, default False
        Divide each projected coordinate by :math:`\\sqrt{\\lambda_i}` so the transformed
        training data has identity covariance. A kept component of (numerically) zero
        variance then raises at ``fit``: reduce ``n_components`` to the rank, or use
        :class:`Whitening` with ``eps > 0``.
    solver : {"auto", "svd", "covariance", "randomized"}, default "auto"
        "svd": thin SVD of the centred data (exact; scikit-learn's "full").
        "covariance": eigen-decomposition of the p x p covariance (one pass over X; fastest
        for n >> p; squares the condition number, so components of tiny variance are
        less accurate than with "svd"). "randomized": randomized SVD of the centred data for a
        few leading components (Halko et al. 2011). "auto" picks as scikit-learn does:
        "covariance" if p <= 1000 and n >= 10 p, else "svd" for small problems or a
        fractional/None ``n_components``, else "randomized" if n_components < 0.8 min(n, p),
        else "svd". ``partial_fit``, ``fit_chunks`` and Dask input always use the covariance.
    n_oversamples : int, default 10
        Extra random probes of the randomized solver.
    n_power_iterations : int or "auto", default "auto"
        Power iterations of the randomized solver ("auto": 7 when n_components < 0.1 min(n, p),
        else 4).
    random_state : int or None, default None
        Seed of the randomized solver's probes.

    Attributes
    ----------
    components_ : (n_components, n_features)
        Principal axes, strongest first, orthonormal rows, deterministic signs.
    explained_variance_ : (n_components,)
        Variance along each axis (ddof = 1).
    explained_variance_ratio_ : (n_components,)
        ``explained_variance_`` divided by the total variance of the data.
    singular_values_ : (n_components,)
        Singular values of the centred data, ``sqrt((n - 1) * explained_variance_)``.
    mean_ : (n_features,)
        Column means of the training data.
    noise_variance_ : float
        Mean variance of the discarded axes (probabilistic PCA, Tipping & Bishop 1999;
        Bishop, PRML eq. 12.46); 0 when none is discarded.
    n_components_, n_samples_, n_features_in_ : int
    solver_ : str
        The solver actually used.
    moments_ : gicho.moments.Moments
        Streamed sufficient statistics (only after ``partial_fit`` / ``fit_chunks``).

    Examples
    --------
    >>> from gicho.data.images import load_digits_arrays
    >>> pca = PCA(n_components=0.9).fit(load_digits_arrays().X)
    >>> pca.n_components_, round(float(pca.explained_variance_ratio_.sum()), 3)
    (21, 0.903)
    """

    def __init__(
        self,
        n_components: int | float | None = None,
        *,
        whiten: bool = False,
        solver: Literal["auto", "svd", "covariance", "randomized"] = "auto",
        n_oversamples: int = 10,
        n_power_iterations: int | Literal["auto"] = "auto",
        random_state: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.whiten = whiten
        self.solver = solver
        self.n_oversamples = n_oversamples
        self.n_power_iterations = n_power_iterations
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None) -> PCA:
        """Fit the principal axes on ``X`` of shape (n_samples, n_features), n_samples >= 2.

        ``X`` may be a NumPy array, a torch tensor (fitted on its device) or a Dask array or
        DataFrame (moments reduced on the cluster). Discards any state of ``partial_fit``.
        """
        self._check_params()
        self.__dict__.pop("moments_", None)
        check_feature_names(self, X, reset=True)
        if is_dask(X):
            self._fit_dask(X)
            return self
        X = check_input(X, "X", min_samples=2, finite=False)
        n, p = X.shape
        k = _check_n_components(self.n_components, n, p)
        solver = self._choose_solver(n, p, k)
        if solver == "covariance":
            # NumPy: one pass over X (gicho.moments, accumulated in float64) gives the mean, the
            # covariance and the NaN / inf check; extreme data are rescaled and read again
            X, scale, mean, C = mean_and_covariance(X)
            spectrum = covariance_spectrum(C, mean, n)
        else:
            scale = extreme_scale(X)
            if scale != 1.0:
                X = X / scale
            mean = column_means(X)  # also the NaN / inf check: no extra pass over X
            if solver == "svd":
                spectrum = svd_spectrum(X, mean)
            else:
                spectrum = randomized_spectrum(
                    X, mean, k, n_oversamples=self.n_oversamples,
                    n_iter=self._power_iterations(k, n, p), random_state=self.random_state,
                )
        if scale != 1.0:  # back to the data's units (or a clear refusal)
            spectrum.explained_variance = unscaled_variances(spectrum.explained_variance, scale, "X", "variances")
            spectrum.singular_values = spectrum.singular_values * scale
            spectrum.total_variance = float(unscaled_variances(np.float64(spectrum.total_variance), scale, "X", "variances"))
            spectrum.mean = spectrum.mean * scale
        self._set_spectrum(spectrum, k, solver, dtype=X.dtype)
        return self

    def partial_fit(self, X: Any, y: Any = None) -> PCA:
        """Add a chunk of rows to the streamed moments and refit the axes (covariance solver).

        The first call (or the first after ``fit``) starts afresh. Each call costs one pass
        over the chunk plus a p x p eigen-decomposition; the result equals
        ``PCA(solver="covariance").fit`` on all rows seen, up to round-off.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_chunk, n_features)
            At least 2 rows (and at least ``n_components``) must have been seen in total.
        """
        self._check_params(streaming=True)
        moments = getattr(self, "moments_", None)
        check_feature_names(self, X, reset=moments is None)
        chunk = Moments.from_arrays(X)
        if moments is None:
            moments = Moments()
        elif chunk.n_features_ != moments.n_features_:
            raise ValueError(
                f"argument `X`: X has {chunk.n_features_} features, but PCA is expecting "
                f"{moments.n_features_} features as input"
            )
        moments.merge(chunk)
        self.moments_ = moments
        self._fit_moments(moments)
        return self

    def fit_chunks(self, chunks: Iterable[Any]) -> PCA:
        """Fit on an iterable of row chunks (e.g. memory maps or a generator) in one pass.

        Equivalent to ``fit`` with ``solver="covariance"`` on the concatenated chunks, with
        memory bounded by one chunk and the p x p statistics.
        """
        self._check_params(streaming=True)
        moments = Moments()
        seen = 0
        for chunk in chunks:
            moments.update(chunk)
            seen += 1
        if seen == 0:
            raise ValueError("argument `chunks` yielded no chunk; at least one is required")
        self.moments_ = moments
        self._fit_moments(moments)
        return self

    def _fit_moments(self, moments: Moments) -> None:
        n = moments.n_samples_
        p = moments.n_features_
        if p is None or n < 2:
            raise ValueError(
                f"PCA needs at least 2 samples; the streamed chunks hold {n} so far"
            )
        k = _check_n_components(self.n_components, n, p)
        spectrum = covariance_spectrum(moments.covariance(ddof=1), moments.mean_x_, n)
        self._set_spectrum(spectrum, k, "covariance", dtype=None)

    def _fit_dask(self, X: Any) -> None:
        if self.solver not in ("auto", "covariance"):
            raise ValueError(
                f"Dask arrays are fitted through their moments and need solver 'auto' or "
                f"'covariance'; got solver={self.solver!r}"
            )
        from gicho.dask import dask_moments  # per-block moments, tree-merged on the cluster

        moments, _, _ = dask_moments(X)
        self._fit_moments(moments)

    def _set_spectrum(self, spectrum: Spectrum, k: int | float, solver: str, dtype: Any) -> None:
        variance = spectrum.explained_variance
        if spectrum.total_variance == 0:  # constant data: the ratios are 0 / 0, NaN (as sklearn)
            if isinstance(k, float):
                raise ValueError(
                    f"argument `n_components`={k!r} is a fraction of the variance, but X has zero "
                    "total variance (every column is constant); pass an int"
                )
            ratio_all = variance * np.nan
        else:
            ratio_all = variance / spectrum.total_variance
        if isinstance(k, float):
            # the fewest components whose cumulative ratio exceeds k (scikit-learn's rule)
            cumulative = np.cumsum(_as_numpy(ratio_all))
            k = min(int(np.searchsorted(cumulative, k, side="right")) + 1, cumulative.shape[0])
        n, p = spectrum.n_samples, spectrum.components.shape[1]
        if self.whiten:  # before any attribute changes: a failed fit leaves no half state
            self._check_whitenable(spectrum, k)
        rank = min(n, p)
        if k < rank:
            if spectrum.complete:
                noise = float(_as_numpy(variance[k:]).mean())
            else:
                noise = (spectrum.total_variance - float(_as_numpy(variance).sum())) / (rank - k)
        else:
            noise = 0.0

        def keep(a: Any) -> Any:
            a = a[:k]
            a = a.clone() if is_torch(a) else np.array(a)
            return a if dtype is None or is_torch(a) else a.astype(dtype, copy=False)

        self.components_ = keep(spectrum.components)
        self.explained_variance_ = keep(variance)
        self.explained_variance_ratio_ = keep(ratio_all)
        self.singular_values_ = keep(spectrum.singular_values)
        mean = spectrum.mean
        self.mean_ = mean.clone() if is_torch(mean) else np.asarray(mean, dtype=dtype or np.float64)
        self.noise_variance_ = noise
        self.n_components_ = int(k)
        self.n_samples_ = int(n)
        self.n_features_in_ = int(p)
        self.solver_ = solver

    @staticmethod
    def _check_whitenable(spectrum: Spectrum, k: int) -> None:
        """Whitening divides by each kept component's spread: none may be (numerically) zero."""
        rank = numerical_rank(spectrum.singular_values, spectrum.n_samples,
                              spectrum.components.shape[1], from_covariance=spectrum.from_covariance)
        if k > rank:
            variance = float(_as_numpy(spectrum.explained_variance)[rank])
            raise ValueError(
                f"whiten=True divides by the standard deviation of each component, but component "
                f"{rank} of the {k} kept has variance {variance:.3g}, numerically "
                f"zero (the centred data has rank {rank}); pass n_components <= {rank}, or use "
                "gicho.decomposition.Whitening with eps > 0 to regularise"
            )

    # ------------------------------------------------------------------ transforms
    def transform(self, X: Any) -> Any:
        """Project ``X`` (n_samples, n_features) on the principal axes: (n_samples, n_components).

        Computes ``(X - mean_) @ components_.T``, divided by ``sqrt(explained_variance_)``
        when whitening. Returns the input's kind: ndarray, tensor (same device) or lazy Dask
        array.
        """
        check_is_fitted(self, "components_")
        X = self._check_transform_input(X, self.n_features_in_, "X")
        mean, components, scale = self._params_like(X)
        if is_dask(X):
            Z = (X - mean) @ components.T
        else:
            # project first, then shift: no centred copy of X
            Z = X @ components.T
            Z -= mean @ components.T
        if self.whiten:
            Z = Z / scale
        return Z

    def inverse_transform(self, Z: Any) -> Any:
        """Map projections (n_samples, n_components) back to the input space (n_samples, n_features).

        Exact (up to round-off) when all components are kept, whitened or not; otherwise the
        projection of the data on the kept principal subspace.
        """
        check_is_fitted(self, "components_")
        Z = self._check_transform_input(Z, self.n_components_, "Z")
        mean, components, scale = self._params_like(Z)
        if self.whiten:
            Z = Z * scale
        return Z @ components + mean

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """``fit(X).transform(X)``."""
        return self.fit(X).transform(X)

    @property
    def _n_features_out(self) -> int:
        return self.components_.shape[0]

    # ------------------------------------------------------------------ helpers
    def _check_params(self, streaming: bool = False) -> None:
        check_choice(self.solver, "solver", SOLVERS)
        if not isinstance(self.whiten, (bool, np.bool_)):
            raise TypeError(f"argument `whiten` must be a bool; got {describe(self.whiten)}")
        def is_count(v: Any) -> bool:
            return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0

        if not is_count(self.n_oversamples):
            raise ValueError(
                f"argument `n_oversamples` must be an integer >= 0; got {describe(self.n_oversamples)}"
            )
        it = self.n_power_iterations
        if it != "auto" and not is_count(it):
            raise ValueError(
                f"argument `n_power_iterations` must be 'auto' or an integer >= 0; got {describe(it)}"
            )
        if streaming and self.solver not in ("auto", "covariance"):
            raise ValueError(
                "partial_fit and fit_chunks stream the moments and need solver 'auto' or "
                f"'covariance'; got solver={self.solver!r}"
            )

    def _choose_solver(self, n: int, p: int, k: int | float) -> str:
        if isinstance(k, float) and self.solver == "randomized":
            raise ValueError(
                f"argument `n_components`={k!r} (a fraction of variance) needs the full spectrum; "
                "use solver 'auto', 'svd' or 'covariance', or an int with 'randomized'"
            )
        if self.solver != "auto":
            return self.solver
        if p <= _AUTO_COVARIANCE_MAX_FEATURES and n >= _AUTO_COVARIANCE_MIN_ASPECT * p:
            return "covariance"
        if max(n, p) <= _AUTO_SMALL_PROBLEM or self.n_components is None or isinstance(k, float):
            return "svd"
        if k < _AUTO_RANDOMIZED_MAX_FRACTION * min(n, p):
            return "randomized"
        return "svd"

    def _power_iterations(self, k: int, n: int, p: int) -> int:
        if self.n_power_iterations != "auto":
            return int(self.n_power_iterations)
        few, many = _AUTO_POWER_ITERATIONS
        return few if k < _AUTO_FEW_COMPONENTS_FRACTION * min(n, p) else many

    def _check_transform_input(self, X: Any, width: int, name: str) -> Any:
        if is_dask(X) and hasattr(X, "to_dask_array"):  # a Dask DataFrame
            X = X.to_dask_array(lengths=True)
        if is_dask(X):
            if X.ndim != 2 or X.shape[1] != width:
                raise ValueError(f"argument `{name}` must have shape (n, {width}); got {X.shape}")
            return X
        if name == "X":
            check_feature_names(self, X, reset=False)
        X = check_input(X, name, min_samples=1)
        if X.shape[1] != width:
            raise ValueError(
                f"argument `{name}`: {name} has {X.shape[1]} features, but PCA is expecting "
                f"{width} features as input"
            )
        return X

    def _params_like(self, X: Any) -> tuple[Any, Any, Any]:
        """mean_, components_ and the whitening scale in X's backend, device and dtype."""
        params = (self.mean_, self.components_, self.explained_variance_)
        if is_torch(X):
            import torch

            params = tuple(torch.as_tensor(p, device=X.device).to(X.dtype) for p in params)
            mean, components, variance = params
            return mean, components, variance.sqrt()
        mean, components, variance = (_as_numpy(p) for p in params)
        return mean, components, np.sqrt(variance)

