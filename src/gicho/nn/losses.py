"""The losses of every head: what a model returns with ``labels``, ``{"loss", "n_items"}``.

``n_items`` is the number of labels the loss averages over; the trainer weights each
micro-batch's loss by it, so gradient accumulation and several ranks give the gradient of one
big batch (:mod:`gicho.train.step`). Class labels equal to :data:`IGNORE_INDEX` (-100) are not
scored, as in PyTorch and Hugging Face. Classification also takes soft targets (N, C), the
probabilities that MixUp / CutMix (:mod:`gicho.data.augment`) give.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gicho._validation import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "classification_loss", "regression_loss"]


def classification_loss(logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """Mean cross-entropy of ``logits`` (N, C) against class indices or soft targets.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
    labels : Tensor, shape (N,) integer, or (N, C) floating
        Class indices (:data:`IGNORE_INDEX` not scored), or per-row target probabilities ``p``
        (MixUp / CutMix, label smoothing): the loss is ``mean_n -sum_c p_nc log softmax(z_n)_c``
        over all N rows; rows are expected to sum to 1 (not checked: a check would wait for the
        device at every step). A one-hot ``p`` gives the loss of the indices.

    Returns
    -------
    dict
        ``"loss"`` (float32 scalar) and ``"n_items"`` (the labels other than
        :data:`IGNORE_INDEX`; N for soft targets).

    Raises
    ------
    ValueError
        A label outside ``[0, C)`` that is not :data:`IGNORE_INDEX` (torch's own range check,
        "Target 7 is out of bounds", said in the label's terms); soft targets of another shape
        than ``logits``, or 2-D labels that are not floating.
    """
    if labels.ndim == 2:
        if labels.shape != logits.shape or not labels.dtype.is_floating_point:
            raise ValueError(f"labels must be class indices (N,) or soft targets of the logits' shape "
                             f"{tuple(logits.shape)}, floating; got {labels.dtype} of shape {tuple(labels.shape)}")
        loss = F.cross_entropy(logits.float(), labels.float())
        return {"loss": loss, "n_items": torch.tensor(labels.shape[0], device=labels.device)}
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
