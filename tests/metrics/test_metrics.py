"""Tests for gicho.metrics: parity with scikit-learn / statsmodels, identities, streaming."""

from __future__ import annotations

import datetime

import numpy as np
import pytest
import sklearn.metrics as skm
import statsmodels.api as sm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gicho import metrics as gm
from gicho.metrics import AccuracyMetric, accuracy
from gicho.metrics import _core as core

RTOL = ATOL = 1e-12  # parity tolerance with scikit-learn in float64
STREAM_TOL = {"rtol": 1e-10, "atol": 1e-10}  # batch vs streaming: round-off of a different sum order
PROPERTY = settings(max_examples=60, deadline=None)

FUNCS = {
    "mae": (gm.mae, skm.mean_absolute_error),
    "mse": (gm.mse, skm.mean_squared_error),
    "rmse": (gm.rmse, skm.root_mean_squared_error),
    "r2": (gm.r2, skm.r2_score),
}
SHAPES = {"1d": None, "2d-1": 1, "2d-3": 3}


def make_data(seed: int, n: int, n_outputs: int | None, weighted: bool):
    rng = np.random.default_rng(seed)
    shape = (n,) if n_outputs is None else (n, n_outputs)
    y_true = rng.normal(size=shape) * rng.uniform(0.5, 3.0)
    y_pred = y_true + rng.normal(size=shape)
    w = rng.uniform(0.0, 2.0, size=n) if weighted else None
    return y_true, y_pred, w


def sklearn_reference(name, y_true, y_pred, w, multioutput):
    """scikit-learn's value; it offers "variance_weighted" for R² only and custom output
    weights for several outputs only, so those cases are mapped to what they mean."""
    sk = FUNCS[name][1]
    n_outputs = 1 if y_true.ndim == 1 else y_true.shape[1]
    if isinstance(multioutput, str) and multioutput == "variance_weighted" and name != "r2":
        y2 = y_true.reshape(len(y_true), -1)
        multioutput = np.average((y2 - np.average(y2, axis=0, weights=w)) ** 2, axis=0, weights=w)
    if not isinstance(multioutput, str) and n_outputs == 1:
        return sk(y_true, y_pred, sample_weight=w, multioutput="raw_values")[0]
    return sk(y_true, y_pred, sample_weight=w, multioutput=multioutput)


# ----------------------------------------------------------------------------- parity


