"""The exact references of the numerical tests (tests/exact_reference.py) are themselves right."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from exact_reference import exact_moments, exact_ols, gamma, moments_bounds, ols_bounds


def test_exact_ols_reproduces_nist_longley_to_all_certified_digits():
    # NIST StRD "Longley": certified to 15 digits (cond ~ 5e7, where float64 solvers lose ~8)
    params = [-3482258.63459582, 15.0618722713733, -0.358191792925910e-01, -2.02022980381683,
              -1.03322686717359, -0.511041056535807e-01, 1829.15146461355]  # fmt: skip
    sd = [890420.383607373, 84.9149257747669, 0.334910077722432e-01, 0.488399681651699,
          0.214274163161675, 0.226073200069370, 455.478499142212]  # fmt: skip
    data = sm.datasets.longley.load_pandas()
    ref = exact_ols(data.exog.to_numpy(), data.endog.to_numpy())
    np.testing.assert_allclose(ref.params, params, rtol=1e-13)
    np.testing.assert_allclose(ref.bse, sd, rtol=1e-13)
    assert ref.rsquared == pytest.approx(0.995479004577296, rel=1e-14)


def test_exact_moments_of_small_integers_and_their_bounds():
    Z = np.array([[1.0, 2.0], [3.0, 5.0], [4.0, 4.0], [1e16, 1e16 + 2]])
    w = np.array([1.0, 0.5, 2.0, 0.0])  # the last row has no weight
    W, mean, S = exact_moments(Z, w)
    assert W == 3.5
    np.testing.assert_array_equal(mean, [(1 + 1.5 + 8) / 3.5, (2 + 2.5 + 8) / 3.5])
    Zc = Z[:3] - mean
    np.testing.assert_allclose(S, (Zc * w[:3, None]).T @ Zc, rtol=1e-15)
    _, mean_bound, S_bound = moments_bounds(Z, w)
    assert np.all(mean_bound > 0) and np.all(S_bound > 0)


def test_bounds_grow_with_the_condition_and_gamma_refuses_overflow():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 2))
    y = X @ [1.0, 1.0] + rng.standard_normal(200)
    near = np.column_stack([X[:, 0], X[:, 0] + 1e-6 * X[:, 1]])  # cond ~ 1e6
    tight = ols_bounds(X, y, exact_ols(X, y))
    loose = ols_bounds(near, y, exact_ols(near, y))
    assert np.all(loose.params / exact_ols(near, y).bse > 1e3 * tight.params / exact_ols(X, y).bse)
    with pytest.raises(ValueError, match="argument 'solver' must be 'normal' or 'qr'; got 'svd'"):
        ols_bounds(X, y, exact_ols(X, y), solver="svd")
    with pytest.raises(ValueError, match="too large for a float64 error bound"):
        gamma(2**53)
