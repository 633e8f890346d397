"""Tests for gicho.nn.pooling.pool."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gicho.nn.pooling import pool


def _batch():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 5, 4, generator=g)
    mask = torch.tensor(
        [[True] * 5, [True, True, True, False, False], [True, True, False, False, False]]
    )
    return hidden, mask


@pytest.mark.parametrize("has_cls", [False, True])
def test_mean_and_max_against_loops(has_cls):
    hidden, mask = _batch()
    mean = pool(hidden, mask, "mean", int(has_cls))
    mx = pool(hidden, mask, "max", int(has_cls))
    start = 1 if has_cls else 0
    for b in range(3):
        n = int(mask[b].sum())
        tokens = hidden[b, start:n]
        torch.testing.assert_close(mean[b], tokens.mean(0))
        torch.testing.assert_close(mx[b], tokens.max(0).values)


def test_cls_and_no_mask():
    hidden, _ = _batch()
    torch.testing.assert_close(pool(hidden, None, "cls", 1), hidden[:, 0])
    torch.testing.assert_close(pool(hidden, None, "mean"), hidden.mean(1))
    torch.testing.assert_close(
        pool(hidden, None, "max", 1), hidden[:, 1:].amax(1)
    )


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(2, 6), min_size=1, max_size=4),
    extra=st.integers(1, 5),
    mode=st.sampled_from(["mean", "max", "cls"]),
    has_cls=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_more_padding_changes_nothing(lengths, extra, mode, has_cls, seed):
    if mode == "cls" and not has_cls:
        has_cls = True
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    hidden = torch.randn(len(lengths), T, 3, generator=g)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    junk = torch.randn(len(lengths), extra, 3, generator=g) * 1e3  # padding holds garbage
    hidden_more = torch.cat([hidden.masked_fill(~mask[..., None], 1e4), junk], dim=1)
    mask_more = torch.cat([mask, torch.zeros(len(lengths), extra, dtype=torch.bool)], dim=1)
    expected = pool(hidden, mask, mode, int(has_cls))
    got = pool(hidden_more, mask_more, mode, int(has_cls))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


def test_gradients_skip_padding_and_cls():
    hidden, mask = _batch()
    hidden.requires_grad_(True)
    pool(hidden, mask, "mean", 1).sum().backward()
    assert torch.all(hidden.grad[:, 0] == 0)
    assert torch.all(hidden.grad[~mask] == 0)


def test_errors():
    hidden, mask = _batch()
    with pytest.raises(ValueError, match="mode must be one of"):
        pool(hidden, mask, "sum")
    with pytest.raises(ValueError, match=r"argument `num_prefix_tokens` must be an integer >= 0; got -1"):
        pool(hidden, mask, "mean", -1)
    with pytest.raises(
        ValueError, match=r"mask must be a boolean tensor of shape \(B, T\) = \(3, 5\)"
    ):
        pool(hidden, mask[:, :4], "mean")
    with pytest.raises(ValueError, match="mask must be a boolean tensor"):
        pool(hidden, mask.float(), "mean")
    with pytest.raises(ValueError, match=r"hidden must have shape \(B, T, D\)"):
        pool(hidden[0], None, "mean")
    empty = mask.clone()
    empty[1] = False
    with pytest.raises(
        ValueError, match=r"no tokens besides padding and prefix tokens: batch rows \[1\]"
    ):
        pool(hidden, empty, "mean")
    only_cls = mask.clone()
    only_cls[2, 1:] = False
    with pytest.raises(ValueError, match=r"batch rows \[2\]"):
        pool(hidden, only_cls, "max", 1)
    with pytest.raises(ValueError, match="batch rows all"):
        pool(hidden[:, :1], None, "mean", 1)