@pytest.mark.parametrize("multioutput", ["raw_values", "uniform_average", "variance_weighted", "array"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("name", list(FUNCS))
def test_parity_with_sklearn(name, shape, weighted, multioutput):
    y_true, y_pred, w = make_data(7, 83, SHAPES[shape], weighted)
    if multioutput == "array":
        multioutput = np.random.default_rng(3).uniform(0.1, 1.0, size=SHAPES[shape] or 1)
    got = FUNCS[name][0](y_true, y_pred, sample_weight=w, multioutput=multioutput)
    expected = sklearn_reference(name, y_true, y_pred, w, multioutput)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    assert isinstance(got, np.ndarray) == (isinstance(multioutput, str) and multioutput == "raw_values")


@pytest.mark.parametrize("name", list(FUNCS))
@pytest.mark.parametrize("n_outputs", [None, 3])
def test_parity_across_many_blocks(name, n_outputs, monkeypatch):
    # Tiny blocks: every boundary case of the blocked loop (partial last block, k > block).
    monkeypatch.setattr(core, "BLOCK_ELEMENTS", 5)
    y_true, y_pred, w = make_data(11, 101, n_outputs, weighted=True)
    for weights in (None, w):
        got = FUNCS[name][0](y_true, y_pred, sample_weight=weights, multioutput="raw_values")
        expected = FUNCS[name][1](y_true, y_pred, sample_weight=weights, multioutput="raw_values")
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_parity_on_non_contiguous_and_integer_inputs():
    y_true, y_pred, _ = make_data(5, 2 * core.BLOCK_ELEMENTS + 13, 4, weighted=False)
    yt, yp = np.asfortranarray(y_true)[:, ::2], y_pred[:, 1::2]  # strided views
    for name, (ours, theirs) in FUNCS.items():
        np.testing.assert_allclose(ours(yt, yp), theirs(yt, yp), rtol=RTOL, atol=ATOL, err_msg=name)
    ints_true, ints_pred = [3, -1, 4, 1, 5], [2, 7, 1, 8, 2]
    for ours, theirs in FUNCS.values():
        np.testing.assert_allclose(ours(ints_true, ints_pred), theirs(ints_true, ints_pred), rtol=RTOL)


@pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")  # sklearn's 0/0
@pytest.mark.parametrize("force_finite", [True, False])
def test_r2_constant_columns_follow_sklearn(force_finite):
    # Integer-valued columns: sklearn's mean is exact there, so both see TSS = 0.
    y_true = np.array([[3.0, 1.0, 2.0], [3.0, 2.0, 2.0], [3.0, 4.0, 2.0], [3.0, 0.0, 2.0]])
    y_pred = y_true.copy()
    y_pred[:, 0] += [0.0, 1.0, 0.0, 0.0]  # column 0: constant truth, imperfect prediction
    y_pred[:, 1] += [0.5, 0.0, -1.0, 0.0]  # column 2: constant truth, perfect prediction
    for mode in ("raw_values", "uniform_average", "variance_weighted"):
        got = gm.r2(y_true, y_pred, multioutput=mode, force_finite=force_finite)
        expected = skm.r2_score(y_true, y_pred, multioutput=mode, force_finite=force_finite)
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, equal_nan=True)
    raw = gm.r2(y_true, y_pred, multioutput="raw_values", force_finite=force_finite)
    if force_finite:
        assert raw[0] == 0.0 and raw[2] == 1.0
    else:
        assert raw[0] == -np.inf and np.isnan(raw[2])


def test_variance_weighted_falls_back_to_uniform_when_all_outputs_constant():
    y_true = np.ones((5, 2))
    y_pred = y_true + np.array([[0.0, 1.0]] * 5)
    expected = skm.mean_absolute_error(y_true, y_pred)
    assert gm.mae(y_true, y_pred, multioutput="variance_weighted") == pytest.approx(expected, abs=ATOL)
    assert gm.r2(y_true, y_pred, multioutput="variance_weighted") == skm.r2_score(
        y_true, y_pred, multioutput="variance_weighted"
    )


@given(
    c=st.floats(-1e100, 1e100, allow_subnormal=False),
    n=st.integers(2, 40),
    weighted=st.booleans(),
)
@PROPERTY
def test_constant_y_true_gives_exact_conventions(c, n, weighted):
    # The computed mean of a constant column is often a few ulps off; TSS must still be 0.
    y_true = np.full(n, c)
    w = np.linspace(0.5, 1.5, n) if weighted else None
    comps = gm.r2_components(y_true, y_true, sample_weight=w)
    assert comps.tss == 0.0 and comps.rss == 0.0 and comps.r2 == 1.0
    y_pred = y_true.copy()
    y_pred[-1] = c + 1.0 if abs(c) < 1e15 else 2 * c + 1.0
    assert gm.r2(y_true, y_pred, sample_weight=w) == 0.0
    assert gm.r2(y_true, y_pred, sample_weight=w, force_finite=False) == -np.inf
    stream = gm.RegressionMetrics().update(y_true[:1], y_pred[:1]).update(y_true[1:], y_pred[1:])
    assert stream.compute()["r2"] == 0.0


def test_constant_over_positive_weights_counts_as_constant():
    # Only rows of positive weight matter: a different value behind a zero weight must not
    # turn an exactly constant target into a tiny, round-off TSS.
    c, w = 0.1 * 3, np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    y_true = np.r_[np.full(7, c), 5.0]
    off_at_zero_weight, off_at_first = np.eye(8)[7], np.eye(8)[0]
    assert gm.r2_components(y_true, y_true + off_at_zero_weight, sample_weight=w).tss == 0.0
    assert gm.r2(y_true, y_true + off_at_zero_weight, sample_weight=w) == 1.0
    assert gm.r2(y_true, y_true + off_at_first, sample_weight=w) == 0.0


@pytest.mark.parametrize("weighted", [False, True])
def test_adjusted_r2_matches_statsmodels(weighted):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=40)
    w = rng.uniform(0.2, 2.0, size=40) if weighted else None
    model = sm.WLS(y, sm.add_constant(X), weights=1.0 if w is None else w).fit()
    assert gm.r2(y, model.fittedvalues, sample_weight=w) == pytest.approx(model.rsquared, rel=RTOL)
    got = gm.adjusted_r2(y, model.fittedvalues, n_features=3, sample_weight=w)
    assert got == pytest.approx(model.rsquared_adj, rel=RTOL)


