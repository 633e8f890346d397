"""Private kernels behind :mod:`gicho.metrics`: validation, blocked sums, Chan merges.

Batch functions and streaming accumulators share one representation, :class:`Stats`: per
output, the weighted sums of |error| and error², and the weighted mean and centred sum of
squares (M2) of ``y_true`` and ``y_pred``. A batch call reduces the whole input to one
``Stats``; an accumulator merges per-chunk ``Stats`` with the parallel update of Chan, Golub
and LeVeque (1979), so both paths end in the same :func:`finalize` and give the same numbers
up to round-off.

Speed: the arrays are walked in blocks of ``BLOCK_ELEMENTS`` values so that the difference
buffer stays in the L2 cache (no temporary of the input's size, no second trip to memory),
and finiteness is checked lazily: every input value reaches at least one of the sums, so
NaN or infinity in the input always makes a sum non-finite, and the (costly) element-wise
check only runs to name the culprit when that happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gicho._validation import check_array, check_consistent_length, check_sample_weight, describe

MULTIOUTPUT_MODES = ("raw_values", "uniform_average", "variance_weighted")
# 64 Ki float64 values = 512 KiB: the buffer and the input blocks fit in a core's L2 cache,
# faster than one buffer as large as the input (timed in benchmarks/RESULTS.md, "Figures moved
# out of source comments").
BLOCK_ELEMENTS = 65536
# Safety factor on the a-priori bound |computed mean - c| <= (2n + 1) eps |c| of a constant
# column c; below the resulting bound on M2 the column is tested for exact constancy.
_CONSTANT_SLACK = 8.0
_EPS = np.finfo(np.float64).eps


@dataclass
class Stats:
    """Sufficient statistics of (y_true, y_pred, w), one entry per output.

    ``n`` counts samples (zero weights included); ``weight_sum`` is Σw. ``abs_err`` and
    ``sq_err`` are Σ w|ŷ−y| and Σ w(ŷ−y)²; ``mean_*`` and ``m2_*`` are the weighted mean
    and Σ w(v − mean)² of ``y_true`` and ``y_pred``. All arrays have shape (n_outputs,).
    """

    n: int
    weight_sum: float
    abs_err: np.ndarray
    sq_err: np.ndarray
    mean_true: np.ndarray
    m2_true: np.ndarray
    mean_pred: np.ndarray
    m2_pred: np.ndarray
    # The means are double-double: mean + mean_lo, |mean_lo| <~ ulp(mean). With y = 1e8 + N(0, 1)
    # a float64 mean is only good to ulp(1e8) ~ 1.5e-8, and Chan's merge multiplies that error
    # by the chunk-mean differences: R^2 lost 6 digits over 7 chunks. None means zeros.
    mean_true_lo: np.ndarray | None = None
    mean_pred_lo: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.mean_true_lo is None:
            self.mean_true_lo = np.zeros_like(self.mean_true)
        if self.mean_pred_lo is None:
            self.mean_pred_lo = np.zeros_like(self.mean_pred)

    @property
    def n_outputs(self) -> int:
        return self.abs_err.shape[0]

    @property
    def ess(self) -> np.ndarray:
        """Σ w(ŷ − ȳ)² = M2(ŷ) + W (mean(ŷ) − ȳ)²: both terms are >= 0, no cancellation."""
        diff = (self.mean_pred - self.mean_true) + (self.mean_pred_lo - self.mean_true_lo)
        return self.m2_pred + self.weight_sum * diff**2


# ----------------------------------------------------------------------------- validation


def check_targets(
    y_true: Any, y_pred: Any, *, allow_empty: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Float64 arrays of shape (n,) or (n, k), same shape; finiteness is checked later."""
    yt = check_array(y_true, "y_true", ndim=(1, 2), finite=False, allow_empty=allow_empty)
    yp = check_array(y_pred, "y_pred", ndim=(1, 2), finite=False, allow_empty=allow_empty)
    if yt.ndim != yp.ndim:
        raise ValueError(
            f"`y_true` has shape {yt.shape} and `y_pred` has shape {yp.shape}: both must be 1-D "
            "(one output) or both 2-D (n_samples, n_outputs); reshape one of them so that they "
            "match (e.g. y_pred.reshape(-1) or y_true.reshape(-1, 1))"
        )
    check_consistent_length(y_true=yt, y_pred=yp)
    if yt.ndim == 2 and yt.shape[1] != yp.shape[1]:
        raise ValueError(
            f"`y_true` has {yt.shape[1]} output(s) and `y_pred` has {yp.shape[1]} "
            f"(shapes {yt.shape} and {yp.shape}); they must have the same number of columns"
        )
    if yt.ndim == 2 and yt.shape[1] == 0:
        raise ValueError(f"`y_true` and `y_pred` have shape {yt.shape}: at least one output is required")
    return yt, yp


