"""gicho.decomposition.PCA: parity with scikit-learn, identities, streaming, torch, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.decomposition import PCA as SkPCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from exact_reference import EPS, exact_moments, moments_bounds
from gicho._validation import NotFittedError
from gicho.data.images import load_digits_arrays
from gicho.decomposition import PCA
from gicho.decomposition._solvers import flip_signs, mean_and_covariance

# Parity tolerance in float64 (the bound), relative to the scale of each quantity.
TOL = 1e-10
SK_SOLVER = {"svd": "full", "covariance": "covariance_eigh"}


@pytest.fixture(autouse=True, scope="module")
def _single_blas_thread():
    # Tiny matrices: a second BLAS thread only adds spin-waiting on a shared 2-core machine.
    with threadpool_limits(limits=1):
        yield


def _data(n: int, p: int, seed: int = 0, offset: float = 3.0) -> np.ndarray:
    """Correlated Gaussian data with a distinct spectrum and a non-zero mean."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(p, p)) * np.linspace(3.0, 0.3, p)[:, None]
    return rng.normal(size=(n, p)) @ mixing + offset


def _gapped(n: int, p: int, k: int, seed: int = 0) -> np.ndarray:
    """Data whose spectrum drops by 1000x after k components (randomized SVD converges)."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(p, p)))
    scales = np.r_[np.linspace(10.0, 5.0, k), np.full(p - k, 0.01)]
    return (rng.normal(size=(n, p)) * scales) @ basis.T + 1.0


def _close(a, b, scale=1.0):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=TOL, atol=TOL * scale)


def _align_signs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows of ``a`` flipped to best match ``b`` (for comparisons "up to sign")."""
    return a * np.sign(np.sum(a * b, axis=1))[:, None]


# ------------------------------------------------------------------------- parity
@pytest.mark.parametrize("solver", ["svd", "covariance"])
@pytest.mark.parametrize("n_components", [None, 4, 0.8])
@pytest.mark.parametrize("whiten", [False, True])
def test_matches_sklearn(solver, n_components, whiten):
    X = _data(400, 12)
    X_new = _data(50, 12, seed=1)
    ours = PCA(n_components, whiten=whiten, solver=solver).fit(X)
    ref = SkPCA(n_components, whiten=whiten, svd_solver=SK_SOLVER[solver]).fit(X)
    assert ours.n_components_ == ref.n_components_
    scale = ref.explained_variance_.max()
    # up to sign first, then exactly: both use the rule "largest |loading| positive"
    _close(_align_signs(ours.components_, ref.components_), ref.components_)
    _close(ours.components_, ref.components_)
    _close(ours.explained_variance_, ref.explained_variance_, scale)
    _close(ours.explained_variance_ratio_, ref.explained_variance_ratio_)
    _close(ours.singular_values_, ref.singular_values_, ref.singular_values_.max())
    _close(ours.mean_, ref.mean_, np.abs(X).max())
    _close(ours.noise_variance_, ref.noise_variance_, scale)
    Z = ours.transform(X_new)
    _close(Z, ref.transform(X_new), np.abs(ref.transform(X_new)).max())
    _close(ours.inverse_transform(Z), ref.inverse_transform(ref.transform(X_new)), np.abs(X).max())


def test_matches_sklearn_wide_data():
    X = _data(15, 40)
    ours = PCA(solver="svd").fit(X)
    ref = SkPCA(svd_solver="full").fit(X)
    assert ours.n_components_ == ref.n_components_ == 15
    _close(ours.components_[:14], ref.components_[:14])  # the 15th axis spans a null space
    _close(ours.explained_variance_, ref.explained_variance_, ref.explained_variance_.max())
    ours5, ref5 = PCA(5, solver="svd").fit(X), SkPCA(5, svd_solver="full").fit(X)
    _close(ours5.noise_variance_, ref5.noise_variance_, ref5.explained_variance_.max())


