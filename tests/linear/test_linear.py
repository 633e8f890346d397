"""gicho.linear.LinearRegression: solvers, accuracy, scikit-learn compatibility, bad input."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression as SkLinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from exact_reference import exact_ols, ols_bounds
from gicho._validation import NotFittedError
from gicho.linear import IllConditionedWarning, LinearRegression, RankDeficientWarning

# NIST StRD, "Longley" (Longley 1967), certified values of the linear regression
# (https://www.itl.nist.gov/div898/strd/lls/data/Longley.shtml): b0 (intercept), b1..b6 for
# GNPDEFL, GNP, UNEMP, ARMED, POP, YEAR, and their certified standard deviations. These are
# NIST's published numbers, not outputs of gicho.
LONGLEY_CERTIFIED_PARAMS = np.array([
    -3482258.63459582, 15.0618722713733, -0.358191792925910e-01, -2.02022980381683,
    -1.03322686717359, -0.511041056535807e-01, 1829.15146461355,
])  # fmt: skip
LONGLEY_CERTIFIED_SD = np.array([
    890420.383607373, 84.9149257747669, 0.334910077722432e-01, 0.488399681651699,
    0.214274163161675, 0.226073200069370, 455.478499142212,
])  # fmt: skip
LONGLEY_CERTIFIED_R2 = 0.995479004577296
LONGLEY_CERTIFIED_RESIDUAL_SD = 304.854073561965


def _significant_digits(actual, certified):
    """NIST's log relative error: the number of correct significant digits."""
    err = np.abs(np.asarray(actual) - certified) / np.abs(certified)
    return np.where(err == 0, 15.0, -np.log10(np.maximum(err, 1e-300)))


@pytest.fixture
def regression():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 6)) * [1.0, 3.0, 0.5, 2.0, 1.0, 10.0] + [0.0, 1.0, -4.0, 20.0, 0.0, 100.0]
    beta = np.array([1.5, -0.5, 2.0, 0.25, 0.0, 0.1])
    y = X @ beta + 3.0 + rng.standard_normal(400)
    return X, y


# ---------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("solver", ["auto", "normal", "qr", "svd"])
def test_longley_matches_nist_certified_values(solver):
    data = sm.datasets.longley.load_pandas()
    model = LinearRegression(solver=solver).fit(data.exog, data.endog)
    digits = _significant_digits(model.params_, LONGLEY_CERTIFIED_PARAMS)
    assert digits.min() >= 7, digits  # the bar for "auto"; every solver clears it
    assert _significant_digits(model.bse_, LONGLEY_CERTIFIED_SD).min() >= 7
    assert _significant_digits(model.rsquared_, LONGLEY_CERTIFIED_R2) >= 7
    assert _significant_digits(np.sqrt(model.scale_), LONGLEY_CERTIFIED_RESIDUAL_SD) >= 7
    assert list(model.feature_names_in_) == list(data.exog.columns)


def test_ill_conditioned_polynomial_switches_to_qr_and_stays_accurate():
    # degree-15 polynomial on [0, 1]: cond([1, x, ..., x^15]) ~ 1e11
    x = np.linspace(0.0, 1.0, 200)
    V = np.vander(x, 16, increasing=True)[:, 1:]
    cond = np.linalg.cond(np.column_stack([np.ones_like(x), V]))
    assert cond > 1e10
    beta = np.random.default_rng(3).standard_normal(15)
    y = V @ beta + 0.5  # consistent up to the rounding of y: the answer is beta to ~1e-7
    # exact reference (rational arithmetic): LAPACK's lstsq on this design is off by 2e-6 and
    # by a different amount on each OpenBLAS kernel. A backward-stable solve of a consistent
    # system is accurate to ~eps * cond (3e-5 relative, the residual term vanishes); the
    # tolerance allows 10 of those (the worst-case gamma_{mn} * cond, 6e-2, says nothing here)
    exact = exact_ols(V, y).params
    tol = 10 * np.finfo(np.float64).eps * cond
    with pytest.warns(IllConditionedWarning, match=r"condition number \d\.\d+e\+\d\d .*used QR"):
        model = LinearRegression().fit(V, y)
    assert model.solver_ == "qr" and model.cond_ > 1e9
    assert np.max(np.abs(exact[1:] - beta)) / np.max(np.abs(beta)) < tol
    assert np.max(np.abs(model.coef_ - exact[1:])) / np.max(np.abs(beta)) < tol
    np.testing.assert_allclose(model.intercept_, 0.5, atol=1e-6)
    # the normal equations on this design are wrong: auto must not trust them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        normal = LinearRegression(solver="normal").fit(V, y)
    assert np.max(np.abs(normal.coef_ - beta)) / np.max(np.abs(beta)) > 1e-2


