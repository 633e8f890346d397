"""gicho.decomposition.Whitening: identity covariance, ZCA optimality, eps, round trips, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import solve_triangular
from sklearn.decomposition import PCA as SkPCA
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from gicho._validation import NotFittedError
from gicho.decomposition import Whitening

METHODS = ("pca", "zca", "cholesky")


@pytest.fixture(autouse=True, scope="module")
def _single_blas_thread():
    with threadpool_limits(limits=1):
        yield


def _data(n: int, p: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(p, p)) + 2.0 * np.eye(p)
    return rng.normal(size=(n, p)) @ mixing + rng.normal(size=p) * 5


def _mean_squared_change(X: np.ndarray, Z: np.ndarray) -> float:
    return float(np.mean(np.sum((X - X.mean(0) - Z) ** 2, axis=1)))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(20, 80), p=st.integers(1, 6), seed=st.integers(0, 2**16), method=st.sampled_from(METHODS))
def test_identity_covariance_and_round_trip(n, p, seed, method):
    X = _data(n, p, seed)
    white = Whitening(method).fit(X)
    Z = white.transform(X)
    np.testing.assert_allclose(np.atleast_2d(np.cov(Z, rowvar=False)), np.eye(p), atol=1e-8)
    np.testing.assert_allclose(Z.mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(white.inverse_transform(Z), X, atol=1e-9 * np.abs(X).max())


@settings(max_examples=30, deadline=None)
@given(n=st.integers(20, 80), p=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_zca_changes_the_data_least(n, p, seed):
    """Kessy et al. (2018): ZCA minimises E||x_c - z||^2 over all whitening matrices."""
    X = _data(n, p, seed)
    change = {m: _mean_squared_change(X, Whitening(m).fit_transform(X)) for m in METHODS}
    assert change["zca"] <= change["pca"] + 1e-9
    assert change["zca"] <= change["cholesky"] + 1e-9
    # and strictly, for data whose covariance is not diagonal
    assert change["zca"] < min(change["pca"], change["cholesky"])


def test_methods_match_references():
    X = _data(300, 5)
    C = np.cov(X, rowvar=False)
    Xc = X - X.mean(0)
    # pca: scikit-learn's PCA(whiten=True), components with the same sign rule
    ours = Whitening("pca").fit_transform(X)
    ref = SkPCA(whiten=True, svd_solver="full").fit_transform(X)
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    # zca: the symmetric inverse square root of C
    values, vectors = np.linalg.eigh(C)
    inv_sqrt = vectors @ np.diag(values**-0.5) @ vectors.T
    np.testing.assert_allclose(Whitening("zca").fit_transform(X), Xc @ inv_sqrt, atol=1e-10)
    # cholesky: L^{-1} x_c with C = L L^T
    L = np.linalg.cholesky(C)
    expected = solve_triangular(L, Xc.T, lower=True).T
    np.testing.assert_allclose(Whitening("cholesky").fit_transform(X), expected, atol=1e-10)


def test_cholesky_output_is_triangular_in_the_inputs():
    X = _data(100, 4)
    white = Whitening("cholesky").fit(X)
    bumped = X.copy()
    bumped[:, 2] += 1.0  # feature 2 changes: outputs 0 and 1 must not
    diff = white.transform(bumped) - white.transform(X)
    np.testing.assert_allclose(diff[:, :2], 0.0, atol=1e-12)
    assert (np.abs(diff[:, 2:]) > 1e-6).all()


@pytest.mark.parametrize("method", METHODS)
def test_constant_feature_needs_eps(method):
    X = _data(200, 4)
    X[:, 1] = 3.0
    with pytest.raises(ValueError, match=r"singular .*constant feature\(s\) at column\(s\) \[1\].*eps > 0"):
        Whitening(method).fit(X)
    white = Whitening(method, eps=1e-6).fit(X)
    Z = white.transform(X)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(white.inverse_transform(Z), X, atol=1e-8)
    if method != "cholesky":
        # eps damps instead of dividing by zero: Cov(Z) = Lambda / (Lambda + eps) on the axes
        values = white.eigenvalues_
        axes = Z @ white.eigenvectors_.T if method == "zca" else Z
        expected = np.diag(values / (values + 1e-6))
        np.testing.assert_allclose(np.cov(axes, rowvar=False), expected, atol=1e-8)
        np.testing.assert_allclose(Z[:, 1] if method == "zca" else Z[:, -1], 0.0, atol=1e-6)


def test_more_features_than_samples_needs_eps():
    X = _data(5, 8)
    with pytest.raises(ValueError, match="8 features but only 5 samples"):
        Whitening().fit(X)
    assert np.isfinite(Whitening(eps=1e-3).fit_transform(X)).all()


@pytest.mark.parametrize("method", METHODS)
def test_torch_matches_numpy(method):
    X = _data(200, 4)
    ref = Whitening(method).fit(X)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        Xt = torch.as_tensor(X, device=device)
        white = Whitening(method).fit(Xt)
        Z = white.transform(Xt)
        assert isinstance(Z, torch.Tensor) and Z.device.type == device
        np.testing.assert_allclose(Z.cpu().numpy(), ref.transform(X), atol=1e-10)
        np.testing.assert_allclose(white.inverse_transform(Z).cpu().numpy(), X, atol=1e-9)


def test_bad_input():
    X = _data(30, 3)
    with pytest.raises(ValueError, match="`method` must be one of 'pca', 'zca', 'cholesky'; got 'svd'"):
        Whitening("svd").fit(X)
    for eps in (-1.0, float("nan"), "1e-3"):
        with pytest.raises(ValueError, match="`eps` must be a finite number >= 0"):
            Whitening(eps=eps).fit(X)
    with pytest.raises(ValueError, match="1 NaN"):
        Whitening().fit(np.where(np.arange(90).reshape(30, 3) == 4, np.nan, X))
    with pytest.raises(ValueError, match=r"at least 2 sample\(s\) are required"):
        Whitening().fit(X[:1])
    with pytest.raises(NotFittedError, match="not fitted yet"):
        Whitening().transform(X)
    white = Whitening().fit(X)
    with pytest.raises(ValueError, match="X has 2 features, but Whitening is expecting 3 features"):
        white.transform(X[:, :2])
    assert list(white.get_feature_names_out()) == ["whitening0", "whitening1", "whitening2"]


@parametrize_with_checks([Whitening(), Whitening("pca", eps=1e-6), Whitening("cholesky", eps=1e-6)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_feature_names_and_not_fitted_error_match_scikit_learn():
    import pandas as pd
    from sklearn.exceptions import NotFittedError as SkNotFittedError

    with pytest.raises(SkNotFittedError, match="this Whitening is not fitted yet"):
        Whitening().transform(np.ones((3, 2)))
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.standard_normal((40, 3)), columns=["a", "b", "c"])
    white = Whitening().fit(X)
    assert list(white.feature_names_in_) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="feature names should match"):
        white.transform(X[["c", "b", "a"]])


@pytest.mark.parametrize("method", ["pca", "zca", "cholesky"])
def test_half_precision_input_is_whitened_in_float32(method):
    """Findings rows 49-50: float16 (NumPy or torch) and bfloat16 crashed in linalg."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3)) @ np.array([[2.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.0, 0.3, 0.5]])
    for Xh in (X.astype(np.float16), torch.tensor(X, dtype=torch.float16), torch.tensor(X, dtype=torch.bfloat16)):
        Z = Whitening(method).fit_transform(Xh)
        Zn = Z.numpy() if isinstance(Z, torch.Tensor) else Z
        assert Zn.dtype == np.float32
        np.testing.assert_allclose(np.cov(Zn.astype(np.float64), rowvar=False), np.eye(3), atol=1e-4)


@pytest.mark.parametrize("scale", [1e160, 1e-160, 1e-170])
@pytest.mark.parametrize("method", ["pca", "zca", "cholesky"])
def test_unrepresentable_variances_are_refused_with_the_true_reason(scale, method):
    """Findings rows 51-52: "Eigenvalues did not converge" at 1e160, a false "constant
    feature(s)" at 1e-170, and a silently 2-9 % wrong Cholesky whitening at 1e-160."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 4)) @ rng.standard_normal((4, 4))
    side = "overflow" if scale > 1 else "fall below float64's normal range"
    with pytest.raises(ValueError, match=rf"argument `X` has values of magnitude ~.*: its variances {side}"):
        Whitening(method).fit(X * scale)


@pytest.mark.parametrize("scale", [1e130, 1e-130])
@pytest.mark.parametrize("method", ["pca", "zca", "cholesky"])
def test_extreme_but_representable_scales_whiten_exactly(scale, method):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 4)) @ rng.standard_normal((4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Z = Whitening(method).fit_transform(X * scale)
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(4), atol=1e-10)
    np.testing.assert_allclose(Z, Whitening(method).fit_transform(X), rtol=1e-9, atol=1e-12)
