"""PCA on Dask arrays: moments reduced on a LocalCluster equal the in-memory covariance solver."""

from __future__ import annotations

import numpy as np
import pytest

from gicho.decomposition import PCA

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow  # starts worker processes


@pytest.fixture(scope="module")
def client():
    # two worker processes, started once for the module
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


def _data(n: int = 2000, p: int = 7, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, p)) @ rng.normal(size=(p, p)) + 10.0


def test_dask_fit_equals_in_memory_covariance_solver(client):
    X = _data()
    # uneven row blocks, and split columns (rechunked to whole rows inside)
    Xd = da.from_array(X, chunks=((300, 700, 1, 999), (4, 3)))
    for k in (3, 0.9):
        ours = PCA(k).fit(Xd)
        ref = PCA(k, solver="covariance").fit(X)
        assert ours.n_components_ == ref.n_components_ and ours.n_samples_ == 2000
        scale = ref.explained_variance_.max()
        np.testing.assert_allclose(ours.components_, ref.components_, atol=1e-10)
        np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, atol=1e-10 * scale)
        np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, atol=1e-12)
        np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-13)
        np.testing.assert_allclose(ours.noise_variance_, ref.noise_variance_, atol=1e-10 * scale)


def test_dask_dataframe(client):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X = _data(600, 4)
    frame = dd.from_pandas(pd.DataFrame(X, columns=list("abcd")), npartitions=3)
    ours = PCA(2).fit(frame)
    ref = PCA(2, solver="covariance").fit(X)
    np.testing.assert_allclose(ours.components_, ref.components_, atol=1e-10)
    np.testing.assert_allclose(ours.transform(frame).compute(), ref.transform(X), atol=1e-9)


def test_dask_transform_is_lazy_and_round_trips(client):
    X = _data(1000, 5)
    Xd = da.from_array(X, chunks=(250, 5))
    pca = PCA(whiten=True).fit(Xd)
    Z = pca.transform(Xd)
    assert isinstance(Z, da.Array)  # nothing computed yet
    Z_np = Z.compute()
    np.testing.assert_allclose(Z_np, pca.transform(X), atol=1e-10)
    np.testing.assert_allclose(np.cov(Z_np, rowvar=False), np.eye(5), atol=1e-8)
    back = pca.inverse_transform(Z)
    assert isinstance(back, da.Array)
    np.testing.assert_allclose(back.compute(), X, atol=1e-9)


def test_dask_errors(client):
    X = _data(100, 3)
    with pytest.raises(ValueError, match="need solver 'auto' or 'covariance'; got solver='svd'"):
        PCA(solver="svd").fit(da.from_array(X, chunks=50))
    bad = X.copy()
    bad[70, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        PCA().fit(da.from_array(bad, chunks=(50, 3)))
    with pytest.raises(ValueError, match="2 dimension"):
        PCA().fit(da.from_array(X[:, 0], chunks=50))
    pca = PCA(2).fit(da.from_array(X, chunks=(50, 3)))
    with pytest.raises(ValueError, match=r"must have shape \(n, 3\)"):
        pca.transform(da.from_array(X[:, :2], chunks=50))