def check_weights(sample_weight: Any, n: int, *, allow_all_zero: bool = False) -> np.ndarray | None:
    """``None`` (unweighted fast path) or a validated float64 vector of length ``n``.

    Streaming updates set ``allow_all_zero``: a chunk whose weights are all zero is a valid
    piece of a weighted data set; the total weight is checked when the metric is computed.
    """
    if sample_weight is None:
        return None
    w = check_array(sample_weight, "sample_weight", ndim=1, finite=False, allow_empty=True)
    if w.shape[0] == n:
        if n == 0 and allow_all_zero:
            return w
        # Fast path: one min and one sum instead of three boolean passes; NaN poisons both.
        low, total = (w.min(), w.sum()) if n else (np.nan, np.nan)
        if np.isfinite(low) and np.isfinite(total) and low >= 0 and (total > 0 or allow_all_zero):
            return w
    return check_sample_weight(w, n)  # raises the shared, descriptive error


def check_multioutput(multioutput: Any, n_outputs: int) -> str | np.ndarray:
    """One of :data:`MULTIOUTPUT_MODES` or a vector of ``n_outputs`` weights >= 0, not all 0."""
    if isinstance(multioutput, str):
        if multioutput not in MULTIOUTPUT_MODES:
            raise ValueError(
                "argument `multioutput` must be one of "
                f"{', '.join(repr(m) for m in MULTIOUTPUT_MODES)} or an array of {n_outputs} "
                f"output weight(s); got {multioutput!r}"
            )
        return multioutput
    weights = check_array(multioutput, "multioutput", ndim=1)
    if weights.shape[0] != n_outputs:
        raise ValueError(
            f"argument `multioutput` has {weights.shape[0]} weight(s); expected {n_outputs} "
            "(one per output)"
        )
    if (weights < 0).any() or not weights.any():
        raise ValueError(
            f"argument `multioutput` must hold weights >= 0, not all zero; got {describe(weights.tolist())}"
        )
    return weights


def raise_non_finite(yt: np.ndarray, yp: np.ndarray) -> None:
    """Called when a sum is not finite: name the input holding NaN/inf, else report overflow."""
    check_array(yt, "y_true", allow_empty=True)
    check_array(yp, "y_pred", allow_empty=True)
    raise ValueError(
        "the metric overflowed float64 (the inputs are finite but their squared errors or "
        f"sums exceed {np.finfo(np.float64).max:.3g}); rescale `y_true` and `y_pred`"
    )


# ----------------------------------------------------------------------------- kernels