def test_randomized_matches_exact_on_gapped_spectrum():
    X = _gapped(600, 40, k=5)
    ours = PCA(5, solver="randomized", random_state=0).fit(X)
    ref = SkPCA(5, svd_solver="full").fit(X)
    _close(ours.components_, ref.components_)
    _close(ours.explained_variance_, ref.explained_variance_, ref.explained_variance_.max())
    _close(ours.explained_variance_ratio_, ref.explained_variance_ratio_)
    _close(ours.noise_variance_, ref.noise_variance_, ref.explained_variance_.max())
    # fixed seed: the same result twice
    again = PCA(5, solver="randomized", random_state=0).fit(X)
    np.testing.assert_array_equal(again.components_, ours.components_)


def test_digits_matches_sklearn():
    X = load_digits_arrays().X
    ours = PCA(0.9).fit(X)
    ref = SkPCA(0.9).fit(X)
    assert ours.n_components_ == ref.n_components_ == 21
    _close(ours.components_, ref.components_)
    _close(ours.transform(X), ref.transform(X), 50.0)


def test_auto_solver_follows_sklearn_rules():
    assert PCA().fit(_data(300, 10)).solver_ == "covariance"  # tall and narrow
    assert PCA().fit(_data(40, 30)).solver_ == "svd"  # small
    X = _gapped(700, 120, k=5)  # neither tall nor small, few components
    assert PCA(5).fit(X).solver_ == "randomized"
    assert PCA(0.5).fit(X).solver_ == "svd"  # a fraction needs the full spectrum
    assert PCA(100).fit(X).solver_ == "svd"  # many components


def test_covariance_route_agrees_with_centred_covariance_at_any_offset(monkeypatch):
    import gicho.decomposition._pca as pca_module
    import gicho.decomposition._solvers as solvers

    # one pass over ordinary X: no magnitude scan, no separate column means
    monkeypatch.setattr(solvers, "extreme_scale", lambda X: pytest.fail("X was scanned for its magnitude"))
    for module in (pca_module, solvers):
        monkeypatch.setattr(module, "column_means", lambda X: pytest.fail("X was read for its means"))
    rng = np.random.default_rng(3)
    base = rng.normal(size=(2000, 4))
    for offset in (0.0, 30.0, 1e6):  # the last cancels catastrophically in X^T X - n m m^T
        X = base + offset
        # the exact mean and covariance of X (rational arithmetic) and the one-pass
        # accumulator's round-off bound (exact_reference.moments_bounds): a float64 reference
        # (X.mean, np.cov) is no more accurate than the code under test
        exact = exact_moments(X)
        _, mean_bound, S_bound = moments_bounds(X, exact=exact)
        W, exact_mean, S = exact
        _, scale, mean, C = mean_and_covariance(X)
        assert scale == 1.0
        assert np.all(np.abs(C - S / (W - 1)) <= S_bound / (W - 1) + 2 * EPS * np.abs(S / (W - 1)))
        assert np.all(np.abs(mean - exact_mean) <= mean_bound)
        # the fitted PCA (one pass over X) against the two-pass definition on the same X
        values, vectors = np.linalg.eigh(np.cov(X, rowvar=False))
        pca = PCA(4, solver="covariance").fit(X)
        np.testing.assert_allclose(pca.explained_variance_, values[::-1], rtol=1e-9)
        np.testing.assert_allclose(np.abs(pca.components_ @ vectors[:, ::-1]), np.eye(4), atol=1e-8)
        assert np.all(np.abs(pca.mean_ - exact_mean) <= mean_bound)


def test_sign_rule_largest_loading_positive():
    pca = PCA(solver="covariance").fit(_data(200, 8))
    rows = np.arange(pca.n_components_)
    pivots = pca.components_[rows, np.argmax(np.abs(pca.components_), axis=1)]
    assert (pivots > 0).all()
    flipped = flip_signs(-pca.components_.copy())
    np.testing.assert_array_equal(flipped, pca.components_)