def test_large_means_do_not_hurt_the_fit(regression):
    X, y = regression
    ref = LinearRegression().fit(X, y)
    shift = np.array([1e8, -1e7, 1e6, 5e8, 0.0, 1e9])
    shifted = LinearRegression().fit(X + shift, y)
    assert shifted.solver_ == "normal"  # centring keeps the system well conditioned
    # the shifted data carry ~ eps * 1e9 = 1e-7 absolute rounding: coefficients to ~1e-6
    np.testing.assert_allclose(shifted.coef_, ref.coef_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(shifted.intercept_, ref.intercept_ - shift @ ref.coef_, rtol=1e-6)


# ---------------------------------------------------------------------------- parity
@pytest.mark.parametrize("solver", ["auto", "normal", "qr", "svd"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_scikit_learn(regression, solver, fit_intercept, weighted):
    X, y = regression
    Y = np.column_stack([y, X[:, 0] - 2 * X[:, 1] + 0.1 * y])
    w = np.random.default_rng(5).uniform(0.1, 2.0, len(y)) if weighted else None
    for target in (y, Y):
        ours = LinearRegression(solver=solver, fit_intercept=fit_intercept).fit(X, target, sample_weight=w)
        ref = SkLinearRegression(fit_intercept=fit_intercept).fit(X, target, sample_weight=w)
        assert ours.coef_.shape == ref.coef_.shape
        np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-9, atol=1e-9)
        # a prediction's round-off scales with |X| |coef| (~18 here), not with the prediction
        # (0.014 at its smallest): relative to the largest one, or it measures the BLAS kernel
        pred = ref.predict(X)
        np.testing.assert_allclose(ours.predict(X), pred, rtol=1e-10, atol=1e-10 * np.abs(pred).max())
        np.testing.assert_allclose(ours.score(X, target), ref.score(X, target), rtol=1e-12)


def test_svd_solver_rank_and_singular_values(regression):
    X, y = regression
    ours = LinearRegression(solver="svd").fit(X, y)
    assert ours.rank_ == np.linalg.matrix_rank(X - X.mean(0)) == 6
    ref = np.linalg.svd(X - X.mean(0), compute_uv=False)  # what scikit-learn's lstsq reports
    np.testing.assert_allclose(ours.singular_values_, ref, rtol=1e-12)


def test_gradient_descent_reaches_the_closed_form(regression):
    X, y = regression
    gd = LinearRegression(solver="gd").fit(X, y)
    exact = LinearRegression(solver="qr").fit(X, y)
    assert gd.n_iter_ > 1 and gd.solver_ == "gd"
    np.testing.assert_allclose(gd.coef_, exact.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gd.intercept_, exact.intercept_, rtol=1e-6)
    assert not hasattr(exact, "n_iter_")
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=2"):
        LinearRegression(solver="gd", max_iter=2).fit(X, y)


def test_partial_fit_and_fit_chunks_equal_the_batch_fit(regression):
    X, y = regression
    batch = LinearRegression().fit(X, y)
    streamed = LinearRegression()
    for start in range(0, len(y), 37):
        streamed.partial_fit(X[start : start + 37], y[start : start + 37])
    chunked = LinearRegression().fit_chunks((X[a : a + 50], y[a : a + 50]) for a in range(0, len(y), 50))
    w = np.linspace(0.5, 2.0, len(y))
    weighted = LinearRegression().fit(X, y, sample_weight=w)
    weighted_chunks = LinearRegression().fit_chunks(
        (X[a : a + 64], y[a : a + 64], w[a : a + 64]) for a in range(0, len(y), 64)
    )
    for ours, ref in ((streamed, batch), (chunked, batch), (weighted_chunks, weighted)):
        np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-12)
        for name in ("bse_", "pvalues_", "rsquared_", "fvalue_", "llf_", "aic_"):
            np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-9)


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_torch_tensors_in_and_out(regression, dtype, rtol):
    X, y = regression
    Xt, yt = torch.tensor(X, dtype=dtype), torch.tensor(y, dtype=dtype)
    model = LinearRegression().fit(Xt, yt)
    assert isinstance(model.coef_, torch.Tensor) and model.coef_.dtype == dtype
    assert model.coef_.device == Xt.device
    ref = LinearRegression().fit(Xt.double().numpy(), yt.double().numpy())
    np.testing.assert_allclose(model.coef_.double().numpy(), ref.coef_, rtol=rtol, atol=rtol)
    pred = model.predict(Xt)
    assert isinstance(pred, torch.Tensor) and pred.dtype == dtype and pred.shape == (len(y),)
    np.testing.assert_allclose(pred.double().numpy(), ref.predict(X), rtol=rtol, atol=rtol * 10)
    np.testing.assert_allclose(model.bse_, ref.bse_, rtol=max(rtol, 1e-9))
    # the QR path (needed when ill-conditioned) runs on the tensor's device too
    qr = LinearRegression(solver="qr").fit(Xt, yt)
    np.testing.assert_allclose(qr.coef_.double().numpy(), ref.coef_, rtol=rtol, atol=rtol)


