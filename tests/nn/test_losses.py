"""classification_loss with class indices and with soft targets (MixUp / CutMix)."""

from __future__ import annotations

import math

import pytest
import torch

from gicho.nn.losses import IGNORE_INDEX, classification_loss


def test_soft_targets_against_a_hand_computation():
    logits = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])
    targets = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.25, 0.75]])

    def log_softmax(row):
        z = math.log(sum(math.exp(v) for v in row))
        return [v - z for v in row]

    expected = sum(-sum(p * ls for p, ls in zip(t, log_softmax(r), strict=True))
                   for r, t in zip(logits.tolist(), targets.tolist(), strict=True)) / 2
    out = classification_loss(logits, targets)
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)
    assert int(out["n_items"]) == 2 and out["loss"].dtype == torch.float32


def test_one_hot_soft_targets_equal_the_index_path():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=g, requires_grad=True)
    labels = torch.tensor([0, 3, 1, 1, 2, 0])
    hard = classification_loss(logits, labels)
    soft = classification_loss(logits, torch.nn.functional.one_hot(labels, 4).float())
    assert torch.allclose(hard["loss"], soft["loss"]) and int(hard["n_items"]) == int(soft["n_items"]) == 6
    (grad_hard,) = torch.autograd.grad(hard["loss"], logits)
    (grad_soft,) = torch.autograd.grad(soft["loss"], logits)
    assert torch.allclose(grad_hard, grad_soft)


def test_index_labels_still_ignore_and_check_their_range():
    logits = torch.zeros(3, 2)
    assert int(classification_loss(logits, torch.tensor([0, IGNORE_INDEX, 1]))["n_items"]) == 2
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\)"):
        classification_loss(logits, torch.tensor([0, 5, 1]))


@pytest.mark.parametrize("labels", [torch.zeros(3, 3), torch.zeros(3, 2, dtype=torch.long)])
def test_soft_targets_of_the_wrong_shape_or_dtype_are_refused(labels):
    with pytest.raises(ValueError, match=r"soft targets of the logits' shape \(3, 2\), floating"):
        classification_loss(torch.zeros(3, 2), labels)