def test_adjusted_r2_multioutput_is_adjusted_per_output():
    y_true, y_pred, _ = make_data(4, 30, 2, weighted=False)
    raw = gm.adjusted_r2(y_true, y_pred, n_features=4, multioutput="raw_values")
    expected = 1 - (1 - skm.r2_score(y_true, y_pred, multioutput="raw_values")) * 29 / 25
    np.testing.assert_allclose(raw, expected, rtol=RTOL)
    assert gm.adjusted_r2(y_true, y_pred, n_features=4) == pytest.approx(raw.mean(), rel=RTOL)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("labels", ["int", "str"])
def test_accuracy_matches_sklearn(labels, weighted):
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, size=97), rng.integers(0, 4, size=97)
    if labels == "str":
        y_true, y_pred = np.array(list("abcd"))[y_true], np.array(list("abcd"))[y_pred]
    w = rng.uniform(0, 3, size=97) if weighted else None
    expected = skm.accuracy_score(y_true, y_pred, sample_weight=w)
    assert gm.accuracy(y_true, y_pred, sample_weight=w) == pytest.approx(expected, rel=RTOL)
    stream = gm.AccuracyMetric()
    for chunk in np.array_split(np.arange(97), [0, 10, 10, 60]):
        stream.update(y_true[chunk], y_pred[chunk], None if w is None else w[chunk])
    assert stream.compute() == pytest.approx(expected, rel=RTOL)


# ----------------------------------------------------------------------------- R² components


@pytest.mark.parametrize("n_outputs", [None, 2])
def test_r2_components_match_direct_formulas(n_outputs):
    y_true, y_pred, w = make_data(9, 50, n_outputs, weighted=True)
    comps = gm.r2_components(y_true, y_pred, sample_weight=w)
    wc = w if n_outputs is None else w[:, None]
    mean = np.average(y_true, axis=0, weights=w)
    np.testing.assert_allclose(comps.tss, np.sum(wc * (y_true - mean) ** 2, axis=0), rtol=RTOL)
    np.testing.assert_allclose(comps.ess, np.sum(wc * (y_pred - mean) ** 2, axis=0), rtol=RTOL)
    np.testing.assert_allclose(comps.rss, np.sum(wc * (y_true - y_pred) ** 2, axis=0), rtol=RTOL)
    expected_r2 = skm.r2_score(y_true, y_pred, sample_weight=w, multioutput="raw_values")
    np.testing.assert_allclose(comps.r2, expected_r2 if n_outputs else expected_r2[0], rtol=RTOL)
    assert isinstance(comps.tss, float) == (n_outputs is None)


@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(6, 60),
    p=st.integers(1, 4),
    weighted=st.booleans(),
)
@PROPERTY
def test_tss_equals_ess_plus_rss_for_least_squares_with_intercept(seed, n, p, weighted):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = X @ rng.normal(size=p) + rng.normal(scale=rng.uniform(0.1, 3.0), size=n)
    w = rng.uniform(0.1, 3.0, size=n) if weighted else np.ones(n)
    Z = np.column_stack([np.ones(n), X]) * np.sqrt(w)[:, None]  # weighted least squares
    beta = np.linalg.lstsq(Z, y * np.sqrt(w), rcond=None)[0]
    y_hat = np.column_stack([np.ones(n), X]) @ beta
    comps = gm.r2_components(y, y_hat, sample_weight=w if weighted else None)
    assert comps.tss == pytest.approx(comps.ess + comps.rss, rel=1e-9)
    assert comps.r2 == pytest.approx(comps.ess / comps.tss, rel=1e-9, abs=1e-12)


