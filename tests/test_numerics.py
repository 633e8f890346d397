"""gicho.numerics: parity with SciPy and torch, behaviour at the extremes, properties, errors."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.special
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gicho.numerics import log_softmax, logsumexp, softmax

RTOL = 1e-12
FUNCTIONS = [softmax, log_softmax, logsumexp]
SCIPY = {softmax: scipy.special.softmax, log_softmax: scipy.special.log_softmax,
         logsumexp: scipy.special.logsumexp}
TORCH = {softmax: torch.softmax, log_softmax: torch.log_softmax, logsumexp: torch.logsumexp}


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ---------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("shape", "axis"),
    [((7,), -1), ((40, 300), -1), ((40, 300), 0), ((6, 5, 700), (0, 2)), ((6, 5, 7), None),
     ((300, 400), 1)],  # (300, 400) spans several of the NumPy path's blocks
)
@pytest.mark.parametrize("temperature", [1.0, 0.25, 3.0])
def test_matches_scipy_float64(fn, shape, axis, temperature):
    x = np.random.default_rng(0).normal(scale=5.0, size=shape)
    got = fn(x, axis=axis, temperature=temperature)
    want = SCIPY[fn](x / temperature, axis=axis)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-12)
    assert isinstance(got, np.ndarray | np.float64) and got.dtype == np.float64


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
def test_matches_torch_and_returns_tensor(fn):
    x = torch.randn(8, 33, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 4
    got = fn(x, axis=1, temperature=0.5)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    torch.testing.assert_close(got, TORCH[fn](x / 0.5, 1), rtol=RTOL, atol=1e-12)
    # the same numbers as the NumPy path. log_softmax = z - logsumexp(z) cancels near its
    # maximum (-2.7e-4 here), so relative agreement there is not a round-off property: each
    # path is within ~(n + 2) u (max|z| + 1) of the exact value (n = 33 exponentials summed,
    # one subtraction, one log; Higham's gamma_n), the two within twice that, absolutely
    z_max = float(np.abs(x.numpy() / 0.5).max())
    atol = 2 * (x.shape[1] + 2) * np.finfo(np.float64).eps / 2 * (z_max + 1) if fn is log_softmax else 0.0
    np.testing.assert_allclose(got.numpy(), fn(x.numpy(), axis=1, temperature=0.5), rtol=RTOL, atol=atol)


def test_torch_several_axes_match_numpy():
    x = torch.randn(3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for fn in FUNCTIONS:
        np.testing.assert_allclose(fn(x, axis=(0, 2)).numpy(), fn(x.numpy(), axis=(0, 2)), rtol=RTOL)
    np.testing.assert_allclose(logsumexp(x, axis=None).item(), scipy.special.logsumexp(x.numpy()))


def test_default_axis_is_last_for_all_three():
    x = np.random.default_rng(2).normal(size=(3, 4))
    np.testing.assert_allclose(logsumexp(x), scipy.special.logsumexp(x, axis=-1), rtol=RTOL)
    assert logsumexp(x, keepdims=True).shape == (3, 1)
    np.testing.assert_allclose(softmax(x).sum(axis=1), 1.0, rtol=RTOL)


# ------------------------------------------------------------------------------- extremes


def test_large_scores_give_exact_one_hot_without_warnings(no_warnings):
    np.testing.assert_array_equal(softmax([2000.0, 0.0]), [1.0, 0.0])
    np.testing.assert_array_equal(softmax([1e308, -1e308]), [1.0, 0.0])
    np.testing.assert_array_equal(log_softmax([0.0, -2000.0]), [0.0, -2000.0])  # no -inf
    assert logsumexp([2000.0, 2000.0]) == pytest.approx(2000.0 + np.log(2.0), rel=RTOL)
    assert softmax(torch.tensor([2000.0, 0.0])).tolist() == [1.0, 0.0]


def test_minus_inf_entries_get_probability_zero(no_warnings):
    p = softmax([0.0, -np.inf, 0.0])
    np.testing.assert_array_equal(p, [0.5, 0.0, 0.5])
    np.testing.assert_array_equal(log_softmax([0.0, -np.inf]), [0.0, -np.inf])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_empty_rows_give_zeros_minus_inf_and_minus_inf(backend, no_warnings):
    """All -inf, all masked and zero-length rows: softmax 0, log_softmax -inf, logsumexp -inf."""
    x = np.array([[1.0, 2.0, 3.0], [-np.inf, -np.inf, -np.inf], [4.0, 5.0, 6.0]])
    where = np.array([[True, True, False], [True, True, True], [False, False, False]])
    if backend == "torch":
        x, where = torch.from_numpy(x), torch.from_numpy(where)
    to_np = np.asarray
    p = to_np(softmax(x, where=where))
    np.testing.assert_allclose(p[0], [*scipy.special.softmax([1.0, 2.0]), 0.0], rtol=RTOL)
    np.testing.assert_array_equal(p[1:], 0.0)
    lp = to_np(log_softmax(x, where=where))
    assert np.isneginf(lp[0, 2]) and np.isneginf(lp[1:]).all()
    np.testing.assert_array_equal(to_np(logsumexp(x, where=where))[1:], -np.inf)

    empty = np.zeros((2, 0)) if backend == "numpy" else torch.zeros(2, 0)
    assert to_np(softmax(empty)).shape == (2, 0)
    np.testing.assert_array_equal(to_np(logsumexp(empty)), [-np.inf, -np.inf])


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
def test_gradients_are_finite_for_a_fully_masked_row(fn):
    scores = torch.randn(3, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1] = False  # row 1 fully masked
    mask[2, :2] = False
    out = fn(scores, where=mask)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out.masked_fill(torch.isinf(out), 0.0) * weights).sum().backward()
    assert torch.isfinite(scores.grad).all()
    torch.testing.assert_close(scores.grad[1], torch.zeros(5))
    # unmasked rows have the reference gradient
    ref = scores.detach().clone().requires_grad_(True)
    out_ref = TORCH[fn](ref[0], 0)
    (out_ref * weights[0]).sum().backward()
    torch.testing.assert_close(scores.grad[0], ref.grad[0])


def test_nan_propagates_to_its_row_only(no_warnings):
    x = np.array([[np.nan, 0.0], [1.0, 2.0]])
    assert np.isnan(softmax(x)[0]).all() and np.isnan(log_softmax(x)[0]).all()
    assert np.isnan(logsumexp(x)[0])
    np.testing.assert_allclose(softmax(x)[1], scipy.special.softmax([1.0, 2.0]), rtol=RTOL)
    t = torch.tensor(x)
    assert torch.isnan(softmax(t)[0]).all() and torch.isnan(logsumexp(t)[0])


def test_plus_inf_gives_inf_logsumexp_and_nan_softmax(no_warnings):
    """As in SciPy and torch."""
    x = [np.inf, 0.0]
    assert logsumexp(x) == np.inf and logsumexp(torch.tensor(x)).item() == np.inf
    assert np.isnan(softmax(x)).all() and torch.isnan(softmax(torch.tensor(x))).all()


def test_half_precision_is_accumulated_in_float32():
    x32 = np.random.default_rng(3).normal(scale=3.0, size=(4, 5000)).astype(np.float32)
    x16 = x32.astype(np.float16)
    for fn in FUNCTIONS:
        got = fn(x16)
        assert got.dtype == np.float16
        want = fn(x16.astype(np.float32)).astype(np.float16)
        np.testing.assert_array_equal(got, want)
    for dtype in (torch.float16, torch.bfloat16):
        t = torch.from_numpy(x32).to(dtype)
        for fn in FUNCTIONS:
            got = fn(t)
            assert got.dtype == dtype
            torch.testing.assert_close(got, TORCH[fn](t.float(), -1).to(dtype), rtol=0, atol=0)
    # 10⁴ equal entries: a float16 running sum would stop at 2048
    np.testing.assert_array_equal(softmax(np.zeros(10_000, np.float16)), np.float16(1e-4))


def test_integer_input_and_scalars():
    assert softmax([1, 2, 3]).dtype == np.float64
    assert softmax(torch.tensor([1, 2, 3])).dtype == torch.get_default_dtype()
    assert softmax(3.0, axis=None) == 1.0 and logsumexp(3.0, axis=None) == 3.0
    assert isinstance(logsumexp([1.0, 2.0]), np.float64)


def test_temperature_divides_the_scores():
    x = np.array([1.0, 2.0, 4.0])
    np.testing.assert_allclose(softmax(x, temperature=2.0), softmax(x / 2.0), rtol=RTOL)
    assert softmax(x, temperature=1e-3)[2] == 1.0  # sharpens towards argmax
    np.testing.assert_allclose(softmax(x, temperature=1e6), 1 / 3, rtol=1e-5)  # flattens


def test_where_broadcasts_over_rows():
    x = np.random.default_rng(4).normal(size=(3, 4))
    keep = np.array([True, False, True, True])
    p = softmax(x, where=keep)
    np.testing.assert_allclose(p[:, keep], scipy.special.softmax(x[:, keep], axis=1), rtol=RTOL)
    assert (p[:, 1] == 0).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_stay_on_their_device():
    x = torch.randn(64, 128, device="cuda", dtype=torch.float32)
    mask = torch.rand(64, 128, device="cuda") > 0.3
    mask[0] = False
    for fn in FUNCTIONS:
        got = fn(x, where=mask)
        assert got.device == x.device
        torch.testing.assert_close(got.cpu(), fn(x.cpu(), where=mask.cpu()), rtol=1e-5, atol=1e-6)
    assert softmax(x.half()).dtype == torch.float16


def test_module_does_not_import_torch():
    code = "import sys, gicho.numerics; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ------------------------------------------------------------------------------ properties

rows = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=12),
    elements=st.floats(-100, 100),
)


@settings(max_examples=60, deadline=None)
@given(rows, st.floats(-1e3, 1e3))
def test_softmax_sums_to_one_and_is_shift_invariant(x, c):
    p = softmax(x)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-13)
    assert (p >= 0).all()
    np.testing.assert_allclose(softmax(x + c), p, rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(rows)
def test_log_softmax_is_log_of_softmax(x):
    p = softmax(x)
    normal = p > np.finfo(np.float64).tiny  # log of a subnormal has lost digits
    np.testing.assert_allclose(log_softmax(x)[normal], np.log(p[normal]), rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(rows, st.floats(-1e3, 1e3))
def test_logsumexp_shifts_with_its_input(x, c):
    np.testing.assert_allclose(logsumexp(x + c), logsumexp(x) + c, rtol=1e-12, atol=1e-9)


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_temperature_must_be_positive(fn, bad):
    with pytest.raises(ValueError, match=r"`temperature` must be a finite number > 0"):
        fn([1.0, 2.0], temperature=bad)
    with pytest.raises(ValueError, match=r"`temperature`"):
        fn(torch.tensor([1.0, 2.0]), temperature=bad)


def test_temperature_must_be_a_number():
    with pytest.raises(TypeError, match=r"`temperature` must be a number"):
        softmax([1.0, 2.0], temperature="hot")


@pytest.mark.parametrize("backend", [np.asarray, torch.tensor])
def test_where_must_be_boolean_and_broadcast(backend):
    x = backend([[1.0, 2.0, 3.0]])
    with pytest.raises(TypeError, match=r"`where` must be a boolean"):
        softmax(x, where=backend([[1, 0, 1]]))
    with pytest.raises(ValueError, match=r"`where` has shape \(2,\), which does not broadcast"):
        softmax(x, where=backend([True, False]))
    with pytest.raises(ValueError, match=r"`where` has shape \(2, 3\)"):  # may not enlarge x
        softmax(x, where=backend([[True] * 3] * 2))


@pytest.mark.parametrize(
    ("axis", "error", "match"),
    [(2, ValueError, r"`axis` = 2 is out of range for an input with 2 dimension"),
     ((0, -2), ValueError, r"names the same axis more than once"),
     ((), ValueError, r"`axis` is an empty tuple"),
     (1.0, TypeError, r"`axis` must be an int, a tuple of ints or None")],
)
def test_bad_axis(axis, error, match):
    for x in (np.zeros((2, 3)), torch.zeros(2, 3)):
        with pytest.raises(error, match=match):
            logsumexp(x, axis=axis)


def test_complex_input_is_rejected():
    with pytest.raises(TypeError, match=r"`x` must be a real-valued array; got dtype complex128"):
        softmax(np.array([1 + 1j, 2.0]))
    with pytest.raises(TypeError, match=r"`x` must be a real-valued tensor"):
        softmax(torch.tensor([1 + 1j, 2.0]))


# ---------------------------------------------------------------------------- findings 2026-11-30
def test_logsumexp_keeps_tails_below_eps():
    """Peers' suite (SciPy gh-18295): log(1 + s) rounds s < eps away; log1p(s) does not."""
    want = scipy.special.logsumexp([0.0, -40.0])  # SciPy's correctly rounded 4.248354255291589e-18
    assert want == pytest.approx(np.exp(-40.0), rel=1e-15)  # log1p(e^-40) = e^-40 to 1e-17
    assert logsumexp([0.0, -40.0]) == want
    assert float(logsumexp(torch.tensor([0.0, -40.0], dtype=torch.float64))) == want
    np.testing.assert_array_equal(log_softmax([0.0, -40.0]), [-want, -40.0 - want])
    # ties at the max: log(2 + s)
    assert logsumexp([3.0, 3.0, -50.0]) == pytest.approx(3.0 + np.log1p(1.0 + np.exp(-53.0 + 3.0)), rel=1e-15)


