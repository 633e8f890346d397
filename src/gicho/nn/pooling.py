"""Pool a sequence of token vectors into one vector: mean, max or the [CLS] token.

Mean and max pooling ignore padding (``mask`` False) and, when ``has_cls`` is True, the
[CLS] token at position 0, so appending more padding to a batch never changes the result
(tested). A sequence with no token to pool raises ``ValueError`` (see :func:`pool_tokens`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["POOL_MODES", "PoolMode", "check_nonempty", "pool_tokens"]

PoolMode = Literal["mean", "cls", "max"]
POOL_MODES: tuple[str, ...] = ("mean", "cls", "max")


def pool_tokens(
    hidden: Tensor,
    mask: Tensor | None = None,
    mode: PoolMode = "mean",
    *,
    has_cls: bool = False,
    check_empty: bool = True,
) -> Tensor:
    """Pool token vectors into one vector per sequence.

    Parameters
    ----------
    hidden : Tensor, float, shape (B, T, D)
        Encoder outputs.
    mask : Tensor, bool, shape (B, T), optional
        True for real tokens, False for padding (the [CLS] position counts as real).
        ``None`` means no padding.
    mode : {"mean", "cls", "max"}
        ``"mean"``: average of the pooled tokens; ``"max"``: element-wise maximum;
        ``"cls"``: the output at position 0 (requires ``has_cls``).
    has_cls : bool
        Whether position 0 holds a [CLS] token; mean and max then skip it.
    check_empty : bool
        Raise for a sequence with no token to pool. The check reads the mask on the host (a
        device synchronisation and a ``torch.compile`` graph break), so models call this with
        ``check_empty=False`` and check their inputs once at the data boundary
        (:func:`check_nonempty`); an empty sequence then pools to a zero vector.

    Returns
    -------
    Tensor, shape (B, D), dtype of ``hidden``

    Raises
    ------
    ValueError
        Unknown ``mode``; ``"cls"`` without ``has_cls``; a mask of the wrong shape or dtype;
        and, for mean and max, a sequence with no token to pool (all padding, or only [CLS]):
        its average is undefined, so it is an error rather than a silent zero vector.
    """
    if mode not in POOL_MODES:
        raise ValueError(f"mode must be one of {POOL_MODES}; got {mode!r}")
    if hidden.ndim != 3:
        raise ValueError(f"hidden must have shape (B, T, D); got {tuple(hidden.shape)}")
    if mask is not None and (mask.dtype != torch.bool or mask.shape != hidden.shape[:2]):
        raise ValueError(
            f"mask must be a boolean tensor of shape (B, T) = {tuple(hidden.shape[:2])} "
            f"(True = real token); got {mask.dtype} of shape {tuple(mask.shape)}"
        )
    if mode == "cls":
        if not has_cls:
            raise ValueError("mode='cls' needs a [CLS] token at position 0 (has_cls=True)")
        return hidden[:, 0]  # (B, D)
    if mask is None:
        mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
    if has_cls:
        hidden, mask = hidden[:, 1:], mask[:, 1:]  # (B, T-1, D), (B, T-1)
    counts = mask.sum(dim=1)  # (B,)
    if hidden.shape[1] == 0 or (check_empty and bool((counts == 0).any())):
        empty = torch.nonzero(counts == 0).flatten().tolist() if hidden.shape[1] else "all"
        raise ValueError(
            f"cannot {mode}-pool sequences with no tokens besides padding and [CLS]: "
            f"batch rows {empty}"
        )
    m = mask[:, :, None]  # (B, T, 1)
    if mode == "mean":
        summed = hidden.masked_fill(~m, 0.0).sum(dim=1)  # (B, D)
        return summed / counts.clamp(min=1)[:, None].to(hidden.dtype)
    pooled = hidden.masked_fill(~m, float("-inf")).amax(dim=1)  # (B, D)
    return torch.where(counts[:, None] > 0, pooled, torch.zeros_like(pooled))


def check_nonempty(mask: Tensor | None, what: str = "attention_mask") -> None:
    """Raise ``ValueError`` naming the rows of ``mask`` (B, T) that have no real token.

    Call it where a batch is built (collate, predict), not inside a model's forward.
    """
    if mask is None:
        return
    empty = torch.nonzero(~mask.bool().any(dim=-1)).flatten().tolist()
    if empty:
        raise ValueError(f"{what}: batch rows {empty} have no real token (all padding)")
