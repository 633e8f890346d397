"""Pool a sequence of token vectors into one vector: mean, max or the [CLS] token.

One function, :func:`pool`, of (hidden states, padding mask, mode, number of prefix tokens), as
timm's ``global_pool_nlc``: the stem decides how many tokens it put in front of the input
(``num_prefix_tokens``: 1 for a learned [CLS]) and pooling only reads the count. Mean and max
pooling ignore padding (``mask`` False) and those prefix tokens, so appending more padding to a
batch never changes the result (tested).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["POOL_MODES", "PoolMode", "check_nonempty", "pool"]

PoolMode = Literal["mean", "cls", "max"]
POOL_MODES: tuple[str, ...] = ("mean", "cls", "max")


def pool(
    hidden: Tensor,
    mask: Tensor | None = None,
    mode: PoolMode = "mean",
    num_prefix_tokens: int = 0,
    *,
    check_empty: bool = True,
) -> Tensor:
    """Pool token vectors into one vector per sequence.

    Parameters
    ----------
    hidden : Tensor, float, shape (B, T, D)
        Encoder outputs.
    mask : Tensor, bool, shape (B, T), optional
        True for real tokens, False for padding (prefix tokens count as real).
        ``None`` means no padding.
    mode : {"mean", "cls", "max"}
        ``"mean"``: average of the pooled tokens; ``"max"``: element-wise maximum;
        ``"cls"``: the output at position 0 (the caller's model has a [CLS] there, learned or
        the tokenizer's; models check this when they are built).
    num_prefix_tokens : int
        Tokens the stem prepended (a learned [CLS]); mean and max skip them.
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
        Unknown ``mode``; a negative ``num_prefix_tokens``; a mask of the wrong shape or dtype;
        and, for mean and max, a sequence with no token to pool (all padding, or only prefix
        tokens): its average is undefined, so it is an error rather than a silent zero vector.
    """
    if mode not in POOL_MODES:
        raise ValueError(f"mode must be one of {POOL_MODES}; got {mode!r}")
    if hidden.ndim != 3:
        raise ValueError(f"hidden must have shape (B, T, D); got {tuple(hidden.shape)}")
    if isinstance(num_prefix_tokens, bool) or not isinstance(num_prefix_tokens, int) or num_prefix_tokens < 0:
        raise ValueError(f"argument `num_prefix_tokens` must be an integer >= 0; got {num_prefix_tokens!r}")
    if mask is not None and (mask.dtype != torch.bool or mask.shape != hidden.shape[:2]):
        raise ValueError(
            f"mask must be a boolean tensor of shape (B, T) = {tuple(hidden.shape[:2])} "
            f"(True = real token); got {mask.dtype} of shape {tuple(mask.shape)}"
        )
    if mode == "cls":
        return hidden[:, 0]  # (B, D)
    if mask is None:
        mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
    if num_prefix_tokens:
        hidden, mask = hidden[:, num_prefix_tokens:], mask[:, num_prefix_tokens:]  # (B, T-p, D), (B, T-p)
    counts = mask.sum(dim=1)  # (B,)
    if hidden.shape[1] == 0 or (check_empty and bool((counts == 0).any())):
        empty = torch.nonzero(counts == 0).flatten().tolist() if hidden.shape[1] else "all"
        raise ValueError(
            f"cannot {mode}-pool sequences with no tokens besides padding and prefix tokens: "
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
