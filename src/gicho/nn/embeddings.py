"""Input layers of the stems (:mod:`gicho.nn.stems`): positions, patches, features.

* :class:`LearnedPositionEmbedding` — a trainable table (BERT, ViT).
* :class:`SinusoidalPositionEmbedding` — the fixed table of Vaswani et al. (2017), §3.5:
  ``PE[p, 2i] = sin(p / 10000^(2i/D))``, ``PE[p, 2i+1] = cos(p / 10000^(2i/D))``.
* :class:`PatchEmbedding` — image → non-overlapping patches → tokens with a ``Conv2d`` whose
  kernel and stride equal the patch size (Dosovitskiy et al. 2021; timm's ``patch_embed.proj``).
* :class:`FeatureTokenizer` — one token per tabular feature, ``x_j · W_j + b_j``
  (Gorishniy et al. 2021, "Revisiting deep learning models for tabular data", FT-Transformer).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "FeatureTokenizer",
    "LearnedPositionEmbedding",
    "PatchEmbedding",
    "SinusoidalPositionEmbedding",
    "sinusoidal_table",
]


def _check_length(length: int, max_len: int) -> None:
    if length > max_len:
        raise ValueError(
            f"sequence length {length} exceeds the position table's max_len={max_len}; "
            f"truncate the input or build the model with max_len >= {length}"
        )


def sinusoidal_table(max_len: int, d_model: int) -> Tensor:
    """The sinusoidal position table of Vaswani et al. (2017), §3.5.

    Returns
    -------
    Tensor, float32, shape (max_len, d_model)
        Even columns ``sin(p · ω_i)``, odd columns ``cos(p · ω_i)`` with
        ``ω_i = 10000^(-2i / d_model)``; an odd ``d_model`` drops the last cosine column.
    """
    position = torch.arange(max_len, dtype=torch.float64)[:, None]  # (L, 1)
    freq = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model)
    )  # (ceil(D/2),)
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return table.float()


class LearnedPositionEmbedding(nn.Module):
    """A trainable position table; ``forward(x)`` adds rows ``0..T-1`` (or ``offset..``) to x.

    Parameters
    ----------
    max_len : int
        Number of positions in the table; longer inputs raise ``ValueError``.
    d_model : int
    """

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (B, T, D) float → ``x + P[:T]`` (B, T, D)."""
        _check_length(x.shape[1], self.max_len)
        return x + self.weight[: x.shape[1]]


class SinusoidalPositionEmbedding(nn.Module):
    """The fixed sinusoidal table (not trained, not saved: rebuilt from ``max_len, d_model``)."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (B, T, D) float → ``x + PE[:T]`` (B, T, D)."""
        _check_length(x.shape[1], self.max_len)
        return x + self.table[: x.shape[1]].to(x.dtype)


def make_position_embedding(position: str, max_len: int, d_model: int) -> nn.Module | None:
    """``"learned"`` → :class:`LearnedPositionEmbedding`, ``"sinusoidal"`` → fixed, ``"none"``."""
    if position == "learned":
        return LearnedPositionEmbedding(max_len, d_model)
    if position == "sinusoidal":
        return SinusoidalPositionEmbedding(max_len, d_model)
    if position == "none":
        return None
    raise ValueError(f"position must be one of 'learned', 'sinusoidal', 'none'; got {position!r}")


class PatchEmbedding(nn.Module):
    """Split images into ``patch_size × patch_size`` patches and project each to ``d_model``.

    ``proj`` is ``Conv2d(in_channels, d_model, kernel_size=patch_size, stride=patch_size)``,
    equal to flattening each patch (channel-major, as timm) and applying one linear map.

    Parameters
    ----------
    image_size : int
        Height and width the model expects (square images).
    patch_size : int
        Must divide ``image_size``.
    in_channels : int
    d_model : int
    """

    def __init__(self, image_size: int, patch_size: int, in_channels: int, d_model: int) -> None:
        super().__init__()
        if image_size % patch_size != 0:
            raise ValueError(
                f"image_size={image_size} must be divisible by patch_size={patch_size}"
            )
        self.image_size = image_size
        self.patch_size = patch_size
        self.n_patches = (image_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_channels, d_model, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: Tensor) -> Tensor:
        """``images`` (B, C, H, W) float → patch tokens (B, N, D), N = (H/P)·(W/P), row-major."""
        if images.ndim != 4 or images.shape[1] != self.proj.in_channels:
            raise ValueError(
                f"images must have shape (B, {self.proj.in_channels}, H, W); got {tuple(images.shape)}"
            )
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"images must be {self.image_size}x{self.image_size}; got "
                f"{images.shape[-2]}x{images.shape[-1]}"
            )
        x = self.proj(images)  # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)


class FeatureTokenizer(nn.Module):
    """One token per scalar feature: ``token_j = x_j · W_j + b_j`` (FT-Transformer, §3.3).

    Parameters
    ----------
    n_features : int
    d_model : int
    bias : bool
        Per-feature bias ``b_j`` (it also identifies the feature, so no position is needed).

    Attributes
    ----------
    weight : Parameter, shape (n_features, d_model)
    bias : Parameter, shape (n_features, d_model), or None
    """

    def __init__(self, n_features: int, d_model: int, bias: bool = True) -> None:
        super().__init__()
        self.n_features = n_features
        bound = 1.0 / math.sqrt(d_model)  # the FT-Transformer's uniform initialisation
        self.weight = nn.Parameter(torch.empty(n_features, d_model).uniform_(-bound, bound))
        self.bias = (
            nn.Parameter(torch.empty(n_features, d_model).uniform_(-bound, bound)) if bias else None
        )

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (B, F) float → tokens (B, F, D)."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(
                f"features must have shape (B, {self.n_features}); got {tuple(x.shape)}"
            )
        tokens = x[:, :, None] * self.weight  # (B, F, D)
        return tokens if self.bias is None else tokens + self.bias
