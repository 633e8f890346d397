"""The losses of every head: what a model returns with ``labels``, ``{"loss", "n_items"}``.

``n_items`` is the number of labels the loss averages over; the trainer weights each
micro-batch's loss by it, so gradient accumulation and several ranks give the gradient of one
big batch (:mod:`gicho.train.step`). Class labels equal to :data:`IGNORE_INDEX` (-100) are not
scored, as in PyTorch and Hugging Face.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gicho._validation import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "classification_loss", "regression_loss"]


def classification_loss(logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """Mean cross-entropy of ``logits`` (N, C) against class indices ``labels`` (N,).

    Returns
    -------
    dict
        ``"loss"`` (float32 scalar; the mean over the scored labels) and ``"n_items"`` (the
        number of labels other than :data:`IGNORE_INDEX`).

    Raises
    ------
    ValueError
        A label outside ``[0, C)`` that is not :data:`IGNORE_INDEX` (torch's own range check,
        "Target 7 is out of bounds", said in the label's terms).
    """
    try:
        loss = F.cross_entropy(logits.float(), labels.long(), ignore_index=IGNORE_INDEX)
    except IndexError:
        raise ValueError(f"labels must be class indices in [0, {logits.shape[-1]}) or {IGNORE_INDEX} "
                         "(ignored); some are outside") from None
    return {"loss": loss, "n_items": (labels != IGNORE_INDEX).sum()}


def regression_loss(predictions: Tensor, labels: Tensor, *, shift: float = 0.0,
                    scale: float = 1.0) -> dict[str, Tensor]:
    """Mean squared error of ``predictions`` against ``labels`` of the same shape, on the
    standardised scale: ``predictions`` already are on it (a head predicting
    ``(y - shift) / scale``), the labels are brought to it; ``shift=0, scale=1``: the targets'
    own units.

    Returns
    -------
    dict
        ``"loss"`` (float32 scalar) and ``"n_items"`` (the number of targets averaged).

    Raises
    ------
    ValueError
        ``labels`` of another shape than ``predictions``.
    """
    if labels.shape != predictions.shape:
        raise ValueError(f"labels must have shape {tuple(predictions.shape)} (like the predictions); "
                         f"got {tuple(labels.shape)}")
    target = (labels.float() - shift) / scale
    return {"loss": F.mse_loss(predictions.float(), target), "n_items": torch.tensor(labels.numel(), device=labels.device)}
