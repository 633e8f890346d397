"""Tests for gicho.nn.attention: fused vs explicit paths, naive reference, masks, modules."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gicho.nn.attention import (
    AdditiveAttention,
    DotAttention,
    GeneralAttention,
    MultiHeadSelfAttention,
    dot_product_attention,
    masked_softmax,
    scaled_dot_product_attention,
)

TOL = 1e-6


def naive_attention(q, k, v, mask=None, scale=None):
    """softmax(q kᵀ · scale) v written out in float64 with -inf masking (rows with a key)."""
    q, k, v = q.double(), k.double(), v.double()
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def random_mask(shape, generator, p=0.6):
    return torch.rand(shape, generator=generator) < p


@pytest.fixture
def qkv():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 5, 8, generator=g)
    k = torch.randn(2, 3, 7, 8, generator=g)
    v = torch.randn(2, 3, 7, 4, generator=g)
    return q, k, v


@pytest.mark.parametrize("mask_shape", [None, (2, 1, 1, 7), (2, 3, 5, 7), (5, 7)])
def test_fused_explicit_and_naive_agree(qkv, mask_shape):
    q, k, v = qkv
    mask = None
    if mask_shape is not None:
        mask = random_mask(mask_shape, torch.Generator().manual_seed(1))
        mask[..., 0] = True  # every row keeps one key so the naive reference is defined
    out_e, w = scaled_dot_product_attention(q, k, v, mask)
    out_f, w_none = scaled_dot_product_attention(q, k, v, mask, need_weights=False)
    ref_out, ref_w = naive_attention(q, k, v, mask)
    assert w_none is None
    torch.testing.assert_close(out_e, out_f, atol=TOL, rtol=0)
    torch.testing.assert_close(out_e.double(), ref_out, atol=TOL, rtol=0)
    torch.testing.assert_close(w.double(), ref_w, atol=TOL, rtol=0)


def test_custom_scale_and_unscaled_dot(qkv):
    q, k, v = qkv
    out, w = dot_product_attention(q, k, v)
    ref_out, ref_w = naive_attention(q, k, v, scale=1.0)
    torch.testing.assert_close(out.double(), ref_out, atol=TOL, rtol=0)
    torch.testing.assert_close(w.double(), ref_w, atol=TOL, rtol=0)
    out_s, _ = scaled_dot_product_attention(q, k, v, scale=1.0, need_weights=False)
    torch.testing.assert_close(out_s, out, atol=TOL, rtol=0)


@pytest.mark.parametrize("need_weights", [True, False])
def test_fully_masked_row_gives_zeros_and_finite_gradients(qkv, need_weights):
    q, k, v = (t.clone().requires_grad_(True) for t in qkv)
    mask = torch.ones(2, 3, 5, 7, dtype=torch.bool)
    mask[0, 1, 2] = False  # one query row sees no key
    mask[1, :, :, 3:] = False
    out, w = scaled_dot_product_attention(q, k, v, mask, need_weights=need_weights)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0, 1, 2], torch.zeros(4))
    if need_weights:
        assert torch.equal(w[0, 1, 2], torch.zeros(7))
    (out.square().sum()).backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert torch.equal(q.grad[0, 1, 2], torch.zeros(8))  # the dead row receives no gradient
    # Rows with keys are unaffected by the dead row: compare with the naive reference.
    ref, _ = naive_attention(*(t.detach() for t in (q, k, v)), mask)
    alive = mask.any(-1)
    torch.testing.assert_close(out.detach().double()[alive], ref[alive], atol=TOL, rtol=0)


def test_fused_and_explicit_gradients_agree(qkv):
    mask = random_mask((2, 1, 5, 7), torch.Generator().manual_seed(2))
    mask[0, 0, 0] = False
    grads = []
    for need_weights in (True, False):
        q, k, v = (t.clone().requires_grad_(True) for t in qkv)
        out, _ = scaled_dot_product_attention(q, k, v, mask, need_weights=need_weights)
        out.sum().backward()
        grads.append((q.grad, k.grad, v.grad))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_masked_softmax_zero_row():
    scores = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[True, False, True], [False, False, False]])
    w = masked_softmax(scores, mask)
    expected = torch.softmax(torch.tensor([1.0, 3.0]), -1)
    torch.testing.assert_close(w[0, [0, 2]], expected)
    assert w[0, 1] == 0 and torch.equal(w[1], torch.zeros(3))


def test_dropout_only_in_training(qkv):
    q, k, v = qkv
    eval_out, _ = scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=False)
    ref, _ = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(eval_out, ref)
    torch.manual_seed(0)
    train_out, _ = scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=True)
    assert not torch.allclose(train_out, ref)


def test_mask_errors(qkv):
    q, k, v = qkv
    with pytest.raises(TypeError, match="boolean tensor"):
        scaled_dot_product_attention(q, k, v, torch.ones(5, 7))
    with pytest.raises(ValueError, match=r"shape \(5, 6\) cannot be broadcast"):
        scaled_dot_product_attention(q, k, v, torch.ones(5, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"shape \(5, 6\) cannot be broadcast"):
        scaled_dot_product_attention(
            q, k, v, torch.ones(5, 6, dtype=torch.bool), need_weights=False
        )
    with pytest.raises(ValueError, match="same last dimension"):
        dot_product_attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="same number of keys"):
        dot_product_attention(q, k, v[..., :3, :])


# --- score modules -------------------------------------------------------------------------


def _modules():
    torch.manual_seed(0)
    return [DotAttention(), GeneralAttention(6, 6), AdditiveAttention(6, 6, 10)]


@pytest.mark.parametrize("module", _modules(), ids=["dot", "general", "additive"])
@pytest.mark.parametrize("mask_kind", ["none", "padding", "full"])
def test_score_modules_shapes_and_weights(module, mask_kind):
    g = torch.Generator().manual_seed(3)
    query, keys, values = (
        torch.randn(2, 4, 6, generator=g),
        torch.randn(2, 5, 6, generator=g),
        torch.randn(2, 5, 3, generator=g),
    )
    mask = None
    if mask_kind == "padding":
        mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    elif mask_kind == "full":
        mask = random_mask((2, 4, 5), g)
        mask[0, 0] = False
    context, weights = module(query, keys, values, mask)
    assert context.shape == (2, 4, 3) and weights.shape == (2, 4, 5)
    full = (
        torch.ones(2, 4, 5, dtype=torch.bool)
        if mask is None
        else (mask[:, None].expand(2, 4, 5) if mask.ndim == 2 else mask)
    )
    assert torch.all(weights[~full] == 0)
    sums = weights.sum(-1)
    has_key = full.any(-1)
    torch.testing.assert_close(sums[has_key], torch.ones(int(has_key.sum())))
    assert torch.all(sums[~has_key] == 0)
    torch.testing.assert_close(context, weights @ values)


def test_score_module_formulas():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 3), torch.randn(1, 4, 5), torch.randn(1, 4, 2)
    general = GeneralAttention(3, 5)
    _, w = general(q, k, v)
    W = general.weight.weight  # (Dq, Dk)
    torch.testing.assert_close(w, torch.softmax(q @ W @ k.transpose(1, 2), -1))
    additive = AdditiveAttention(3, 5, 7)
    _, w = additive(q, k, v)
    Wcat = torch.cat([additive.query_proj.weight, additive.key_proj.weight], dim=1)  # (H, Dq+Dk)
    scores = torch.empty(1, 2, 4)
    for i in range(2):
        for j in range(4):
            concat = torch.cat([q[0, i], k[0, j]])
            scores[0, i, j] = additive.v.weight[0] @ torch.tanh(
                Wcat @ concat + additive.key_proj.bias
            )
    torch.testing.assert_close(w, torch.softmax(scores, -1))
    _, w = DotAttention()(q, q, q)
    torch.testing.assert_close(w, torch.softmax(q @ q.transpose(1, 2), -1))


def test_score_module_errors():
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 6), torch.randn(2, 5, 2)
    with pytest.raises(ValueError, match="dimensions to match; got 4 and 6"):
        DotAttention()(q, k, v)
    with pytest.raises(ValueError, match=r"mask must have shape \(B, Tk\) = \(2, 5\)"):
        GeneralAttention(4, 6)(q, k, v, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean tensor"):
        GeneralAttention(4, 6)(q, k, v, torch.ones(2, 5))
    with pytest.raises(ValueError, match="must be 3-D"):
        GeneralAttention(4, 6)(q[0], k, v)


@settings(max_examples=30, deadline=None)
@given(
    tq=st.integers(1, 5),
    tk=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    scale=st.floats(0.1, 30.0),
)
def test_weights_rows_sum_to_one_property(tq, tk, seed, scale):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, t, 4, generator=g) * scale for t in (tq, tk, tk))
    mask = random_mask((2, tq, tk), g, p=0.5)
    out, w = scaled_dot_product_attention(q, k, v, mask)
    has_key = mask.any(-1)
    torch.testing.assert_close(
        w.sum(-1)[has_key], torch.ones(int(has_key.sum())), atol=1e-5, rtol=0
    )
    assert torch.all(w.sum(-1)[~has_key] == 0) and torch.isfinite(out).all()
    assert torch.all(w >= 0) and torch.all(w[~mask] == 0)


# --- multi-head self-attention -------------------------------------------------------------


def _copy_to_torch_mha(ours: MultiHeadSelfAttention) -> torch.nn.MultiheadAttention:
    ref = torch.nn.MultiheadAttention(ours.d_model, ours.n_heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.proj.weight)
        ref.out_proj.bias.copy_(ours.proj.bias)
    return ref.eval()


@pytest.mark.parametrize("need_weights", [True, False])
def test_mhsa_parity_with_torch(need_weights):
    torch.manual_seed(0)
    ours = MultiHeadSelfAttention(16, 4).eval()
    ref = _copy_to_torch_mha(ours)
    x = torch.randn(3, 6, 16)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2, 1:] = False
    out, w = ours(x, mask, need_weights=need_weights)
    ref_out, ref_w = ref(
        x, x, x, key_padding_mask=~mask, need_weights=True, average_attn_weights=False
    )
    torch.testing.assert_close(out, ref_out, atol=TOL, rtol=0)
    if need_weights:
        assert w.shape == (3, 4, 6, 6)
        torch.testing.assert_close(w, ref_w, atol=TOL, rtol=0)
    # no mask
    out, _ = ours(x, need_weights=need_weights)
    torch.testing.assert_close(out, ref(x, x, x, need_weights=False)[0], atol=TOL, rtol=0)


def test_mhsa_square_mask_and_errors():
    torch.manual_seed(0)
    ours = MultiHeadSelfAttention(8, 2).eval()
    ref = _copy_to_torch_mha(ours)
    x = torch.randn(2, 5, 8)
    causal = torch.ones(5, 5, dtype=torch.bool).tril().expand(2, 5, 5)
    out, _ = ours(x, causal)
    torch.testing.assert_close(
        out, ref(x, x, x, attn_mask=~causal[0], need_weights=False)[0], atol=TOL, rtol=0
    )
    with pytest.raises(ValueError, match="d_model=10 must be divisible by n_heads=4"):
        MultiHeadSelfAttention(10, 4)
    with pytest.raises(ValueError, match=r"mask must have shape .* got \(2, 4\)"):
        ours(x, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, 8\)"):
        ours(torch.randn(2, 5, 6))


def test_degenerate_sizes_are_clear_errors():
    from gicho.nn import MultiHeadSelfAttention, scaled_dot_product_attention

    q = torch.zeros(1, 2, 3, 0)
    with pytest.raises(ValueError, match=r"head dimension D = 0"):
        scaled_dot_product_attention(q, q, torch.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError, match=r"argument `n_heads` must be an integer >= 1; got 0"):
        MultiHeadSelfAttention(32, n_heads=0)
    with pytest.raises(ValueError, match=r"argument `dropout` must lie in \[0, 1\); got 2.0"):
        MultiHeadSelfAttention(32, 4, dropout=2.0)


@pytest.mark.parametrize(
    ("fn", "kwargs"),
    [(scaled_dot_product_attention, {"need_weights": True}),
     (scaled_dot_product_attention, {"need_weights": False}),
     (dot_product_attention, {})],
)  # fmt: skip
def test_mixed_dtypes_are_a_clear_error(qkv, fn, kwargs):
    """Findings row 113: float64 q with float32 k, v ended in torch's `RuntimeError: expected
    scalar type Double but found Float`; the error names the three dtypes."""
    q, k, v = qkv
    with pytest.raises(TypeError, match=r"q, k and v must have one floating dtype; got q "
                                        r"torch\.float64, k torch\.float32, v torch\.float32"):
        fn(q.double(), k, v, **kwargs)
    with pytest.raises(TypeError, match=r"got q torch\.float32, k torch\.float32, v torch\.float16"):
        fn(q, k, v.half(), **kwargs)
    with pytest.raises(TypeError, match=r"floating dtype; got q torch\.int64, k torch\.int64, v torch\.int64"):
        fn(q.long(), k.long(), v.long(), **kwargs)
    out, _ = fn(q.double(), k.double(), v.double(), **kwargs)  # one dtype: fine
    assert out.dtype == torch.float64