def test_float32_stays_float32():
    X = _data(300, 6).astype(np.float32)
    pca = PCA(3).fit(X)
    assert pca.components_.dtype == np.float32 and pca.transform(X).dtype == np.float32
    ref = PCA(3).fit(X.astype(np.float64))
    np.testing.assert_allclose(pca.explained_variance_, ref.explained_variance_, rtol=1e-5)


# ------------------------------------------------------------------------- properties
@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(3, 40),
    p=st.integers(1, 8),
    seed=st.integers(0, 2**16),
    solver=st.sampled_from(["svd", "covariance"]),
    whiten=st.booleans(),
)
def test_round_trip_and_identities(n, p, seed, solver, whiten):
    X = _data(n, p, seed=seed)
    k = min(n - 1, p)  # centred data of n rows has rank <= n - 1: whitening needs k <= n - 1
    pca = PCA(k if whiten else None, whiten=whiten, solver=solver).fit(X)
    Z = pca.transform(X)
    scale = np.abs(X).max()
    # orthonormal axes
    np.testing.assert_allclose(pca.components_ @ pca.components_.T, np.eye(pca.n_components_), atol=1e-9)
    # transformed training data: covariance diag(explained_variance_), or identity if whitened
    target = np.eye(k) if whiten else np.diag(pca.explained_variance_)
    cov = np.atleast_2d(np.cov(Z, rowvar=False))
    tol = 1e-8
    if whiten and solver == "covariance":
        # eigh of the covariance knows a variance only to eps * largest: the whitened variance
        # of a weak axis is off by about eps * condition number (e.g. 8 samples in 7 dimensions)
        values = np.linalg.eigvalsh(np.atleast_2d(np.cov(X, rowvar=False)))
        tol += 4 * np.finfo(float).eps * values[-1] / values[-k]
    np.testing.assert_allclose(cov, target, atol=tol * max(1.0, np.abs(target).max()))
    if pca.n_components_ == min(n, p) or (whiten and k == p):
        # all components kept: exact round trip; variances add up to the total variance
        np.testing.assert_allclose(pca.inverse_transform(Z), X, atol=1e-9 * scale)
        total = np.var(X, axis=0, ddof=1).sum()
        np.testing.assert_allclose(pca.explained_variance_.sum(), total, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------- streaming
def test_partial_fit_and_fit_chunks_equal_batch_covariance_solver():
    X = _data(1000, 9)
    batch = PCA(4, solver="covariance").fit(X)
    streamed = PCA(4)
    for start in range(0, 1000, 130):
        streamed.partial_fit(X[start : start + 130])
    chunked = PCA(4).fit_chunks(X[i : i + 77] for i in range(0, 1000, 77))
    for other in (streamed, chunked):
        assert other.n_samples_ == 1000 and other.moments_.n_samples_ == 1000
        scale = batch.explained_variance_.max()
        np.testing.assert_allclose(other.components_, batch.components_, atol=1e-10)
        np.testing.assert_allclose(other.explained_variance_, batch.explained_variance_, atol=1e-10 * scale)
        np.testing.assert_allclose(other.mean_, batch.mean_, atol=1e-12 * np.abs(X).max())
        np.testing.assert_allclose(other.noise_variance_, batch.noise_variance_, atol=1e-10 * scale)
        np.testing.assert_allclose(other.transform(X), batch.transform(X), atol=1e-9 * np.abs(X).max())


def test_fit_discards_streamed_state():
    X = _data(100, 3)
    pca = PCA().partial_fit(X[:50])
    pca.fit(X)
    assert not hasattr(pca, "moments_")
    pca.partial_fit(X[:10])
    assert pca.n_samples_ == 10


# ------------------------------------------------------------------------- torch
@pytest.mark.parametrize("solver", ["svd", "covariance", "randomized"])
def test_torch_tensors_on_their_device(solver):
    X = _gapped(500, 10, k=3)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    ref = PCA(3, solver=solver, random_state=0).fit(X)
    for device in devices:
        Xt = torch.as_tensor(X, device=device)
        pca = PCA(3, solver=solver, random_state=0).fit(Xt)
        assert isinstance(pca.components_, torch.Tensor) and pca.components_.device.type == device
        Z = pca.transform(Xt)
        assert isinstance(Z, torch.Tensor) and Z.device.type == device
        np.testing.assert_allclose(pca.components_.cpu().numpy(), ref.components_, atol=1e-9)
        np.testing.assert_allclose(pca.explained_variance_.cpu().numpy(), ref.explained_variance_, rtol=1e-9)
        np.testing.assert_allclose(Z.cpu().numpy(), ref.transform(X), atol=1e-8)
        back = pca.inverse_transform(Z)
        np.testing.assert_allclose(back.cpu().numpy(), ref.inverse_transform(ref.transform(X)), atol=1e-8)
    # a model fitted on NumPy transforms tensors (and the reverse)
    Zt = ref.transform(torch.as_tensor(X))
    assert isinstance(Zt, torch.Tensor)
    np.testing.assert_allclose(Zt.numpy(), ref.transform(X), atol=1e-12)


def test_torch_partial_fit_matches_numpy():
    X = _data(300, 5)
    ours = PCA(2).partial_fit(torch.as_tensor(X[:150])).partial_fit(torch.as_tensor(X[150:]))
    ref = PCA(2, solver="covariance").fit(X)
    assert isinstance(ours.components_, torch.Tensor)
    np.testing.assert_allclose(ours.components_.numpy(), ref.components_, atol=1e-10)


# ------------------------------------------------------------------------- scikit-learn API
def test_sklearn_pipeline_clone_and_feature_names():
    data = load_digits_arrays()
    pipe = make_pipeline(PCA(16), LogisticRegression(max_iter=500))
    pipe.fit(data.X[:1000] / 16, data.y[:1000])
    assert pipe.score(data.X[1000:] / 16, data.y[1000:]) > 0.85
    pca = clone(PCA(3, whiten=True, solver="svd"))
    assert pca.get_params()["whiten"] is True and not hasattr(pca, "components_")
    pca.fit(data.X)
    assert list(pca.get_feature_names_out()) == ["pca0", "pca1", "pca2"]


# ------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.array([[1.0, np.nan], [2.0, 3.0], [0.0, 1.0]]), "1 NaN and 0 infinite"),
        (np.array([[1.0, np.inf], [2.0, 3.0], [0.0, 1.0]]), "0 NaN and 1 infinite"),
        # variances ~1e616 (a constant 1e308 column has variance 0: representable, no error)
        (np.array([[1e308, 0.0], [-1e308, 1.0], [1e308, 2.0]]), "its variances overflow"),
        (np.ones((1, 3)), "1 sample"),
        (np.ones(5), "2 dimension"),
    ],
)
def test_bad_data(X, match):
    with pytest.raises(ValueError, match=match):
        PCA().fit(X)