# ----------------------------------------------------------------------------- streaming


@st.composite
def chunked_data(draw):
    n = draw(st.integers(2, 60))
    n_outputs = draw(st.sampled_from([None, 1, 3]))
    weighted = draw(st.booleans())
    y_true, y_pred, w = make_data(draw(st.integers(0, 2**32 - 1)), n, n_outputs, weighted)
    if weighted:
        zero = draw(st.lists(st.integers(0, n - 1), max_size=n // 2))
        w[zero] = 0.0  # zero weights, possibly whole zero-weight chunks
        w[draw(st.integers(0, n - 1))] = 1.0  # keep the total positive
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=8)))  # repeats give empty chunks
    return y_true, y_pred, w, np.split(np.arange(n), cuts)


def stream(y_true, y_pred, w, chunks, n_outputs=None):
    metrics = gm.RegressionMetrics(n_outputs)
    for idx in chunks:
        metrics.update(y_true[idx], y_pred[idx], None if w is None else w[idx])
    return metrics


@given(data=chunked_data(), mode=st.sampled_from(["raw_values", "uniform_average", "variance_weighted"]))
@PROPERTY
def test_streaming_equals_batch_for_any_chunking(data, mode):
    y_true, y_pred, w, chunks = data
    got = stream(y_true, y_pred, w, chunks).compute(multioutput=mode)
    for name, (batch, _) in FUNCS.items():
        expected = batch(y_true, y_pred, sample_weight=w, multioutput=mode)
        np.testing.assert_allclose(got[name], expected, **STREAM_TOL, err_msg=name)
    comps = stream(y_true, y_pred, w, chunks).components()
    expected = gm.r2_components(y_true, y_pred, sample_weight=w)
    for field in ("tss", "ess", "rss", "r2"):
        np.testing.assert_allclose(
            getattr(comps, field), np.atleast_1d(getattr(expected, field)), **STREAM_TOL
        )


@given(data=chunked_data(), order=st.permutations(range(3)))
@PROPERTY
def test_merge_is_associative_and_commutative(data, order):
    y_true, y_pred, w, chunks = data
    parts = np.array_split(np.concatenate(chunks), 3)
    a, b, c = (stream(y_true, y_pred, w, [idx]) for idx in parts)
    reference = a.merge(b).merge(c).compute(multioutput="raw_values")
    x, y, z = ([a, b, c][i] for i in order)
    for combined in (x.merge(y.merge(z)), z.merge(x).merge(y)):
        got = combined.compute(multioutput="raw_values")
        for name in reference:
            np.testing.assert_allclose(got[name], reference[name], **STREAM_TOL, err_msg=name)
        assert combined.n_samples == len(y_true)


@given(data=chunked_data())
@PROPERTY
def test_rmse_is_sqrt_of_mse(data):
    y_true, y_pred, w, _ = data
    raw_mse = gm.mse(y_true, y_pred, sample_weight=w, multioutput="raw_values")
    raw_rmse = gm.rmse(y_true, y_pred, sample_weight=w, multioutput="raw_values")
    np.testing.assert_allclose(raw_rmse, np.sqrt(raw_mse), rtol=1e-15)
    if y_true.ndim == 1:
        assert gm.rmse(y_true, y_pred, sample_weight=w) == pytest.approx(
            np.sqrt(gm.mse(y_true, y_pred, sample_weight=w)), rel=1e-15
        )


