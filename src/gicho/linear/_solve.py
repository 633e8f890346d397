"""Least-squares solvers behind :class:`gicho.linear.LinearRegression`.

Every solver works in the same coordinates: the (weighted) design centred on its mean when
there is an intercept, with columns scaled to unit norm (``A = D^-1 G D^-1`` for the Gram
matrix ``G`` and ``D = diag(G)^(1/2)``). Column scaling is free, it makes the condition
number mean something (it no longer depends on the units of the features) and it is what the
rank tolerances are relative to.

* ``normal``: Cholesky of the scaled Gram matrix (never an explicit inverse). Forward error
  about ``cond^2 * eps``: fast and exact for well-conditioned designs.
* ``qr``: Householder QR of the scaled design augmented with y (``R`` only, no ``Q``); the
  residual sum of squares falls out of the last block of ``R``. Forward error about
  ``cond * eps`` (plus ``cond^2 * eps`` times the relative residual).
* ``svd``: LAPACK ``gelsd``: the minimum-norm solution, rank and singular values.
* ``gd``: gradient descent on the squared-error cost, step ``1 / lambda_max``.

Aliased (linearly dependent) columns are found in column order, as R's ``lm`` does: a column
is aliased when its distance from the span of the earlier kept columns is below a relative
tolerance. The model is then solved on the kept columns; the aliased coefficients are 0 and
their statistics NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla

from gicho.moments import Moments
from gicho.moments._tsqr import raw_r

EPS = float(np.finfo(np.float64).eps)
# |R_jj| of a unit-norm column below this is "in the span of the earlier columns". Exact
# dependencies leave round-off (~1e-15); a polynomial design with cond 1e11 keeps ~1e-11.
QR_RANK_TOL = 1e-12
# The Gram matrix only resolves squared distances down to ~ eps * cond^2, so the moments-only
# path (partial_fit, Dask) needs a coarser tolerance on sin^2 of the angle to the span.
GRAM_RANK_TOL = 1e-11


class IllConditionedWarning(UserWarning):
    """The design matrix is ill-conditioned; the message names the condition number."""


class PrecisionWarning(UserWarning):
    """A statistic lost its accuracy to cancellation; the message says which and why."""


class RankDeficientWarning(UserWarning):
    """Some columns of the design are linear combinations of others (aliased)."""


@dataclass
class GramSystem:
    """Normal-equation data ``G beta = b`` in centred (intercept) or raw coordinates."""

    G: np.ndarray  # (p, p)
    b: np.ndarray  # (p, k)
    c: np.ndarray  # (k, k): y^T W y (centred with an intercept)
    weight_sum: float
    mean_x: np.ndarray  # (p,) (used for the intercept; zeros without one)
    mean_y: np.ndarray  # (k,)
    fit_intercept: bool
    n_samples: int


def gram_system(moments: Moments, fit_intercept: bool) -> GramSystem:
    """Build the system to solve from float64 NumPy moments."""
    m = moments if not moments.is_torch else moments.to_numpy()
    mx, my = m.mean_x_, m.mean_y_
    if fit_intercept:
        G, b, c = m.xx_, m.xy_, m.yy_
    else:  # raw products: sum w x x^T = S_xx + W mean mean^T
        W = m.weight_sum_
        G = m.xx_ + W * np.outer(mx, mx)
        b = m.xy_ + W * np.outer(mx, my)
        c = m.yy_ + W * np.outer(my, my)
    G = 0.5 * (G + G.T)  # exact symmetry for the factorizations
    return GramSystem(G, b, c, m.weight_sum_, mx, my, fit_intercept, m.n_samples_)


@dataclass
class Solution:
    """What a solver found (coefficients in the original units of X)."""

    coef: np.ndarray  # (p, k); aliased coefficients are 0
    kept: np.ndarray  # (p,) bool: columns that were solved for (not aliased)
    cov_unit: np.ndarray  # (p, p): (X_c^T W X_c)^+ on estimable coefficients, NaN elsewhere
    estimable: np.ndarray  # (p,) bool: coefficients with a meaningful standard error
    rank: int  # numerical rank of the (centred) design without the intercept
    cond: float  # condition number of the centred, column-scaled design
    solver: str  # the solver that ran
    ssr: np.ndarray | None = None  # (k,) weighted residual sum of squares when computed exactly
    singular_values: np.ndarray | None = None
    n_iter: int | None = None
    # Maps sqrt(w) * (X[:, kept] - mean) to T with ||T_i||^2 = the slope part of leverage h_i.
    whiten: Callable[[np.ndarray], np.ndarray] | None = None
    # (X_c^T W X_c)^+ on the kept columns without the NaN mask (the robust sandwich's bread)
    bread: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.bread is None:
            self.bread = self.cov_unit[np.ix_(self.kept, self.kept)]


def _name_list(names: Sequence[str], mask: np.ndarray, limit: int = 8) -> str:
    chosen = [names[i] for i in np.flatnonzero(mask)]
    more = f" and {len(chosen) - limit} more" if len(chosen) > limit else ""
    return ", ".join(repr(c) for c in chosen[:limit]) + more


def scale_columns(system: GramSystem, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Column norms ``d`` and the mask of non-degenerate columns, warning about constant ones."""
    diag = np.clip(np.diagonal(system.G), 0.0, None)
    if system.fit_intercept:
        # A constant column centres to round-off: sum w (x - mean)^2 ~ W (eps mean)^2.
        floor = system.weight_sum * (64 * EPS * np.abs(system.mean_x)) ** 2
        degenerate = diag <= floor
        if degenerate.any():
            warnings.warn(
                f"column(s) {_name_list(names, degenerate)} of X are constant; with "
                "fit_intercept=True they are aliased with the intercept: coefficient set to 0, "
                "standard error NaN",
                RankDeficientWarning,
                stacklevel=4,
            )
    else:
        degenerate = diag == 0.0
        if degenerate.any():
            warnings.warn(
                f"column(s) {_name_list(names, degenerate)} of X are all zero: coefficient set "
                "to 0, standard error NaN",
                RankDeficientWarning,
                stacklevel=4,
            )
    d = np.sqrt(diag)
    d[degenerate] = 1.0
    return d, ~degenerate


