"""gicho.nn.fast_dropout: dropout from random bits computes what F.dropout computes.

The statistical checks use binomial bounds at 6 standard deviations (a false alarm about once
in 10⁹ runs), from the drop probability, not from one machine's draws; the masks are seeded,
so each test is also reproducible.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gicho.nn import fast_dropout
from gicho.nn.attention import _attention_with_dropout, scaled_dot_product_attention
from gicho.nn.fast_dropout import Dropout, dropout


def _within_binomial(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 6 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_rate_and_scaling(p):
    torch.manual_seed(0)
    x = torch.rand(1001, 999) + 0.5  # odd element count; no zero in x
    y = dropout(x, p)
    kept = y != 0
    assert _within_binomial(int(kept.sum()), x.numel(), 1 - p)
    assert torch.equal(y[kept], x[kept] * (1 / (1 - p)))  # exactly torch's x · 1/(1-p)


def test_elements_sharing_a_random_word_are_independent():
    """Two elements come from one 64-bit word: both kept should happen at (1-p)², not 1-p."""
    torch.manual_seed(1)
    p, n = 0.3, 2_000_000
    kept = dropout(torch.ones(n), p) != 0
    both = int((kept[0::2] & kept[1::2]).sum())
    assert _within_binomial(both, n // 2, (1 - p) ** 2)


def test_seeded_and_the_backward_uses_the_forward_mask():
    x = torch.randn(64, 33, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(5)
    y = dropout(x, 0.25)
    torch.manual_seed(5)
    assert torch.equal(dropout(x.detach(), 0.25), y.detach())  # same seed, same mask (and no autograd)
    assert not torch.equal(dropout(x.detach(), 0.25), y.detach())  # the stream moved on
    g = torch.randn_like(x)
    y.backward(g)
    keep = y.detach() != 0
    assert torch.equal(x.grad, torch.where(keep, g * (1 / 0.75), torch.zeros_like(g)))


def test_gradcheck_float64():
    def f(x):
        torch.manual_seed(3)  # the same mask at every evaluation
        return dropout(x, 0.4)

    assert torch.autograd.gradcheck(f, (torch.randn(5, 7, dtype=torch.float64, requires_grad=True),))


def test_eval_zero_and_invalid_p():
    x = torch.randn(4, 4)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))  # torch's own path at p = 1
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            dropout(x, bad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_dtypes_and_strides(dtype):
    torch.manual_seed(2)
    x = torch.randn(40, 30, dtype=dtype).t()  # not contiguous
    y = dropout(x, 0.1)
    kept = y != 0
    assert y.dtype == dtype and y.shape == x.shape
    assert torch.equal(y[kept], x[kept] * (1 / 0.9))  # the scale rounded with x, once, as torch's


def test_disabled_is_torch_dropout(monkeypatch):
    monkeypatch.setattr(fast_dropout, "_ENABLED", False)
    x = torch.randn(100)
    torch.manual_seed(4)
    ours = dropout(x, 0.3)
    torch.manual_seed(4)
    assert torch.equal(ours, F.dropout(x, 0.3, True))


def test_module_is_an_nn_dropout():
    m = Dropout(0.3)
    assert isinstance(m, nn.Dropout) and m.p == 0.3 and repr(m) == repr(nn.Dropout(0.3))
    assert m.state_dict() == {}
    x = torch.ones(1000)
    assert _within_binomial(int((m(x) != 0).sum()), 1000, 0.7)
    assert m.eval()(x) is x
    inplace = Dropout(0.3, inplace=True).train()
    y = torch.ones(1000)
    assert inplace(y) is y  # torch's in-place dropout


def test_attention_with_dropout_is_the_math_path_with_that_mask(monkeypatch):
    """With the mask fixed, the fast training path equals softmax(q kᵀ·s) ⊙ keep / (1-p) · v,
    and a fully masked query row still gives 0 (through scaled_dot_product_attention)."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, dtype=torch.float64) for _ in range(3))
    mask = torch.rand(2, 1, 5, 5) > 0.3
    mask[0, 0, 2] = False  # query 2 of batch 0 sees no key
    keep = torch.rand(2, 3, 5, 5) > 0.25
    monkeypatch.setattr(fast_dropout, "_keep_mask", lambda x, p: keep)
    out, _ = scaled_dot_product_attention(q, k, v, mask, dropout_p=0.25, training=True, need_weights=False)
    scores = (q @ k.transpose(-2, -1) / 2.0).masked_fill(~mask, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, -1)) * keep / 0.75
    assert torch.allclose(out, weights @ v, rtol=1e-12, atol=1e-12)
    assert bool((out[0, :, 2] == 0).all())
    # the helper alone, on a mask that leaves every row a key
    full = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    assert torch.allclose(_attention_with_dropout(q, k, v, full, 0.5, 0.25),
                          torch.softmax(q @ k.transpose(-2, -1) / 2.0, -1) * keep / 0.75 @ v, rtol=1e-12)