def test_merge_returns_new_object_and_handles_empty():
    y_true, y_pred, _ = make_data(1, 20, 2, weighted=False)
    a = gm.RegressionMetrics().update(y_true[:8], y_pred[:8])
    b = gm.RegressionMetrics().update(y_true[8:], y_pred[8:])
    before = a.compute(multioutput="raw_values")
    merged = a.merge(b)
    assert merged is not a and merged is not b
    np.testing.assert_array_equal(a.compute(multioutput="raw_values")["mse"], before["mse"])
    assert (a.n_samples, b.n_samples, merged.n_samples) == (8, 12, 20)
    empty = gm.RegressionMetrics()
    for combined in (empty.merge(merged), merged.merge(empty)):
        assert combined.n_outputs == 2
        np.testing.assert_array_equal(combined.compute()["r2"], merged.compute()["r2"])
    assert empty.merge(gm.RegressionMetrics()).n_samples == 0
    acc = gm.AccuracyMetric().update([1, 2], [1, 1])
    assert acc.merge(gm.AccuracyMetric().update([3], [3])).compute() == pytest.approx(2 / 3)
    assert acc.compute() == 0.5 and type(acc.compute()) is float
    assert type(gm.accuracy([1, 2], [1, 1])) is float


def test_torch_tensors_are_accepted():
    y_true, y_pred, w = make_data(2, 30, 2, weighted=True)
    tt, tp, tw = (torch.from_numpy(a) for a in (y_true, y_pred, w))
    for name, (ours, _) in FUNCS.items():
        assert ours(tt, tp, sample_weight=tw) == ours(y_true, y_pred, sample_weight=w), name
    stream = gm.RegressionMetrics().update(tt.float(), tp.float().requires_grad_())
    assert stream.compute()["mae"] == pytest.approx(gm.mae(y_true, y_pred), rel=1e-6)
    labels = torch.tensor([0, 1, 2, 2])
    assert gm.accuracy(labels, torch.tensor([0, 1, 1, 2])) == 0.75


# ----------------------------------------------------------------------------- errors

Y = np.arange(6.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"y_true": [1.0, np.nan, 2.0], "y_pred": [1.0, 2.0, 3.0]}, ValueError, "`y_true` contains 1 NaN"),
        ({"y_true": Y, "y_pred": np.r_[Y[:5], np.inf]}, ValueError, "`y_pred` contains 0 NaN and 1 infinite"),
        ({"y_true": Y, "y_pred": Y[:5]}, ValueError, "inconsistent numbers of samples"),
        ({"y_true": [], "y_pred": []}, ValueError, "`y_true` is empty"),
        ({"y_true": Y, "y_pred": Y[:, None]}, ValueError, r"both must be 1-D .* or both 2-D"),
        ({"y_true": np.ones((6, 2)), "y_pred": np.ones((6, 3))}, ValueError, "`y_true` has 2 output"),
        ({"y_true": np.ones((6, 2, 1)), "y_pred": np.ones((6, 2, 1))}, ValueError, "must have 1 or 2 dimension"),
        ({"y_true": ["a", "b"], "y_pred": [1.0, 2.0]}, TypeError, "`y_true` must be numeric"),
        ({"multioutput": "mean"}, ValueError, "`multioutput` must be one of 'raw_values'"),
        ({"multioutput": [1.0, 2.0]}, ValueError, r"`multioutput` has 2 weight.*expected 1"),
        ({"multioutput": [-1.0]}, ValueError, "`multioutput` must hold weights >= 0"),
        ({"sample_weight": -Y}, ValueError, "`sample_weight` contains 5 negative"),
        ({"sample_weight": np.zeros(6)}, ValueError, "`sample_weight` is all zeros"),
        ({"sample_weight": Y[:4]}, ValueError, "`sample_weight` has 4 entries; expected 6"),
        ({"sample_weight": np.r_[Y[:5], np.nan]}, ValueError, "`sample_weight` contains 1 NaN"),
        ({"y_true": [1.7e308, -1.7e308], "y_pred": [-1.7e308, 1.7e308]}, ValueError, "overflowed float64"),
    ],
)
@pytest.mark.parametrize("name", list(FUNCS))
def test_invalid_inputs_raise(name, kwargs, error, match):
    args = {"y_true": Y, "y_pred": Y + 1.0, **kwargs}
    with pytest.raises(error, match=match):
        FUNCS[name][0](**args)