# A combination v of the columns is "constant" when its variation about its mean is below
# this fraction of its mean's size: v^T S v <= tol * W (m^T v)^2 (S: centred Gram matrix).
IMPLICIT_CONSTANT_TOL = 1e-10


def spans_constant(m: Moments, kept: np.ndarray) -> bool:
    """Whether a combination of the (kept) columns is constant and non-zero: X v = c 1, c != 0.

    statsmodels compares the rank of ``[1, X]`` with that of ``X``; from the moments: a
    near-null direction v of the centred Gram matrix S (X v does not vary) whose mean
    ``m^T v`` is not 0.
    """
    idx = np.flatnonzero(kept)
    if idx.size == 0:
        return False
    S = m.xx_[np.ix_(idx, idx)]
    mean = m.mean_x_[idx]
    d = np.sqrt(np.clip(np.diagonal(S), 0.0, None) + m.weight_sum_ * mean**2)  # raw column norms
    d[d == 0] = 1.0
    _lam, U = np.linalg.eigh(S / np.outer(d, d))
    V = U / d[:, None]  # directions in the original units
    spread = np.einsum("ij,ij->j", V, S @ V)  # v^T S v
    level = m.weight_sum_ * (mean @ V) ** 2  # W (m^T v)^2
    return bool(np.any((level > 0) & (spread <= IMPLICIT_CONSTANT_TOL * level)))


def condition_number(A: np.ndarray) -> float:
    """2-norm condition number of the design whose scaled Gram matrix is ``A``."""
    if A.shape[0] == 0:
        return 1.0
    lam = np.linalg.eigvalsh(A)
    if lam[0] <= lam[-1] * EPS * A.shape[0]:
        # below the Gram matrix's resolution: the design's cond is >= 1 / sqrt(eps) ~ 7e7
        return float("inf") if lam[0] <= 0 else float(np.sqrt(lam[-1] / lam[0]))
    return float(np.sqrt(lam[-1] / lam[0]))