def test_dataframe_names_pipeline_and_clone(regression):
    X, y = regression
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(6)])
    model = LinearRegression().fit(df, y)
    assert list(model.feature_names_in_) == list(df.columns)
    assert model.summary().index == ["const", *df.columns]
    pipe = make_pipeline(StandardScaler(), LinearRegression(cov_type="HC3")).fit(df, y)
    ref = make_pipeline(StandardScaler(), SkLinearRegression()).fit(df, y)
    np.testing.assert_allclose(pipe.predict(df), ref.predict(df), rtol=1e-10)
    assert pipe[-1].get_params()["cov_type"] == "HC3"
    with pytest.raises(ValueError, match="feature names"):
        model.predict(df[df.columns[::-1]])


@parametrize_with_checks(
    [LinearRegression()],
    expected_failed_checks=lambda est: {
        "check_non_transformer_estimators_n_iter": "n_iter_ exists only for solver='gd'; "
        "the direct solvers do not iterate",
    },
)
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        # the checks fit constant or tiny data on purpose; our warnings say so
        warnings.simplefilter("ignore", RankDeficientWarning)
        warnings.simplefilter("ignore", IllConditionedWarning)
        check(estimator)


# ---------------------------------------------------------------------------- bad input
def test_bad_input_errors(regression):
    X, y = regression
    model = LinearRegression()
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"`X` contains 1 NaN and 0 infinite"):
        model.fit(Xn, y)
    with pytest.raises(ValueError, match=r"`y` contains 0 NaN and 1 infinite"):
        model.fit(X, np.where(np.arange(len(y)) == 3, np.inf, y))
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: `X` has 400, `y` has 399"):
        model.fit(X, y[:-1])
    with pytest.raises(ValueError, match=r"`X` is empty"):
        model.fit(X[:0], y[:0])
    with pytest.raises(ValueError, match=r"`X` must be 2-D; got 1-D .*Reshape your data"):
        model.fit(X[:, 0], y)
    with pytest.raises(ValueError, match=r"`sample_weight` contains 1 negative"):
        model.fit(X, y, sample_weight=np.where(np.arange(len(y)) == 0, -1.0, 1.0))
    with pytest.raises(ValueError, match=r"`solver` must be one of 'auto', 'normal'"):
        LinearRegression(solver="lsqr").fit(X, y)
    with pytest.raises(ValueError, match=r"`cov_type` must be one of"):
        LinearRegression(cov_type="HC4").fit(X, y)
    with pytest.raises(ValueError, match="requires y to be passed"):
        model.fit(X, None)
    with pytest.raises(ValueError, match="Complex data not supported"):
        model.fit(X.astype(complex), y)
    with pytest.raises(TypeError, match="sparse input is not supported"):
        import scipy.sparse

        model.fit(scipy.sparse.csr_matrix(X), y)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        LinearRegression().predict(X)
    fitted = LinearRegression().fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features, but LinearRegression is expecting 6"):
        fitted.predict(X[:, :5])
    with pytest.raises(ValueError, match=r"`solver`='qr' needs all rows in memory"):
        LinearRegression(solver="qr").partial_fit(X, y)
    with pytest.raises(ValueError, match=r"`cov_type`='HC3' needs a second pass"):
        LinearRegression(cov_type="HC3").fit_chunks([(X, y)])
    with pytest.raises(ValueError, match="`chunks` is empty"):
        LinearRegression().fit_chunks([])
    with pytest.raises(TypeError, match="chunk 0 must be a tuple"):
        LinearRegression().fit_chunks([X])
    with pytest.raises(ValueError, match="chunk 1 has 5 feature"):
        LinearRegression().fit_chunks([(X, y), (X[:, :5], y)])
    with pytest.raises(TypeError, match="both be torch tensors"):
        LinearRegression().fit(torch.tensor(X), y)


