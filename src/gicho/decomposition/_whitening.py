"""Whitening transforms: PCA, ZCA (Mahalanobis) and Cholesky whitening.

A whitening matrix :math:`W` maps centred data to :math:`z = W (x - m)` with
:math:`\\operatorname{Cov}(z) = W C W^T = I`. Every such :math:`W` is a rotation of
:math:`C^{-1/2}`; the three classical choices (Kessy, Lewin & Strimmer 2018, "Optimal
whitening and decorrelation", The American Statistician 72(4)) are, with
:math:`C = U \\Lambda U^T` and :math:`C = L L^T`:

* ``"pca"``: :math:`W = \\Lambda^{-1/2} U^T` (rotate onto the principal axes, then scale);
* ``"zca"``: :math:`W = U \\Lambda^{-1/2} U^T = C^{-1/2}` (rotate back: the whitened data
  stays as close as possible to the original, :math:`\\min E\\|x_c - z\\|^2`);
* ``"cholesky"``: :math:`W = L^{-1}` (applied by a triangular solve, never an explicit inverse).
"""

from __future__ import annotations

import numbers
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin

from gicho._validation import (
    check_choice,
    check_feature_names,
    check_is_fitted,
    check_n_features,
    describe,
)
from gicho.decomposition._solvers import (
    check_input,
    eigh_descending,
    is_torch,
    mean_and_covariance,
    unscaled_variances,
)

__all__ = ["Whitening"]

METHODS = ("pca", "zca", "cholesky")


def _solve_lower(L: Any, B: Any) -> Any:
    """Solve ``L Y = B`` for lower-triangular ``L`` (p, p) and ``B`` (p, n)."""
    if is_torch(L):
        import torch

        return torch.linalg.solve_triangular(L, B, upper=False)
    from scipy.linalg import solve_triangular

    return solve_triangular(L, B, lower=True, check_finite=False)


def _cholesky(C: Any) -> Any:
    if is_torch(C):
        import torch

        return torch.linalg.cholesky(C)
    return np.linalg.cholesky(C)