def test_complex_data_is_rejected():
    with pytest.raises(TypeError, match=r"`X` is complex .*Complex data not supported"):
        PCA().fit(np.ones((4, 2), dtype=complex))
    with pytest.raises(TypeError, match=r"`X` is complex .*torch\.complex64.*Complex data not supported"):
        PCA().fit(torch.ones(4, 2, dtype=torch.complex64))


def test_bad_tensor_data():
    with pytest.raises(ValueError, match="1 NaN"):
        PCA().fit(torch.tensor([[1.0, float("nan")], [0.0, 1.0], [2.0, 2.0]]))
    with pytest.raises(ValueError, match="at least 2 sample"):
        PCA().fit(torch.ones(1, 3))


@pytest.mark.parametrize(
    ("n_components", "error", "match"),
    [
        (0, ValueError, r"must lie in \[1, min\(n_samples, n_features\)\] = \[1, 5\]"),
        (6, ValueError, r"= \[1, 5\] for data of shape \(20, 5\); got 6"),
        (1.0, ValueError, r"fraction of variance .* lie in \(0, 1\)"),
        (2.5, ValueError, r"lie in \(0, 1\)"),
        (-0.5, ValueError, r"lie in \(0, 1\)"),
        ("mle", TypeError, "None, an int or a float"),
        (True, TypeError, "None, an int or a float"),
    ],
)
def test_n_components_out_of_range(n_components, error, match):
    with pytest.raises(error, match=match):
        PCA(n_components).fit(_data(20, 5))