def test_constant_column_with_intercept_warns_and_is_aliased(regression):
    X, y = regression
    Xc = np.column_stack([X, np.full(len(y), 7.0)])
    with pytest.warns(RankDeficientWarning, match=r"'x6' of X are constant; with fit_intercept=True"):
        model = LinearRegression().fit(Xc, y)
    assert model.coef_[6] == 0.0 and np.isnan(model.bse_[7]) and model.aliased_[6]
    np.testing.assert_allclose(model.coef_[:6], LinearRegression().fit(X, y).coef_, rtol=1e-10)


@pytest.mark.filterwarnings("ignore::gicho.linear.IllConditionedWarning")
def test_only_constant_columns_leave_the_mean_model(regression):
    _, y = regression
    X = np.full((len(y), 2), 4.0)
    with pytest.warns(RankDeficientWarning, match=r"'x0', 'x1' of X are constant"):
        model = LinearRegression().fit(X, y)
    ref = sm.OLS(y, np.ones(len(y))).fit()  # the intercept-only model
    np.testing.assert_allclose(model.intercept_, ref.params[0], rtol=1e-12)
    np.testing.assert_allclose(model.bse_[0], ref.bse[0], rtol=1e-10)
    assert np.all(model.coef_ == 0.0) and np.all(np.isnan(model.bse_[1:]))


@pytest.mark.filterwarnings("ignore::gicho.linear.IllConditionedWarning")
def test_fewer_rows_than_columns_warns(regression):
    X, y = regression
    with pytest.warns(RankDeficientWarning) as record:
        model = LinearRegression().fit(X[:5], y[:5])
    messages = [str(r.message) for r in record]
    assert any("X has 5 row(s) for 7 parameter(s)" in m for m in messages), messages
    assert any("'x4', 'x5' are linear combinations" in m for m in messages), messages
    assert model.aliased_.sum() == 2  # 5 rows: intercept + 4 columns, the last 2 aliased
    np.testing.assert_allclose(model.predict(X[:5]), y[:5], rtol=1e-8)  # interpolates the rows
    assert np.all(np.isnan(model.bse_)) and model.df_resid_ <= 0


def test_ill_conditioned_normal_solver_warns(regression):
    X, y = regression
    # cond ~ 1e4, not yet singular (the perturbation must not lie in the span of X: with
    # X[:, 1] there, X[:, 0] + 1e-4 * X[:, 1] is exactly a combination of two columns)
    noise = np.random.default_rng(1).standard_normal(X.shape[0])
    Xbad = np.column_stack([X, X[:, 0] + 1e-4 * noise])
    with pytest.warns(IllConditionedWarning, match=r"condition number .* solver='normal' may lose"):
        LinearRegression(solver="normal").fit(Xbad, y)


# ---------------------------------------------------------------------------- findings 2026-11-30 (input kinds)
def test_pandas_nullable_dtypes_fit_like_float_columns(regression):
    """Findings row 41: Int64 / Float64 columns fit (as scikit-learn accepts them); pd.NA is NaN."""
    import pandas as pd

    X, y = regression
    Xi = np.column_stack([X[:, :2], np.arange(400.0)])
    frame = pd.DataFrame({"a": Xi[:, 0], "b": pd.array(Xi[:, 1], dtype="Float64"),
                          "c": pd.array(np.arange(400), dtype="Int64")})  # fmt: skip
    model = LinearRegression().fit(frame, y)
    # the frame and the float array fit alike: both within the round-off bound of the exact
    # fit (the coefficient of c is -1.6e-4, so rtol 1e-12 between the two measured the kernel)
    exact = exact_ols(Xi, y)
    bound = ols_bounds(Xi, y, exact)
    for fitted in (model, LinearRegression().fit(Xi, y)):
        assert np.all(np.abs(fitted.params_ - exact.params) <= bound.params)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    frame.loc[3, "c"] = pd.NA
    with pytest.raises(ValueError, match=r"argument `X` contains 1 NaN"):
        LinearRegression().fit(frame, y)
    with pytest.raises(TypeError, match=r"argument `X` must be numeric .*DataFrame of shape \(400, 4\)"):
        LinearRegression().fit(frame.assign(city="Seoul"), y)


