"""Blockwise evaluation of row reductions, shared by gicho.numerics and gicho.information.

A reduction such as ``sum(exp(x - max(x)))`` along an axis, written with whole-array NumPy
operations, streams several array-sized temporaries through memory. Splitting the array
along a kept (not reduced) axis into blocks of about ``BLOCK_ELEMENTS`` entries keeps each
block in cache while all the steps run on it, and lets one small scratch buffer stand in
for the temporaries.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["BLOCK_ELEMENTS", "Scratch", "blocks"]

# Entries per block: 64 Ki float64 = 512 KiB, which stays in a core's L2 cache.
BLOCK_ELEMENTS = 1 << 16


def blocks(shape: tuple[int, ...], axes: tuple[int, ...]) -> Iterator[tuple[Any, ...]]:
    """Index tuples splitting ``shape`` along its first kept axis into ~BLOCK_ELEMENTS blocks.

    ``axes`` are the reduced axes (non-negative). Only a kept axis is sliced, so each index
    applies equally to the input, to an output of the same shape, and to keepdims reductions.
    """
    kept = [k for k in range(len(shape)) if k not in axes]
    size = math.prod(shape)
    if not kept or size <= BLOCK_ELEMENTS:
        yield (Ellipsis,)
        return
    k = kept[0]
    step = max(1, BLOCK_ELEMENTS * shape[k] // size)
    head = (slice(None),) * k
    for start in range(0, shape[k], step):
        yield (*head, slice(start, start + step))


class Scratch:
    """One reusable buffer, handed out as contiguous views shaped like each block."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = np.dtype(dtype)
        self.buffer = np.empty(0, dtype=self.dtype)

    def like(self, block: np.ndarray) -> np.ndarray:
        if self.buffer.size < block.size:
            self.buffer = np.empty(block.size, dtype=self.dtype)
        return self.buffer[: block.size].reshape(block.shape)
