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


def gamma(k: int) -> float:
    """Higham's gamma_k = k u / (1 - k u), u = EPS / 2: the worst-case relative error of a
    sum or dot product of k float64 terms, each term relative to the sum of |terms|
    (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., Lemma 3.1, eq. 3.5)."""
    ku = k * EPS / 2
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


def exact_gram(A: np.ndarray, B: np.ndarray | None = None) -> list[list[Fraction]]:
    """``A^T B`` (``A^T A`` without ``B``) in exact rationals; a list of rows."""
    MA, ea = _integer_columns(A)
    MB, eb = (MA, ea) if B is None else _integer_columns(B)
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


def exact_mean_and_covariance(X: np.ndarray, *, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Column means and the covariance matrix (divisor ``n - ddof``) of ``X``, exactly, rounded."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    s = exact_sum(X)
    G = exact_gram(X)
    p = len(s)
    cov = [[(G[i][j] - s[i] * s[j] / n) / (n - ddof) for j in range(p)] for i in range(p)]
    return np.array([float(v / n) for v in s]), np.array([[float(v) for v in r] for r in cov])


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
    bse = (rel_ssr + rel_q) / 2
    rel_tss = 2 * dy / norm_yc + g
    rsquared = (1 - ref.rsquared) * (rel_ssr + rel_tss)
    fvalue = (rel_ssr + rel_tss) / ref.rsquared
    return OLSBounds(params=params, bse=bse, ssr=rel_ssr, rsquared=rsquared, fvalue=fvalue,
                     llf=n / 2 * rel_ssr)
