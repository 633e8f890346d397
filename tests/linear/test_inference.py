"""Inference statistics of LinearRegression against statsmodels OLS / WLS."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st

from gicho.linear import IllConditionedWarning, LinearRegression, RankDeficientWarning

RTOL = 1e-8  # the bar for statsmodels parity


@pytest.fixture(scope="module")
def design():
    """Heteroscedastic data with moderate effects (p-values well inside (0, 1))."""
    rng = np.random.default_rng(42)
    n = 120
    X = rng.standard_normal((n, 4)) * [1.0, 2.0, 0.5, 1.5] + [0.0, 3.0, -1.0, 2.0]
    noise = rng.standard_normal(n) * (0.5 + np.abs(X[:, 0]))
    y = X @ [0.3, -0.1, 0.4, 0.05] + 1.0 + noise
    w = rng.uniform(0.3, 3.0, n)
    return X, y, w


def _statsmodels(X, y, w, cov_type, fit_intercept):
    exog = sm.add_constant(X) if fit_intercept else X
    model = sm.WLS(y, exog, weights=w) if w is not None else sm.OLS(y, exog)
    return model.fit(cov_type=cov_type)


@pytest.mark.parametrize("cov_type", ["nonrobust", "HC0", "HC1", "HC2", "HC3"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_matches_statsmodels(design, cov_type, weighted, fit_intercept):
    X, y, w = design
    w = w if weighted else None
    ref = _statsmodels(X, y, w, cov_type, fit_intercept)
    ours = LinearRegression(cov_type=cov_type, fit_intercept=fit_intercept).fit(X, y, sample_weight=w)
    for name in ("params", "bse", "tvalues", "pvalues"):
        np.testing.assert_allclose(getattr(ours, f"{name}_"), getattr(ref, name), rtol=RTOL, err_msg=name)
    np.testing.assert_allclose(ours.cov_params_, ref.cov_params(), rtol=RTOL, atol=RTOL * np.abs(ref.cov_params()).max())
    np.testing.assert_allclose(ours.conf_int(), ref.conf_int(), rtol=RTOL)
    np.testing.assert_allclose(ours.conf_int(alpha=0.1), ref.conf_int(alpha=0.1), rtol=RTOL)
    for name in ("rsquared", "rsquared_adj", "fvalue", "f_pvalue", "llf", "aic", "bic", "ssr", "ess",
                 "centered_tss", "scale", "df_model", "df_resid", "nobs"):  # fmt: skip
        np.testing.assert_allclose(getattr(ours, f"{name}_"), getattr(ref, name), rtol=RTOL, err_msg=name)


def test_longley_inference_matches_statsmodels():
    data = sm.datasets.longley.load_pandas()
    ref = sm.OLS(data.endog, sm.add_constant(data.exog)).fit()
    ours = LinearRegression().fit(data.exog, data.endog)
    for name in ("params", "bse", "pvalues", "rsquared", "fvalue", "llf", "aic", "bic"):
        np.testing.assert_allclose(getattr(ours, f"{name}_"), np.asarray(getattr(ref, name)), rtol=RTOL, err_msg=name)


def test_explicit_constant_column_without_intercept_is_detected_like_statsmodels(design):
    X, y, _ = design
    Xc = np.column_stack([np.ones(len(y)), X])
    ref = sm.OLS(y, Xc).fit(cov_type="HC1")
    ours = LinearRegression(fit_intercept=False, cov_type="HC1").fit(Xc, y)
    for name in ("params", "bse", "rsquared", "rsquared_adj", "fvalue", "f_pvalue", "df_model", "aic"):
        np.testing.assert_allclose(getattr(ours, f"{name}_"), getattr(ref, name), rtol=RTOL, err_msg=name)


def test_multi_target_statistics_are_per_target(design):
    X, y, _ = design
    Y = np.column_stack([y, 2 * X[:, 1] - y + np.sin(np.arange(len(y)))])
    ours = LinearRegression(cov_type="HC2").fit(X, Y)
    assert ours.params_.shape == (2, 5) and ours.cov_params_.shape == (2, 5, 5)
    assert ours.conf_int().shape == (2, 5, 2)
    for t in range(2):
        ref = sm.OLS(Y[:, t], sm.add_constant(X)).fit(cov_type="HC2")
        np.testing.assert_allclose(ours.bse_[t], ref.bse, rtol=RTOL)
        np.testing.assert_allclose(ours.rsquared_[t], ref.rsquared, rtol=RTOL)
        assert ours.summary(target=t)["std err"] == pytest.approx(ref.bse, rel=RTOL)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(8, 60))
def test_tss_decomposes_and_r2_equals_squared_correlation(seed, n):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    y = X @ rng.standard_normal(3) + rng.standard_normal(n)
    m = LinearRegression().fit(X, y)
    np.testing.assert_allclose(m.ess_ + m.ssr_, m.centered_tss_, rtol=1e-10)  # TSS = ESS + RSS
    r = np.corrcoef(m.predict(X), y)[0, 1]
    np.testing.assert_allclose(m.rsquared_, r**2, rtol=1e-9)
    np.testing.assert_allclose(m.score(X, y), m.rsquared_, rtol=1e-10)


def test_rank_deficient_design_reports_aliased_coefficients(design):
    X, y, _ = design
    Xd = np.column_stack([X, X[:, 0] - 2 * X[:, 2]])  # column 4 = col0 - 2 col2
    with pytest.warns(RankDeficientWarning, match=r"rank 4 of 5 columns\): column\(s\) 'x4'"):
        model = LinearRegression().fit(Xd, y)
    assert model.aliased_.tolist() == [False, False, False, False, True]
    assert model.coef_[4] == 0.0
    for name in ("bse_", "tvalues_", "pvalues_"):
        values = getattr(model, name)
        assert np.isnan(values[5]) and np.all(np.isfinite(values[:5])), name
    assert np.all(np.isnan(model.conf_int()[5]))
    # the kept coefficients are the fit without the aliased column (R's lm convention)
    ref = sm.OLS(y, sm.add_constant(X)).fit()
    np.testing.assert_allclose(model.params_[:5], ref.params, rtol=1e-9)
    np.testing.assert_allclose(model.bse_[:5], ref.bse, rtol=1e-9)
    np.testing.assert_allclose(model.rsquared_, ref.rsquared, rtol=1e-10)
    assert model.df_resid_ == ref.df_resid and model.df_model_ == ref.df_model
    assert "aliased" in str(model.summary())


def test_svd_on_rank_deficient_design_gives_nan_for_non_estimable(design):
    X, y, _ = design
    Xd = np.column_stack([X, X[:, 0] - 2 * X[:, 2]])
    with pytest.warns(RankDeficientWarning, match="minimum-norm solution; non-estimable"):
        model = LinearRegression(solver="svd", cov_type="HC3").fit(Xd, y)
    assert model.rank_ == 4
    # params are [const, x0..x4]; x0, x2, x4 are non-estimable (x4 = x0 - 2 x2), and so is
    # the intercept (it depends on them through the column means)
    assert np.all(np.isnan(model.bse_[[0, 1, 3, 5]]))
    assert np.all(np.isfinite(model.bse_[[2, 4]]))  # x1 and x3 are estimable
    ref = sm.OLS(y, sm.add_constant(X)).fit(cov_type="HC3")
    np.testing.assert_allclose(model.bse_[[2, 4]], ref.bse[[2, 4]], rtol=1e-8)


def test_summary_table_and_frame(design):
    X, y, _ = design
    model = LinearRegression(cov_type="HC3").fit(X, y)
    summary = model.summary(feature_names=["a", "b", "c", "d"])
    text = str(summary)
    for token in ("R-squared", "Adj. R-squared", "F-statistic", "AIC", "BIC", "HC3", "P>|z|", "const"):
        assert token in text
    frame = summary.to_frame()
    assert list(frame.index) == ["const", "a", "b", "c", "d"]
    np.testing.assert_allclose(frame["std err"].to_numpy(), model.bse_)
    ref = sm.OLS(y, sm.add_constant(X)).fit(cov_type="HC3")
    np.testing.assert_allclose(frame["[0.025"].to_numpy(), ref.conf_int()[:, 0], rtol=RTOL)
    assert summary.to_dict()["a"]["coef"] == pytest.approx(model.coef_[0])
    with pytest.raises(KeyError, match="unknown column 'beta'"):
        summary["beta"]
    with pytest.raises(ValueError, match=r"`feature_names` has 2 name\(s\); expected 4"):
        model.summary(feature_names=["a", "b"])
    with pytest.raises(ValueError, match=r"`target` must be an integer in \[0, 1\)"):
        model.summary(target=1)
    with pytest.raises(ValueError, match=r"`alpha` must lie in \(0, 1\)"):
        model.conf_int(alpha=1.5)


def test_perfect_fit_has_zero_residuals_without_runtime_warnings(design):
    X, _, _ = design
    y = X @ [1.0, 2.0, 3.0, 4.0] + 5.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero noise from a perfect fit
        model = LinearRegression().fit(X, y)
    assert model.ssr_ < 1e-18 * model.centered_tss_ and model.rsquared_ == pytest.approx(1.0)
    assert model.fvalue_ > 1e20 or np.isinf(model.fvalue_)


def test_torch_input_gives_the_same_statistics(design):
    torch = pytest.importorskip("torch")
    X, y, w = design
    ours = LinearRegression(cov_type="HC3").fit(torch.tensor(X), torch.tensor(y), sample_weight=torch.tensor(w))
    ref = sm.WLS(y, sm.add_constant(X), weights=w).fit(cov_type="HC3")
    assert isinstance(ours.coef_, torch.Tensor)
    for name in ("params", "bse", "pvalues", "rsquared", "llf"):
        np.testing.assert_allclose(getattr(ours, f"{name}_"), getattr(ref, name), rtol=RTOL, err_msg=name)


@pytest.mark.parametrize("cov_type", ["nonrobust", "HC1", "HC3"])
@pytest.mark.parametrize("extra", [False, True])
def test_columns_spanning_the_constant_make_a_model_with_a_constant(cov_type, extra):
    """Peers' suite (statsmodels): a complete set of dummies without an explicit constant has an
    implicit one: centred R^2, df_model = rank - 1, F without the constant (nan under HC)."""
    rs = np.random.RandomState(2)
    x = rs.randn(100, 1)
    X = ((x > 0) == [True, False]).astype(float)
    if extra:
        X = np.column_stack([X, rs.randn(100)])
    y = X[:, :2].sum(1) + rs.randn(100)
    ref = sm.OLS(y, X).fit(cov_type=cov_type)
    ours = LinearRegression(fit_intercept=False, cov_type=cov_type).fit(X, y)
    assert ours.df_model_ == ref.df_model and ours.rsquared_ == pytest.approx(ref.rsquared, rel=1e-10)
    assert ours.rsquared_adj_ == pytest.approx(ref.rsquared_adj, rel=1e-10)
    np.testing.assert_allclose(ours.fvalue_, ref.fvalue, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(ours.f_pvalue_, ref.f_pvalue, rtol=1e-9, equal_nan=True)
    assert ours.aic_ == pytest.approx(ref.aic, rel=1e-12)
    # and no false positive on a design without one
    X2 = rs.randn(100, 3)
    assert LinearRegression(fit_intercept=False).fit(X2, y).df_model_ == sm.OLS(y, X2).fit().df_model == 3


def test_summary_cond_no_is_statsmodels_quantity():
    """Peers' suite: "Cond. No." was the centred, scaled design's (21.7 where statsmodels says
    227.2 on the diabetes data). Now statsmodels' condition_number, the old one renamed."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)  # X + 3 without intercept: cond 1.2e3
        cases = [
            (LinearRegression().fit(X, y), sm.OLS(y, sm.add_constant(X)).fit()),
            (LinearRegression().fit(X, y, sample_weight=w), sm.WLS(y, sm.add_constant(X), weights=w).fit()),
            (LinearRegression(fit_intercept=False).fit(X + 3, y), sm.OLS(y, X + 3).fit()),
        ]
    for ours, ref in cases:
        assert ours.condition_number_ == pytest.approx(ref.condition_number, rel=1e-9)
        stats = ours.summary().stats
        assert stats["Cond. No."] == ours.condition_number_ and stats["Scaled Cond. No."] == ours.cond_
    assert cases[0][0].condition_number_ == pytest.approx(227.2, abs=0.05)
