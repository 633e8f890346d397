"""gicho.nn.token_loss: the blocked summed cross-entropy computes F.cross_entropy's loss and
gradient.

Tolerances come from float32's error model against a float64 reference, not from one machine:
a row's log-sum-exp ``m + log Σ exp(x - m)`` of V terms is within ``(V + 4)·u + 2u·|lse|`` of
the exact value (u = 2⁻²⁴: V-term summation, exp and log each a few units in the last place),
the summed loss adds ``K·u·Σ|row loss|``; a probability ``exp(x - lse)`` is within
``p·(lse error + u·|x - lse| + 4u)``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gicho.nn import token_loss
from gicho.nn.token_loss import summed_cross_entropy

U = 2.0**-24


def _case(k: int, v: int, n_ignored: int = 0, seed: int = 0, spread: float = 4.0):
    g = torch.Generator().manual_seed(seed)
    logits = spread * torch.randn(k, v, generator=g)
    labels = torch.randint(0, v, (k,), generator=g)
    labels[torch.randperm(k, generator=g)[:n_ignored]] = -100
    return logits, labels


def _lse_bound(logits: torch.Tensor) -> torch.Tensor:
    lse = torch.logsumexp(logits.double(), 1)
    return (logits.shape[1] + 4) * U + 2 * U * lse.abs()  # (K,)


def _loss_bound(logits: torch.Tensor, labels: torch.Tensor) -> float:
    rows = F.cross_entropy(logits.double(), labels, ignore_index=-100, reduction="none")
    scored = labels != -100
    per_row = (_lse_bound(logits) + 2 * U * logits.double().abs().amax(1))[scored]
    return float(per_row.sum() + logits.shape[0] * U * rows.abs().sum())


def _grad_bound(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    x = logits.double()
    lse = torch.logsumexp(x, 1, keepdim=True)
    p = torch.exp(x - lse)
    bound = p * (_lse_bound(logits)[:, None] + U * (x - lse).abs() + 4 * U)
    return bound * (labels != -100)[:, None] + 4 * U  # the onehot subtraction rounds once more


@pytest.mark.parametrize("k,v,n_ignored", [(1, 7, 0), (31, 50, 0), (32, 50, 3), (70, 1000, 10), (100, 3, 99)])
def test_loss_and_gradient_within_float32_bounds_of_float64(k, v, n_ignored):
    logits, labels = _case(k, v, n_ignored)
    x = logits.clone().requires_grad_()
    loss = summed_cross_entropy(x, labels)
    loss.backward()
    ref = logits.double().requires_grad_()
    ref_loss = F.cross_entropy(ref, labels, ignore_index=-100, reduction="sum")
    ref_loss.backward()
    assert loss.dtype == torch.float32 and loss.shape == ()
    assert abs(loss.item() - ref_loss.item()) <= _loss_bound(logits, labels)
    error = (x.grad.double() - ref.grad).abs()
    assert bool((error <= _grad_bound(logits, labels)).all()), float((error / _grad_bound(logits, labels)).max())
    # torch's own float32 path sits within the same bounds (the comparison is fair)
    plain = logits.clone().requires_grad_()
    F.cross_entropy(plain, labels, ignore_index=-100, reduction="sum").backward()
    assert bool(((plain.grad.double() - ref.grad).abs() <= _grad_bound(logits, labels)).all())


def test_blocks_cover_every_row(monkeypatch):
    """Block sizes that divide K, do not, and exceed it give the same loss and gradient."""
    logits, labels = _case(45, 20, 5, seed=1)
    results = []
    for rows in (1, 7, 45, 64):
        monkeypatch.setattr(token_loss, "_BLOCK_ROWS", rows)
        x = logits.clone().requires_grad_()
        summed_cross_entropy(x, labels).backward()
        results.append(x.grad)
    ref = logits.double().requires_grad_()
    F.cross_entropy(ref, labels, ignore_index=-100, reduction="sum").backward()
    for grad in results:
        assert bool(((grad.double() - ref.grad).abs() <= _grad_bound(logits, labels)).all())


def test_ignored_rows_have_zero_gradient_even_when_not_finite():
    logits, labels = _case(5, 11)
    logits[1] = float("-inf")  # a row whose softmax is undefined, not scored
    logits[3, 2] = float("inf")
    labels[1] = labels[3] = -100
    x = logits.clone().requires_grad_()
    loss = summed_cross_entropy(x, labels)
    loss.backward()
    ref = F.cross_entropy(logits[[0, 2, 4]].double(), labels[[0, 2, 4]], reduction="sum")
    assert torch.isfinite(loss) and abs(float(loss) - float(ref)) < 1e-4
    assert bool((x.grad[[1, 3]] == 0).all()) and bool(torch.isfinite(x.grad).all())


def test_all_ignored_gives_zero_loss_and_zero_gradient():
    logits, labels = _case(6, 9)
    labels[:] = -100
    x = logits.clone().requires_grad_()
    loss = summed_cross_entropy(x, labels)
    loss.backward()
    assert float(loss) == 0.0 and bool((x.grad == 0).all())


def test_gradient_scales_with_the_upstream_gradient():
    logits, labels = _case(10, 13, 2)
    x = logits.clone().requires_grad_()
    (summed_cross_entropy(x, labels) * -2.5).backward()
    y = logits.clone().requires_grad_()
    (F.cross_entropy(y, labels, ignore_index=-100, reduction="sum") * -2.5).backward()
    assert torch.allclose(x.grad, y.grad, rtol=1e-5, atol=1e-6)


def test_without_autograd_the_same_loss():
    logits, labels = _case(40, 30, 4)
    with torch.no_grad():
        quiet = summed_cross_entropy(logits, labels)
    tracked = summed_cross_entropy(logits.clone().requires_grad_(), labels)
    assert float(quiet) == float(tracked)


@pytest.mark.parametrize("bad", [7, -1, -101])
def test_label_out_of_range_raises_index_error_like_torch(bad):
    logits, labels = _case(4, 7)
    labels[2] = bad
    with pytest.raises(IndexError):
        F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
    with pytest.raises(IndexError, match=r"\[0, 7\)"):
        summed_cross_entropy(logits.requires_grad_(), labels)


def test_other_dtypes_take_torch_path():
    logits, labels = _case(8, 5, 1)
    x = logits.double()
    assert not token_loss._blocked_path(x, labels)
    assert float(summed_cross_entropy(x, labels)) == float(
        F.cross_entropy(x, labels, ignore_index=-100, reduction="sum"))