def test_torch_several_axes_subtract_the_max():
    """Findings rows 6-9: several axes and tiny temperatures lost the shift on the torch path."""
    out = softmax(torch.tensor([[3e7, 3e7]]), axis=(0, 1))
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.5]]))
    out = softmax(torch.full((2, 2), 5.0), axis=None, temperature=1e-7)
    torch.testing.assert_close(out, torch.full((2, 2), 0.25))
    out = softmax(torch.tensor([1e10, 0.0], dtype=torch.float64), temperature=1e-300)
    torch.testing.assert_close(out, torch.tensor([1.0, 0.0], dtype=torch.float64))
    for fn in (softmax, log_softmax):
        assert torch.isnan(fn(torch.tensor([[np.inf, 1.0, 2.0]]), axis=(0, 1))).all()
        assert torch.isnan(fn(torch.tensor([[np.inf, 1.0, 2.0]]))).all()
    assert float(logsumexp(torch.tensor([[np.inf, 1.0]]), axis=None)) == np.inf


_finite_or_not = st.one_of(
    st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False),
    st.sampled_from([np.inf, -np.inf, np.nan, 0.0, 3e7, -3e7, 1e308]),
)


@settings(max_examples=300, deadline=None)
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), elements=_finite_or_not),
    st.sampled_from([None, -1, 0, (0, -1)]),
    st.sampled_from([1.0, 1e-300, 1e-7, 0.5, 3.0, 1e300]),
    st.sampled_from(FUNCTIONS),
)
def test_torch_and_numpy_paths_agree(x, axis, temperature, fn):
    """Every input, both backends: the same numbers (NaN where NumPy has NaN)."""
    if isinstance(axis, tuple) and x.ndim < 2:
        axis = -1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        want = np.asarray(fn(x, axis=axis, temperature=temperature))
        got = fn(torch.tensor(x), axis=axis, temperature=temperature).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, equal_nan=True)


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
def test_ragged_input_names_the_argument(fn):
    """Findings row 4: numpy's 'inhomogeneous shape' message, without the argument's name."""
    with pytest.raises(TypeError, match=r"argument `x` must be a numeric array-like.*inhomogeneous"):
        fn([[1.0, 2.0], [3.0]])


def test_float16_log_softmax_below_the_range_is_minus_inf_without_warning(no_warnings):
    """Findings row 5: 'overflow encountered in cast' leaked for log-probabilities < -65504."""
    out = log_softmax(np.array([0.0, -6e4], dtype=np.float16), temperature=0.5)  # -1.2e5 in float32
    assert out.dtype == np.float16 and out[0] == 0 and out[1] == -np.inf
