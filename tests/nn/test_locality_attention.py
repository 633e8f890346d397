"""Locality Self-Attention (Lee, Lee & Song 2021): ``MultiHeadSelfAttention(locality=True)`` and
``TransformerEncoder(attention="lsa")`` — the formula by hand, the masked diagonal, a learnable
per-head temperature, and the fused, explicit, first-rows and unpadded paths agreeing."""

from __future__ import annotations

import math

import pytest
import torch

from gicho.nn import MultiHeadSelfAttention, TransformerEncoder, TransformerEncoderLayer

pytestmark = pytest.mark.usefixtures("single_torch_thread")

B, T, D, H = 3, 6, 16, 4


def _lsa(seed: int = 0) -> MultiHeadSelfAttention:
    torch.manual_seed(seed)
    attn = MultiHeadSelfAttention(D, H, locality=True)
    with torch.no_grad():  # per-head temperatures off their common start
        attn.scale.mul_(torch.tensor([0.5, 1.0, 1.5, 2.0]))
    return attn.eval()


def _x() -> torch.Tensor:
    return torch.randn(B, T, D, generator=torch.Generator().manual_seed(1))


def _by_hand(attn: MultiHeadSelfAttention, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(scale_h · q kᵀ) v with the diagonal (and padded keys) at -inf, then ``proj``."""
    q, k, v = attn.qkv(x).view(B, T, 3, H, D // H).permute(2, 0, 3, 1, 4)  # 3 × (B, H, T, Dh)
    scores = attn.scale[:, None, None] * (q @ k.transpose(-2, -1))  # (B, H, T, T)
    allowed = ~torch.eye(T, dtype=torch.bool)
    if keep is not None:
        allowed = allowed & keep[:, None, None, :]
    weights = torch.softmax(scores.masked_fill(~allowed, -math.inf), dim=-1)
    return attn.proj((weights @ v).transpose(1, 2).reshape(B, T, D)), weights


def test_the_temperature_is_learnable_per_head_and_starts_at_the_standard_scale():
    attn = MultiHeadSelfAttention(D, H, locality=True)
    assert attn.scale.shape == (H,) and attn.scale.requires_grad
    torch.testing.assert_close(attn.scale.detach(), torch.full((H,), (D // H) ** -0.5))
    out, _ = attn(_x())
    out.square().sum().backward()
    assert attn.scale.grad is not None and attn.scale.grad.abs().min() > 0
    plain = MultiHeadSelfAttention(D, H)
    assert plain.scale is None and set(plain.state_dict()) == {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}


def test_a_seed_draws_the_same_projections_with_and_without_locality():
    torch.manual_seed(0)
    plain = MultiHeadSelfAttention(D, H)
    torch.manual_seed(0)
    lsa = MultiHeadSelfAttention(D, H, locality=True)
    for name, tensor in plain.state_dict().items():
        assert torch.equal(lsa.state_dict()[name], tensor)


def test_the_formula_by_hand_and_the_diagonal_is_masked():
    attn, x = _lsa(), _x()
    keep = torch.ones(B, T, dtype=torch.bool)
    keep[1, 4:] = False  # padding
    for mask in (None, keep):
        expected, expected_weights = _by_hand(attn, x, mask)
        with torch.no_grad():
            explicit, weights = attn(x, mask, need_weights=True)
            fused, none = attn(x, mask)
            first, _ = attn(x, mask, n_queries=2)
        assert none is None
        assert weights.diagonal(dim1=-2, dim2=-1).abs().max() == 0  # no token attends to itself
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, T))
        torch.testing.assert_close(weights, expected_weights.detach(), atol=1e-6, rtol=0)
        torch.testing.assert_close(explicit, expected.detach(), atol=1e-6, rtol=0)
        torch.testing.assert_close(fused, explicit, atol=1e-6, rtol=0)
        torch.testing.assert_close(first, explicit[:, :2], atol=1e-6, rtol=0)


def test_fused_and_explicit_gradients_agree():
    x = _x()
    grads = []
    for need_weights in (False, True):
        attn = _lsa()
        out, _ = attn(x, need_weights=need_weights)
        out.square().sum().backward()
        grads.append({n: p.grad for n, p in attn.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], atol=1e-5, rtol=1e-5)


def test_the_encoder_paths_agree_with_padding():
    """Unpadded (ragged) pass, padded reference pass (with attention maps) and [CLS] rows only."""
    torch.manual_seed(0)
    encoder = TransformerEncoder(2, D, H, 32, dropout=0.0, norm_first=True, attention="lsa").eval()
    assert all(layer.attn.scale is not None for layer in encoder.layers)
    x = _x()
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 3:] = False
    mask[2, 5:] = False
    with torch.no_grad():
        ragged = encoder(x, mask).last_hidden_state
        padded = encoder(x, mask, output_attentions=True)
        first = encoder(x, mask, rows=1).last_hidden_state
    real = mask[:, :, None]
    torch.testing.assert_close(ragged * real, padded.last_hidden_state * real, atol=1e-5, rtol=0)
    torch.testing.assert_close(first, ragged[:, :1], atol=1e-5, rtol=0)
    for weights in padded.attentions:
        assert weights.diagonal(dim1=-2, dim2=-1).abs().max() == 0


def test_an_unknown_attention_is_named():
    with pytest.raises(ValueError, match=r"argument `attention` must be one of \('standard', 'lsa'\); got 'local'"):
        TransformerEncoderLayer(D, H, 32, attention="local")
