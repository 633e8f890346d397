"""Least squares at extreme magnitudes: exact rescaling by powers of two, and back.

Data beyond about 1e±120 is divided by a power of two before its moments are formed (an exact
operation), so that no square leaves float64's normal range: X * 1e-170 would give a Gram
matrix of zeros (a false "constant columns" diagnosis), X * 1e-160 subnormal squares (wrong
from the 5th digit), y * 1e-200 standard errors of 0. Least squares is scale equivariant, so
every fitted number maps back exactly: coefficients by s_y / s_x, variances by their squares,
the log-likelihood by -n log s_y.
"""

from __future__ import annotations

import copy

import numpy as np

from gicho.linear import _solve as S
from gicho.linear._inference import OLSStatistics
from gicho.moments import Moments, magnitude_bounds
from gicho.moments import ordinary_magnitudes as _ordinary
from gicho.moments import power_of_two_scale as _power_of_two

__all__ = ["extreme_scales", "ordinary_magnitudes", "unscale"]


def ordinary_magnitudes(m: Moments) -> bool:
    """Whether unweighted moments prove that no rescaling is needed (then no pass over X).

    True when every largest magnitude lies inside [2^-EXTREME_EXP, 2^EXTREME_EXP] (see
    :mod:`gicho.moments._scaling`) for X as a whole and for each target: :func:`extreme_scales`
    would return None. False means "not proven" (extreme data, all-zero columns): the caller
    asks :func:`extreme_scales`.
    """
    lo, hi = magnitude_bounds(m)
    p = m.n_features_
    return _ordinary(lo[:p].max(), hi[:p].max()) and _ordinary(lo[p:], hi[p:])


def extreme_scales(X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray] | None:
    """``(s_x, s_y)``: one power of two for X, one per target, or None when no rescaling is needed."""
    with np.errstate(invalid="ignore"):
        x_max = np.max(np.abs(X)) if X.size else 0.0
        Y = y[:, None] if y.ndim == 1 else y
        y_max = np.max(np.abs(Y), axis=0) if Y.size else np.zeros(Y.shape[1])
    if not (np.isfinite(x_max) and np.all(np.isfinite(y_max))):
        return None  # NaN / inf: the moments report them
    s_x, s_y = _power_of_two(x_max), _power_of_two(y_max)
    if s_x == 1.0 and np.all(s_y == 1.0):
        return None
    return s_x, s_y


def unscale(sol: S.Solution, st: OLSStatistics, m: Moments, s_x: float, s_y: np.ndarray, fit_intercept: bool):
    """A fit on ``X / s_x``, ``y / s_y`` in the units of the data."""
    with np.errstate(over="ignore", under="ignore"):  # e.g. var(coef) ~ 1e320 for X ~ 1e-160: inf
        return _unscale_numbers(copy.copy(sol), copy.copy(st), m.to_numpy(), np.float64(s_x), s_y, fit_intercept)


def _unscale_numbers(sol: S.Solution, st: OLSStatistics, m: Moments, s_x: np.float64, s_y: np.ndarray,
                     fit_intercept: bool):  # fmt: skip
    sol.coef = sol.coef * (s_y[None, :] / s_x)
    if sol.singular_values is not None:
        sol.singular_values = sol.singular_values * s_x
    P = st.params.shape[1]
    d = np.outer(s_y, np.r_[[1.0] * int(fit_intercept), [1.0 / s_x] * (P - int(fit_intercept))])  # (k, P)
    st.params = st.params * d
    st.bse = st.bse * d
    st.cov_params = st.cov_params * d[:, :, None] * d[:, None, :]
    for name in ("ssr", "ess", "centered_tss", "scale"):
        setattr(st, name, getattr(st, name) * s_y**2)
    shift = st.nobs * np.log(s_y)  # llf = -n/2 (1 + log 2 pi + log(ssr / n)) + ...
    st.llf = st.llf - shift
    st.aic, st.bic = st.aic + 2 * shift, st.bic + 2 * shift
    m.mean_x_, m.xx_ = m.mean_x_ * s_x, m.xx_ * s_x**2
    m.mean_y_, m.xy_, m.yy_ = m.mean_y_ * s_y, m.xy_ * (s_x * s_y[None, :]), m.yy_ * np.outer(s_y, s_y)
    return sol, st, m
