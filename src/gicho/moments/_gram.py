"""The one pass over the rows behind :class:`gicho.moments.Moments` (unweighted NumPy data).

A fit that reads X once cannot beat one ``X.T @ X``; this module is what gets least squares
and PCA close to that floor. The rows are cut into contiguous segments, one per BLAS thread,
and each segment is reduced by its own worker thread (NumPy and BLAS release the GIL; BLAS is
held at one thread per worker meanwhile, so the cores are shared the same way as by a bare
multithreaded ``X.T @ X``). A segment is walked in cache-sized blocks and accumulated about a
fixed shift ``c`` (a provisional centre):

    G = sum (x - c)(x - c)^T                (one BLAS syrk per block)
    B = sum [1, y - c_y]^T (x - c)          (column sums and X^T y in one small product)
    C = sum [1, y - c_y]^T [1, y - c_y]

and the centred statistics follow from the sums ``s = sum (x - c)``: ``mean = c + s / n``,
``S = G - s s^T / n`` (the "corrected two-pass" formula). Round-off in ``S_jj`` grows by
``1 / (1 - s_j^2 / (n G_jj))``; every segment checks ``s_j^2 <= FRACTION * n * G_jj`` (at most
~100x the round-off of a centred product, ~2e-14 relative) and is redone more carefully when
the check fails.

Shifts. When the segment's first rows pass that test about 0 (zero-mean data, |mean| up to
~10 standard deviations), ``c = 0``: each block is copied as it is (cast to float64) into a
cache-resident scratch buffer before its products. Otherwise ``c`` is the mean of the first
rows and each block is copied shifted. (The copy pays even at ``c = 0``: it streams the block
from memory faster than the syrk reads it in place, and the products then read it from
cache.) A failed check redoes the segment about its
own mean (now known); if that fails too (data that drift within the segment) the caller
falls back to centring every block on its own mean (``_blocks.centred_block``).

NaN / inf in the input make the statistics non-finite; the caller then words the error (no
separate finiteness pass over X).
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["FRACTION", "MIN_ROWS", "finite", "segment_statistics"]

# A column's squared (shifted) mean may be at most this fraction of its second moment about
# the shift: round-off grows by <= 1 / (1 - FRACTION) = 100 (~2e-14 relative).
FRACTION = 0.99
# Rows used to choose a segment's shift; also the smallest block.
MIN_ROWS = 256
# Bytes of one block: small enough that the block is still in cache (L2 / L3) when the syrk
# and the matrix-vector products read it again, large enough that the per-call cost of the
# BLAS product is small (the block sizes tried: benchmarks/RESULTS.md, "Figures moved out of
# source comments").
BLOCK_BYTES = 2 << 20

# Below this many targets the column sums and X^T y are matrix-vector products (see _accumulate).
_GEMV_TARGETS = 3

Stats = tuple[float, np.ndarray, np.ndarray, Any, Any, Any]


def segment_statistics(X: np.ndarray, Y: np.ndarray | None) -> list[tuple[int, int, Stats | None]]:
    """``(start, stop, stats)`` of consecutive row segments, ``stats = (W, mean_x, xx, mean_y, xy, yy)``.

    ``Y`` is None or 2-D. ``stats`` is None when the segment's shifted sums failed the
    precision check twice (the caller centres its blocks one by one) and holds non-finite
    numbers when the input did. Segments come in row order; merging them in that order makes
    the result independent of thread scheduling.
    """
    n, p = X.shape
    rows = max(MIN_ROWS, BLOCK_BYTES // (8 * p))
    import scipy.linalg.blas  # noqa: F401  (loaded before _blas() scans the process: its BLAS is pinned too)

    workers = max(1, min(_blas_threads(), -(-n // rows)))
    bounds = np.linspace(0, n, workers + 1).astype(int)
    jobs = [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]

    def reduce(job: tuple[int, int]) -> tuple[int, int, Stats | None]:
        a, b = job
        return a, b, _segment(X[a:b], None if Y is None else Y[a:b], rows)

    if len(jobs) == 1:
        return [reduce(jobs[0])]
    with _one_blas_thread(), ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(reduce, jobs))


def _segment(X: np.ndarray, Y: np.ndarray | None, rows: int) -> Stats | None:
    # every block is copied into a float64 buffer (cast exactly), so any dtype may skip the shift
    raw = _near_zero(X[:MIN_ROWS]) and (Y is None or _near_zero(Y[:MIN_ROWS]))
    if raw:
        stats = _accumulate(X, Y, rows, None, None)
    else:
        cx = X[:MIN_ROWS].mean(axis=0, dtype=np.float64)
        cy = None if Y is None else Y[:MIN_ROWS].mean(axis=0, dtype=np.float64)
        stats = _accumulate(X, Y, rows, cx, cy)
    if stats is None:  # an empty segment
        return None
    result, ok = stats
    if ok or not finite(result):  # non-finite: the caller words the error
        return result
    # The shift was too far from the segment's mean: redo about that mean (it is accurate
    # enough as a shift), once.
    retry = _accumulate(X, Y, rows, result[1], result[3])
    if retry is not None and retry[1] and finite(retry[0]):
        return retry[0]
    return None


def _accumulate(X: np.ndarray, Y: np.ndarray | None, rows: int, cx: Any, cy: Any):
    """Sums about the shift (``cx`` None: 0, blocks copied as they are) -> (stats, check passed)."""
    n, p = X.shape
    if n == 0:
        return None
    from scipy.linalg.blas import dsyrk

    k = 0 if Y is None else Y.shape[1]
    m0 = min(rows, n)
    G = np.zeros((p, p), order="F")  # upper triangle: the sum of the blocks' products
    Gb = np.zeros((p, p), order="F")  # one block's product (upper triangle), written by the syrk
    B = np.zeros((k + 1, p))
    Bb = np.empty((k + 1, p))
    C = np.zeros((k + 1, k + 1))
    A = np.empty((k + 1, m0))  # [1, y - c_y]^T of a block, rows contiguous for the product
    A[0] = 1.0
    # Every block is copied (shifted: about cx) into a cache-resident scratch buffer before its
    # products, also when the shift is 0: the copy streams the block from memory faster than
    # the syrk reads it in place, and the products then read it from cache (the timings:
    # benchmarks/RESULTS.md, "least squares"). The shift is subtracted as a whole tile of rows,
    # one contiguous loop, rather than broadcast row by row.
    Z = np.empty((m0, p))
    T = None if cx is None else np.tile(cx, (m0, 1))
    with np.errstate(invalid="ignore", over="ignore"):  # NaN / inf are diagnosed by the caller
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            m = stop - start
            Zb = Z[:m]
            if T is None:
                np.copyto(Zb, X[start:stop])
            else:
                np.subtract(X[start:stop], T[:m], out=Zb)
            Ab = A[:, :m]
            if Y is not None:
                if cy is None:
                    Ab[1:] = Y[start:stop].T
                else:
                    np.subtract(Y[start:stop].T, cy[:, None], out=Ab[1:])
            # Gb = Zb^T Zb (upper triangle) by SciPy's BLAS syrk, Zb.T being Fortran-ordered (no
            # copy); SciPy's rather than NumPy's ``Zb.T @ Zb``: its BLAS build was the faster one
            # on the machine measured (benchmarks/RESULTS.md, "least squares"). Into a block's own
            # matrix, then added: a syrk with beta = 1 straight into G would add each of its
            # internal partial sums (one per inner block of rows) into the large running total;
            # measured on 20M x 50 (cpu_ols.py streaming): streamed coefficients 1.4e-13 and
            # standard errors 1.1e-12 from the whole-array fit that way, 4.6e-14 and 1.9e-13
            # with one add per block, as before the SciPy syrk.
            Gb = dsyrk(1.0, Zb.T, beta=0.0, c=Gb, trans=0, lower=0, overwrite_c=1)
            G += Gb
            if k < _GEMV_TARGETS:  # BLAS gemm with 1-3 rows packs the whole block; gemv does not
                # (the two timed: benchmarks/RESULTS.md, "Figures moved out of source comments")
                for j in range(k + 1):
                    B[j] += Ab[j] @ Zb
            else:
                np.matmul(Ab, Zb, out=Bb)
                B += Bb
            C += Ab @ Ab.T
        G = np.triu(G) + np.triu(G, 1).T
        sx, sy = B[0], C[0, 1:]
        ok = bool(np.all(sx * sx <= FRACTION * n * np.diagonal(G)) and np.all(sy * sy <= FRACTION * n * np.diagonal(C)[1:]))
        cx = np.zeros(p) if cx is None else cx
        mean_x = cx + sx / n
        xx = G - np.outer(sx, sx / n)
        if Y is None:
            return (float(n), mean_x, xx, None, None, None), ok
        cy = np.zeros(k) if cy is None else cy
        mean_y = cy + sy / n
        xy = B[1:].T - np.outer(sx, sy / n)
        yy = C[1:, 1:] - np.outer(sy, sy / n)
    return (float(n), mean_x, xx, mean_y, xy, yy), ok


def _near_zero(M: np.ndarray) -> bool:
    """Whether these rows pass the precision test about 0 (then no shifted copy is needed)."""
    M = np.asarray(M, dtype=np.float64)
    s = M.sum(axis=0)
    return bool(np.all(s * s <= FRACTION * M.shape[0] * np.einsum("ij,ij->j", M, M)))


def finite(stats: Stats) -> bool:
    """Whether every statistic is finite (NaN / inf / overflow in the input make them not)."""
    return all(v is None or bool(np.isfinite(v).all()) for v in stats)


# ---------------------------------------------------------------------------- BLAS threads
_controller: Any = None
_lock = threading.Lock()
_active = 0
_limiter: Any = None


def _blas() -> Any:
    """threadpoolctl's controller of the BLAS libraries (created once: it scans the process)."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController().select(user_api="blas")
    return _controller


def _blas_threads() -> int:
    """Threads the BLAS may use now (1 when unknown: then no worker threads are started)."""
    try:
        counts = [lib.num_threads for lib in _blas().lib_controllers]
    except Exception:  # an unknown BLAS: run in this thread, with the BLAS's own threading
        return 1
    return max(counts, default=1)


@contextmanager
def _one_blas_thread() -> Any:
    """BLAS at one thread while worker threads run; reference-counted, so that overlapping
    fits (threads, a Dask threaded scheduler) restore the user's setting exactly once."""
    global _active, _limiter
    with _lock:
        if _active == 0:
            _limiter = _blas().limit(limits=1)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                _limiter.restore_original_limits()
                _limiter = None