def _inorder_cholesky(A: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """``A[K, K] = R^T R`` over the columns ``K`` not within ``tol`` of the earlier ones' span.

    Column order is kept (a later duplicate is the aliased one, as in R's ``lm``).
    """
    p = A.shape[0]
    kept: list[int] = []
    R = np.zeros((p, p))
    for j in range(p):
        r = (
            sla.solve_triangular(R[: len(kept), : len(kept)], A[kept, j], trans="T")
            if kept
            else np.zeros(0)
        )
        s = A[j, j] - r @ r  # squared distance of column j from the span (unit columns)
        if s > tol * A[j, j]:
            i = len(kept)
            R[:i, i] = r
            R[i, i] = np.sqrt(s)
            kept.append(j)
    mask = np.zeros(p, dtype=bool)
    mask[kept] = True
    return mask, R[: len(kept), : len(kept)]


def _cov_from_r(R: np.ndarray, d: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """``D^-1 (R^T R)^-1 D^-1`` on the kept block, NaN elsewhere."""
    p = kept.shape[0]
    out = np.full((p, p), np.nan)
    # the covariance is the requested output, so here the inverse itself is wanted: LAPACK
    # dtrtri inverts the small (p x p) triangular factor directly
    if R.shape[0] == 0:  # no kept column (all constant): nothing to invert
        Rinv, info = np.zeros((0, 0)), 0
    else:
        Rinv, info = sla.lapack.dtrtri(R, lower=0)
    if info != 0:  # a zero on the diagonal cannot happen for kept columns; be loud if it does
        raise np.linalg.LinAlgError(f"triangular factor is singular (LAPACK dtrtri info={info})")
    inner = Rinv @ Rinv.T
    dk = d[kept]
    out[np.ix_(kept, kept)] = inner / np.outer(dk, dk)
    return out


def _whiten_from_r(R: np.ndarray, d_kept: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    def whiten(Xk: np.ndarray) -> np.ndarray:
        return sla.solve_triangular(R, (Xk / d_kept).T, trans="T").T

    return whiten


def solve_normal(system: GramSystem, d: np.ndarray, usable: np.ndarray, cond: float) -> Solution:
    """Cholesky on the scaled Gram matrix; aliased columns dropped in column order."""
    p, k = system.b.shape
    A = system.G / np.outer(d, d)
    r = system.b / d[:, None]
    kept = usable.copy()
    R = None
    if np.isfinite(cond):
        try:
            R = sla.cholesky(A[np.ix_(kept, kept)], lower=False)
        except np.linalg.LinAlgError:
            R = None
    if R is None:  # (numerically) singular: find the aliased columns in column order
        sub, R = _inorder_cholesky(A[np.ix_(usable, usable)], GRAM_RANK_TOL)
        kept = np.zeros(p, dtype=bool)
        kept[np.flatnonzero(usable)[sub]] = True
    coef = np.zeros((p, k))
    if kept.any():
        z = sla.solve_triangular(R, r[kept], trans="T")
        coef[kept] = sla.solve_triangular(R, z) / d[kept, None]
    return Solution(
        coef=coef,
        kept=kept,
        cov_unit=_cov_from_r(R, d, kept),
        estimable=kept.copy(),
        rank=int(kept.sum()),
        cond=cond,
        solver="normal",
        whiten=_whiten_from_r(R, d[kept]),
    )


def solve_qr(
    Xw: Any, yw: Any, d: np.ndarray, usable: np.ndarray, cond: float
) -> Solution:
    """Householder QR of ``[Xw / d, yw]`` (weighted, centred rows); only R is formed.

    ``Xw`` (n, p) and ``yw`` (n, k) are NumPy arrays or torch tensors (factored on their
    device in float64).
    """
    p, k = Xw.shape[1], yw.shape[1]
    kept = usable.copy()
    first_pass = True
    while True:
        Rfull = _qr_r(Xw, yw, d, kept)
        q = int(kept.sum())
        if first_pass and q:  # the design's condition number, resolved by R (not R^T R)
            sv = np.linalg.svd(Rfull[:q, :q], compute_uv=False)
            cond = float(sv[0] / sv[-1]) if sv[-1] > 0 else float("inf")
            first_pass = False
        diag = np.abs(np.diagonal(Rfull)[:q])
        small = diag <= QR_RANK_TOL
        if not small.any():
            break
        # drop the first dependent column and refactor: later R_jj are distances to a span
        # that included a round-off direction
        first = np.flatnonzero(kept)[np.argmax(small)]
        kept[first] = False
    R, qty, Ryy = Rfull[:q, :q], Rfull[:q, q:], Rfull[q:, q:]
    coef = np.zeros((p, k))
    if q:
        coef[kept] = sla.solve_triangular(R, qty) / d[kept, None]
    ssr = np.sum(Ryy * Ryy, axis=0)  # ||y - X beta||^2 per target, without cancellation
    return Solution(
        coef=coef,
        kept=kept,
        cov_unit=_cov_from_r(R, d, kept),
        estimable=kept.copy(),
        rank=q,
        cond=cond,
        solver="qr",
        ssr=ssr,
        whiten=_whiten_from_r(R, d[kept]),
    )


def _qr_r(Xw: Any, yw: Any, d: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """R factor (q + k, q + k) of the scaled, augmented design; R_jj made non-negative."""
    if hasattr(Xw, "detach"):  # torch: factor on the tensor's device
        import torch

        dk = torch.as_tensor(d[kept], device=Xw.device, dtype=torch.float64)
        idx = torch.as_tensor(np.flatnonzero(kept), device=Xw.device)
        M = torch.cat([Xw.to(torch.float64)[:, idx] / dk, yw.to(torch.float64)], dim=1)
        R = torch.linalg.qr(M, mode="r")[1].cpu().numpy()
    else:
        M = np.concatenate([Xw[:, kept] / d[kept], yw], axis=1)
        R = sla.qr(M, mode="r", overwrite_a=True, check_finite=False)[0]
        R = R[: M.shape[1]]
    q = M.shape[1]
    if R.shape[0] < q:  # fewer rows than columns: R is (n, q); its missing rows are zeros
        R = np.vstack([R, np.zeros((q - R.shape[0], q))])
    signs = np.sign(np.diagonal(R))
    signs[signs == 0] = 1.0
    return R * signs[:, None]


def solve_svd(Xw: np.ndarray, yw: np.ndarray, d: np.ndarray, cond: float, rcond: float | None) -> Solution:
    """Minimum-norm solution by LAPACK gelsd on the weighted, centred (unscaled) design.

    The minimum-norm solution depends on the units of X, so (as scikit-learn) it is taken
    in the original units; ``singular_values`` are those of the centred design.
    """
    n, p = Xw.shape
    cutoff = rcond if rcond is not None else EPS * max(n, p)
    coef, _, rank, s = sla.lstsq(Xw, yw, cond=cutoff, lapack_driver="gelsd", check_finite=False)
    rank = int(rank)
    # estimable coefficients: e_j orthogonal to the null space of the design
    _, s_full, Vt = np.linalg.svd(Xw, full_matrices=False) if rank < p else (None, s, None)
    if rank < p:
        V_r, V_null = Vt[:rank].T, Vt[rank:].T
        estimable = np.linalg.norm(V_null, axis=1) <= np.sqrt(QR_RANK_TOL)
        bread = (V_r / s_full[:rank] ** 2) @ V_r.T
        cov = np.full((p, p), np.nan)
        cov[np.ix_(estimable, estimable)] = bread[np.ix_(estimable, estimable)]

        def whiten(Xk: np.ndarray) -> np.ndarray:
            return Xk @ (V_r / s_full[:rank])

        kept = np.ones(p, dtype=bool)
    else:
        sol = solve_qr(Xw, yw, d, np.ones(p, dtype=bool), cond)  # covariance from R
        cov, estimable, whiten, kept, bread = sol.cov_unit, sol.estimable, sol.whiten, sol.kept, sol.bread
    return Solution(
        coef=coef,
        kept=kept,
        cov_unit=cov,
        estimable=estimable,
        rank=rank,
        cond=cond,
        solver="svd",
        singular_values=s,
        whiten=whiten,
        bread=bread,
    )


def solve_gd(
    system: GramSystem, d: np.ndarray, usable: np.ndarray, cond: float, tol: float, max_iter: int
) -> Solution:
    """Gradient descent on ``J(beta) = ||W^(1/2) (y - X beta)||^2 / (2 W)`` (scaled columns).

    The gradient ``A beta - r`` is evaluated from the sufficient statistics, so each step
    costs O(p^2) instead of O(n p) and gives the same iterates. The step ``1 / lambda_max(A)``
    (the Lipschitz constant of the gradient) guarantees monotone descent; iteration stops
    when ``||grad|| <= tol * ||r||`` for every target.
    """
    from sklearn.exceptions import ConvergenceWarning

    p, k = system.b.shape
    # inference does not depend on how the optimum was reached: take it (and the aliased
    # columns, which gradient descent would otherwise spread a minimum-norm answer over)
    # from the normal path
    ref = solve_normal(system, d, usable, cond)
    kept = ref.kept
    A = (system.G / np.outer(d, d))[np.ix_(kept, kept)] / system.weight_sum
    r = (system.b / d[:, None])[kept] / system.weight_sum
    beta = np.zeros((int(kept.sum()), k))
    n_iter = 0
    if kept.any():
        step = 1.0 / float(np.linalg.eigvalsh(A)[-1])
        target = tol * np.maximum(np.linalg.norm(r, axis=0), np.finfo(float).tiny)
        converged = False
        while n_iter < max_iter:
            grad = A @ beta - r
            if np.all(np.linalg.norm(grad, axis=0) <= target):
                converged = True
                break
            beta -= step * grad
            n_iter += 1
        if not converged and not np.all(np.linalg.norm(A @ beta - r, axis=0) <= target):
            warnings.warn(
                f"solver='gd' did not converge in max_iter={max_iter} iterations "
                f"(condition number {cond:.3g}); increase max_iter or use solver='auto'",
                ConvergenceWarning,
                stacklevel=4,
            )
    coef = np.zeros((p, k))
    coef[kept] = beta / d[kept, None]
    return Solution(
        coef=coef,
        kept=ref.kept,
        cov_unit=ref.cov_unit,
        estimable=ref.estimable,
        rank=ref.rank,
        cond=cond,
        solver="gd",
        n_iter=n_iter,
        whiten=ref.whiten,
    )


def weighted_centred(X: Any, y: Any, w: Any, system: GramSystem) -> tuple[Any, Any]:
    """``sqrt(w) (X - mean)`` and ``sqrt(w) (y - mean)`` (no centring without intercept)."""
    Y = y[:, None] if y.ndim == 1 else y
    if hasattr(X, "detach"):
        import torch

        dev = X.device
        mx = torch.as_tensor(system.mean_x if system.fit_intercept else np.zeros_like(system.mean_x), device=dev)
        my = torch.as_tensor(system.mean_y if system.fit_intercept else np.zeros_like(system.mean_y), device=dev)
        Xw, Yw = X.to(torch.float64) - mx, Y.to(torch.float64) - my
        if w is not None:
            sw = torch.as_tensor(np.sqrt(w), device=dev)[:, None]
            Xw, Yw = Xw * sw, Yw * sw
        return Xw, Yw
    if system.fit_intercept:
        Xw, Yw = X - system.mean_x, Y - system.mean_y
    else:
        Xw, Yw = np.array(X, dtype=np.float64), np.array(Y, dtype=np.float64)
    if w is not None:
        sw = np.sqrt(w)[:, None]
        Xw, Yw = Xw * sw, Yw * sw
    return Xw, Yw


# Below this many eps of yy, an SSR formed as yy - b^T beta has fewer than ~4 correct digits.
_SSR_RESOLUTION = 1e4


def factor_rows(m: Moments, fit_intercept: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """The R factor of streamed ``[X, y]`` as rows ``(R_x, R_y)`` (raw rows without intercept)."""
    if m.r_ is None:
        return None
    R = m.r_ if fit_intercept else raw_r(m.r_, m.weight_sum_, np.concatenate([m.mean_x_, m.mean_y_]))
    p = m.n_features_
    return R[:, :p], R[:, p:]


def warn_if_cancelled(ssr: np.ndarray, yy: np.ndarray) -> None:
    """``yy - b^T beta`` keeps no digits below about ``eps * yy``: say so when SSR is near it."""
    unreliable = ssr <= _SSR_RESOLUTION * EPS * yy
    if np.any(unreliable):
        worst = float(np.min(ssr / np.where(yy > 0, yy, 1.0)))
        warnings.warn(
            f"the residual sum of squares comes from the moments alone (yy - b^T beta) and is at "
            f"the moments' round-off (SSR / yy = {worst:.2g}, resolution ~{_SSR_RESOLUTION * EPS:.0e}): "
            "standard errors, R^2 and F are unreliable. Fit with fit(), partial_fit or fit_chunks "
            "(they carry an R factor), or Moments(track_r=True)",
            PrecisionWarning,
            stacklevel=4,
        )
