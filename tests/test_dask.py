"""gicho.dask: LinearRegression on Dask arrays and DataFrames across worker processes."""

from __future__ import annotations

import numpy as np
import pytest

from exact_reference import exact_moments, exact_ols, moments_bounds, ols_bounds
from gicho.linear import LinearRegression

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from gicho.dask import dask_moments  # noqa: E402


def fit_linear_regression(X, y, sample_weight=None, **params):
    return LinearRegression(**params).fit(X, y, sample_weight=sample_weight)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    """Two worker processes on loopback, started once for the module and closed after it."""
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((3000, 5)) * [1.0, 2.0, 3.0, 0.5, 1.0] + [1e4, 0.0, -50.0, 2.0, 0.0]
    y = X @ [0.5, -1.0, 0.25, 2.0, 0.0] + rng.standard_normal(3000)
    w = rng.uniform(0.1, 2.0, 3000)
    return X, y, w


def _assert_same_fit(ours, ref):
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-10)
    for name in ("bse_", "pvalues_", "rsquared_", "fvalue_", "llf_", "aic_", "bic_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-8, err_msg=name)


def test_dask_array_fit_equals_in_memory_fit(client, data):
    X, y, w = data
    Xd = da.from_array(X, chunks=(700, 5))  # uneven blocks: 700, 700, 700, 700, 200
    yd = da.from_array(y, chunks=500)  # misaligned with X: rechunked to X's rows
    ours = fit_linear_regression(Xd, yd)
    _assert_same_fit(ours, LinearRegression().fit(X, y))
    assert ours.n_features_in_ == 5
    # the estimator dispatches Dask input itself; weights work the same way
    wd = da.from_array(w, chunks=900)
    weighted = LinearRegression().fit(Xd, yd, sample_weight=wd)
    _assert_same_fit(weighted, LinearRegression().fit(X, y, sample_weight=w))
    # the work ran on the cluster's workers
    assert len(client.scheduler_info()["workers"]) == 2


def test_dask_dataframe_keeps_column_names(client, data):
    import pandas as pd

    X, y, _ = data
    frame = pd.DataFrame(X, columns=list("abcde")).assign(target=y)
    ddf = dd.from_pandas(frame, npartitions=4)
    model = LinearRegression(solver="normal").fit(ddf[list("abcde")], ddf["target"])
    _assert_same_fit(model, LinearRegression().fit(X, y))
    assert list(model.feature_names_in_) == list("abcde")
    np.testing.assert_allclose(model.predict(frame[list("abcde")]), LinearRegression().fit(X, y).predict(X), rtol=1e-10)


def test_moments_reduce_exactly(client, data):

    X, y, _ = data
    Xd = da.from_array(X, chunks=(256, 2))  # column blocks are rechunked to whole rows
    moments, slw, columns = dask_moments(Xd, da.from_array(y, chunks=256))
    # against the exact moments, within their round-off bound (exact_reference.moments_bounds;
    # a relative tolerance on the near-zero cross-products measured the BLAS kernel instead)
    Z = np.column_stack([X, y])
    exact = exact_moments(Z)
    _, _, bound = moments_bounds(Z, exact=exact)
    assert np.all(np.abs(moments.xx_ - exact[2][:5, :5]) <= bound[:5, :5])
    assert np.all(np.abs(moments.xy_.ravel() - exact[2][:5, 5]) <= bound[:5, 5])
    assert moments.n_samples_ == 3000 and slw == 0.0 and columns is None


def test_dask_bad_input(client, data):
    X, y, _ = data
    Xd = da.from_array(X, chunks=(1000, 5))
    with pytest.raises(ValueError, match=r"`solver`='qr' needs all rows in memory"):
        LinearRegression(solver="qr").fit(Xd, da.from_array(y, chunks=1000))
    with pytest.raises(ValueError, match=r"`cov_type`='HC3' needs a second pass"):
        fit_linear_regression(Xd, da.from_array(y, chunks=1000), cov_type="HC3")
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        fit_linear_regression(Xd, da.from_array(y[:10], chunks=5))
    with pytest.raises(ValueError, match=r"`X` must have 2 dimensions"):
        fit_linear_regression(da.from_array(y, chunks=1000), da.from_array(y, chunks=1000))
    with pytest.raises(TypeError, match="must be a Dask array"):
        dask_moments(Xd, y)
    Xn = X.copy()
    Xn[1234, 2] = np.nan
    with pytest.raises(ValueError, match=r"`X` contains 1 NaN"):
        fit_linear_regression(da.from_array(Xn, chunks=(1000, 5)), da.from_array(y, chunks=1000))


def test_deprecated_distributed_alias_still_fits(client, data):
    """README of 0.1.0 documented gicho.distributed: it keeps working, with a DeprecationWarning."""
    import importlib
    import sys

    sys.modules.pop("gicho.distributed", None)
    with pytest.warns(DeprecationWarning, match="gicho.distributed is deprecated"):
        old = importlib.import_module("gicho.distributed")
    X, y, _ = data
    model = old.fit_linear_regression(da.from_array(X, chunks=(1000, 5)), da.from_array(y, chunks=1000))
    _assert_same_fit(model, LinearRegression().fit(X, y))
    assert old.dask_moments is dask_moments


def test_dask_near_perfect_fit_matches_exact_least_squares(client):
    """Findings row 109: bse 42x too large through Dask (y = X beta + 5 + 1e-9 noise, 8 blocks).

    Against the exact answer (statsmodels' own bse is round-off limited here), within the
    first-order bound of a backward-stable (QR) fit whose sums have n * p terms (ols_bounds)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(800, 3))
    y = X @ [1.0, 2.0, 3.0] + 5.0 + 1e-9 * rng.normal(size=800)
    exact = exact_ols(X, y)
    bound = ols_bounds(X, y, exact, solver="qr", terms=800 * 4)
    ours = LinearRegression().fit(da.from_array(X, chunks=(100, 3)), da.from_array(y, chunks=100))
    assert np.all(np.abs(ours.bse_ / exact.bse - 1) <= bound.bse)
    assert ours.ssr_ == pytest.approx(exact.ssr, rel=bound.ssr, abs=0)
    assert np.all(np.abs(ours.params_ - exact.params) <= bound.params)


def test_dask_all_zero_weights_say_so(client, data):
    """Findings row 108: the message spoke of `moments`, not of the weights."""
    X, y, _ = data
    with pytest.raises(ValueError, match=r"argument `sample_weight` is all zeros"):
        LinearRegression().fit(da.from_array(X, chunks=(1000, 5)), da.from_array(y, chunks=1000),
                               sample_weight=da.zeros(3000, chunks=1000))  # fmt: skip
