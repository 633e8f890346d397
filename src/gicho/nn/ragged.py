"""Unpadding: the real tokens of a padded batch, packed, so that padding costs nothing.

A padded batch (B, T, D) with a key-padding mask (B, T) spends every token-wise operation
(projections, MLP, LayerNorm) and the attention on padding too. :class:`RaggedBatch` gathers the
N real tokens into one (1, N, D) sequence, sequences sorted by length so that sequences of
equal length are adjacent; token-wise layers run on it unchanged, and attention
(:func:`gicho.nn.attention.ragged_attention`) runs once per run of equal lengths, with no
mask: a block-diagonal attention without ever materialising the blocks. The outputs at the
real tokens are those of the padded computation (tested to float32 tolerance, gradients
included); padding positions come back as zeros.

Building it needs the lengths on the host (the packed shape depends on the data): one host
synchronisation per forward pass, the only one in the encoder. Under ``torch.compile`` the
encoder keeps the padded path (static shapes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["RaggedBatch"]


@dataclass(frozen=True)
class RaggedBatch:
    """Where the real tokens of a (B, T) batch are, and how they are grouped.

    Attributes
    ----------
    index : Tensor, int64, shape (N,)
        Positions in the flattened (B·T) batch of the real tokens, in packed order:
        sequences sorted by length (stable), each sequence's tokens in their original order.
    groups : tuple of (n_sequences, length)
        Runs of equal-length sequences in packed order; ``sum(n · length) == N``.
    batch, length : int
        B and T of the padded batch.
    """

    index: Tensor
    groups: tuple[tuple[int, int], ...]
    batch: int
    length: int

    @classmethod
    def from_mask(cls, mask: Tensor) -> RaggedBatch | None:
        """The packing of a (B, T) bool mask (True = real token); None when nothing is padding.

        Synchronises with the host once (the lengths decide the packed shape).
        """
        B, T = mask.shape
        lengths = mask.sum(dim=1).tolist()  # host sync: the packed shape depends on the data
        if all(n == T for n in lengths):
            return None
        order = sorted(range(B), key=lengths.__getitem__)
        groups: list[list[int]] = []
        for b in order:
            n = lengths[b]
            if n == 0:
                continue  # a row with no real token contributes nothing
            if groups and groups[-1][1] == n:
                groups[-1][0] += 1
            else:
                groups.append([1, n])
        rows = torch.tensor(order, device=mask.device)  # (B,) sorted by length
        flat = rows[:, None] * T + torch.arange(T, device=mask.device)  # (B, T) positions
        index = flat[mask[rows]]  # (N,) real tokens in packed order
        return cls(index, tuple((g, n) for g, n in groups), B, T)

    @property
    def n_tokens(self) -> int:
        return sum(g * n for g, n in self.groups)

    def pack(self, x: Tensor) -> Tensor:
        """(B, T, D) → (1, N, D): the real tokens, in packed order."""
        return x.reshape(self.batch * self.length, x.shape[-1]).index_select(0, self.index)[None]

    def unpack(self, tokens: Tensor) -> Tensor:
        """(1, N, D) → (B, T, D), zeros at the padding positions."""
        D = tokens.shape[-1]
        out = tokens.new_zeros(self.batch * self.length, D)
        return out.index_copy(0, self.index, tokens.reshape(-1, D)).view(self.batch, self.length, D)
