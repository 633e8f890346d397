"""Single-head score attention for sequence-to-sequence models: dot, general and additive.

``context = softmax(score(q, K)) V`` over the encoder's states, with Luong's dot and general
(bilinear) scores and Bahdanau's additive (concat) score. The scaled dot-product score and
multi-head self-attention of the Transformer are in :mod:`gicho.nn.attention`; the mask
polarity is the same (``True`` = may attend), and a query whose keys are all masked out gets
zero weights and a zero context, never NaN.

References
----------
Bahdanau, Cho, Bengio (2015), "Neural machine translation by jointly learning to align and
translate" (additive score). Luong, Pham, Manning (2015), "Effective approaches to
attention-based neural machine translation" (dot and general scores).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gicho.nn._masks import module_mask
from gicho.numerics import softmax

__all__ = ["AdditiveAttention", "DotAttention", "GeneralAttention"]


class _ScoreAttention(nn.Module):
    """Shared forward of the single-head score modules: score → masked softmax → context."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:  # (B, Tq, Tk)
        raise NotImplementedError

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Attend from ``query`` to ``keys`` and mix ``values``.

        Parameters
        ----------
        query : Tensor, float, shape (B, Tq, Dq)
        keys : Tensor, float, shape (B, Tk, Dk)
        values : Tensor, float, shape (B, Tk, Dv)
        mask : Tensor, bool, shape (B, Tk) or (B, Tq, Tk), optional
            True = may attend (key padding mask when 2-D).

        Returns
        -------
        context : Tensor, shape (B, Tq, Dv)
        weights : Tensor, shape (B, Tq, Tk); rows sum to 1 over unmasked keys (0 if none).
        """
        if query.ndim != 3 or keys.ndim != 3 or values.ndim != 3:
            raise ValueError(
                f"query, keys and values must be 3-D (B, T, D); got shapes {tuple(query.shape)}, "
                f"{tuple(keys.shape)}, {tuple(values.shape)}"
            )
        if keys.shape[:2] != values.shape[:2] or query.shape[0] != keys.shape[0]:
            raise ValueError(
                f"batch and key lengths must agree: query {tuple(query.shape)}, keys "
                f"{tuple(keys.shape)}, values {tuple(values.shape)}"
            )
        batch, tq, tk = query.shape[0], query.shape[1], keys.shape[1]
        mask = module_mask(mask, batch, tq, tk)
        weights = softmax(self.score(query, keys), axis=-1, where=mask)  # (B, Tq, Tk)
        context = torch.bmm(self.dropout(weights), values)  # (B, Tq, Dv)
        return context, weights


class DotAttention(_ScoreAttention):
    """Luong's dot score ``score(q, k) = qᵀ k`` (query and key dimensions must match)."""

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        if query.shape[-1] != keys.shape[-1]:
            raise ValueError(
                f"DotAttention needs query and key dimensions to match; got {query.shape[-1]} and "
                f"{keys.shape[-1]} (use GeneralAttention or AdditiveAttention)"
            )
        return torch.bmm(query, keys.transpose(1, 2))  # (B, Tq, Tk)


class GeneralAttention(_ScoreAttention):
    """Luong's general (bilinear) score ``score(q, k) = qᵀ W k`` with ``W`` of shape (Dq, Dk).

    ``W`` is stored as ``self.weight.weight`` (an ``nn.Linear(key_dim, query_dim, bias=False)``
    applied to the keys).
    """

    def __init__(self, query_dim: int, key_dim: int, dropout: float = 0.0) -> None:
        super().__init__(dropout)
        self.weight = nn.Linear(key_dim, query_dim, bias=False)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, self.weight(keys).transpose(1, 2))  # (B, Tq, Tk)


class AdditiveAttention(_ScoreAttention):
    """Bahdanau's additive (concat) score ``score(q, k) = vᵀ tanh(W [q; k] + b)``.

    ``W [q; k]`` is computed as ``W_q q + W_k k`` (``W = [W_q  W_k]``): ``query_proj`` holds
    ``W_q`` (no bias), ``key_proj`` holds ``W_k`` and ``b``, ``v`` is ``nn.Linear(hidden_dim, 1,
    bias=False)``. Memory is O(B · Tq · Tk · hidden_dim).
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__(dropout)
        self.query_proj = nn.Linear(query_dim, hidden_dim, bias=False)
        self.key_proj = nn.Linear(key_dim, hidden_dim, bias=True)
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        q = self.query_proj(query)[:, :, None, :]  # (B, Tq, 1, H)
        k = self.key_proj(keys)[:, None, :, :]  # (B, 1, Tk, H)
        return self.v(torch.tanh(q + k)).squeeze(-1)  # (B, Tq, Tk)