def test_bad_parameters():
    X = _data(30, 4)
    with pytest.raises(ValueError, match="`solver` must be one of 'auto', 'svd'"):
        PCA(solver="arpack").fit(X)
    with pytest.raises(ValueError, match="fraction of variance\\) needs the full spectrum"):
        PCA(0.5, solver="randomized").fit(X)
    with pytest.raises(ValueError, match="`n_oversamples` must be an integer >= 0"):
        PCA(2, solver="randomized", n_oversamples=-1).fit(X)
    with pytest.raises(ValueError, match="`n_power_iterations` must be 'auto' or an integer"):
        PCA(2, solver="randomized", n_power_iterations=1.5).fit(X)
    with pytest.raises(TypeError, match="`whiten` must be a bool"):
        PCA(whiten="yes").fit(X)


def test_whiten_zero_variance_component_raises():
    X = _data(50, 4)
    X[:, 2] = 7.0  # a constant feature: rank 3
    for solver in ("svd", "covariance"):
        pca = PCA(whiten=True, solver=solver)
        with pytest.raises(ValueError, match=r"numerically zero .*rank 3.*n_components <= 3"):
            pca.fit(X)
        assert not hasattr(pca, "components_")  # a failed fit leaves no half-fitted state
        Z = PCA(3, whiten=True, solver=solver).fit_transform(X)
        assert np.isfinite(Z).all()
        np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(3), atol=1e-8)
    # without whitening, the constant feature is simply a zero-variance component
    assert np.isfinite(PCA().fit_transform(X)).all()


def test_transform_errors():
    X = _data(30, 4)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        PCA().transform(X)
    pca = PCA(2).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but PCA is expecting 4 features"):
        pca.transform(X[:, :3])
    with pytest.raises(ValueError, match="`Z`: Z has 4 features, but PCA is expecting 2 features"):
        pca.inverse_transform(X)


def test_streaming_errors():
    X = _data(30, 4)
    with pytest.raises(ValueError, match="need solver 'auto' or 'covariance'; got solver='svd'"):
        PCA(solver="svd").partial_fit(X)
    with pytest.raises(ValueError, match="at least 2 samples; the streamed chunks hold 1"):
        PCA().partial_fit(X[:1])
    with pytest.raises(ValueError, match="got 3"):
        PCA(3).partial_fit(X[:2])
    with pytest.raises(ValueError, match="`chunks` yielded no chunk"):
        PCA().fit_chunks([])
    with pytest.raises(ValueError, match="NaN"):
        PCA().fit_chunks([X, np.full((2, 4), np.nan)])


@parametrize_with_checks([PCA(), PCA(2, solver="covariance"), PCA(1, whiten=True)])
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the checks fit constant data on purpose
        check(estimator)


def test_not_fitted_error_is_scikit_learns():
    from sklearn.exceptions import NotFittedError as SkNotFittedError

    with pytest.raises(SkNotFittedError, match="this PCA is not fitted yet"):
        PCA().transform(np.ones((3, 2)))


