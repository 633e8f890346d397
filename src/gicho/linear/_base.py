"""Ordinary and weighted least squares: :class:`LinearRegression`.

The estimator reads the data once into :class:`gicho.moments.Moments` (means and centred Gram
matrices, blocked and numerically stable), decides from the condition number of the centred,
column-scaled design how to solve, and computes the inference statistics that scikit-learn
does not give (standard errors, classical and HC0-HC3; t, p, intervals; R^2, F, AIC/BIC) with
the same definitions as statsmodels. See :mod:`gicho.linear._solve` and
:mod:`gicho.linear._inference` for the numerical details.

Out of core: :meth:`LinearRegression.partial_fit` and :meth:`LinearRegression.fit_chunks`
accumulate the same moments chunk by chunk and give the batch answer to round-off;
``fit`` given Dask collections does it on a Dask cluster (:mod:`gicho.dask`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from gicho._validation import (
    check_array,
    check_choice,
    check_feature_names,
    check_n_features,
    check_positive,
    check_probability,
    describe,
    is_dask,
)
from gicho._validation import is_torch as _is_torch
from gicho.linear import _solve as S
from gicho.linear._inference import (
    COV_TYPES,
    OLSStatistics,
    OLSSummary,
    compute_statistics,
    design_condition_number,
    robust_meat,
)
from gicho.linear._inference import conf_int as _conf_int
from gicho.linear._input import (
    check_fitted,
    check_X,
    check_xy,
    sum_log,
    tensor_dtype,
)
from gicho.linear._scale import extreme_scales, ordinary_magnitudes, unscale
from gicho.linear._solve import (
    IllConditionedWarning,
    PrecisionWarning,
    RankDeficientWarning,
    weighted_centred,
)
from gicho.linear._streaming import StreamingFitMixin
from gicho.moments import Moments

__all__ = [
    "COV_TYPES",
    "SOLVERS",
    "IllConditionedWarning",
    "LinearRegression",
    "PrecisionWarning",
    "RankDeficientWarning",
]

SOLVERS = ("auto", "normal", "qr", "svd", "gd")
# When the R^2 of the moments-based residual sum of squares is this close to 1 the formula
# yy - b^T beta cancels; with the rows at hand the residuals are then summed directly.
_SSR_CANCELLATION = 1e-3


class LinearRegression(StreamingFitMixin, RegressorMixin, BaseEstimator):
    """Least squares ``y ~ X beta + beta_0`` with exact solvers and inference statistics.

    Parameters
    ----------
    fit_intercept : bool, default=True
        Fit ``beta_0``. The design is then centred on its (weighted) mean, which is also
        what keeps the normal equations accurate for features with large means.
    solver : {"auto", "normal", "qr", "svd", "gd"}, default="auto"
        ``normal``: Cholesky on the centred Gram matrix; ``qr``: Householder QR;
        ``svd``: minimum-norm solution (``rank_``, ``singular_values_``);
        ``gd``: gradient descent (``n_iter_``); ``auto``: the normal equations when the
        condition number of the centred, column-scaled design is at most ``cond_max``,
        otherwise QR with an :class:`IllConditionedWarning` that names the condition number.
    cov_type : {"nonrobust", "HC0", "HC1", "HC2", "HC3"}, default="nonrobust"
        Covariance of the coefficients. The robust ones need a second pass over the rows,
        so only :meth:`fit` (not the streaming methods) supports them.
    alpha : float, default=0.05
        Confidence intervals of :meth:`summary` are at level ``1 - alpha``.
    use_t : bool or None, default=None
        Student's t (True) or normal (False) p-values and intervals; ``None`` follows
        statsmodels: t for ``nonrobust``, normal for the HC covariances.
    cond_max : float, default=1e3
        ``auto`` switches away from the normal equations above this condition number (their
        relative error grows like ``cond^2 * 1e-16``: at most ~1e-10 below the threshold).
    tol : float, default=1e-10
        ``gd``: stop when the gradient norm is at most ``tol`` times its initial value.
    max_iter : int, default=100_000
        ``gd``: maximum number of iterations.
    rcond : float or None, default=None
        ``svd``: relative cutoff for small singular values (``None``: ``eps * max(n, p)``).

    Attributes
    ----------
    coef_ : ndarray or Tensor of shape (p,) or (k, p)
        Coefficients (a tensor on the input's device and dtype for torch input). Aliased
        coefficients of a rank-deficient design are 0.
    intercept_ : float or ndarray of shape (k,) (Tensor for torch input)
    n_features_in_ : int
    feature_names_in_ : ndarray of str, shape (p,)
        Only when X had string column names (a pandas DataFrame).
    solver_ : str
        The solver that ran (``auto`` resolves to ``normal`` or ``qr``).
    cond_ : float
        Condition number of the centred, column-scaled design (what ``auto`` and ``cond_max``
        look at; "Scaled Cond. No." in :meth:`summary`).
    condition_number_ : float
        statsmodels' ``condition_number`` ("Cond. No." in :meth:`summary`): sqrt of the ratio
        of the extreme eigenvalues of ``X^T W X`` with the constant column, unscaled.
    rank_ : int
        Numerical rank of the design (without the intercept).
    aliased_ : ndarray of bool, shape (p,)
        Columns that are linear combinations of earlier ones (coefficient 0, statistics NaN).
    singular_values_ : ndarray or None
        ``svd`` only: singular values of the centred, weighted design.
    n_iter_ : int
        ``gd`` only (the attribute is absent for the direct solvers): iterations run.
    moments_ : Moments
        The sufficient statistics (float64 NumPy).
    params_, bse_, tvalues_, pvalues_ : ndarray of shape (P,) or (k, P)
        Parameters ``[intercept, coef...]`` and their standard errors, t statistics and
        p-values (``P = p + fit_intercept``).
    cov_params_ : ndarray of shape (P, P) or (k, P, P)
    rsquared_, rsquared_adj_, fvalue_, f_pvalue_, llf_, aic_, bic_, ssr_, ess_,
    centered_tss_, scale_ : float or ndarray of shape (k,)
    df_model_, df_resid_ : float
    nobs_ : int

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> X, y = load_diabetes(return_X_y=True)
    >>> model = LinearRegression().fit(X, y)
    >>> round(model.score(X, y), 4)
    0.5177
    """

    def __init__(
        self,
        *,
        fit_intercept: bool = True,
        solver: str = "auto",
        cov_type: str = "nonrobust",
        alpha: float = 0.05,
        use_t: bool | None = None,
        cond_max: float = 1e3,
        tol: float = 1e-10,
        max_iter: int = 100_000,
        rcond: float | None = None,
    ) -> None:
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.cov_type = cov_type
        self.alpha = alpha
        self.use_t = use_t
        self.cond_max = cond_max
        self.tol = tol
        self.max_iter = max_iter
        self.rcond = rcond

    # ------------------------------------------------------------------ validation
    def _check_params(self, streaming: bool) -> None:
        if not isinstance(self.fit_intercept, (bool, np.bool_)):
            raise TypeError(f"argument `fit_intercept` must be a bool; got {describe(self.fit_intercept)}")
        check_choice(self.solver, "solver", SOLVERS)
        check_choice(self.cov_type, "cov_type", COV_TYPES)
        check_probability(self.alpha, "alpha", closed=False)
        if self.use_t is not None and not isinstance(self.use_t, (bool, np.bool_)):
            raise TypeError(f"argument `use_t` must be a bool or None; got {describe(self.use_t)}")
        check_positive(self.cond_max, "cond_max")
        check_positive(self.tol, "tol")
        check_positive(self.max_iter, "max_iter", integer=True)
        if self.rcond is not None:
            check_positive(self.rcond, "rcond")
        if streaming and self.solver in ("qr", "svd"):
            raise ValueError(
                f"argument `solver`={self.solver!r} needs all rows in memory; partial_fit, "
                "fit_chunks and the Dask fit support 'auto', 'normal' and 'gd' (or call fit)"
            )
        if streaming and self.cov_type != "nonrobust":
            raise ValueError(
                f"argument `cov_type`={self.cov_type!r} needs a second pass over the rows; "
                "partial_fit, fit_chunks and the Dask fit support only 'nonrobust' (or call fit)"
            )

    def _check_names(self, X: Any, reset: bool) -> None:
        """Record (fit) or compare (predict) DataFrame column names, as scikit-learn does."""
        check_feature_names(self, X, reset=reset)

    def _check_n_features(self, X: Any, reset: bool) -> None:
        """Record (fit) or compare (predict) the number of columns of a validated X."""
        check_n_features(self, X, reset=reset)

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LinearRegression:
        """Fit on in-memory data.

        Parameters
        ----------
        X : array-like, DataFrame or Tensor of shape (n, p)
            A Dask array or DataFrame is fitted by map-reduce of the moments on the active
            Dask scheduler (see :mod:`gicho.dask`), never loaded into memory.
        y : array-like or Tensor of shape (n,) or (n, k)
        sample_weight : array-like of shape (n,), optional
            Non-negative weights (weighted least squares, statsmodels' ``WLS``).

        Returns
        -------
        self
        """
        self.__dict__.pop("_stream", None)  # a new fit ends any partial_fit stream
        if is_dask(X):  # map-reduce of the moments; never pull X into memory
            self._fit_dask(X, y, sample_weight)
            return self
        self._check_params(streaming=False)
        self._check_names(X, reset=True)
        X, y, w = check_xy(X, y, sample_weight)
        self._check_n_features(X, reset=True)
        moments, scales = self._moments(X, y, w)
        if scales is not None:  # powers of two: exact; undone on every fitted number below
            X, y = X / scales[0], y / (scales[1] if y.ndim == 2 else scales[1][0])
            moments = Moments.from_arrays(X, y, w)
        self._finish(moments, X=X, y=y, w=w, sum_log_w=sum_log(w, X.shape[0]), dtype=tensor_dtype(X),
                     scales=scales)  # fmt: skip
        return self

    @staticmethod
    def _moments(X: Any, y: Any, w: Any) -> tuple[Moments | None, tuple[float, np.ndarray] | None]:
        """One pass over the rows, plus the power-of-two scales extreme data need (else None).

        Without weights the moments themselves bound the data's magnitudes, so ordinary data
        are read once; extreme data (or moments that overflow) are scanned, rescaled and read
        again. Weights hide magnitudes from the moments: the data are scanned first.
        """
        if _is_torch(X):  # NumPy weights move to the tensor's device
            return Moments.from_arrays(X, y, w), None
        if w is not None:
            scales = extreme_scales(X, y)
            return (Moments.from_arrays(X, y, w) if scales is None else None), scales
        try:
            moments = Moments.from_arrays(X, y)
        except ValueError:  # NaN / inf, or squares beyond float64: rescaling may cure the latter
            scales = extreme_scales(X, y)
            if scales is None:
                raise
            return None, scales
        if ordinary_magnitudes(moments):
            return moments, None
        scales = extreme_scales(X, y)
        return (moments if scales is None else None), scales

    # ------------------------------------------------------------------ solving
    def _finish(
        self, moments: Moments, *, X: Any = None, y: Any = None, w: Any = None, sum_log_w: float,
        dtype: Any = None, scales: tuple[float, np.ndarray] | None = None,
    ) -> None:
        """Solve from the moments (plus the rows when at hand) and compute the statistics."""
        torch_in = moments.is_torch
        ref = moments.mean_x_ if torch_in else None
        m = moments.to_numpy() if torch_in else moments
        self.moments_ = m
        p = m.n_features_
        names = [str(s) for s in getattr(self, "feature_names_in_", [f"x{j}" for j in range(p)])]
        system = S.gram_system(m, self.fit_intercept)
        n_params = p + int(self.fit_intercept)
        if m.n_samples_ < n_params:
            warnings.warn(
                f"X has {m.n_samples_} row(s) for {n_params} parameter(s): the least-squares "
                "solution is not unique; aliased coefficients are set to 0 and there are no "
                "residual degrees of freedom (standard errors NaN)",
                RankDeficientWarning,
                stacklevel=3,
            )
        rows = None if X is not None else S.factor_rows(m, self.fit_intercept)
        sol = self._solve(system, names, X, y, w, rows=rows)
        k = sol.coef.shape[1]
        # residual sum of squares: exact from QR; from the R factor of streamed data (the rows
        # of R stand in for the data: ||R_y - R_x beta|| = ||y - X beta||); else yy - b^T beta
        ssr = sol.ssr
        if ssr is None and rows is not None:
            Xr, yr = rows
            ssr = np.sum((yr - Xr @ sol.coef) ** 2, axis=0)
        if ssr is None:
            ssr = np.maximum(np.diagonal(system.c) - np.einsum("pk,pk->k", system.b, sol.coef), 0.0)
            if X is None:
                S.warn_if_cancelled(ssr, np.diagonal(system.c))
        tss_c = np.diagonal(system.c) if self.fit_intercept else np.diagonal(system.c) - system.weight_sum * system.mean_y**2
        resid = None
        need_resid = self.cov_type != "nonrobust" or (X is not None and np.any(ssr < _SSR_CANCELLATION * tss_c))
        if need_resid and X is not None:
            resid = self._residuals(sol, system, X, y)
            ssr = (resid**2 * (1.0 if w is None else w[:, None])).sum(axis=0)

        # statsmodels' explicit-constant detection (a constant, non-zero column without intercept)
        const_idx = None
        if not self.fit_intercept:
            const = (np.diagonal(m.xx_) <= m.weight_sum_ * (64 * S.EPS * np.abs(m.mean_x_)) ** 2) & (m.mean_x_ != 0)
            const_idx = int(np.argmax(const)) if const.any() else None
        # statsmodels' implicit constant: columns that span the constant (a complete set of
        # dummies) make a model with a constant, though no column is constant
        implicit = not self.fit_intercept and const_idx is None and S.spans_constant(m, sol.kept)
        k_constant = int(self.fit_intercept or const_idx is not None or implicit)
        meats = None
        if self.cov_type != "nonrobust":
            Xn = X.detach().cpu().double().numpy() if _is_torch(X) else X
            meats = robust_meat(sol, system, Xn, resid, w, self.cov_type, float(m.n_samples_ - sol.rank - int(self.fit_intercept)))
        param_names = (["const"] if self.fit_intercept else []) + names
        st = compute_statistics(
            sol, system, ssr, sum_log_w, cov_type=self.cov_type, use_t=self.use_t, meats=meats,
            k_constant=k_constant, const_idx=const_idx, param_names=param_names,
        )  # fmt: skip
        if scales is not None:
            sol, st, m = unscale(sol, st, m, *scales, self.fit_intercept)
            self.moments_ = m
        self._set_attributes(sol, st, m, k, ref, dtype)

    def _solve(
        self, system: S.GramSystem, names: list[str], X: Any, y: Any, w: Any, rows: Any = None
    ) -> S.Solution:
        d, usable = S.scale_columns(system, names)
        A = system.G / np.outer(d, d)
        cond = S.condition_number(A[np.ix_(usable, usable)])
        solver = self.solver
        in_memory = X is not None or rows is not None  # rows: the R factor of streamed data
        if solver == "auto":
            solver = "normal" if cond <= self.cond_max else ("qr" if in_memory else "normal")
        if solver in ("qr", "svd"):
            Xw, yw = rows if X is None else weighted_centred(X, y, w, system)
            if solver == "qr":
                sol = S.solve_qr(Xw, yw, d, usable, cond)
            else:
                if _is_torch(Xw):
                    Xw, yw = Xw.detach().cpu().double().numpy(), yw.detach().cpu().double().numpy()
                sol = S.solve_svd(Xw, yw, d, cond, self.rcond)
        elif solver == "gd":
            sol = S.solve_gd(system, d, usable, cond, self.tol, self.max_iter)
        else:
            sol = S.solve_normal(system, d, usable, cond)
        cond_text = f"{sol.cond:.3g}" + (" (numerically singular)" if sol.cond > 1 / S.EPS else "")
        aliased = usable & ~sol.kept
        if aliased.any():
            pass  # the rank-deficiency warning below says more than a condition number
        elif self.solver == "auto" and cond > self.cond_max:
            how = (
                "QR"
                if in_memory
                else "the normal equations with rank detection (only the moments are at hand: "
                "relative error up to ~cond^2 * 1e-16)"
            )
            warnings.warn(
                f"the design is ill-conditioned: condition number {cond_text} of the centred, "
                f"column-scaled X exceeds cond_max={self.cond_max:g}; solver='auto' used {how}",
                IllConditionedWarning,
                stacklevel=4,
            )
        elif self.solver in ("normal", "gd") and cond > self.cond_max:
            warnings.warn(
                f"the design is ill-conditioned: condition number {cond_text} of the centred, "
                f"column-scaled X; solver={self.solver!r} may lose about cond^2 * 1e-16 relative "
                "accuracy (solver='auto' or 'qr' would not)",
                IllConditionedWarning,
                stacklevel=4,
            )
        if aliased.any():
            warnings.warn(
                f"the design is rank deficient (rank {sol.rank} of {len(names)} columns): "
                f"column(s) {S._name_list(names, aliased)} are linear combinations of earlier "
                "columns; they are aliased: coefficient set to 0, standard error NaN",
                RankDeficientWarning,
                stacklevel=4,
            )
        elif sol.solver == "svd" and not sol.estimable.all():
            warnings.warn(
                f"the design is rank deficient (rank {sol.rank} of {len(names)} columns): "
                "solver='svd' returns the minimum-norm solution; non-estimable coefficients "
                f"({S._name_list(names, ~sol.estimable)}) have NaN standard errors",
                RankDeficientWarning,
                stacklevel=4,
            )
        return sol

    def _residuals(self, sol: S.Solution, system: S.GramSystem, X: Any, y: Any) -> np.ndarray:
        """Unweighted residuals (n, k) as float64 NumPy."""
        if _is_torch(X):
            X, y = X.detach().cpu().double().numpy(), y.detach().cpu().double().numpy()
        Y = y[:, None] if y.ndim == 1 else y
        intercept = system.mean_y - system.mean_x @ sol.coef if self.fit_intercept else 0.0
        return Y - X @ sol.coef - intercept

    def _set_attributes(self, sol: S.Solution, st: OLSStatistics, m: Moments, k: int, ref: Any, dtype: Any) -> None:
        one = m.y_ndim_ == 1
        coef = sol.coef.T  # (k, p)
        intercept = st.params[:, 0] if self.fit_intercept else np.zeros(k)
        if ref is not None:  # torch in, torch out (device and dtype of X)
            import torch

            dtype = torch.float64 if dtype is None else dtype
            coef = torch.as_tensor(coef, device=ref.device).to(dtype)
            intercept = torch.as_tensor(intercept, device=ref.device).to(dtype)
        self.coef_ = coef[0] if one else coef
        self.intercept_ = (float(intercept[0]) if ref is None else intercept[0]) if one else intercept
        self.solver_ = sol.solver
        self.cond_ = sol.cond
        self.rank_ = sol.rank
        self.aliased_ = ~sol.kept
        self.singular_values_ = sol.singular_values
        if sol.n_iter is not None:
            self.n_iter_ = sol.n_iter
        elif hasattr(self, "n_iter_"):  # scikit-learn: only iterative solvers have n_iter_
            del self.n_iter_
        self._stats = st
        squeeze = (lambda a: a[0]) if one else (lambda a: a)
        for name in ("params", "bse", "tvalues", "pvalues", "cov_params"):
            setattr(self, f"{name}_", squeeze(getattr(st, name)))
        for name in ("rsquared", "rsquared_adj", "fvalue", "f_pvalue", "llf", "aic", "bic",
                     "ssr", "ess", "centered_tss", "scale"):  # fmt: skip
            value = getattr(st, name)
            setattr(self, f"{name}_", float(value[0]) if one else value)
        self.df_model_, self.df_resid_, self.nobs_ = st.df_model, st.df_resid, st.nobs
        self.condition_number_ = design_condition_number(m, self.fit_intercept)

    # ------------------------------------------------------------------ using the fit
    def predict(self, X: Any) -> Any:
        """Predictions ``X @ coef_.T + intercept_``, shape (n,) or (n, k) (a tensor for tensors)."""
        check_fitted(self)
        if _is_torch(X):  # torch in, torch out, whatever the fit was given
            import torch

            X = check_array(X, "X", ndim=2, dtype="float", keep_backend=True)
            self._check_n_features(X, reset=False)
            def like_x(a: Any) -> Any:  # float64 first: a Python float would become float32
                a = a if _is_torch(a) else torch.as_tensor(np.asarray(a, dtype=np.float64))
                return a.to(device=X.device, dtype=X.dtype)

            coef, intercept = like_x(self.coef_), like_x(self.intercept_)
            return (X @ coef if coef.ndim == 1 else X @ coef.T) + intercept
        self._check_names(X, reset=False)
        X = check_X(X)
        self._check_n_features(X, reset=False)
        coef = self.coef_.detach().cpu().numpy() if _is_torch(self.coef_) else self.coef_
        intercept = self.intercept_.detach().cpu().numpy() if _is_torch(self.intercept_) else self.intercept_
        return X @ np.asarray(coef, dtype=np.float64).T + intercept

    def conf_int(self, alpha: float | None = None) -> np.ndarray:
        """Confidence intervals of ``params_`` at level ``1 - alpha``: shape (P, 2) or (k, P, 2)."""
        check_fitted(self)
        alpha = self.alpha if alpha is None else check_probability(alpha, "alpha", closed=False)
        ci = _conf_int(self._stats, alpha)
        return ci[0] if self.moments_.y_ndim_ == 1 else ci

    def summary(
        self, target: int = 0, alpha: float | None = None, feature_names: Any = None
    ) -> OLSSummary:
        """The coefficient table and model statistics (``print`` it; ``.to_frame()`` for pandas).

        ``target`` picks the column of a multi-target y; ``feature_names`` (p strings)
        relabels the rows (default: ``feature_names_in_``, else ``x0, x1, ...``).
        """
        check_fitted(self)
        k = self._stats.params.shape[0]
        if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= target < k:
            raise ValueError(f"argument `target` must be an integer in [0, {k}); got {describe(target)}")
        alpha = self.alpha if alpha is None else check_probability(alpha, "alpha", closed=False)
        extra = {"Model": "OLS" if self.moments_.weight_sum_ == self.moments_.n_samples_ else "WLS",
                 "Solver": self.solver_, "Cond. No.": self.condition_number_,
                 "Scaled Cond. No.": self.cond_}  # fmt: skip
        names = None
        if feature_names is not None:
            names = [str(f) for f in feature_names]
            if len(names) != self.n_features_in_:
                raise ValueError(
                    f"argument `feature_names` has {len(names)} name(s); expected {self.n_features_in_}"
                )
            names = (["const"] if self.fit_intercept else []) + names
        return OLSSummary(self._stats, target, alpha, extra, names=names)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