@pytest.mark.parametrize("n_outputs", [None, 2])
def test_non_finite_value_behind_zero_weight_is_still_rejected(n_outputs):
    y_true, y_pred, _ = make_data(0, 10, n_outputs, weighted=False)
    y_true[3] = np.nan
    w = np.ones(10)
    w[3] = 0.0
    for ours, _ in FUNCS.values():
        with pytest.raises(ValueError, match="`y_true` contains"):
            ours(y_true, y_pred, sample_weight=w)
        with pytest.raises(ValueError, match="`y_true` contains"):
            gm.RegressionMetrics().update(y_true, y_pred, w)


def test_mae_is_finite_where_squares_overflow():
    y_true, y_pred = np.array([1e200, -1e200]), np.array([-1e200, 1e200])
    assert gm.mae(y_true, y_pred) == skm.mean_absolute_error(y_true, y_pred) == 2e200
    with pytest.raises(ValueError, match="overflowed float64"):
        gm.mse(y_true, y_pred)


def test_r2_and_adjusted_r2_errors():
    with pytest.raises(ValueError, match="R² needs at least 2 samples; got 1"):
        gm.r2([1.0], [2.0])
    with pytest.raises(ValueError, match="R² needs at least 2 samples"):
        gm.r2_components([1.0], [2.0])
    with pytest.raises(ValueError, match="n_samples - n_features - 1 > 0; got n_samples=6, n_features=5"):
        gm.adjusted_r2(Y, Y + 1, n_features=5)
    with pytest.raises(ValueError, match="`n_features` must be a finite integer >= 0"):
        gm.adjusted_r2(Y, Y + 1, n_features=-1)
    with pytest.raises(TypeError, match="`n_features` must be an integer"):
        gm.adjusted_r2(Y, Y + 1, n_features=2.5)


