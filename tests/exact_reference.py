"""Exact references for the numerical tests: least squares and moments in rational arithmetic.

A float64 reference (``np.linalg.lstsq``, statsmodels, ``np.cov``) carries its own round-off,
and on ill-conditioned or far-from-zero data it can be *less* accurate than the code under
test: a test that compares the two then measures the reference and passes or fails with the
BLAS kernel (OpenBLAS' Haswell and SkylakeX kernels round differently). Every float64 number
is a dyadic rational, so the data a test builds are exact rationals; the helpers here compute
the answer exactly from them (Python integers and :class:`fractions.Fraction`) and round once
at the end. They are meant for small problems (a few thousand rows, a handful of columns).

Helpers that bound the round-off a float64 algorithm may make (to set a tolerance from the
problem's conditioning rather than from what one machine printed) live beside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

EPS = float(np.finfo(np.float64).eps)  # 2**-52; the unit round-off is EPS / 2


def gamma(k: int, unit: float = EPS / 2) -> float:
    """Higham's gamma_k = k u / (1 - k u), u the unit round-off (float64 by default): the
    worst-case relative error of a sum or dot product of k terms, each term relative to the
    sum of |terms| (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
    Lemma 3.1 and eq. 3.5)."""
    ku = k * unit
    if ku >= 1:
        raise ValueError(f"argument 'k' is too large for a float64 error bound; got {k}")
    return ku / (1 - ku)


def _integer_columns(A: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """``(M, e)`` with ``A[:, j] == M[:, j] * 2**e[j]`` exactly; ``M`` holds Python ints."""
    A = np.asarray(A, dtype=np.float64)
    if not np.all(np.isfinite(A)):
        raise ValueError("argument 'A' must be finite for an exact reference")
    mant, expo = np.frexp(A)  # A = mant * 2**expo, 0.5 <= |mant| < 1 (or 0)
    mant = (mant * 2.0**53).astype(np.int64)  # exact: 53-bit integers
    expo = expo.astype(np.int64) - 53
    M = np.empty(A.shape, dtype=object)
    shifts = []
    for j in range(A.shape[1]):
        e0 = int(expo[:, j].min()) if A.shape[0] else 0
        M[:, j] = [int(m) << int(e - e0) for m, e in zip(mant[:, j], expo[:, j], strict=True)]
        shifts.append(e0)
    return M, shifts


def exact_gram(
    A: np.ndarray, B: np.ndarray | None = None, w: np.ndarray | None = None
) -> list[list[Fraction]]:
    """``A^T diag(w) B`` (``A^T A`` without ``B``, ``w = 1`` without ``w``) in exact rationals."""
    MA, ea = _integer_columns(A)
    MB, eb = (MA, ea) if B is None else _integer_columns(B)
    if w is not None:
        Mw, ew = _integer_columns(np.asarray(w, dtype=np.float64).reshape(-1, 1))
        MA, ea = MA * Mw, [e + ew[0] for e in ea]  # object arrays: exact integer products
    prod = MA.T.dot(MB)  # Python-int matrix product: exact
    return [
        [Fraction(int(prod[i, j])) * Fraction(2) ** (ea[i] + eb[j]) for j in range(len(eb))]
        for i in range(len(ea))
    ]


def exact_sum(a: np.ndarray) -> list[Fraction]:
    """Column sums of a 2-D float64 array (or the sum of a 1-D one, as a one-item list)."""
    a = np.asarray(a, dtype=np.float64)
    return exact_gram(np.ones((a.shape[0], 1)), a.reshape(a.shape[0], -1))[0]


def solve(G: list[list[Fraction]], b: list[list[Fraction]]) -> list[list[Fraction]]:
    """``G^{-1} b`` by Gauss-Jordan elimination in exact rationals (``G`` nonsingular)."""
    n = len(G)
    aug = [list(G[i]) + list(b[i]) for i in range(n)]
    for col in range(n):
        pivot = next((r for r in range(col, n) if aug[r][col] != 0), None)
        if pivot is None:
            raise ValueError("the matrix is exactly singular; an exact reference needs full rank")
        aug[col], aug[pivot] = aug[pivot], aug[col]
        inv = 1 / aug[col][col]
        aug[col] = [v * inv for v in aug[col]]
        for r in range(n):
            if r != col and aug[r][col] != 0:
                f = aug[r][col]
                aug[r] = [v - f * w for v, w in zip(aug[r], aug[col], strict=True)]
    return [row[n:] for row in aug]


@dataclass(frozen=True)
class ExactOLS:
    """Ordinary least squares of float64 data, computed exactly, rounded once to float64.

    ``params`` (intercept first when fitted), their standard errors ``bse`` (classical, ddof =
    number of parameters), ``ssr`` (residual sum of squares), ``centered_tss``, ``rsquared``,
    ``fvalue`` and the Gaussian log-likelihood ``llf`` — statsmodels' definitions. Only the
    square roots and logarithms are taken in float64 (about one unit of round-off each).
    """

    params: np.ndarray
    bse: np.ndarray
    ssr: float
    centered_tss: float
    rsquared: float
    fvalue: float
    llf: float


def exact_ols(X: np.ndarray, y: np.ndarray, *, fit_intercept: bool = True) -> ExactOLS:
    """Least squares of ``y`` on ``[1, X]`` (``X`` when ``fit_intercept=False``), exactly."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1, 1)
    n = X.shape[0]
    A = np.column_stack([np.ones(n), X]) if fit_intercept else X
    p = A.shape[1]
    G = exact_gram(A)
    Aty = exact_gram(A, y)
    yty = exact_gram(y)[0][0]
    identity = [[Fraction(int(i == j)) for j in range(p)] for i in range(p)]
    sol = solve(G, [Aty[i] + identity[i] for i in range(p)])
    beta = [row[0] for row in sol]
    inv_diag = [sol[i][1 + i] for i in range(p)]
    ssr = yty - sum(b * r[0] for b, r in zip(beta, Aty, strict=True))  # y'y - b'A'y at the solution
    ysum = exact_sum(y)[0]
    tss = yty - ysum * ysum / n if fit_intercept else yty
    df_resid, df_model = n - p, p - int(fit_intercept)
    scale = ssr / df_resid
    rsquared = 1 - ssr / tss
    fvalue = (tss - ssr) / df_model / scale if df_model else math.nan
    ssr_f = float(ssr)
    return ExactOLS(
        params=np.array([float(b) for b in beta]),
        bse=np.sqrt(np.array([float(scale * d) for d in inv_diag])),
        ssr=ssr_f,
        centered_tss=float(tss),
        rsquared=float(rsquared),
        fvalue=float(fvalue),
        llf=-n / 2 * (math.log(2 * math.pi) + math.log(ssr_f / n) + 1),
    )