class Whitening(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Decorrelate and rescale features so that their sample covariance is the identity.

    Parameters
    ----------
    method : {"pca", "zca", "cholesky"}, default "zca"
        The whitening matrix (see the module docstring). "zca" changes the data least
        (smallest mean squared difference between centred input and output); "pca" gives
        uncorrelated principal coordinates, strongest first; "cholesky" is triangular, so
        output feature j only depends on input features 0..j.
    eps : float, default 0.0
        Regulariser added to every eigenvalue of the covariance (for "cholesky": to its
        diagonal), :math:`\\Lambda \\to \\Lambda + \\epsilon I`, in the units of the data's
        variance. With ``eps > 0`` directions of tiny or zero variance (constant features,
        more features than samples) are damped instead of blown up; the output covariance is
        then :math:`\\Lambda (\\Lambda + \\epsilon I)^{-1}` on the principal axes ("pca",
        "zca"), not exactly the identity, and a constant feature maps to 0. With ``eps = 0`` a (numerically) singular
        covariance, one with an eigenvalue at most ``max(n, p) * machine_eps * largest``,
        raises a ``ValueError`` at ``fit`` that names the constant features.

    Attributes
    ----------
    mean_ : (n_features,)
    covariance_ : (n_features, n_features)
        Sample covariance of the training data (ddof = 1), before regularisation.
    eigenvalues_ : (n_features,)
        Eigenvalues of ``covariance_``, largest first ("pca" and "zca").
    eigenvectors_ : (n_features, n_features)
        The matching eigenvectors as rows, scikit-learn's sign rule ("pca" and "zca").
    cholesky_ : (n_features, n_features)
        Lower Cholesky factor of ``covariance_ + eps I`` ("cholesky").
    n_samples_, n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(500, 3)) @ [[2, 0, 0], [1, 1, 0], [0, 3, 1]]
    >>> Z = Whitening(method="zca").fit_transform(X)
    >>> bool(np.allclose(np.cov(Z, rowvar=False), np.eye(3)))
    True
    """

    def __init__(self, method: Literal["pca", "zca", "cholesky"] = "zca", eps: float = 0.0) -> None:
        self.method = method
        self.eps = eps

    def fit(self, X: Any, y: Any = None) -> Whitening:
        """Estimate the mean and covariance of ``X`` (n_samples >= 2, n_features) and factor it.

        ``X`` may be a NumPy array or a torch tensor (factored on its device).
        """
        check_choice(self.method, "method", METHODS)
        eps = self.eps
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not np.isfinite(eps) or eps < 0:
            raise ValueError(f"argument `eps` must be a finite number >= 0; got {describe(eps)}")
        check_feature_names(self, X, reset=True)
        X = check_input(X, "X", min_samples=2, finite=False)
        n, p = X.shape
        # the factors are computed on X / scale (scale a power of two, 1 for ordinary data);
        # NumPy: one pass over X, as PCA's covariance solver
        X, scale, mean, C = mean_and_covariance(X)
        if not is_torch(X):  # the fitted statistics keep X's dtype
            mean, C = mean.astype(X.dtype, copy=False), C.astype(X.dtype, copy=False)
        if scale != 1.0 and eps:
            with np.errstate(over="ignore", under="ignore"):
                eps = float(eps / np.float64(scale) ** 2)
        values, rows = eigh_descending(C)
        largest = float(values[0])
        # same relative threshold as gicho.decomposition._solvers.numerical_rank on covariance eigenvalues
        tol = max(n, p) * float(np.finfo(_np_dtype(C)).eps) * largest
        if eps == 0 and (largest == 0.0 or float(values[-1]) <= tol):
            raise ValueError(self._singular_message(C, values, tol, n))
        if scale != 1.0:  # the variances in the data's units must be representable
            unscaled_variances(np.diagonal(C), scale, "X", "variances")
        with np.errstate(under="ignore"):  # tiny covariances between features may underflow to 0
            self.mean_ = mean * scale if scale != 1.0 else mean
            self.covariance_ = C * np.float64(scale) ** 2 if scale != 1.0 else C
            self.n_samples_ = int(n)
            self.n_features_in_ = int(p)
            for name in ("eigenvalues_", "eigenvectors_", "cholesky_", "_scale"):
                self.__dict__.pop(name, None)
            if self.method == "cholesky":
                eye = np.eye(p, dtype=C.dtype) if not is_torch(C) else _torch_eye(C)
                self.cholesky_ = _cholesky(C + eps * eye) * scale
            else:
                self.eigenvalues_ = values * np.float64(scale) ** 2 if scale != 1.0 else values
                self.eigenvectors_ = rows
                self._scale = (values + eps) ** 0.5 * scale
        return self

    @staticmethod
    def _singular_message(C: Any, values: Any, tol: float, n: int) -> str:
        variances = np.diagonal(C.detach().cpu().numpy() if is_torch(C) else C)
        constant = np.flatnonzero(variances <= tol)
        listed = ", ".join(map(str, constant[:10])) + (", ..." if constant.size > 10 else "")
        n_small = int((np.asarray(values.detach().cpu() if is_torch(values) else values) <= tol).sum())
        detail = f"constant feature(s) at column(s) [{listed}]; " if constant.size else ""
        if C.shape[0] >= n:
            detail += f"{C.shape[0]} features but only {n} samples; "
        return (
            f"the covariance of X is singular ({n_small} eigenvalue(s) <= {tol:.3g}): {detail}"
            "whitening would divide by zero. Pass eps > 0 (added to the eigenvalues, e.g. "
            "1e-6 times the average variance) to regularise, or drop those directions"
        )

    def transform(self, X: Any) -> Any:
        """Whiten ``X`` (n_samples, n_features) -> (n_samples, n_features)."""
        X = self._check(X)
        Xc = X - self._like(self.mean_, X)
        if self.method == "cholesky":
            return _solve_lower(self._like(self.cholesky_, X), Xc.T).T
        U = self._like(self.eigenvectors_, X)  # rows are eigenvectors
        Z = (Xc @ U.T) / self._like(self._scale, X)  # principal coordinates, unit variance
        return Z if self.method == "pca" else Z @ U

    def inverse_transform(self, Z: Any) -> Any:
        """Undo :meth:`transform`: exact (up to round-off) for every method and any ``eps``."""
        Z = self._check(Z, name="Z")
        mean = self._like(self.mean_, Z)
        if self.method == "cholesky":
            return Z @ self._like(self.cholesky_, Z).T + mean
        U = self._like(self.eigenvectors_, Z)
        if self.method == "zca":
            Z = Z @ U.T
        return (Z * self._like(self._scale, Z)) @ U + mean

    @property
    def _n_features_out(self) -> int:
        return self.n_features_in_

    def _check(self, X: Any, name: str = "X") -> Any:
        check_is_fitted(self, "covariance_")
        if name == "X":
            check_feature_names(self, X, reset=False)
        X = check_input(X, name, min_samples=1)
        check_n_features(self, X, reset=False)
        return X

    @staticmethod
    def _like(param: Any, X: Any) -> Any:
        """``param`` in the backend, device and dtype of ``X``."""
        if is_torch(X):
            import torch

            return torch.as_tensor(param, device=X.device).to(X.dtype)
        if is_torch(param):
            param = param.detach().cpu().numpy()
        return param


def _np_dtype(C: Any) -> Any:
    if is_torch(C):
        return np.float32 if str(C.dtype) == "torch.float32" else np.float64
    return C.dtype


def _torch_eye(C: Any) -> Any:
    import torch

    return torch.eye(C.shape[0], dtype=C.dtype, device=C.device)
