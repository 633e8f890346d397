"""Input layers of the stems (:mod:`gicho.nn.stems`): positions, patches, features.

* :class:`LearnedPositionEmbedding` — a trainable table (BERT, ViT).
* :class:`SinusoidalPositionEmbedding` — the fixed table of Vaswani et al. (2017), §3.5:
  ``PE[p, 2i] = sin(p / 10000^(2i/D))``, ``PE[p, 2i+1] = cos(p / 10000^(2i/D))``.
* :class:`PatchEmbedding` — image → non-overlapping patches → tokens with a ``Conv2d`` whose
  kernel and stride equal the patch size (Dosovitskiy et al. 2021; timm's ``patch_embed.proj``).
* :class:`ConvPatchEmbedding` — two 3×3 convolutions before that projection (Xiao et al. 2021,
  "Early convolutions help transformers see better").
* :class:`ShiftedPatchEmbedding` — Shifted Patch Tokenization (Lee, Lee & Song 2021, "Vision
  Transformer for Small-Size Datasets"): the image and its four diagonal shifts, cut into
  patches, normalised and projected.
* :class:`FeatureTokenizer` — one token per tabular feature, ``x_j · W_j + b_j``
  (Gorishniy et al. 2021, "Revisiting deep learning models for tabular data", FT-Transformer).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "PATCH_EMBEDDINGS",
    "ConvPatchEmbedding",
    "FeatureTokenizer",
    "LearnedPositionEmbedding",
    "PatchEmbedding",
    "PatchEmbeddingKind",
    "ShiftedPatchEmbedding",
    "SinusoidalPositionEmbedding",
    "make_patch_embedding",
    "sinusoidal_table",
]

# How images become patch tokens: PatchEmbedding, ConvPatchEmbedding, ShiftedPatchEmbedding
PatchEmbeddingKind = Literal["patch", "conv", "shifted"]
PATCH_EMBEDDINGS: tuple[str, ...] = get_args(PatchEmbeddingKind)


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
        self.in_channels = in_channels
        self.n_patches = (image_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_channels, d_model, kernel_size=patch_size, stride=patch_size)

    def check_images(self, images: Tensor) -> None:
        """Raise ``ValueError`` unless ``images`` is (B, in_channels, image_size, image_size)."""
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"images must have shape (B, {self.in_channels}, H, W); got {tuple(images.shape)}"
            )
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"images must be {self.image_size}x{self.image_size}; got "
                f"{images.shape[-2]}x{images.shape[-1]}"
            )

    def forward(self, images: Tensor) -> Tensor:
        """``images`` (B, C, H, W) float → patch tokens (B, N, D), N = (H/P)·(W/P), row-major."""
        self.check_images(images)
        x = self.proj(images)  # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)


class ConvPatchEmbedding(PatchEmbedding):
    """A small convolutional stem, then the patch projection: the same N tokens.

    ``conv`` is two 3×3 convolutions with stride 1 and padding 1 (the H × W grid kept), each
    followed by ReLU, ``width`` channels wide; ``proj`` then maps each P × P patch of those
    features to ``d_model`` (kernel = stride = P). Early convolutions give the tokens local
    features the linear patch map lacks (Xiao et al. 2021, "Early convolutions help
    transformers see better"; the convolutional tokenizer of Hassani et al. 2021, "Escaping the
    big data paradigm with Compact Transformers"). Simplified for small images: stride 1 where
    Xiao et al. downsample with stride-2 convolutions, and no BatchNorm (no train/eval state).

    Parameters
    ----------
    image_size, patch_size, in_channels, d_model
        As :class:`PatchEmbedding`.
    width : int, optional
        Channels of the convolutions; default ``d_model // 2`` (at least 1).
    """

    def __init__(self, image_size: int, patch_size: int, in_channels: int, d_model: int,
                 width: int | None = None) -> None:
        width = max(1, d_model // 2) if width is None else width
        super().__init__(image_size, patch_size, width, d_model)  # proj reads the conv features
        self.in_channels = in_channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, kernel_size=3, padding=1), nn.ReLU(),
        )

    def forward(self, images: Tensor) -> Tensor:
        """``images`` (B, C, H, W) float → patch tokens (B, N, D), row-major."""
        self.check_images(images)
        x = self.proj(self.conv(images))  # (B, width, H, W) → (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)


class ShiftedPatchEmbedding(nn.Module):
    """Shifted Patch Tokenization (Lee, Lee & Song 2021, "Vision Transformer for Small-Size
    Datasets", §3.1): each token also sees the pixels around its patch.

    The image is concatenated along channels with its four diagonal shifts by ``P // 2`` pixels
    (towards the top-left, top-right, bottom-left and bottom-right corners; the uncovered border
    is zero, the background of normalised inputs, as the authors' code pads), giving 5·C
    channels; each P × P patch of those is flattened (channel-major, as ``F.unfold``: a fixed
    permutation of the authors' order), normalised by ``norm`` (LayerNorm over its 5·C·P²
    values) and mapped to ``d_model`` by ``proj`` (``nn.Linear``).

    Parameters
    ----------
    image_size, patch_size, in_channels, d_model
        As :class:`PatchEmbedding`; ``patch_size >= 2`` (a shift of ``patch_size // 2 >= 1``).
    layer_norm_eps : float
    """

    def __init__(self, image_size: int, patch_size: int, in_channels: int, d_model: int,
                 layer_norm_eps: float = 1e-5) -> None:
        super().__init__()
        if image_size % patch_size != 0:
            raise ValueError(f"image_size={image_size} must be divisible by patch_size={patch_size}")
        if patch_size < 2:
            raise ValueError(f"shifted patches move the image by patch_size // 2 pixels: patch_size must be "
                             f">= 2; got {patch_size}")
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.n_patches = (image_size // patch_size) ** 2
        self.shift = patch_size // 2
        n_inputs = 5 * in_channels * patch_size**2
        self.norm = nn.LayerNorm(n_inputs, eps=layer_norm_eps)
        self.proj = nn.Linear(n_inputs, d_model)

    check_images = PatchEmbedding.check_images  # the same input check (the same attributes)

    def shifted(self, images: Tensor) -> Tensor:
        """(B, C, H, W) → (B, 5C, H, W): the image, then its shifts towards the top-left,
        top-right, bottom-left and bottom-right corners (channel blocks of C)."""
        s, (H, W) = self.shift, images.shape[-2:]
        padded = F.pad(images, (s, s, s, s))  # (B, C, H + 2s, W + 2s), zeros around
        # a window of the padded image offset by (dy, dx) is the image moved by (s - dy, s - dx)
        corners = [padded[..., dy:dy + H, dx:dx + W] for dy, dx in ((0, 0), (0, 2 * s), (2 * s, 0), (2 * s, 2 * s))]
        return torch.cat([images, *corners], dim=1)

    def forward(self, images: Tensor) -> Tensor:
        """``images`` (B, C, H, W) float → patch tokens (B, N, D), row-major."""
        self.check_images(images)
        P = self.patch_size
        patches = F.unfold(self.shifted(images), kernel_size=P, stride=P)  # (B, 5C·P², N)
        return self.proj(self.norm(patches.transpose(1, 2)))  # (B, N, D)


def make_patch_embedding(kind: str, image_size: int, patch_size: int, in_channels: int,
                         d_model: int) -> nn.Module:
    """``"patch"`` → :class:`PatchEmbedding`, ``"conv"`` → :class:`ConvPatchEmbedding`,
    ``"shifted"`` → :class:`ShiftedPatchEmbedding`."""
    classes = {"patch": PatchEmbedding, "conv": ConvPatchEmbedding, "shifted": ShiftedPatchEmbedding}
    if kind not in classes:
        raise ValueError(f"argument `patch_embedding` must be one of {PATCH_EMBEDDINGS}; got {kind!r}")
    return classes[kind](image_size, patch_size, in_channels, d_model)


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