def exact_moments(Z: np.ndarray, w: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """``(W, mean, S)`` of the rows of ``Z`` with weights ``w``: the weight sum, the weighted
    column means and the centred cross-products ``S = sum_i w_i (z_i - mean)(z_i - mean)^T``,
    exactly, each rounded once to float64."""
    Z = np.asarray(Z, dtype=np.float64)
    w = np.ones(Z.shape[0]) if w is None else np.asarray(w, dtype=np.float64)
    W = exact_sum(w)[0]
    s = exact_gram(w.reshape(-1, 1), Z)[0]
    G = exact_gram(Z, Z, w)
    p = len(s)
    S = [[G[i][j] - s[i] * s[j] / W for j in range(p)] for i in range(p)]
    return float(W), np.array([float(v / W) for v in s]), np.array([[float(v) for v in r] for r in S])


def moments_bounds(
    Z: np.ndarray,
    w: np.ndarray | None = None,
    *,
    terms: int | None = None,
    merges: int | None = None,
    unit: float = EPS / 2,
    amplification: float = 100.0,
    exact: tuple[float, np.ndarray, np.ndarray] | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Absolute round-off bounds on ``(W, mean, S)`` of :func:`exact_moments` for an algorithm
    that sums about a shift ``c`` (gicho._gram / gicho.moments) and merges partial results.

    ``g = gamma(terms)`` (default: the number of rows n) bounds every sum about the shift,
    relative to the sum of |terms|. The shift may lie up to ``sqrt(amplification - 1)``
    standard deviations from the mean (the accumulator's precision check ``s_j^2 <= FRACTION
    W G_jj``, ``1 / (1 - FRACTION) = 100``), so the second moment about it is ``G_jj <=
    amplification * S_jj`` and, by Cauchy-Schwarz, a sum of |products| about it is at most
    ``amplification * sqrt(S_jj S_kk)``; the product, and the two factors of the correction
    ``s_j s_k / W``, add one such term each:

        |dS_jk| <= 3 g amplification sqrt(S_jj S_kk)
                   + (merges + 2) u (|mean_j| sqrt(W S_kk) + |mean_k| sqrt(W S_jj)).

    The last term is the merges (default: n, one per row, the worst case): a running mean
    rounds at the data's magnitude, ``u |mean|`` per merge, and a merge multiplies the
    difference of two means by ``W_a W_b / W |mean_a - mean_b|``; these between-part sums of
    squares add up to at most ``S_kk`` over all merges, so by Cauchy-Schwarz their total is at
    most ``sqrt(W S_kk)``. The means: ``g sqrt(amplification) sqrt(S_jj / W) + (merges + 2) u
    |mean_j|``; the weight sum: ``g W``. ``exact``: :func:`exact_moments` of the same data,
    when already computed.
    """
    Z = np.asarray(Z, dtype=np.float64)
    n = Z.shape[0]
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    g = gamma(n if terms is None else terms, unit=unit)
    rounding = ((n if merges is None else merges) + 2) * unit
    W, mean, S = exact_moments(Z, w) if exact is None else exact
    spread = np.sqrt(np.maximum(np.diagonal(S), 0.0))  # sqrt(S_jj)
    root_w = math.sqrt(W)
    S_bound = 3 * g * amplification * np.outer(spread, spread) + rounding * (
        np.outer(np.abs(mean), root_w * spread) + np.outer(root_w * spread, np.abs(mean))
    )
    mean_bound = g * math.sqrt(amplification) * spread / root_w + rounding * np.abs(mean)
    return g * W, mean_bound, S_bound


@dataclass(frozen=True)
class OLSBounds:
    """First-order bounds on the round-off of a float64 least-squares fit (see ols_bounds).

    ``params``: absolute, per coefficient (intercept first when fitted); ``bse``, ``ssr``,
    ``fvalue``: relative; ``rsquared``, ``llf``: absolute.
    """

    params: np.ndarray
    bse: np.ndarray
    ssr: float
    rsquared: float
    fvalue: float
    llf: float


def ols_bounds(X: np.ndarray, y: np.ndarray, ref: ExactOLS, *, fit_intercept: bool = True,
               solver: str = "normal", terms: int | None = None) -> OLSBounds:
    """How far a float64 least-squares fit of ``(X, y)`` may lie from the exact ``ref``.

    The model of the algorithm: every sum it forms has at most ``terms`` terms (default: the
    number of rows n) and is computed to Higham's worst-case bound ``g = gamma(terms)``
    relative to the sum of |terms|. That is the same as perturbing each entry of the data by
    at most ``g`` of its magnitude (backward error ``||dX|| <= g ||X||_F``, ``||dy|| <= g ||y||``:
    the *raw* magnitudes, so data far from zero have a larger error than their spread),
    plus, for ``solver="normal"`` (the moments: Gram matrix, normal equations and
    ``ssr = yc^T yc - b^T Xc^T yc``), forming the centred Gram matrix and ``Xc^T yc`` to within
    ``g ||Xc||_F^2`` and ``g ||Xc||_F ||yc||``. ``solver="qr"`` (Householder QR of the data, as
    LAPACK and a streamed R factor do) is backward stable (Higham, Theorem 20.3): only the data
    perturbation counts, with ``terms`` about n * p. First-order least-squares perturbation
    theory (Golub & Van Loan, *Matrix Computations*, 4th ed., §5.3.7; Higham, ch. 20), with
    Xc the centred design, r the residuals, s = sqrt(ssr / (n - p)) and sigma_min the smallest
    singular value of Xc, then gives for every coefficient j

        |d b_j| <= sqrt(2) * K / s * se_j,
        K = ||dy|| + ||dX|| (||b|| + ||r|| / sigma_min)                 (the data)
            + g ||Xc||_F (||yc|| + ||Xc||_F ||b||) / sigma_min          (normal equations only)

    (b the slopes; ||r|| / sigma_min and ||Xc||_F / sigma_min carry the condition number;
    the intercept's se absorbs its distance from the data, so sqrt(2) covers it too), and

        |d ssr| <= 2 ||r|| (||dy|| + ||dX|| ||b||) + g (||yc||^2 + ||b|| ||Xc||_F ||yc||),
        rel. error of a diagonal of (Xc^T Xc)^-1 <= ||d(Xc^T Xc)|| / sigma_min^2, with
        ||d(Xc^T Xc)|| <= 2 ||dX|| ||Xc||_F + g ||Xc||_F^2         (last terms: normal only),

    from which bse = sqrt(ssr / (n - p) * diag), R^2 = 1 - ssr / tss, F and the
    log-likelihood follow. The bound is worst-case (every rounding error in the same
    direction), so it is loose (often by 10^3 or more); it depends on the data and their
    conditioning only, never on what a BLAS kernel happened to return.
    """
    if solver not in ("normal", "qr"):
        raise ValueError(f"argument 'solver' must be 'normal' or 'qr'; got {solver!r}")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    n = X.shape[0]
    g = gamma(n if terms is None else terms)
    Xc = X - X.mean(0) if fit_intercept else X
    yc = y - y.mean() if fit_intercept else y
    slopes = ref.params[1:] if fit_intercept else ref.params
    norm_b = float(np.linalg.norm(slopes))
    norm_r = math.sqrt(ref.ssr)
    sigma = np.linalg.svd(Xc, compute_uv=False)
    sigma_min = float(sigma[-1])
    if not sigma_min > 0:
        raise ValueError("the centred design is rank deficient; these bounds need full rank")
    fro_x, fro_xc = float(np.linalg.norm(X)), float(np.linalg.norm(Xc))
    norm_y, norm_yc = float(np.linalg.norm(y)), float(np.linalg.norm(yc))
    dX, dy = g * fro_x, g * norm_y
    p = X.shape[1] + int(fit_intercept)
    s = math.sqrt(ref.ssr / (n - p))
    normal = solver == "normal"  # the normal equations' own round-off, or none (QR)
    K = dy + dX * (norm_b + norm_r / sigma_min) + normal * g * fro_xc * (norm_yc + fro_xc * norm_b) / sigma_min
    params = math.sqrt(2) * K / s * ref.bse
    d_ssr = 2 * norm_r * (dy + dX * norm_b) + normal * g * (norm_yc**2 + norm_b * fro_xc * norm_yc)
    rel_ssr = d_ssr / ref.ssr
    d_gram = 2 * dX * fro_xc + normal * g * fro_xc**2
    rel_diag = d_gram / sigma_min**2
    if fit_intercept:
        # se_0^2 / s^2 = 1/n + m^T (Xc^T Xc)^-1 m: the means move by at most ||dX|| / sqrt(n)
        q0 = (ref.bse[0] / s) ** 2
        rel_q0 = rel_diag + 2 * dX / (math.sqrt(n) * sigma_min * math.sqrt(q0))
        rel_q = np.r_[rel_q0, np.full(p - 1, rel_diag)]
    else:
        rel_q = np.full(p, rel_diag)
    u = EPS / 2  # plus the last few roundings of each formula (divisions, sqrt, log)
    bse = (rel_ssr + rel_q) / 2 + 4 * u
    rel_tss = 2 * dy / norm_yc + g
    rsquared = (1 - ref.rsquared) * (rel_ssr + rel_tss) + 4 * u
    fvalue = (rel_ssr + rel_tss) / ref.rsquared + 4 * u
    llf = n / 2 * rel_ssr + 4 * u * abs(ref.llf)
    return OLSBounds(params=params, bse=bse, ssr=rel_ssr + 2 * u, rsquared=rsquared, fvalue=fvalue, llf=llf)
