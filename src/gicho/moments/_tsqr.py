"""Streaming (tall-skinny) QR of the centred, weighted data ``[X, y]``: the R factor only.

The least-squares residual sum of squares of a near-perfect fit cannot be read off the
moments: ``SSR = S_yy - S_xy^T beta`` subtracts two numbers that agree to many digits, and
float64 Gram matrices carry an absolute error of about ``eps * S_yy`` (SSR below that is
noise: standard errors of 0, or 880 times too large). The R factor of the centred data
carries the same information without squaring it: ``R^T R = S`` and, for the augmented
matrix ``[X, y]``, the trailing block of R is the residual of y, so ``SSR = ||R_yy||^2``
exactly as a QR solve on all rows gives it (Golub & Van Loan, *Matrix Computations*, 5.3).

R factors merge like the moments (Chan, Golub & LeVeque's update, in factored form):

.. math::  R = \\operatorname{qr}\\begin{pmatrix} R_a \\\\ R_b \\\\
           \\sqrt{W_a W_b / W}\\, (m_b - m_a)^T \\end{pmatrix}

since the stacked matrix has the Gram matrix ``S_a + S_b + (W_a W_b / W) delta delta^T``.
So chunks, ``partial_fit`` and Dask blocks reduce to one small (q x q) factor, q = p + k.

A chunk's R need not come from a Householder QR of its rows (about 7x the moments pass:
benchmarks/RESULTS.md, "least squares"). :func:`fast_chunk_r` takes the cheapest of three
routes that keeps the factor as good as the QR's, decided from the chunk's centred Gram matrix
``G``, which the moments pass computes anyway:

1. ``R = chol(G)``. Its ``R^T R = G + E`` is harmless when ``E`` is small *relative to G in the
   Loewner order*: if ``-tau G <= E <= tau G`` for every chunk, the merged factor's ``R^T R``
   is within ``(1 +- tau)`` of the exact Gram matrix of all rows (the chunks' Gram matrices
   sum to at most the total one), so the residual sum of squares, the coefficients'
   covariance and every other statistic read from R move by about ``tau`` relative, whatever
   the final coefficients. With the scaled Gram ``A = D^-1 G D^-1`` (unit diagonal) and entry
   errors ``|E_ij| <= gamma sqrt(G_ii G_jj)``, ``tau <= q gamma / lambda_min(A)``; taken when
   ``tau <= GRAM_TOL``. Ordinary data (``lambda_min`` is at most ``1 - R^2`` of the chunk's own
   fit) pay a (q x q) eigenvalue problem.
2. Cholesky QR, twice (CholeskyQR2; Yamamoto et al., 2015), started from ``R_1 = chol(G)``:
   ``Q = M R_1^-1`` (one triangular solve over the centred rows M), ``R = chol(Q^T Q) R_1``.
   The solve is backward stable row by row, so ``Q R_1`` is M up to a column-wise relative
   error ~ eps ||Q|| (as Householder's); Q is nearly orthonormal when ``tau <= CHOLQR_TOL``,
   so its own Gram matrix is resolved to ~eps. Taken for ``GRAM_TOL < tau <= CHOLQR_TOL``
   (high R^2, moderately collinear columns) when ``Q^T Q`` is within 0.1 of the identity.
3. Householder QR (:func:`chunk_r`): near-perfect fits, nearly dependent or constant columns,
   chunks with fewer rows than columns, torch chunks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla

__all__ = ["CHOLQR_TOL", "GRAM_TOL", "cholqr_r", "chunk_r", "fast_chunk_r", "gram_cholesky", "merge_r", "raw_r"]

# Bound on the error of an entry of a chunk's column-scaled, centred Gram matrix: the moments
# pass keeps it within ~100x the round-off of a centred product (gicho.moments._gram, FRACTION).
GRAM_ENTRY_ERROR = 2e-14
# Largest relative (Loewner-order) perturbation of the Gram matrix of [X, y] that a chunk's R
# taken from its Gram matrix may carry; above it the chunk is factored by QR. Stricter than
# the in-memory fit, which reads its SSR as yy - b^T beta down to 1 - R^2 = 1e-3 (the same
# bound: ~1e-9 for q = 51). For q = 51 it admits lambda_min(A) >= 0.01 (R^2 up to ~0.99).
GRAM_TOL = 1e-10
# Largest such perturbation of R_1 from which Cholesky QR still starts: Q = M R_1^-1 then has
# singular values within 1 +- 0.005.
CHOLQR_TOL = 1e-2


def _r(M: np.ndarray) -> np.ndarray:
    """The (q, q) R factor of ``M`` (n, q) with a non-negative diagonal (zero rows if n < q)."""
    q = M.shape[1]
    # LAPACK's geqrf directly: scipy.linalg.qr(mode="r") also zeroes the whole (n, q) lower
    # part with triu (n·q writes, a visible share of a streamed fit: benchmarks/RESULTS.md,
    # "Figures moved out of source comments"); R is the upper triangle of the top rows.
    geqrf = sla.get_lapack_funcs("geqrf", (M,))
    factored, _, _, info = geqrf(M, overwrite_a=True)
    if info != 0:
        raise RuntimeError(f"LAPACK geqrf failed (info={info})")
    R = np.triu(factored[:q])
    if R.shape[0] < q:
        R = np.vstack([R, np.zeros((q - R.shape[0], q))])
    signs = np.sign(np.diagonal(R))
    signs[signs == 0] = 1.0
    return R * signs[:, None]


def chunk_r(X: Any, Y: Any, w: Any, mean_x: np.ndarray, mean_y: np.ndarray) -> np.ndarray:
    """R of ``sqrt(w) [X - mean_x, Y - mean_y]`` for one chunk (NumPy or torch input)."""
    def host(a: Any) -> Any:
        return None if a is None else (a.detach().cpu().double().numpy() if hasattr(a, "detach") else a)

    X, Y, w = host(X), host(Y), host(w)
    p = X.shape[1]
    # Fortran order is LAPACK's layout: geqrf then factors M in place instead of copying it
    # (row blocks kept in cache were slower still: benchmarks/RESULTS.md, "Figures moved out of
    # source comments").
    M = np.empty((X.shape[0], p + Y.shape[1]), order="F")
    np.subtract(X, mean_x, out=M[:, :p])
    np.subtract(Y, mean_y, out=M[:, p:])
    if w is not None:
        M *= np.sqrt(np.asarray(w, dtype=np.float64))[:, None]
    return _r(M)


def gram_cholesky(xx: np.ndarray, xy: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray | None, float]:
    """``(R, tau)``: the Cholesky factor of the centred Gram matrix of ``[X, y]`` and the bound
    ``tau`` on its relative (Loewner-order) error (module docstring); ``(None, inf)`` when the
    Gram matrix is singular to working precision."""
    G = np.block([[xx, xy], [xy.T, yy]])
    q = G.shape[0]
    d = np.sqrt(np.diagonal(G))
    if not (np.all(np.isfinite(G)) and np.all(d > 0)):
        return None, np.inf
    A = G / np.outer(d, d)
    A = 0.5 * (A + A.T)
    lam_min = float(np.linalg.eigvalsh(A)[0])
    if not lam_min > 0:
        return None, np.inf
    potrf = sla.get_lapack_funcs("potrf", (A,))
    R, info = potrf(A, lower=False, clean=True, overwrite_a=True)
    if info != 0:
        return None, np.inf
    return R * d[None, :], q * GRAM_ENTRY_ERROR / lam_min  # (R_A D)^T (R_A D) = D A D = G


def cholqr_r(X: np.ndarray, Y: np.ndarray, w: Any, mean_x: np.ndarray, mean_y: np.ndarray,
             R1: np.ndarray) -> np.ndarray | None:
    """R of ``sqrt(w) [X - mean_x, Y - mean_y]`` by Cholesky QR from ``R1`` (route 2), or None
    when ``Q^T Q`` is not within 0.1 of the identity (take the Householder QR)."""
    p, q = X.shape[1], R1.shape[0]
    # C order: M^T is then Fortran-ordered, so BLAS solves and multiplies it in place
    M = np.empty((X.shape[0], q))
    np.subtract(X, mean_x, out=M[:, :p])
    np.subtract(Y, mean_y, out=M[:, p:])
    if w is not None:
        M *= np.sqrt(np.asarray(w, dtype=np.float64))[:, None]
    trsm, syrk = sla.get_blas_funcs(("trsm", "syrk"), (M,))
    QT = trsm(1.0, R1, M.T, side=0, lower=0, trans_a=1, overwrite_b=True)  # Q^T = R1^-T M^T
    C = syrk(1.0, QT)  # upper triangle of Q^T Q
    C = np.triu(C) + np.triu(C, 1).T
    if not (np.all(np.isfinite(C)) and np.max(np.abs(C - np.eye(q))) <= 0.1):
        return None
    potrf = sla.get_lapack_funcs("potrf", (C,))
    R2, info = potrf(C, lower=False, clean=True, overwrite_a=True)
    return R2 @ R1 if info == 0 else None


def fast_chunk_r(X: np.ndarray, Y: np.ndarray, w: Any, mean_x: np.ndarray, mean_y: np.ndarray,
                 xx: np.ndarray, xy: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """R of one NumPy chunk by the cheapest route its centred Gram matrix allows (module docstring)."""
    R1, tau = gram_cholesky(xx, xy, yy)
    if tau <= GRAM_TOL:
        return R1
    if tau <= CHOLQR_TOL:
        R = cholqr_r(X, Y, w, mean_x, mean_y, R1)
        if R is not None:
            return R
    return chunk_r(X, Y, w, mean_x, mean_y)


def merge_r(Ra: np.ndarray, Rb: np.ndarray, W_a: float, W_b: float, delta: np.ndarray) -> np.ndarray:
    """R of the union of two disjoint sets of rows, ``delta = [mean_b - mean_a]`` (x then y)."""
    row = np.sqrt(W_a * W_b / (W_a + W_b)) * np.asarray(delta, dtype=np.float64)[None, :]
    return _r(np.vstack([Ra, Rb, row]))


def raw_r(R: np.ndarray, W: float, mean: np.ndarray) -> np.ndarray:
    """R of the uncentred rows (no intercept): ``qr([R; sqrt(W) mean^T])``."""
    return _r(np.vstack([R, np.sqrt(W) * np.asarray(mean, dtype=np.float64)[None, :]]))