def test_feature_names_are_kept_and_checked():
    import pandas as pd

    X = pd.DataFrame(_data(30, 3), columns=["area", "rooms", "age"])
    pca = PCA(2).fit(X)
    assert list(pca.feature_names_in_) == ["area", "rooms", "age"]
    assert list(pca.get_feature_names_out()) == ["pca0", "pca1"]
    with pytest.raises(ValueError, match="feature names should match"):
        pca.transform(X[["rooms", "area", "age"]])
    assert not hasattr(PCA(2).fit(X.to_numpy()), "feature_names_in_")
    stream = PCA(2).partial_fit(X.iloc[:15]).partial_fit(X.iloc[15:])
    assert list(stream.feature_names_in_) == ["area", "rooms", "age"]


def test_half_precision_tensors_are_decomposed_in_float32():
    """Findings row 49: torch float16 / bfloat16 raised NotImplementedError ("linalg_eigh_cpu")."""
    X = _data(100, 4)
    for dtype in (torch.float16, torch.bfloat16):
        Xt = torch.tensor(X, dtype=dtype)
        pca = PCA(2).fit(Xt)
        ref = PCA(2).fit(Xt.double().numpy())
        assert pca.components_.dtype == torch.float32
        np.testing.assert_allclose(pca.explained_variance_.numpy(), ref.explained_variance_, rtol=1e-4)


@pytest.mark.parametrize("solver", ["covariance", "svd", "randomized"])
def test_extreme_scales(solver):
    """Findings row 51: covariance -> "Eigenvalues did not converge", svd / randomized -> NaN
    explained variance with RuntimeWarnings, at 1e160. Now: exact when the variances fit in
    float64 (the data is rescaled by a power of two), a clear refusal when they cannot."""
    X = _data(200, 5)
    ref = PCA(2, solver=solver, random_state=0).fit(X)
    for scale in (1e130, 1e-130):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            pca = PCA(2, solver=solver, random_state=0).fit(X * scale)
        np.testing.assert_allclose(pca.explained_variance_, ref.explained_variance_ * scale**2, rtol=1e-10)
        np.testing.assert_allclose(pca.components_, ref.components_, atol=1e-10)
        np.testing.assert_allclose(pca.transform(X * scale), ref.transform(X) * scale, rtol=1e-9, atol=1e-9 * scale)
    for scale, side in ((1e160, "overflow"), (1e-170, "fall below")):
        with pytest.raises(ValueError, match=rf"`X` has values of magnitude .*: its variances {side}"):
            PCA(2, solver=solver, random_state=0).fit(X * scale)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_randomized_fit_transform_matches_its_own_variances(backend):
    """Peers' suite (scikit-learn): fit_transform(X) must have the variances explained_variance_
    and the norms singular_values_ report (they differed by 2-4e-4)."""
    X = load_digits_arrays().X
    X = torch.tensor(X) if backend == "torch" else X
    pca = PCA(10, solver="randomized", random_state=0, n_power_iterations=1)
    Z = pca.fit_transform(X)
    Z, ev, sv = (a.numpy() if backend == "torch" else a for a in (Z, pca.explained_variance_, pca.singular_values_))
    np.testing.assert_allclose(Z.var(axis=0, ddof=1), ev, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=0), sv, rtol=1e-12)
    np.testing.assert_allclose(pca.components_ @ pca.components_.T, np.eye(10), atol=1e-12)


def test_constant_data_ratios_are_nan_without_warnings():
    """Findings row 53: a RuntimeWarning leaked, and PCA(0.9) silently kept 1 component."""
    X = np.ones((5, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pca = PCA(2).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = SkPCA(2).fit(X)  # scikit-learn: NaN ratios too (with a RuntimeWarning)
    assert np.isnan(pca.explained_variance_ratio_).all() and np.isnan(ref.explained_variance_ratio_).all()
    np.testing.assert_array_equal(pca.explained_variance_, [0.0, 0.0])
    with pytest.raises(ValueError, match=r"`n_components`=0\.9 is a fraction of the variance, but X has zero total"):
        PCA(0.9).fit(X)
