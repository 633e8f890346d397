"""Tests for gicho.nn.embeddings and the token stem (gicho.nn.stems)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gicho.nn.embeddings import (
    FeatureTokenizer,
    LearnedPositionEmbedding,
    PatchEmbedding,
    SinusoidalPositionEmbedding,
    make_position_embedding,
    sinusoidal_table,
)
from gicho.nn.stems import TokenStem


@pytest.mark.parametrize("d_model", [8, 7])
def test_sinusoidal_table_matches_paper_formula(d_model):
    table = sinusoidal_table(20, d_model).numpy()
    expected = np.zeros((20, d_model))
    for pos in range(20):
        for i in range(d_model):
            angle = pos / 10000 ** (2 * (i // 2) / d_model)
            expected[pos, i] = math.sin(angle) if i % 2 == 0 else math.cos(angle)
    np.testing.assert_allclose(table, expected, atol=1e-6)


def test_position_embeddings_add_and_check_length():
    x = torch.zeros(2, 5, 8)
    learned = LearnedPositionEmbedding(6, 8)
    torch.testing.assert_close(learned(x), learned.weight[:5].expand(2, 5, 8))
    sinus = SinusoidalPositionEmbedding(6, 8)
    torch.testing.assert_close(sinus(x), sinusoidal_table(6, 8)[:5].expand(2, 5, 8))
    assert "table" not in sinus.state_dict()  # fixed: rebuilt, not saved
    for module in (learned, sinus):
        with pytest.raises(ValueError, match=r"sequence length 7 exceeds .* max_len=6"):
            module(torch.zeros(1, 7, 8))
    with pytest.raises(ValueError, match="position must be one of"):
        make_position_embedding("rotary", 4, 8)


def test_token_embeddings_sum_of_parts():
    torch.manual_seed(0)
    emb = TokenStem(10, 8, max_len=6, n_segments=2, pad_token_id=0, norm=False).eval()
    ids = torch.tensor([[3, 4, 0], [1, 2, 5]])
    seg = torch.tensor([[0, 0, 1], [1, 1, 1]])
    expected = (
        emb.word_embeddings.weight[ids]
        + emb.token_type_embeddings.weight[seg]
        + emb.pos_embed.weight[:3]
    )
    out, mask = emb(None, input_ids=ids, token_type_ids=seg)
    torch.testing.assert_close(out, expected)
    assert mask.tolist() == [[True, True, False], [True, True, True]]  # pad_token_id 0
    normed = TokenStem(10, 8, max_len=6, position="sinusoidal", norm=True)
    out, _ = normed(input_ids=ids)
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 3), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="n_segments=0"):
        normed(input_ids=ids, token_type_ids=seg)


def test_missing_segment_ids_are_segment_zero_with_the_same_gradients():
    """No token_type_ids adds segment 0's row without a lookup: same values, same gradients."""
    torch.manual_seed(0)
    emb = TokenStem(10, 8, max_len=6, n_segments=3, norm=True)
    with torch.no_grad():
        emb.norm.weight.uniform_(0.5, 1.5)
    ids = torch.tensor([[3, 4, 0], [1, 2, 5]])
    w = torch.randn(2, 3, 8)
    grads = []
    for seg in (None, torch.zeros_like(ids)):
        emb.zero_grad()
        out, _ = emb(input_ids=ids, token_type_ids=seg)
        (out * w).sum().backward()
        grads.append((out.detach(), *(p.grad.clone() for p in emb.parameters())))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    segment_grad = dict(zip([n for n, _ in emb.named_parameters()], grads[0][1:], strict=True))[
        "token_type_embeddings.weight"]
    assert segment_grad[0].abs().sum() > 0 and segment_grad[1:].abs().sum() == 0  # segment 0 only


def test_patch_embedding_equals_flattened_linear_map():
    torch.manual_seed(0)
    pe = PatchEmbedding(image_size=8, patch_size=4, in_channels=3, d_model=5)
    images = torch.randn(2, 3, 8, 8)
    out = pe(images)
    assert out.shape == (2, 4, 5) and pe.n_patches == 4
    W = pe.proj.weight.reshape(5, -1)  # (D, C·P·P)
    patches = images.unfold(2, 4, 4).unfold(3, 4, 4)  # (B, C, 2, 2, P, P)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(2, 4, -1)  # (B, N, C·P·P) row-major
    torch.testing.assert_close(out, patches @ W.T + pe.proj.bias, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="image_size=10 must be divisible by patch_size=4"):
        PatchEmbedding(10, 4, 3, 5)
    with pytest.raises(ValueError, match="must be 8x8; got 9x9"):
        pe(torch.randn(1, 3, 9, 9))
    with pytest.raises(ValueError, match=r"shape \(B, 3, H, W\)"):
        pe(torch.randn(1, 1, 8, 8))


def test_feature_tokenizer_formula():
    torch.manual_seed(0)
    tok = FeatureTokenizer(3, 4)
    x = torch.randn(5, 3)
    out = tok(x)
    assert out.shape == (5, 3, 4)
    for j in range(3):
        torch.testing.assert_close(out[:, j], x[:, j : j + 1] * tok.weight[j] + tok.bias[j])
    no_bias = FeatureTokenizer(3, 4, bias=False)
    torch.testing.assert_close(no_bias(torch.zeros(2, 3)), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"features must have shape \(B, 3\); got \(5, 4\)"):
        tok(torch.randn(5, 4))
