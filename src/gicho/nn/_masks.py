"""The mask argument of the attention modules, in one place for both attention families.

A module takes a (B, Tk) key-padding mask or a full (B, Tq, Tk) mask, ``True`` = may attend
(the polarity of :mod:`gicho.nn.attention`); :func:`module_mask` checks it and gives the
(B, Tq|1, Tk) mask that broadcasts over the scores.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["module_mask"]


def module_mask(mask: Tensor | None, batch: int, tq: int, tk: int) -> Tensor | None:
    """Turn a (B, Tk) key-padding mask or a (B, Tq, Tk) mask into a (B, Tq|1, Tk) mask."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = f"tensor of dtype {mask.dtype}" if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a boolean tensor (True = may attend); got {got}")
    if mask.shape == (batch, tk):
        return mask[:, None, :]  # (B, 1, Tk)
    if mask.shape == (batch, tq, tk):
        return mask
    raise ValueError(
        f"mask must have shape (B, Tk) = {(batch, tk)} (key padding) or (B, Tq, Tk) = "
        f"{(batch, tq, tk)}; got {tuple(mask.shape)}"
    )