def _wsum(d: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Σ_i w_i d_i (per column), with einsum rather than BLAS for two reasons: OpenBLAS
    threads each small dot, which on a loaded machine made a 10^7 reduction 3-8x slower;
    and gemv may skip rows whose weight is 0, hiding a NaN there (einsum computes 0·NaN)."""
    if d.ndim == 1:
        return np.asarray(d.sum() if w is None else np.einsum("i,i->", w, d))
    return np.einsum("ij->j", d) if w is None else np.einsum("i,ij->j", w, d)


def _wsumsq(d: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Σ_i w_i d_i² (per column); overwrites ``d`` when weighted."""
    if w is None:
        return np.einsum("i,i->", d, d) if d.ndim == 1 else np.einsum("ij,ij->j", d, d)
    np.multiply(d, d, out=d)
    return _wsum(d, w)


def _mean(y: np.ndarray, w: np.ndarray | None, weight_sum: float, k: int) -> np.ndarray:
    if weight_sum == 0:  # an all-zero-weight chunk: its mean carries no weight in a merge
        return np.zeros(k)
    return np.atleast_1d(_wsum(y, w) / weight_sum)


def _fix_constant(
    y: np.ndarray, w: np.ndarray | None, mean: np.ndarray, m2: np.ndarray, mean_lo: np.ndarray, n: int,
    weight_sum: float,
) -> None:
    """Make M2 exactly 0 and the mean exactly c for a column that is constant (= c).

    The computed mean of a constant column can be off by a few ulps, which makes M2 tiny but
    nonzero and R² = 1 − RSS/TSS astronomically negative. Columns whose M2 is within the
    round-off bound are tested for exact constancy over the samples of positive weight (one
    extra pass over those columns only; random data never gets here).
    """
    bound = weight_sum * (_CONSTANT_SLACK * (n + 1) * _EPS * np.abs(mean)) ** 2
    for j in np.flatnonzero(m2 <= bound):
        column = y if y.ndim == 1 else y[:, j]
        if w is not None:
            column = column[w > 0]
        if column.size and (column == column[0]).all():
            mean[j] = column[0]
            mean_lo[j] = 0.0
            m2[j] = 0.0


def reduce(
    yt: np.ndarray,
    yp: np.ndarray,
    w: np.ndarray | None,
    *,
    absolute: bool = True,
    squares: bool = True,
    true_moments: bool = False,
    pred_moments: bool = False,
) -> Stats:
    """Reduce validated arrays to :class:`Stats`; moments not asked for are left at zero.

    At least one of Σw|e| (``absolute``) and Σw e² (``squares``) must be asked for: they
    touch every value of both inputs, which makes the lazy finiteness check sound. MAE asks
    for the first only (its squares may overflow where it does not).

    Raises ValueError (naming the argument) when the inputs hold NaN/inf, or on overflow.
    """
    if not (absolute or squares):
        raise ValueError("reduce() needs absolute=True or squares=True (internal error)")
    n = yt.shape[0]
    k = 1 if yt.ndim == 1 else yt.shape[1]
    weight_sum = float(n) if w is None else float(w.sum())
    abs_err, sq_err, m2_true, m2_pred, corr_true, corr_pred = (np.zeros(k) for _ in range(6))
    # Overflow / inf − inf only produce non-finite sums, which are diagnosed just below.
    with np.errstate(over="ignore", invalid="ignore"):
        mean_true = _mean(yt, w, weight_sum, k) if true_moments else np.zeros(k)
        mean_pred = _mean(yp, w, weight_sum, k) if pred_moments else np.zeros(k)
        rows = max(1, BLOCK_ELEMENTS // k)
        buf = np.empty((min(rows, n), *yt.shape[1:]))
        for start in range(0, n, rows):
            t, p = yt[start : start + rows], yp[start : start + rows]
            wb = None if w is None else w[start : start + rows]
            d = buf[: t.shape[0]]
            np.subtract(p, t, out=d)
            if absolute:
                np.abs(d, out=d)  # |d|² = d², so the squares can reuse it
                abs_err += _wsum(d, wb)
            if squares:
                sq_err += _wsumsq(d, wb)
            if true_moments:
                np.subtract(t, mean_true, out=d)
                corr_true += _wsum(d, wb)  # Σ w (y - mean): the rounding error of the mean
                m2_true += _wsumsq(d, wb)
            if pred_moments:
                np.subtract(p, mean_pred, out=d)
                corr_pred += _wsum(d, wb)
                m2_pred += _wsumsq(d, wb)
        # corrected two-pass (Björck): the exact mean is mean + corr / W, and
        # Σ w (y - exact)^2 = Σ w (y - mean)^2 - corr^2 / W
        lo_true, lo_pred = np.zeros(k), np.zeros(k)
        if weight_sum > 0:
            lo_true, lo_pred = corr_true / weight_sum, corr_pred / weight_sum
            m2_true = np.maximum(m2_true - corr_true * lo_true, 0.0)
            m2_pred = np.maximum(m2_pred - corr_pred * lo_pred, 0.0)
    stats = Stats(n, weight_sum, abs_err, sq_err, mean_true, m2_true, mean_pred, m2_pred, lo_true, lo_pred)
    sums = (weight_sum, abs_err, sq_err, mean_true, m2_true, mean_pred, m2_pred, lo_true, lo_pred)
    if not all(np.isfinite(s).all() for s in sums):
        raise_non_finite(yt, yp)
    if true_moments:
        _fix_constant(yt, w, stats.mean_true, stats.m2_true, stats.mean_true_lo, n, weight_sum)
    if pred_moments:
        _fix_constant(yp, w, stats.mean_pred, stats.m2_pred, stats.mean_pred_lo, n, weight_sum)
    return stats


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a + b`` as an unevaluated sum ``s + e`` that is exact (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def merge(a: Stats, b: Stats) -> Stats:
    """Chan, Golub & LeVeque's pairwise update, weighted; returns a new :class:`Stats`.

    mean = mean_a + δ W_b / W and M2 = M2_a + M2_b + δ² W_a W_b / W with δ = mean_b − mean_a.
    The means are double-double (``mean + mean_lo``), so δ keeps the digits below the ulp of a
    large mean. A side with zero total weight contributes its count only (its mean is
    meaningless).
    """
    weight_sum = a.weight_sum + b.weight_sum
    moments, lows = [], []
    for mean_a, lo_a, m2_a, mean_b, lo_b, m2_b in (
        (a.mean_true, a.mean_true_lo, a.m2_true, b.mean_true, b.mean_true_lo, b.m2_true),
        (a.mean_pred, a.mean_pred_lo, a.m2_pred, b.mean_pred, b.mean_pred_lo, b.m2_pred),
    ):
        if b.weight_sum == 0:
            moments += [mean_a.copy(), m2_a + m2_b]
            lows.append(lo_a.copy())
        elif a.weight_sum == 0:
            moments += [mean_b.copy(), m2_a + m2_b]
            lows.append(lo_b.copy())
        else:
            hi, err = _two_sum(mean_b, -mean_a)
            delta = hi + (err + (lo_b - lo_a))
            mean, lo = _two_sum(mean_a, lo_a + delta * (b.weight_sum / weight_sum))
            moments += [mean, m2_a + m2_b + delta**2 * (a.weight_sum * b.weight_sum / weight_sum)]
            lows.append(lo)
    return Stats(
        a.n + b.n, weight_sum, a.abs_err + b.abs_err, a.sq_err + b.sq_err, *moments, *lows
    )


# ----------------------------------------------------------------------------- assembly


def r2_per_output(rss: np.ndarray, tss: np.ndarray, force_finite: bool) -> np.ndarray:
    """1 − RSS/TSS per output, with scikit-learn's handling of TSS = 0."""
    # RSS/TSS beyond float64's range (a near-constant target far from the predictions) is an
    # R² below -1.8e308: -inf is its float value, not an error
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        raw = 1.0 - rss / tss
    if not force_finite:
        return raw  # TSS = 0: nan when RSS = 0, -inf otherwise
    return np.where(tss != 0, raw, np.where(rss == 0, 1.0, 0.0))


def average(values: np.ndarray, multioutput: str | np.ndarray, tss: np.ndarray) -> float | np.ndarray:
    """Combine per-output values as scikit-learn does for ``multioutput``."""
    if isinstance(multioutput, str) and multioutput == "raw_values":
        return values
    if isinstance(multioutput, str):  # variance_weighted: weights TSS ∝ variance, uniform
        # when every output is constant (as scikit-learn does)
        weights = None if multioutput == "uniform_average" or not tss.any() else tss
    else:
        weights = multioutput
    with np.errstate(invalid="ignore"):  # force_finite=False: nan/-inf scores average to nan
        return float(np.average(values, weights=weights))


def per_output(stats: Stats, force_finite: bool = True) -> dict[str, np.ndarray]:
    """mae, mse, rmse and r2 per output from :class:`Stats`."""
    if stats.weight_sum <= 0:
        raise ValueError(
            f"no positive sample weight seen ({stats.n} sample(s), total weight "
            f"{stats.weight_sum:g}); the metrics are undefined"
        )
    mse = stats.sq_err / stats.weight_sum
    return {
        "mae": stats.abs_err / stats.weight_sum,
        "mse": mse,
        "rmse": np.sqrt(mse),
        "r2": r2_per_output(stats.sq_err, stats.m2_true, force_finite),
    }
