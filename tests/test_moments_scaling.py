"""gicho.moments._scaling: the one power-of-two rescaling that least squares and PCA share.

Dividing by a power of two changes only the exponent, so a fit of extreme data maps back
exactly: these tests compare bits, not tolerances.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gicho.moments._scaling as scaling
from gicho.decomposition import PCA
from gicho.linear import LinearRegression
from gicho.moments import EXTREME_EXP, ordinary_magnitudes, power_of_two_scale

# every positive finite float64, subnormals and the top binade (from 2^1023.5 up) included
magnitudes = st.floats(min_value=5e-324, allow_nan=False, allow_infinity=False) | st.floats(2.0**1023, np.finfo(float).max)
# exponents of data that must be rescaled, with variances that float64 still holds
extreme_exps = st.integers(EXTREME_EXP + 2, 500).flatmap(lambda k: st.sampled_from([k, -k]))


def _is_power_of_two(s: float) -> bool:
    return s > 0 and math.frexp(s)[0] == 0.5


@given(magnitudes)
@settings(max_examples=300, deadline=None)
def test_scale_is_a_power_of_two_that_brings_the_magnitude_near_one(m):
    s = power_of_two_scale(m)
    assert isinstance(s, float) and _is_power_of_two(s)
    exp = round(math.log2(m))
    if abs(exp) <= EXTREME_EXP:
        assert s == 1.0
    else:  # 2^round(log2 m), but never 2^1024 (inf): the top binade is divided by 2^1023
        assert s == math.ldexp(1.0, min(exp, 1023))
        assert 2.0**-0.5 * (1 - 1e-15) <= m / s <= (2.0**0.5 * (1 + 1e-15) if exp < 1024 else 2.0)
        assert (m / s) * s == m  # exact both ways
        assert np.isfinite((m / s) ** 2) and (m / s) ** 2 >= np.finfo(np.float64).tiny


@given(st.lists(magnitudes | st.sampled_from([0.0, np.nan, np.inf]), min_size=1, max_size=8))
@settings(max_examples=100, deadline=None)
def test_array_scale_is_the_scalar_scale_of_each_element(values):
    out = power_of_two_scale(np.array(values))
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (len(values),)
    assert out.tolist() == [power_of_two_scale(v) for v in values]


@pytest.mark.parametrize("m", [0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, 2.0**EXTREME_EXP, 2.0**-EXTREME_EXP])
def test_nothing_to_rescale(m):
    assert power_of_two_scale(m) == 1.0


@given(magnitudes, magnitudes)
@settings(max_examples=200, deadline=None)
def test_ordinary_bounds_prove_that_no_rescaling_is_needed(a, b):
    lo, hi = min(a, b), max(a, b)
    if ordinary_magnitudes(lo, hi):  # every magnitude in [lo, hi] needs no scale
        assert power_of_two_scale(lo) == power_of_two_scale(hi) == 1.0
    assert ordinary_magnitudes(np.array([lo, 1.0]), np.array([hi, 1.0])) == ordinary_magnitudes(lo, hi)
    assert not ordinary_magnitudes(0.0, hi) and not ordinary_magnitudes(np.nan, hi)


def test_least_squares_and_pca_share_the_one_threshold(monkeypatch):
    """Both estimators read the threshold from gicho.moments._scaling, and nowhere else: with
    it lowered to 10, data of magnitude 2^20 is rescaled by both."""
    from gicho.decomposition import _solvers
    from gicho.linear import _scale
    from gicho.moments import Moments

    X = np.random.default_rng(0).uniform(0.8, 1.2, size=(20, 3)) * 2.0**20
    y = X.sum(axis=1)
    assert _scale.extreme_scales(X, y) is None and _solvers.extreme_scale(X) == 1.0
    assert _scale.ordinary_magnitudes(Moments.from_arrays(X, y))
    monkeypatch.setattr(scaling, "EXTREME_EXP", 10)
    s_x, s_y = _scale.extreme_scales(X, y)
    assert s_x == 2.0**20 and s_y.tolist() == [2.0**22]
    assert _solvers.extreme_scale(X) == 2.0**20
    assert not _scale.ordinary_magnitudes(Moments.from_arrays(X, y))
    _, scale, _ = _solvers.covariance_moments(X)
    assert scale == 2.0**20


def test_the_top_of_float64s_range_is_rescaled_not_zeroed():
    """Magnitudes from 2^1023.5 (1.27e308) rounded to the scale 2^1024 = inf: least squares
    divided X to zeros (coefficients 0 and a false "constant columns" warning), PCA raised
    OverflowError ("math range error"). The scale is now 2^1023."""
    X, y, _ = _regression(False)
    X = X / np.abs(X).max() * 1.9  # max |X| = 1.9 > 2^0.5: max |X * 2^1023| > 2^1023.5
    y = y / np.abs(y).max() * 1.9
    ref = _fit(X, y, None, 0, 0)  # the data that X * 2^1023 and y * 2^1023 are divided back to
    model = _fit(X, y, None, 1023, 1023)
    np.testing.assert_array_equal(model.coef_, ref.coef_)
    assert model.intercept_ == np.ldexp(ref.intercept_, 1023)
    for solver in ("covariance", "svd", "randomized"):  # variances of ~1e308 data overflow: refused
        with pytest.raises(ValueError, match=r"`X` has values of magnitude ~9e\+307: its variances overflow"):
            PCA(2, solver=solver, random_state=0).fit(np.ldexp(X, 1023))


def _regression(weighted: bool):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 3))
    y = X @ [1.0, -2.0, 0.5] + 3.0 + rng.normal(size=60)
    w = rng.uniform(0.5, 2.0, size=60) if weighted else None
    return X, y, w


def _fit(X, y, w, k, j):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return LinearRegression().fit(np.ldexp(X, k), np.ldexp(y, j), sample_weight=w)


@given(extreme_exps, extreme_exps | st.just(0), st.booleans())
@settings(max_examples=25, deadline=None)
def test_least_squares_of_extreme_data_is_exactly_scale_equivariant(k, j, weighted):
    """X * 2^k and y * 2^j are both divided back to the same data (one power of two each), so
    their fit is the reference fit's bits with the exponents shifted: coefficients by 2^(j-k),
    the intercept by 2^j, t statistics and R^2 unchanged."""
    X, y, w = _regression(weighted)
    k0, j0 = 450, (0 if j == 0 else 450)
    ref, model = _fit(X, y, w, k0, j0), _fit(X, y, w, k, j)
    d = (j - k) - (j0 - k0)
    np.testing.assert_array_equal(model.coef_, np.ldexp(ref.coef_, d))
    assert model.intercept_ == np.ldexp(ref.intercept_, j - j0)
    np.testing.assert_array_equal(model.bse_[1:], np.ldexp(ref.bse_[1:], d))
    assert model.bse_[0] == np.ldexp(ref.bse_[0], j - j0)
    np.testing.assert_array_equal(model.tvalues_, ref.tvalues_)
    assert model.rsquared_ == ref.rsquared_


@pytest.mark.parametrize("solver", ["covariance", "svd", "randomized"])
@given(k=extreme_exps)
@settings(max_examples=10, deadline=None)
def test_pca_of_extreme_data_is_exactly_scale_equivariant(solver, k):
    """X * 2^k is divided back to the same data: the components are the reference's bits, the
    variances its bits times 2^(2(k - k0)), the singular values times 2^(k - k0)."""
    X = np.random.default_rng(6).normal(size=(80, 4)) * [3.0, 2.0, 1.0, 0.5]
    k0 = 450
    ref, pca = (PCA(2, solver=solver, random_state=0).fit(np.ldexp(X, e)) for e in (k0, k))
    np.testing.assert_array_equal(pca.components_, ref.components_)
    np.testing.assert_array_equal(pca.explained_variance_, np.ldexp(ref.explained_variance_, 2 * (k - k0)))
    np.testing.assert_array_equal(pca.singular_values_, np.ldexp(ref.singular_values_, k - k0))
    np.testing.assert_array_equal(pca.explained_variance_ratio_, ref.explained_variance_ratio_)
    np.testing.assert_array_equal(pca.mean_, np.ldexp(ref.mean_, k - k0))