def test_ragged_rows_name_the_argument():
    with pytest.raises(TypeError, match=r"argument `X` must be numeric array-like.*inhomogeneous"):
        LinearRegression().fit([[1.0, 2.0], [3.0]], [1.0, 2.0])


def test_predict_on_a_tensor_after_a_numpy_fit(regression):
    """Findings row 42: a NumPy fit predicts a tensor (tensor out, on its device and dtype)."""
    X, y = regression
    model = LinearRegression().fit(X, y)
    out = model.predict(torch.tensor(X))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), model.predict(X), rtol=1e-12)
    with pytest.raises(ValueError, match="X has 2 features, but LinearRegression is expecting 6"):
        model.predict(torch.tensor(X[:, :2]))


def test_half_precision_tensors_are_fitted_in_float32():
    """Findings row 44: float16 Gram products overflowed at 65504 ("values so large...", false)."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(100_000, 3, generator=g).half()
    y = (X.float() @ torch.tensor([1.0, -2.0, 0.5]) + torch.randn(100_000, generator=g)).half()
    model = LinearRegression().fit(X, y)
    ref = LinearRegression().fit(X.double().numpy(), y.double().numpy())
    assert model.coef_.dtype == torch.float32
    np.testing.assert_allclose(model.coef_.numpy(), ref.coef_, rtol=1e-4)
    bf = LinearRegression().fit(X[:1000].bfloat16(), y[:1000].bfloat16())
    ref_bf = LinearRegression().fit(X[:1000].bfloat16().double().numpy(), y[:1000].bfloat16().double().numpy())
    np.testing.assert_allclose(bf.coef_.numpy(), ref_bf.coef_, rtol=1e-4)


@pytest.mark.parametrize("noise", [1e-8, 1e-10])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_streaming_near_perfect_fit_matches_exact_least_squares(noise, fit_intercept):
    """Findings row 36: fit_chunks gave bse = 0 at noise 1e-8 and 880x too large at 1e-10
    (SSR = yy - b^T beta cancels); the streamed R factor gives the batch accuracy.

    The reference is exact (statsmodels' own bse is off by ~5e-7 here, and by a different
    amount on each OpenBLAS kernel); the tolerance is the first-order bound of a backward-stable
    (QR) fit whose sums have n * p terms: 2 gamma_np (||y|| + ||X|| ||b||) / ||r|| on the SSR,
    about 3e-3 at noise 1e-10 (the residual is 1e-10 of the data), see ols_bounds."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    y = X @ [1.0, 2.0, 3.0] + 5.0 + noise * rng.normal(size=50)
    exact = exact_ols(X, y, fit_intercept=fit_intercept)
    bound = ols_bounds(X, y, exact, fit_intercept=fit_intercept, solver="qr", terms=50 * 4)
    chunks = LinearRegression(fit_intercept=fit_intercept).fit_chunks((X[i:i + 10], y[i:i + 10]) for i in range(0, 50, 10))
    partial = LinearRegression(fit_intercept=fit_intercept)
    for i in range(0, 50, 7):
        partial.partial_fit(X[i:i + 7], y[i:i + 7])
    batch = LinearRegression(fit_intercept=fit_intercept).fit(X, y)
    for model in (chunks, partial, batch):
        assert np.all(np.abs(model.bse_ / exact.bse - 1) <= bound.bse)
        assert model.ssr_ == pytest.approx(exact.ssr, rel=bound.ssr, abs=0)
        assert np.all(np.abs(model.params_ - exact.params) <= bound.params)


def test_moments_without_r_factor_warn_when_ssr_is_at_round_off():
    from gicho.linear import PrecisionWarning
    from gicho.moments import Moments

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    y = X @ [1.0, 2.0, 3.0] + 5.0 + 1e-8 * rng.normal(size=50)
    with pytest.warns(PrecisionWarning, match=r"comes from the moments alone .* unreliable"):
        LinearRegression().fit_moments(Moments.from_arrays(X, y))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        tracked = Moments(track_r=True).update(X[:20], y[:20]).update(X[20:], y[20:])
        ref = sm.OLS(y, sm.add_constant(X)).fit()
        np.testing.assert_allclose(LinearRegression().fit_moments(tracked).bse_, ref.bse, rtol=1e-6)
        # far from the cancellation, no warning either way
        noisy = X @ [1.0, 2.0, 3.0] + rng.normal(size=50)
        LinearRegression().fit_moments(Moments.from_arrays(X, noisy))


