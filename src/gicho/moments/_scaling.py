"""Exact rescaling by powers of two, for data whose squares leave float64's normal range.

Least squares (:mod:`gicho.linear`) and PCA (:mod:`gicho.decomposition`) form second moments
(Gram and covariance matrices). For data of magnitude beyond about 1e±120 those squares are
subnormal (below 2.2e-308: digits lost, or 0: a false "constant columns" diagnosis) or
overflow (above 1.8e308). Dividing the data by a power of two is exact (only the exponent
changes), so both estimators divide extreme data by :func:`power_of_two_scale` of its largest
magnitude, fit, and map every fitted number back exactly.

The unweighted moments bound each column's largest magnitude (:func:`gicho.moments.magnitude_bounds`);
:func:`ordinary_magnitudes` says when those bounds prove that no rescaling is needed, so
ordinary data are read once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["EXTREME_EXP", "ordinary_magnitudes", "power_of_two_scale"]

# Data whose largest magnitude lies outside [2^-EXTREME_EXP, 2^EXTREME_EXP] is rescaled by a
# power of two before its second moments are formed: 2^400 ~ 2.6e120, whose square is still far
# inside float64's normal range [2.2e-308, 1.8e308] with room for sums over many rows.
EXTREME_EXP = 400
# The largest power of two float64 holds: magnitudes from 2^1023.5 up (1.27e308) would round to
# 2^1024 (inf, which divides the data to 0); they are divided by 2^1023 instead, into [1.41, 2).
_MAX_EXP = np.finfo(np.float64).maxexp - 1


def power_of_two_scale(max_abs: Any) -> Any:
    """``2^round(log2(max_abs))`` for extreme magnitudes, 1.0 for ordinary ones.

    Parameters
    ----------
    max_abs : float or ndarray
        Largest absolute values (one, or one per column). Zero, NaN and inf give 1.0 (there is
        nothing to rescale; the callers' finiteness checks report NaN and inf).

    Returns
    -------
    float or ndarray of float64
        A float for a scalar, else an array of ``max_abs``'s shape: powers of two, 1.0 wherever
        ``|round(log2(max_abs))| <= EXTREME_EXP``, at most 2^1023 (the largest float64 holds).
        Dividing by them is exact.
    """
    m = np.asarray(max_abs, dtype=np.float64)
    ok = np.isfinite(m) & (m > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        exp = np.where(ok, np.round(np.log2(np.where(ok, m, 1.0))), 0.0)
    exp = np.where(np.abs(exp) > EXTREME_EXP, np.minimum(exp, _MAX_EXP), 0.0)
    out = np.ldexp(1.0, exp.astype(int))
    return float(out) if out.ndim == 0 else out


def ordinary_magnitudes(lo: Any, hi: Any) -> bool:
    """Whether bounds ``lo <= max |v| <= hi`` prove every magnitude inside ``[2^-EXTREME_EXP, 2^EXTREME_EXP]``.

    True means :func:`power_of_two_scale` would return 1.0 for every bounded magnitude (no pass
    over the data needed); False means "not proven" (extreme data, all-zero columns, NaN).
    """
    return bool(np.all(np.asarray(lo) >= 2.0**-EXTREME_EXP) and np.all(np.asarray(hi) <= 2.0**EXTREME_EXP))
