"""Map-style datasets over in-memory arrays, for every task whose data fits in memory."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["ArrayDataset"]


class ArrayDataset(Dataset):
    """Samples ``{name: array[i]}`` over equally long arrays (NumPy or torch), as tensors.

    Parameters
    ----------
    **arrays : array-like
        Each of shape (N, ...); converted once with ``torch.as_tensor`` (no copy when possible).
    """

    def __init__(self, **arrays: Any) -> None:
        if not arrays:
            raise ValueError("give at least one array, e.g. ArrayDataset(features=X, labels=y)")
        self.tensors = {name: torch.as_tensor(value) for name, value in arrays.items()}
        lengths = {name: len(t) for name, t in self.tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"arrays must have the same length; got {lengths}")

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {name: t[i] for name, t in self.tensors.items()}