@pytest.mark.parametrize(("sx", "sy"), [(1e-160, 1.0), (1e-170, 1.0), (1.0, 1e-200), (1e200, 1.0), (1e-300, 1e250)])
def test_extreme_scales_are_fitted_exactly(regression, sx, sy):
    """Findings rows 37-38: X * 1e-160 wrong from the 5th digit, X * 1e-170 all zeros with a
    false "constant columns" warning, y * 1e-200 zero standard errors. Least squares is scale
    equivariant: coef scales by sy / sx, bse likewise, R^2 and t are unchanged."""
    X, y = regression
    ref = LinearRegression().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = LinearRegression().fit(X * sx, y * sy)
    np.testing.assert_allclose(model.coef_, ref.coef_ * (sy / sx), rtol=1e-12)
    np.testing.assert_allclose(model.intercept_, ref.intercept_ * sy, rtol=1e-12)
    np.testing.assert_allclose(model.tvalues_, ref.tvalues_, rtol=1e-10)
    assert model.rsquared_ == pytest.approx(ref.rsquared_, rel=1e-13)
    assert model.llf_ == pytest.approx(ref.llf_ - len(y) * np.log(sy), rel=1e-12, abs=1e-9)
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(model.bse_[1:], ref.bse_[1:] * (sy / sx), rtol=1e-12)
    if sy == 1.0 and sx < 1:  # the reference that got it right (findings): scikit-learn
        np.testing.assert_allclose(model.coef_, SkLinearRegression().fit(X * sx, y).coef_, rtol=1e-10)


@pytest.mark.parametrize("shape", [(3, 5), (10, 20), (95, 100)])
def test_no_intercept_with_fewer_rows_than_columns(shape):
    """Peers' suite: ValueError "expected square matrix" from the QR path. As the README
    promises (and R's lm does): the later columns are aliased, coefficient 0, with a warning."""
    n, p = shape
    X = np.random.default_rng(0).random(shape)
    y = np.random.default_rng(1).random(n)
    for data in ((X, y), (torch.tensor(X), torch.tensor(y))):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = LinearRegression(fit_intercept=False).fit(*data)
        messages = [str(w.message) for w in caught if w.category is RankDeficientWarning]
        assert any(f"rank {n} of {p} columns" in m for m in messages), messages
        coef = np.asarray(model.coef_)
        np.testing.assert_allclose(coef[:n], np.linalg.solve(X[:, :n], y), rtol=1e-8)
        assert np.all(coef[n:] == 0) and model.aliased_[n:].all() and np.isnan(model.bse_).all()


# ---------------------------------------------------------------------------- the one-pass fit
@pytest.mark.parametrize("offset", [0.0, 30.0, 1e6])
@pytest.mark.parametrize(("n", "workers"), [(12, 1), (4000, 1), (4000, 3)])
def test_one_pass_fit_matches_exact_least_squares(offset, n, workers, monkeypatch):
    """The fit reads X once (gicho.moments._gram: raw blocks near zero mean, shifted copies for means
    30 and 1e6 standard deviations out; one segment per worker thread) and takes every
    statistic from the moments: parity with the exact least-squares answer on the same data.

    The reference is exact (rational arithmetic, tests/exact_reference.py), not lstsq or
    statsmodels: on the 1e6 offset their own float64 round-off (y ~ 4e6 is not centred) is
    1e-10..2e-7 standard errors and differs between OpenBLAS kernels (Haswell / SkylakeX),
    far more than gicho's. The tolerance is the worst-case first-order round-off bound of a
    normal-equations fit whose sums have n terms (ols_bounds): gamma_n * (the raw data's
    norms, which carry the offset) * (the condition of the centred design), per coefficient.
    """
    import gicho.linear._base as base
    import gicho.moments._gram as gram

    monkeypatch.setattr(gram, "BLOCK_BYTES", 1)  # several blocks per segment
    monkeypatch.setattr(gram, "_blas_threads", lambda: workers)
    monkeypatch.setattr(base, "extreme_scales", lambda *a: pytest.fail("ordinary data were scanned twice"))
    rng = np.random.default_rng(11)
    X = rng.standard_normal((n, 4)) * [1.0, 2.0, 0.5, 3.0] + offset * np.array([1.0, -1.0, 0.5, 2.0])
    y = X @ [1.0, -2.0, 0.5, 0.25] + 3.0 + rng.standard_normal(n)
    model = LinearRegression().fit(X, y)
    exact = exact_ols(X, y)
    bound = ols_bounds(X, y, exact)
    # the bound is a small fraction of a standard error: the check is not vacuous
    assert np.all(bound.params <= 1e-3 * exact.bse)
    assert np.all(np.abs(model.params_ - exact.params) <= bound.params), (model.params_ - exact.params) / exact.bse
    assert np.all(np.abs(model.bse_ / exact.bse - 1) <= bound.bse)
    assert model.ssr_ == pytest.approx(exact.ssr, rel=bound.ssr, abs=0)
    assert model.rsquared_ == pytest.approx(exact.rsquared, rel=0, abs=bound.rsquared)
    assert model.fvalue_ == pytest.approx(exact.fvalue, rel=bound.fvalue, abs=0)
    assert model.llf_ == pytest.approx(exact.llf, rel=0, abs=bound.llf)


