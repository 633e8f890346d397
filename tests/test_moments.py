"""gicho.moments: mergeable, weighted, numerically stable sufficient statistics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gicho.moments as gm
import gicho.moments._gram as gram
from exact_reference import exact_moments, moments_bounds
from gicho.moments import Moments


def _reference(X, y=None, w=None, **bound_options):
    """The exact weighted moments (rational arithmetic, rounded once), and with
    ``bounds=True`` also their round-off bounds (exact_reference.moments_bounds)."""
    want_bounds = bound_options.pop("bounds", False)
    X = np.asarray(X, dtype=np.float64)
    p = X.shape[1]
    Y = None if y is None else np.asarray(y, dtype=np.float64).reshape(len(X), -1)
    Z = X if Y is None else np.column_stack([X, Y])
    exact = exact_moments(Z, w)
    W, mean, S = exact
    out = {"W": W, "mx": mean[:p], "xx": S[:p, :p]}
    if Y is not None:
        out.update(my=mean[p:], xy=S[:p, p:], yy=S[p:, p:])
    if not want_bounds:
        return out
    dW, dmean, dS = moments_bounds(Z, w, exact=exact, **bound_options)
    bounds = {"W": dW, "mx": dmean[:p], "xx": dS[:p, :p]}
    if Y is not None:
        bounds.update(my=dmean[p:], xy=dS[:p, p:], yy=dS[p:, p:])
    return out, bounds


def _assert_close(m: Moments, X, y=None, w=None, **bound_options) -> None:
    """Every statistic of ``m`` within its round-off bound of the exact moments of (X, y, w)."""
    ref, bounds = _reference(X, y, w, bounds=True, **bound_options)
    names = {"W": "weight_sum_", "mx": "mean_x_", "xx": "xx_", "my": "mean_y_", "xy": "xy_", "yy": "yy_"}
    for key, want in ref.items():
        got = np.asarray(getattr(m, names[key]), dtype=np.float64).reshape(np.shape(want))
        err = np.abs(got - want)
        assert np.all(err <= bounds[key]), f"{names[key]}: error / bound up to {np.max(err / bounds[key]):.3g}"


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 4)) * [1.0, 2.0, 0.5, 3.0] + [0.0, 5.0, -2.0, 1.0]
    y = np.column_stack([X @ [1.0, -2.0, 0.5, 0.0], rng.standard_normal(500)])
    w = rng.uniform(0.0, 3.0, 500)
    return X, y, w


@pytest.mark.parametrize("with_y", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_one_pass_matches_two_pass_definition(data, with_y, weighted):
    X, y, w = data
    m = Moments.from_arrays(X, y if with_y else None, w if weighted else None)
    _assert_close(m, X, y if with_y else None, w if weighted else None)
    assert m.n_samples_ == 500 and m.n_features_ == 4
    assert (m.mean_y_ is None) == (not with_y)


def test_covariance_matches_numpy_and_the_exact_definition(data):
    # np.cov is float64 itself: gicho and NumPy are both held to the round-off bound of the
    # exact covariance (off-diagonal entries near zero differ in their last digits between
    # OpenBLAS kernels, so a relative tolerance on them measures the kernel)
    X, _, _ = data
    m = Moments.from_arrays(X)
    fw = np.arange(len(X)) % 3  # frequency weights: np.cov(fweights=...) with integer weights
    cases = [(m.covariance(), np.cov(X, rowvar=False), None, 1),
             (m.covariance(ddof=0), np.cov(X, rowvar=False, ddof=0), None, 0),
             (Moments.from_arrays(X, sample_weight=fw).covariance(),
              np.cov(X, rowvar=False, fweights=fw), fw, 1)]  # fmt: skip
    for ours, numpy_cov, w, ddof in cases:
        ref, bounds = _reference(X, None, w, bounds=True)
        divisor = ref["W"] - ddof
        want = ref["xx"] / divisor
        bound = bounds["xx"] / divisor + 2 * np.finfo(np.float64).eps * np.abs(want)  # + the division
        assert np.all(np.abs(ours - want) <= bound)
        assert np.all(np.abs(numpy_cov - want) <= bound)


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=300), min_size=0, max_size=6),
    weighted=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_any_chunking_gives_the_one_pass_result(cuts, weighted, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((300, 3)) * [1.0, 10.0, 0.1] + [3.0, -50.0, 1e3]
    y = X @ [1.0, 2.0, 3.0] + rng.standard_normal(300)
    w = rng.uniform(0.0, 2.0, 300) if weighted else None
    whole = Moments.from_arrays(X, y, w)
    bounds = [0, *sorted(cuts), 300]
    parts = [Moments().update(X[a:b], y[a:b], None if w is None else w[a:b]) for a, b in itertools.pairwise(bounds)]
    merged = Moments()
    for part in parts:
        merged.merge(part)
    streamed = Moments()
    for a, b in itertools.pairwise(bounds):
        streamed.update(X[a:b], y[a:b], None if w is None else w[a:b])
    for m in (merged, streamed):
        assert m.n_samples_ == 300
        # round-off: relative to the data's scale (|mean| / std up to 1e4 here)
        np.testing.assert_allclose(m.xx_, whole.xx_, rtol=1e-9, atol=1e-9 * np.abs(whole.xx_).max())
        np.testing.assert_allclose(m.xy_, whole.xy_, rtol=1e-9, atol=1e-9 * np.abs(whole.xy_).max())
        np.testing.assert_allclose(m.mean_x_, whole.mean_x_, rtol=1e-13)
        np.testing.assert_allclose(m.weight_sum_, whole.weight_sum_, rtol=1e-13)


def test_large_means_keep_their_precision():
    # mean 1e9, spread 1: the textbook sum(x^2) - n mean^2 loses every digit here
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((20_000, 3))
    shift = np.array([1e9, -3e8, 7e7])
    exact = Moments.from_arrays(Z)
    shifted = Moments.from_arrays(Z + shift)
    # the shifted data are Z + shift rounded to float64: compare with its exact two-pass value
    ref = _reference(Z + shift)
    np.testing.assert_allclose(shifted.xx_, ref["xx"], rtol=1e-9, atol=1e-9 * np.abs(ref["xx"]).max())
    # and the covariance of the spread survives to ~ eps * mean / std ~ 1e-7 relative
    np.testing.assert_allclose(shifted.covariance(), exact.covariance(), rtol=1e-5, atol=1e-5)
    naive = (Z + shift).T @ (Z + shift) - len(Z) * np.outer(shift + Z.mean(0), shift + Z.mean(0))
    assert np.abs(naive - exact.xx_).max() > 1e3 * np.abs(shifted.xx_ - exact.xx_).max()


def _paths(monkeypatch):
    """Record which shift each segment of gicho._gram used (None: raw, no shift)."""
    shifts = []
    original = gram._accumulate
    monkeypatch.setattr(gram, "_accumulate", lambda X, Y, rows, cx, cy: shifts.append(cx) or original(X, Y, rows, cx, cy))
    return shifts


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shift_in_stds", [0.0, 3.0, 9.0])
def test_raw_path_at_its_threshold_keeps_twelve_digits(shift_in_stds, dtype, monkeypatch):
    # |mean| up to ~10 standard deviations: the blocks are copied without a shift (float32
    # cast exactly to float64 in the copy; round-off <= 100x that of a centred product, against
    # the exact moments of the data as given)
    rng = np.random.default_rng(2)
    X = (rng.standard_normal((50_000, 4)) + shift_in_stds).astype(dtype)
    y = (X @ np.array([1.0, -2.0, 0.5, 3.0]) + rng.standard_normal(50_000)).astype(dtype)
    shifts = _paths(monkeypatch)
    fast = Moments.from_arrays(X, y)
    assert shifts and all(c is None for c in shifts), "the raw path was not taken"
    _assert_close(fast, X, y)


@pytest.mark.parametrize("offset", [30.0, 1e6])
def test_shifted_path_for_offset_data(offset, monkeypatch):
    # means 30 and 1e6 standard deviations out: each block is shifted by a provisional centre
    # (the segment's first rows' mean) before its product; the two-pass answer to ~1e-12
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((20_000, 5)) * [1.0, 2.0, 0.5, 3.0, 1.0]
    X = Z + offset * np.array([1.0, -2.0, 0.5, 3.0, 0.0])
    y = X @ np.array([1.0, -2.0, 0.5, 3.0, 1.0]) + rng.standard_normal(20_000)
    shifts = _paths(monkeypatch)
    m = Moments.from_arrays(X, y)
    assert shifts and all(c is not None for c in shifts)
    ref = _reference(X, y)
    np.testing.assert_allclose(m.xx_, ref["xx"], rtol=1e-11, atol=1e-11 * np.abs(ref["xx"]).max())
    np.testing.assert_allclose(m.mean_x_, ref["mx"], rtol=1e-13, atol=1e-13)  # std ~1: absolute
    np.testing.assert_allclose(m.xy_, ref["xy"], rtol=1e-11, atol=1e-11 * np.abs(ref["xy"]).max())
    np.testing.assert_allclose(m.yy_, ref["yy"], rtol=1e-11)
    # the covariance of the spread itself survives (what PCA and least squares use)
    np.testing.assert_allclose(m.covariance(), np.cov(Z, rowvar=False), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_segments_in_worker_threads_agree_with_one_segment(workers, offset, monkeypatch):
    # one segment per BLAS thread, reduced in worker threads and merged in row order
    rng = np.random.default_rng(4)
    X = rng.standard_normal((3000, 6)) + offset
    y = rng.standard_normal((3000, 2))
    monkeypatch.setattr(gram, "BLOCK_BYTES", 1)  # blocks of MIN_ROWS rows: several per segment
    monkeypatch.setattr(gram, "_blas_threads", lambda: workers)
    _assert_close(Moments.from_arrays(X, y), X, y)
    _assert_close(Moments.from_arrays(X.astype(np.float32)), X.astype(np.float32))


@pytest.mark.parametrize("offset", [0.0, 1e4])
@pytest.mark.parametrize("targets", [1, 4])
def test_block_products_summed_over_many_blocks(offset, targets, monkeypatch):
    # each block's Gram product is the upper triangle from SciPy's syrk, summed over the blocks
    # and mirrored at the end: both triangles within the round-off bound of the exact moments,
    # unshifted (offset 0) and shifted (1e4), with 1 and 4 targets (gemv and gemm)
    rng = np.random.default_rng(6)
    X = rng.standard_normal((5000, 7)) * np.arange(1.0, 8.0) + offset
    y = rng.standard_normal((5000, targets)) + X[:, :1]
    monkeypatch.setattr(gram, "BLOCK_BYTES", 1)  # ~20 blocks of MIN_ROWS rows
    shifts = _paths(monkeypatch)
    m = Moments.from_arrays(X, y)
    assert shifts and all((c is None) == (offset == 0.0) for c in shifts)
    _assert_close(m, X, y)


def test_worker_threads_restore_the_blas_setting(monkeypatch):
    from threadpoolctl import threadpool_info, threadpool_limits

    monkeypatch.setattr(gram, "BLOCK_BYTES", 1)
    X = np.random.default_rng(5).standard_normal((2000, 3))
    with threadpool_limits(limits=3, user_api="blas"):
        before = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
        Moments.from_arrays(X)
        after = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert before == after and max(before, default=3) == 3


def test_all_paths_agree(data, monkeypatch):
    X, y, _ = data
    fast = Moments.from_arrays(X, y)
    monkeypatch.setattr(gram, "_near_zero", lambda M: False)  # shifted copies, never in place
    shifted = Moments.from_arrays(X, y)
    monkeypatch.setattr(gram, "FRACTION", -1.0)  # every check fails: block-by-block centring
    calls = []
    original = gm.Moments._centred_blocks
    monkeypatch.setattr(gm.Moments, "_centred_blocks", lambda self, *a: calls.append(1) or original(self, *a))
    blocks = Moments.from_arrays(X, y)
    assert calls
    for m in (fast, shifted, blocks):  # each within its round-off bound of the exact moments
        _assert_close(m, X, y)


def test_drifting_and_shifted_data_in_small_blocks(monkeypatch):
    # a segment's shift is its first rows' mean; when the data drift (a trend, sorted rows) or
    # jump the check fails and the segment is redone about its mean, or block by block
    monkeypatch.setattr(gm, "_BLOCK_BYTES", 1)  # blocks of _MIN_BLOCK_ROWS rows
    monkeypatch.setattr(gram, "BLOCK_BYTES", 1)
    rng = np.random.default_rng(2)
    n = 5000
    trend = np.arange(n) * 1e3 + rng.standard_normal(n)
    jump = np.where(np.arange(n) < 2500, 0.0, 1e8) + rng.standard_normal(n)
    level = 1e6 + rng.standard_normal(n)
    X = np.column_stack([trend, jump, level, np.sort(rng.standard_normal(n))])
    y = X @ [1e-3, 1e-8, 1.0, 2.0] + rng.standard_normal(n)
    w = rng.uniform(0.5, 1.5, n)
    for weights in (None, w):
        _assert_close(Moments.from_arrays(X, y, weights), X, y, weights)


def test_small_blocks_and_float32_input(data, monkeypatch):
    X, y, w = data
    monkeypatch.setattr(gm, "_BLOCK_BYTES", 1)  # every block is _MIN_BLOCK_ROWS rows
    monkeypatch.setattr(gram, "BLOCK_BYTES", 1)
    _assert_close(Moments.from_arrays(X, y, w), X, y, w)
    X32 = X.astype(np.float32)
    m32 = Moments.from_arrays(X32)  # accumulated in float64
    _assert_close(m32, X32)
    assert m32.xx_.dtype == np.float64


def test_zero_weights_and_empty_chunks(data):
    X, y, w = data
    w0 = w.copy()
    w0[:100] = 0.0
    m = Moments.from_arrays(X, y, w0)
    _assert_close(m, X[100:], y[100:], w0[100:])
    assert m.n_samples_ == 500  # rows seen, weighted or not
    before = m.xx_.copy()
    m.update(X[:0], y[:0], w0[:0])
    np.testing.assert_array_equal(m.xx_, before)
    only_zero = Moments().update(X[:10], y[:10], np.zeros(10))
    assert only_zero.weight_sum_ == 0.0 and only_zero.n_samples_ == 10
    with pytest.raises(ValueError, match="not enough samples"):
        only_zero.covariance()


def test_merge_into_empty_and_y_vector_shape(data):
    X, y, _ = data
    a = Moments.from_arrays(X[:200], y[:200, 0])
    b = Moments.from_arrays(X[200:], y[200:, 0])
    m = Moments().merge(a).merge(b)
    assert m.y_ndim_ == 1 and m.mean_y_.shape == (1,)
    _assert_close(m, X, y[:, 0])
    np.testing.assert_allclose(m.gram(center=False), X.T @ X, rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_tensors(data, dtype):
    X, y, w = data
    m = Moments.from_arrays(torch.tensor(X, dtype=dtype), torch.tensor(y, dtype=dtype), torch.tensor(w))
    assert m.is_torch and m.xx_.dtype == torch.float64 and m.xx_.device == torch.device("cpu")
    # float32 tensors: the products run in float32 (its unit round-off), on the rounded data
    if dtype == torch.float32:
        X32, y32 = X.astype(np.float32), y.astype(np.float32)
        _assert_close(m.to_numpy(), X32, y32, w, unit=float(np.finfo(np.float32).eps) / 2)
    else:
        _assert_close(m.to_numpy(), X, y, w)
    # a torch accumulator takes NumPy chunks and NumPy moments (converted to its device)
    m2 = Moments().update(torch.tensor(X[:100])).update(X[100:])
    m2.merge(Moments())
    _assert_close(m2.to_numpy(), X)
    np_side = Moments.from_arrays(X[:100]).merge(Moments.from_arrays(torch.tensor(X[100:])))
    _assert_close(np_side, X)


# ---------------------------------------------------------------------------- bad input
def test_nonfinite_input_is_rejected(data):
    X, y, w = data
    Xn = X.copy()
    Xn[3, 1] = np.nan
    Xn[7, 0] = np.inf
    with pytest.raises(ValueError, match=r"`X` contains 1 NaN and 1 infinite"):
        Moments.from_arrays(Xn)
    yn = y.copy()
    yn[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"`y` contains 1 NaN"):
        Moments.from_arrays(X, yn)
    with pytest.raises(ValueError, match=r"`X` contains 1 NaN"):  # weighted path too
        Moments.from_arrays(np.where(np.isinf(Xn), 0.0, Xn), y, w)
    with pytest.raises(ValueError, match=r"`X` contains 1 NaN"):  # torch path
        Moments.from_arrays(torch.tensor(np.where(np.isinf(Xn), 0.0, Xn)))
    with pytest.raises(ValueError, match="overflow"):
        Moments.from_arrays(np.full((4, 2), 1e300) * [[1.0, -1.0]] * np.arange(1, 5)[:, None])


def test_a_failed_update_leaves_the_accumulator_unchanged(data, monkeypatch):
    X, y, _ = data
    monkeypatch.setattr(gm, "_BLOCK_BYTES", 1)  # blocks of 256 rows: the NaN is in the 2nd
    monkeypatch.setattr(gram, "BLOCK_BYTES", 1)
    m = Moments.from_arrays(X[:100], y[:100])
    before = {k: np.copy(v) for k, v in vars(m).items() if isinstance(v, np.ndarray)}
    bad = X.copy()
    bad[400, 0] = np.nan
    with pytest.raises(ValueError, match=r"`X` contains 1 NaN"):
        m.update(bad, y)
    assert m.n_samples_ == 100
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(m, name), value)


def test_shape_and_weight_errors(data):
    X, y, w = data
    with pytest.raises(ValueError, match=r"`X` must have 2 dimension\(s\); got 1"):
        Moments.from_arrays(X[:, 0])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        Moments.from_arrays(X, y[:10])
    with pytest.raises(ValueError, match=r"`sample_weight` contains 1 negative"):
        Moments.from_arrays(X, y, np.where(np.arange(500) == 4, -1.0, w))
    with pytest.raises(ValueError, match="is empty"):
        Moments.from_arrays(X[:0])
    with pytest.raises((TypeError, ValueError), match="complex"):
        Moments.from_arrays(X.astype(complex))
    m = Moments.from_arrays(X, y)
    with pytest.raises(ValueError, match="has 3 feature"):
        m.update(X[:, :3], y)
    with pytest.raises(ValueError, match="every update or on none"):
        m.update(X)
    with pytest.raises(ValueError, match="has 1 target"):
        m.update(X, y[:, 0])
    with pytest.raises(ValueError, match="cannot merge moments of 2 feature"):
        m.merge(Moments.from_arrays(X[:, :2], y))
    with pytest.raises(ValueError, match="with y into moments without y"):
        m.merge(Moments.from_arrays(X))
    with pytest.raises(TypeError, match="must be a Moments"):
        m.merge(X)
    with pytest.raises(ValueError, match=r"`ddof` must be an integer >= 0"):
        m.covariance(ddof=-1)
    with pytest.raises(ValueError, match="not enough samples for a covariance with ddof=1"):
        Moments.from_arrays(X[:1]).covariance()
    with pytest.raises(ValueError, match="moments are empty"):
        Moments().gram()
    with pytest.raises(TypeError, match="hold NumPy state"):
        Moments.from_arrays(X).update(torch.tensor(X))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 30), min_size=1, max_size=6),
    st.floats(-1e6, 1e6),
    st.booleans(),
)
def test_merged_r_factor_is_the_r_factor_of_all_rows(sizes, offset, weighted):
    """R^T R of the streamed factor equals the centred (weighted) Gram matrix of [X, y]."""
    rng = np.random.default_rng(len(sizes))
    n = sum(sizes)
    X = rng.normal(size=(n, 3)) + offset
    y = X @ [1.0, -1.0, 0.5] + rng.normal(size=n)
    w = rng.uniform(0.1, 2.0, n) if weighted else None
    m = Moments(track_r=True)
    start = 0
    for size in sizes:
        m.update(X[start:start + size], y[start:start + size], None if w is None else w[start:start + size])
        start += size
    ww = np.ones(n) if w is None else w
    Z = np.column_stack([X, y])
    Zc = (Z - np.average(Z, axis=0, weights=ww)) * np.sqrt(ww)[:, None]
    np.testing.assert_allclose(m.r_.T @ m.r_, Zc.T @ Zc, rtol=1e-8, atol=1e-8 * np.abs(Zc.T @ Zc).max())
    assert Moments().update(X, y).r_ is None  # opt-in: PCA and plain moments pay nothing



@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(("offset", "noise", "route"), [(0.0, 1.0, "gram"), (1e4, 1.0, "gram"),
                                                        (0.0, 1e-4, "cholqr"), (1e4, 1e-4, "cholqr")])
def test_fast_chunk_r_is_the_householder_r_factor(monkeypatch, weighted, offset, noise, route):
    """Issue 24 item 1: a chunk's R from its Gram matrix (ordinary data) or by Cholesky QR (a
    near-perfect fit, R^2 = 1 - 4e-9) is the R factor that the chunk's Householder QR (the
    plain route) gives."""
    from gicho.moments import _tsqr

    rng = np.random.default_rng(7)
    X = rng.normal(size=(2000, 6)) + offset
    y = X @ rng.normal(size=6) + noise * rng.normal(size=2000)
    w = rng.uniform(0.1, 2.0, 2000) if weighted else None
    part = Moments().update(X, y, w)
    tau = _tsqr.gram_cholesky(part.xx_, part.xy_, part.yy_)[1]
    assert (tau <= _tsqr.GRAM_TOL) == (route == "gram") and tau <= _tsqr.CHOLQR_TOL
    plain = _tsqr.chunk_r(X, y[:, None], w, part.mean_x_, part.mean_y_)
    monkeypatch.setattr(_tsqr, "chunk_r", None)  # the Householder QR must not run
    fast = _tsqr.fast_chunk_r(X, y[:, None], w, part.mean_x_, part.mean_y_, part.xx_, part.xy_, part.yy_)
    np.testing.assert_allclose(fast, plain, rtol=1e-10, atol=1e-10 * np.abs(plain).max())
    # the residual sum of squares (the last diagonal entry squared) to the same relative accuracy
    assert fast[-1, -1] ** 2 == pytest.approx(plain[-1, -1] ** 2, rel=1e-10)
    np.testing.assert_array_equal(Moments(track_r=True).update(X, y, w).r_, fast)


def test_fast_chunk_r_refuses_what_its_gram_matrix_cannot_resolve():
    """Exact-to-1e-8 fits, nearly dependent or constant columns and short chunks fail both
    bounds: those chunks keep the Householder QR (the route the near-perfect-fit tests take)."""
    from gicho.moments import _tsqr

    rng = np.random.default_rng(8)
    X = rng.normal(size=(500, 3))
    cases = {
        "near-perfect fit": (X, X @ [1.0, 2.0, 3.0] + 1e-8 * rng.normal(size=500)),
        "dependent columns": (np.column_stack([X, X[:, 0] + 1e-9 * X[:, 1]]), rng.normal(size=500)),
        "constant column": (np.column_stack([X, np.full(500, 2.0)]), rng.normal(size=500)),
        "fewer rows than columns": (X[:3], rng.normal(size=3)),
    }
    for name, (Xc, yc) in cases.items():
        part = Moments().update(Xc, yc)
        assert _tsqr.gram_cholesky(part.xx_, part.xy_, part.yy_)[1] > _tsqr.CHOLQR_TOL, name
    # the bound is the docstring's: tau = q * GRAM_ENTRY_ERROR / lambda_min(A)
    y = X @ [1.0, 2.0, 3.0] + 0.3 * rng.normal(size=500)
    part = Moments().update(X, y)
    G = np.block([[part.xx_, part.xy_], [part.xy_.T, part.yy_]])
    d = np.sqrt(np.diagonal(G))
    lam = np.linalg.eigvalsh(G / np.outer(d, d))[0]
    R, tau = _tsqr.gram_cholesky(part.xx_, part.xy_, part.yy_)
    assert tau == pytest.approx(4 * _tsqr.GRAM_ENTRY_ERROR / lam, rel=1e-6)
    np.testing.assert_allclose(R.T @ R, G, rtol=1e-12, atol=1e-12 * np.abs(G).max())