def test_accuracy_errors():
    with pytest.raises(ValueError, match=r"1-D array of class labels.*argmax"):
        gm.accuracy([0, 1], [[0.9, 0.1], [0.2, 0.8]])
    with pytest.raises(TypeError, match="labels of different kinds"):
        gm.accuracy([0, 1], ["0", "1"])
    with pytest.raises(ValueError, match="`y_pred` contains 1 NaN"):
        gm.accuracy([0.0, 1.0], [0.0, np.nan])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        gm.accuracy([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="`sample_weight` contains 1 negative"):
        gm.accuracy([0, 1], [0, 1], sample_weight=[1.0, -1.0])
    with pytest.raises(ValueError, match="no positive sample weight seen"):
        gm.AccuracyMetric().update([0, 1], [0, 1], [0.0, 0.0]).compute()
    with pytest.raises(TypeError, match="can only merge an AccuracyMetric"):
        gm.AccuracyMetric().merge(gm.RegressionMetrics())


def test_streaming_errors():
    y = np.ones((4, 2))
    with pytest.raises(ValueError, match="no data seen"):
        gm.RegressionMetrics().compute()
    with pytest.raises(ValueError, match="R² needs at least 2 samples; got 1"):
        gm.RegressionMetrics().update([1.0], [1.0]).compute()
    with pytest.raises(ValueError, match="no positive sample weight seen"):
        gm.RegressionMetrics().update(Y, Y, np.zeros(6)).compute()
    with pytest.raises(ValueError, match="n_outputs=2; got a chunk with 1 output"):
        gm.RegressionMetrics().update(y, y).update(Y, Y)
    with pytest.raises(ValueError, match="n_outputs=3; got a chunk with 2"):
        gm.RegressionMetrics(n_outputs=3).update(y, y)
    with pytest.raises(ValueError, match="cannot merge RegressionMetrics with n_outputs=2 and n_outputs=1"):
        gm.RegressionMetrics().update(y, y).merge(gm.RegressionMetrics().update(Y, Y))
    with pytest.raises(TypeError, match="can only merge a RegressionMetrics"):
        gm.RegressionMetrics().merge(gm.AccuracyMetric())
    with pytest.raises(ValueError, match="`n_outputs` must be a finite integer > 0"):
        gm.RegressionMetrics(n_outputs=0)
    with pytest.raises(ValueError, match="`multioutput` must be one of"):
        gm.RegressionMetrics().update(y, y + 1).compute(multioutput="median")
    failed = gm.RegressionMetrics().update(Y, Y + 1)
    with pytest.raises(ValueError, match="`y_pred` contains 1 NaN"):
        failed.update(Y, np.r_[Y[:5], np.nan])
    assert failed.n_samples == 6  # a rejected chunk leaves the state unchanged


@pytest.mark.parametrize(
    ("y_true", "y_pred", "match"),
    [
        (np.array(["0", "1"], dtype=object), [0, 1], "string labels .* in `y_true`, number labels"),
        ([b"a"], ["a"], "bytes labels .* in `y_true`, string labels"),
        (np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]"), [0, 1], "datetime labels .* in `y_true`, number"),
        (np.array([datetime.date(2020, 1, 1)], dtype=object), [1], "datetime labels .* in `y_true`, number"),
        (np.array(["a", 1], dtype=object), ["a", "b"], r"`y_true` mixes label types \(number, string\)"),
    ],
)
def test_accuracy_refuses_mixed_label_kinds(y_true, y_pred, match):
    """Findings row 26: 0.0 silently (pandas stores strings as object dtype); sklearn raises."""
    from sklearn.metrics import accuracy_score

    with pytest.raises(TypeError, match=match):
        accuracy(y_true, y_pred)
    with pytest.raises(TypeError, match=match):
        AccuracyMetric().update(y_true, y_pred)
    if not isinstance(y_true, np.ndarray) or y_true.dtype.kind != "M":
        with pytest.raises((TypeError, ValueError)):  # the reference refuses them as well
            accuracy_score(y_true, y_pred)


def test_accuracy_still_takes_object_strings_and_mixed_numbers():
    pd = pytest.importorskip("pandas")
    assert accuracy(pd.Series(["a", "b"], dtype=object), ["a", "c"]) == 0.5
    assert accuracy([1, 2], [1.0, 2.0]) == 1.0 and accuracy([True, False], [1, 0]) == 1.0


def _exact_r2(y, yp):
    from fractions import Fraction

    Fy, Fp = [Fraction(v) for v in y], [Fraction(v) for v in yp]
    mean = sum(Fy) / len(Fy)
    tss = sum((v - mean) ** 2 for v in Fy)
    rss = sum((a - b) ** 2 for a, b in zip(Fy, Fp, strict=True))
    return float(1 - rss / tss)


@pytest.mark.parametrize(("offset", "n_chunks"), [(1e8, 7), (1e13, 7), (1e13, 50), (-3e15, 3)])
def test_streaming_r2_keeps_full_precision_with_large_offsets(offset, n_chunks):
    """Findings row 25: 7 chunks of y = 1e8 + N(0, 1) gave R^2 1.2e-10 off (documented ~1e-15),
    up to 4 % at mean/spread 1e13. Reference: exact rational arithmetic on the same floats."""
    rng = np.random.default_rng(0)
    n = 2100
    y = offset + rng.normal(size=n)
    yp = y + 0.3 * rng.normal(size=n)
    exact = _exact_r2(y, yp)
    stream = gm.RegressionMetrics()
    for part in np.array_split(np.arange(n), n_chunks):
        stream.update(y[part], yp[part])
    assert stream.compute()["r2"] == pytest.approx(exact, rel=1e-14)
    merged = gm.RegressionMetrics().update(y[:700], yp[:700]).merge(gm.RegressionMetrics().update(y[700:], yp[700:]))
    assert merged.compute()["r2"] == pytest.approx(exact, rel=1e-14)
    assert gm.r2(y, yp) == pytest.approx(exact, rel=1e-14)


def test_r2_beyond_float_range_is_minus_inf_without_warnings():
    """Found by tests/test_properties.py: RSS/TSS overflows for a near-constant target."""
    import warnings

    from gicho.metrics import RegressionMetrics, r2

    y, y_pred = np.array([3.08136938e-152, 0.0]), np.array([207.0, 207.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert r2(y, y_pred) == -np.inf
        assert RegressionMetrics().update(y, y_pred).compute()["r2"] == -np.inf