def test_one_pass_fit_reports_nonfinite_input_by_name():
    rng = np.random.default_rng(12)
    X, y = rng.standard_normal((3000, 3)) + 30.0, rng.standard_normal(3000)
    bad_X, bad_y = X.copy(), y.copy()
    bad_X[1234, 1], bad_y[2345] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"`X` contains 1 NaN"):
        LinearRegression().fit(bad_X, y)
    with pytest.raises(ValueError, match=r"`y` contains 0 NaN and 1 infinite"):
        LinearRegression().fit(X, bad_y)



@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_fit_chunks_fast_routes_equal_the_householder_route(monkeypatch, weighted, fit_intercept):
    """Issue 24 item 1: a fit whose chunks take all three routes to their R factor (the Gram
    matrix, Cholesky QR, Householder QR) equals the fit that a Householder QR of every chunk
    (the plain route) gives, and the batch fit: ordinary chunks, a near-perfect chunk (R^2 =
    1 - 2e-8), an exact-to-1e-9 chunk and a last chunk with fewer rows than columns."""
    from gicho.moments import _tsqr

    rng = np.random.default_rng(11)
    n, p = 3000, 5
    X = rng.normal(size=(n, p)) + 3.0
    y = X @ rng.normal(size=p) - 2.0 + rng.normal(size=n)
    y[1000:1400] = X[1000:1400] @ np.arange(1.0, p + 1) + 1e-3 * rng.normal(size=400)
    y[1400:2000] = X[1400:2000] @ np.arange(1.0, p + 1) + 1e-9 * rng.normal(size=600)
    w = rng.uniform(0.2, 3.0, n) if weighted else None
    bounds = [0, 1000, 1400, 2000, 2996, n]

    def chunks():
        for a, b in itertools.pairwise(bounds):
            yield (X[a:b], y[a:b]) if w is None else (X[a:b], y[a:b], w[a:b])

    calls = []
    for name in ("chunk_r", "cholqr_r"):
        real = getattr(_tsqr, name)
        monkeypatch.setattr(_tsqr, name, lambda *a, name=name, real=real: calls.append(name) or real(*a))
    fast = LinearRegression(fit_intercept=fit_intercept).fit_chunks(chunks())
    assert calls == ["cholqr_r", "chunk_r", "chunk_r"]  # chunks 0 and 3 came from their Gram matrix
    monkeypatch.setattr(_tsqr, "gram_cholesky", lambda *a: (None, np.inf))
    plain = LinearRegression(fit_intercept=fit_intercept).fit_chunks(chunks())
    batch = LinearRegression(fit_intercept=fit_intercept).fit(X, y, sample_weight=w)
    # the plain route reads the same moments: only round-off in R separates them; the batch
    # fit's moments are summed in another order (the existing streaming test's tolerances)
    for ref, rtol, atol in ((plain, 1e-13, 0.0), (batch, 1e-12, 1e-13)):
        np.testing.assert_allclose(fast.coef_, ref.coef_, rtol=rtol, atol=atol)
        np.testing.assert_allclose(fast.intercept_, ref.intercept_, rtol=rtol, atol=atol)
        for name in ("bse_", "ssr_", "rsquared_", "fvalue_", "llf_"):
            np.testing.assert_allclose(getattr(fast, name), getattr(ref, name), rtol=100 * rtol)
