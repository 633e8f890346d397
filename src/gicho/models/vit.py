"""Vision Transformer (Dosovitskiy et al. 2021, "An image is worth 16x16 words").

An image (B, C, H, W) is cut into P×P patches, each embedded by one linear map (a ``Conv2d``
with kernel = stride = P), a learned [CLS] vector is prepended, learned positions are added,
and a pre-LN Transformer encoder (final LayerNorm) runs over the N + 1 tokens; the head reads
[CLS] (``pool="cls"``, the paper and Hugging Face) or the mean of the patch tokens
(``pool="mean"``, [CLS] excluded as in timm; normalised before pooling). Both models are heads
over :class:`gicho.nn.EncoderBackbone` with a :class:`gicho.nn.PatchStem`.

Checkpoints: ``save_pretrained`` writes Hugging Face's layout (``config.json`` with
``model_type: "vit"`` and ``model.safetensors``), which ``transformers.ViTModel`` /
``ViTForImageClassification`` load, and the image processor as ``preprocessor_config.json``
(:mod:`gicho.models._vit_processor`) for ``transformers.pipeline``; ``from_pretrained`` reads
those directories (with their processor), gicho's own
training checkpoints and timm state dicts (see :mod:`gicho.models._vit_keys`). A timm file has
no config: pass ``config=`` a :class:`ViTConfig` or a preset name
(``ViTForImageClassification.from_pretrained("vit_base.safetensors", config="base")``), or put a
``config.json`` written by gicho beside it. Hugging Face's ``ViTModel`` tanh pooler is not part
of gicho's ``ViTModel`` (it is dropped when loading; ``transformers`` initialises it afresh when
it loads a gicho ``ViTModel``). ``pool="mean"`` models are gicho's only: ``transformers`` always
classifies from [CLS].

Attention rollout (Abnar & Zuidema 2020, "Quantifying attention flow in transformers"): average
the heads, add the identity (the residual stream), renormalise the rows and multiply the layers,
``R = Â_L · … · Â_1``; the [CLS] row over the patches is the map (:func:`attention_rollout`).

Options for small data sets (each off by default: the plain ViT above, the same parameters and
the same initial draws for a seed):

* ``distillation=True``: DeiT's distillation token (Touvron et al. 2021, "Training
  data-efficient image transformers & distillation through attention"), a second learned token
  after [CLS] read by a second head (``head_dist``) trained on a teacher's labels; saved in the
  layout of ``transformers.DeiTForImageClassificationWithTeacher`` (``model_type: "deit"``).
* ``attention="lsa"``: Locality Self-Attention (Lee, Lee & Song 2021, "Vision Transformer for
  Small-Size Datasets"): a learned temperature per head and layer, no attention of a token to
  itself (:class:`gicho.nn.MultiHeadSelfAttention`, ``locality=True``).
* ``stem="conv"``: two 3×3 convolutions before the patch projection (Xiao et al. 2021, "Early
  convolutions help transformers see better"; :class:`gicho.nn.ConvPatchEmbedding`).
* ``stem="shifted"``: Shifted Patch Tokenization (Lee, Lee & Song 2021): each patch with its
  four diagonally shifted copies, normalised and projected (:class:`gicho.nn.ShiftedPatchEmbedding`).

No ``transformers`` class computes the stem or LSA options: such a model is saved under gicho's
own tensor names, with a ``config.json`` that ``transformers`` refuses, naming the options.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from gicho._validation import check_choice, check_positive
from gicho.models._pretrained import HeadConfig, PretrainedModel
from gicho.models._vit_hf import (
    config_from_hf,
    config_to_hf,
    export_hf,
    hf_architecture,
    import_vit_state,
)
from gicho.models._vit_processor import ViTImageProcessor
from gicho.nn.attention import ATTENTION_KINDS, AttentionKind
from gicho.nn.backbone import EncoderBackbone
from gicho.nn.embeddings import PATCH_EMBEDDINGS, PatchEmbeddingKind
from gicho.nn.losses import classification_loss
from gicho.nn.pooling import POOL_MODES, PoolMode
from gicho.nn.stems import PatchStem
from gicho.nn.transformer import EncoderOutput, TransformerEncoder
from gicho.weights import CheckpointError, tensor_shapes, weights_file

__all__ = ["MAX_IMAGE_SIZE", "MAX_PATCHES", "MAX_PATCH_INPUTS", "PRESETS", "ViTConfig", "ViTForImageClassification",
           "ViTImageProcessor", "ViTModel", "ViTPretrained", "attention_rollout", "interpolate_pos_embed"]

# The paper's and timm's sizes at 224 px, patch 16, and two small ones of gicho's tasks.
_IMAGENET = {"image_size": 224, "patch_size": 16, "in_channels": 3, "n_labels": 1000}
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {**_IMAGENET, "d_model": 192, "n_layers": 12, "n_heads": 3},
    "small": {**_IMAGENET, "d_model": 384, "n_layers": 12, "n_heads": 6},
    "base": {**_IMAGENET, "d_model": 768, "n_layers": 12, "n_heads": 12},
    "large": {**_IMAGENET, "d_model": 1024, "n_layers": 24, "n_heads": 16},
    # scikit-learn's 8x8 digits: 16 patches of 2x2 pixels, one grey channel
    "digits": {"image_size": 8, "patch_size": 2, "in_channels": 1, "d_model": 64, "n_layers": 2,
               "n_heads": 4, "d_ff": 128, "n_labels": 10, "dropout": 0.0},
    # small RGB images (an image folder at 32 px): 16 patches of 8x8
    "mini": {"image_size": 32, "patch_size": 8, "in_channels": 3, "d_model": 64, "n_layers": 4,
             "n_heads": 4, "d_ff": 128, "n_labels": 2, "dropout": 0.1},
}
# Sane sizes, checked by ViTConfig before any tensor is allocated (a 100,000 px side would ask
# for billions of position rows): the largest published ViTs use 1,024 px, 4,096 patches and
# 16x16x3 = 768 inputs per patch.
MAX_IMAGE_SIZE = 8192  # pixels per side
MAX_PATCHES = 16_384  # patches per image, (image_size // patch_size) ** 2: a 128 x 128 grid
MAX_PATCH_INPUTS = 65_536  # in_channels * patch_size ** 2, the inputs of one patch embedding


@dataclass
class ViTConfig(HeadConfig):
    """Configuration of :class:`ViTModel` and :class:`ViTForImageClassification`.

    Parameters
    ----------
    image_size : int
        Height = width of the input images in pixels, at most ``MAX_IMAGE_SIZE`` (8192).
    patch_size : int
        Side of the square patches in pixels; it must divide ``image_size``, and the image may
        hold at most ``MAX_PATCHES`` (16,384) patches.
    in_channels : int
        Colour channels of the input: 3 for RGB, 1 for grey images.
    d_model : int
        Width of the token vectors (``d_model % n_heads == 0``).
    n_layers : int
        Number of encoder layers (depth).
    n_heads : int
        Attention heads per layer; each has ``d_model // n_heads`` dimensions.
    d_ff : int or None
        MLP width; ``None`` means ``4 * d_model``.
    dropout : float in [0, 1)
        Dropout on the embeddings and the residual branches.
    attention_dropout : float in [0, 1)
        Dropout on the attention weights.
    layer_norm_eps : float
        1e-6 as timm (Hugging Face's configs say 1e-12; both are read from their files).
    n_labels : int or None
        Classes of the head (:class:`ViTForImageClassification`); ``None``: not decided yet,
        set from the data (the ``vit`` task counts the folder's classes); with ``label_names``
        given, their number.
    pool : {"cls", "mean", "max"}
        What the head reads: the [CLS] token, or the mean (or max) of the patch tokens.
    label_names : tuple of str or None
        ``n_labels`` names (Hugging Face's ``id2label``).
    distillation : bool
        DeiT's distillation token after [CLS] (``num_prefix_tokens`` 2, positions over N + 2
        tokens) and, on the classifier, a second head reading it (see
        :meth:`ViTForImageClassification.forward`).
    attention : {"standard", "lsa"}
        Scaled dot-product attention, or Locality Self-Attention (a learned temperature per
        head, initialised to ``1/sqrt(d_model // n_heads)``; the diagonal masked).
    stem : {"patch", "conv", "shifted"}
        How patches become tokens: one linear map (``"patch"``), two 3×3 convolutions of width
        ``d_model // 2`` with ReLU first (``"conv"``), or Shifted Patch Tokenization
        (``"shifted"``, ``patch_size >= 2``: the shift is ``patch_size // 2``). The same N tokens.

    Use :meth:`from_preset` for the standard sizes: ``tiny``, ``small``, ``base``, ``large`` (patch 16,
    224 px), ``digits`` (8x8 grey, patch 2) and ``mini`` (32 px RGB, patch 8).
    """

    image_size: int = 224
    patch_size: int = 16
    in_channels: int = 3
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int | None = None
    dropout: float = 0.0
    attention_dropout: float = 0.0
    layer_norm_eps: float = 1e-6
    n_labels: int | None = 1000
    pool: PoolMode = "cls"
    label_names: tuple[str, ...] | None = None
    distillation: bool = False
    attention: AttentionKind = "standard"
    stem: PatchEmbeddingKind = "patch"
    presets: ClassVar[dict[str, dict[str, Any]]] = PRESETS

    def __post_init__(self) -> None:
        self.check_head(n_labels_may_be_none=True)
        for name in ("image_size", "patch_size", "in_channels", "d_model", "n_layers", "n_heads"):
            check_positive(getattr(self, name), name, integer=True)
        if self.image_size > MAX_IMAGE_SIZE:
            raise ValueError(f"argument `image_size` must be <= {MAX_IMAGE_SIZE} (MAX_IMAGE_SIZE) pixels; "
                             f"got {self.image_size}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} must be divisible by patch_size={self.patch_size}")
        if self.n_patches > MAX_PATCHES:
            raise ValueError(f"argument `patch_size` must leave at most {MAX_PATCHES} (MAX_PATCHES) patches; "
                             f"got patch_size={self.patch_size}, which cuts image_size={self.image_size} into "
                             f"{self.grid_size}x{self.grid_size} = {self.n_patches}; use a larger patch_size")
        if self.in_channels * self.patch_size**2 > MAX_PATCH_INPUTS:
            raise ValueError(f"argument `in_channels` * patch_size**2 must be <= {MAX_PATCH_INPUTS} "
                             f"(MAX_PATCH_INPUTS); got in_channels={self.in_channels}, "
                             f"patch_size={self.patch_size}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.d_ff is not None:
            check_positive(self.d_ff, "d_ff", integer=True)
        check_positive(self.layer_norm_eps, "layer_norm_eps")
        check_choice(self.pool, "pool", POOL_MODES)
        check_choice(self.attention, "attention", ATTENTION_KINDS)
        check_choice(self.stem, "stem", PATCH_EMBEDDINGS)
        if self.stem == "shifted" and self.patch_size < 2:
            raise ValueError(f"argument `stem`='shifted' shifts the image by patch_size // 2 pixels and needs "
                             f"patch_size >= 2; got patch_size={self.patch_size}")
        if self.stem == "shifted" and 5 * self.in_channels * self.patch_size**2 > MAX_PATCH_INPUTS:
            raise ValueError(f"argument `stem`='shifted' embeds 5 * in_channels * patch_size**2 inputs per patch, "
                             f"which must be <= {MAX_PATCH_INPUTS} (MAX_PATCH_INPUTS); got in_channels="
                             f"{self.in_channels}, patch_size={self.patch_size}")
        if not isinstance(self.distillation, bool):
            raise ValueError(f"argument `distillation` must be True or False; got {self.distillation!r}")

    @property
    def ff_dim(self) -> int:
        """The MLP width: ``d_ff``, or ``4 * d_model``."""
        return 4 * self.d_model if self.d_ff is None else self.d_ff

    @property
    def grid_size(self) -> int:
        """Patches per side, ``image_size // patch_size``."""
        return self.image_size // self.patch_size

    @property
    def n_patches(self) -> int:
        return self.grid_size**2

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patches: [CLS], and the distillation token when there is one."""
        return 1 + int(self.distillation)


def interpolate_pos_embed(pos_embed: Tensor, grid_size: int, num_prefix_tokens: int = 1) -> Tensor:
    """Resize a ViT position table to another patch grid (bicubic; the prefix rows kept apart).

    Parameters
    ----------
    pos_embed : Tensor, shape (p + N, D)
        The positions of the p prefix tokens ([CLS], and DeiT's distillation token), then a
        square grid of N = g² patch positions, row-major.
    grid_size : int
        The new grid side g'.
    num_prefix_tokens : int
        p: 1 for a ViT, 2 for a ViT with a distillation token (``config.num_prefix_tokens``).

    Returns
    -------
    Tensor, shape (p + g'², D)
        As ``transformers``' ``interpolate_pos_encoding`` (bicubic, ``align_corners=False``).
    """
    check_positive(grid_size, "grid_size", integer=True)
    check_positive(num_prefix_tokens, "num_prefix_tokens", strict=False, integer=True)
    p = num_prefix_tokens
    n, d = pos_embed.shape[0] - p, pos_embed.shape[1]
    old = math.isqrt(max(n, 0))
    if n < 1 or old * old != n:
        raise ValueError(f"pos_embed has {n} patch positions after {p} prefix token(s), not a square grid")
    if old == grid_size:
        return pos_embed.clone()
    grid = pos_embed[p:].reshape(1, old, old, d).permute(0, 3, 1, 2)  # (1, D, g, g)
    grid = F.interpolate(grid.float(), size=(grid_size, grid_size), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(grid_size * grid_size, d)  # (g'², D)
    return torch.cat([pos_embed[:p], grid.to(pos_embed.dtype)], dim=0)


def attention_rollout(attentions: tuple[Tensor, ...] | list[Tensor], *, residual: bool = True) -> Tensor:
    """Attention rollout (Abnar & Zuidema 2020): how much each output token draws on each input.

    Parameters
    ----------
    attentions : sequence of Tensor, each (B, H, T, T)
        Per-layer attention weights, first layer first (rows sum to 1).
    residual : bool
        Add the identity before renormalising (``0.5·A + 0.5·I`` up to scale), accounting for
        the residual connections, as the paper does.

    Returns
    -------
    Tensor, float32, shape (B, T, T)
        ``Â_L · … · Â_1`` with ``Â = rownorm(mean_heads(A) + I)``; rows sum to 1.
    """
    if not attentions:
        raise ValueError("argument `attentions` is empty; run the model with output_attentions=True")
    rolled = None
    for a in attentions:
        if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
            raise ValueError(f"attentions must be (B, H, T, T) tensors; got shape {tuple(a.shape)}")
        a = a.float().mean(dim=1)  # (B, T, T)
        if residual:
            a = a + torch.eye(a.shape[-1], device=a.device)
            a = a / a.sum(dim=-1, keepdim=True)
        rolled = a if rolled is None else a @ rolled  # (B, T, T)
    return rolled


class ViTPretrained(PretrainedModel):
    """Shared base: the backbone, Hugging Face's ``config.json``, the key maps, dispatch.

    ``ViTPretrained.from_pretrained(path)`` (and ``gicho.models.from_pretrained``) builds the
    class named in ``config.json``'s ``architectures``, or, without one, a classifier when the
    weights hold a head. Every head reads ``forward_features → pool → forward_head``;
    :meth:`embed` is the pooled embedding (``forward_head(..., pre_logits=True)``).
    ``image_processor`` (:class:`ViTImageProcessor`, saved and loaded with the model): how images
    become ``pixel_values``; 0.5 / 0.5 and gicho's evaluation crop unless a task sets its own.
    """

    config_class = ViTConfig
    model_type = "vit"
    model_type_aliases = ("deit",)  # a ViT with a distillation token is saved as Hugging Face's DeiT
    json_keys: ClassVar[dict[str, str]] = {"n_layers": "num_hidden_layers"}
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16", "int8")  # gicho.models.precision

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        stem = PatchStem(c.image_size, c.patch_size, c.in_channels, c.d_model, cls="learned",
                         position="learned", dropout=c.dropout, distillation=c.distillation,
                         patch_embedding=c.stem)
        encoder = TransformerEncoder(c.n_layers, c.d_model, c.n_heads, c.ff_dim, dropout=c.dropout,
                                     attention_dropout=c.attention_dropout, norm_first=True,
                                     layer_norm_eps=c.layer_norm_eps, attention=c.attention)
        self.backbone = EncoderBackbone(stem, encoder)
        torch.nn.init.trunc_normal_(stem.pos_embed.weight, std=0.02)
        self.image_processor = ViTImageProcessor.for_model(c.image_size, c.in_channels)
        self.head: torch.nn.Module | None = None  # the classifier's linear head; none on the encoder
        self.head_dist: torch.nn.Module | None = None  # the classifier's head on the distillation token

    # ------------------------------------------------------------------ forward
    def forward_features(self, pixel_values: Tensor, output_attentions: bool = False,
                         rows: int | None = None) -> EncoderOutput:
        """(B, C, H, W) → ``EncoderOutput``: ``last_hidden_state`` (B, p + N, D), ``attentions``.

        p = ``config.num_prefix_tokens`` ([CLS], and the distillation token at row 1). ``rows=1``:
        the [CLS] state only, (B, 1, D) (the last layer skips the other rows).
        """
        return self.backbone.forward_features(output_attentions=output_attentions, rows=rows,
                                              pixel_values=pixel_values)

    def pool(self, features: EncoderOutput) -> Tensor:
        """(B, p + N, D) → (B, D): [CLS], or the mean (max) of the patch tokens (the prefix
        tokens skipped)."""
        return self.backbone.pool(features, self.config.pool)

    def forward_head(self, pooled: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, D) → logits (B, n_labels); ``pre_logits`` (or no head): the pooled vector itself."""
        return pooled if pre_logits or self.head is None else self.head(pooled)

    def embed(self, pixel_values: Tensor) -> Tensor:
        """The pooled embedding (B, D) of images (B, C, H, W): what the head reads."""
        pooled, _ = self.backbone.forward_pooled(self.config.pool, pixel_values=pixel_values)
        return self.forward_head(pooled, pre_logits=True)

    # ------------------------------------------------------------------ checkpoints
    @property
    def hf_architecture(self) -> str:
        """The ``transformers`` class of this model: ``ViT...``, or ``DeiT...`` with a
        distillation token."""
        return hf_architecture(type(self).__name__, self.config.distillation)

    def config_dict(self) -> dict[str, Any]:
        """Hugging Face's ``ViTConfig`` (``DeiTConfig``) fields, plus gicho's ``pool``.

        A classifier that does not pool on [CLS] has no counterpart in ``transformers`` (its
        ``ViTForImageClassification`` and ``DeiTForImageClassificationWithTeacher`` read [CLS]
        and would give other logits), nor has an encoder with an option of :meth:`foreign_options`,
        so their ``hidden_act`` refuses ``transformers`` (:func:`gicho.models._vit_hf.config_to_hf`).
        """
        options = self.foreign_options()
        pool = self.config.pool
        if pool != "cls" and self.head is not None:
            options.append(f"{pool} pooling of the patch tokens (pool={pool!r})")
        return config_to_hf(self.config, self.hf_architecture, refuse=" and ".join(options) or None,
                            encoder_ok=not self.foreign_options())

    def foreign_options(self) -> list[str]:
        """The options of this encoder that no ``transformers`` class computes, in words."""
        c = self.config
        stems = {"conv": "the convolutional stem (stem='conv')",
                 "shifted": "Shifted Patch Tokenization (stem='shifted')"}
        lsa = ["Locality Self-Attention (attention='lsa')"] if c.attention != "standard" else []
        return [stems[c.stem], *lsa] if c.stem in stems else lsa

    @classmethod
    def config_from_json(cls, data: dict[str, Any], source: str) -> ViTConfig:
        """A Hugging Face ViT ``config.json`` (what ``transformers`` and gicho write) → ViTConfig."""
        return config_from_hf(ViTConfig, data, source)

    @classmethod
    def import_state_dict(cls, state: dict[str, Tensor], config: Any) -> dict[str, Tensor]:
        """Hugging Face, timm or gicho names (today's or earlier) → gicho's (works on meta tensors)."""
        return import_vit_state(state)

    def export_state_dict(self) -> dict[str, Tensor] | None:
        """Hugging Face's on-disk layout: ViT's (``vit.`` prefix for the classifier), or DeiT's
        (``deit.``) with a distillation token; ``None`` (gicho's own names) for an encoder with
        :meth:`foreign_options` (no Hugging Face layout holds its tensors)."""
        if self.foreign_options():
            return None
        return export_hf(self.state_dict(), head=self.head is not None, distillation=self.config.distillation)

    def check_extras(self) -> None:
        self.image_processor.check_fits(self.config.image_size, self.config.in_channels, "image_processor")

    def save_extras(self, directory: Path) -> None:
        self.image_processor.save(directory)

    def load_extras(self, directory: Path) -> None:
        """The image processor saved beside the weights (``preprocessor_config.json``), if any.

        Raises
        ------
        CheckpointError
            A processor gicho cannot apply, or one that does not fit the model.
        """
        c = self.config
        processor = ViTImageProcessor.load(directory, image_size=c.image_size, channels=c.in_channels)
        if processor is not None:
            processor.check_fits(c.image_size, c.in_channels, f"the image processor of {directory}",
                                 CheckpointError)
            self.image_processor = processor

    @classmethod
    def default_head(cls, path: Path) -> type:
        """Without ``architectures``: a classifier when the weights hold a head."""
        names = tensor_shapes(weights_file(path))
        has_head = any(k.startswith(("head.", "classifier.", "cls_classifier.")) for k in names)
        return ViTForImageClassification if has_head else ViTModel

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, key_map: Any = None,
                        config: ViTConfig | str | None = None, precision: str = "fp32") -> ViTPretrained:
        """Load a Hugging Face ViT directory, a gicho checkpoint, or a timm state dict.

        Parameters
        ----------
        path : path
            A directory (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``) or a
            weights file (timm's ``.safetensors``), which then needs ``config``.
        config : ViTConfig or str, optional
            The config, or a preset name (``"base"``), instead of ``config.json``.
        precision : {"fp32", "bf16", "int8"}
            CPU inference precision (:func:`gicho.models.precision.to_precision`).

        Raises
        ------
        CheckpointError
            A non-ViT config, unsupported options, or weights that do not match (checked on
            the meta device before reading); an image processor gicho cannot apply or not fitting.
        """
        if isinstance(config, str):
            config = ViTConfig.from_preset(config)
        return super().from_pretrained(path, key_map=key_map, config=config, precision=precision)

    def with_image_size(self, image_size: int) -> ViTPretrained:
        """A copy of this model for ``image_size`` px, its position table interpolated.

        The patch size is kept; see :func:`interpolate_pos_embed`.
        """
        config = dataclasses.replace(self.config, image_size=image_size)
        state = dict(self.state_dict())
        key = "backbone.stem.pos_embed.weight"
        state[key] = interpolate_pos_embed(state[key], config.grid_size, config.num_prefix_tokens)
        model = type(self)(config).to(next(self.parameters()).device)
        model.load_state_dict(state)
        model.image_processor = dataclasses.replace(self.image_processor, image_size=image_size)
        return model.train(self.training)


class ViTModel(ViTPretrained):
    """The ViT encoder: pixels → token states (no head; :meth:`embed` gives the pooled vector)."""

    @classmethod
    def import_state_dict(cls, state: dict[str, Tensor], config: Any) -> dict[str, Tensor]:
        """As the base, dropping a classifier's heads (the encoder of a classifier checkpoint)."""
        return {k: v for k, v in import_vit_state(state).items() if not k.startswith(("head.", "head_dist."))}

    def forward(self, pixel_values: Tensor, output_attentions: bool = False) -> dict[str, Any]:
        """Encode images.

        Returns
        -------
        dict
            ``"last_hidden_state"`` (B, p + N, D) after the final LayerNorm ([CLS] first, then
            the distillation token if any), as ``transformers.ViTModel`` (``DeiTModel``);
            ``"attentions"`` (tuple of (B, H, p + N, p + N)) when ``output_attentions``.
        """
        enc = self.forward_features(pixel_values, output_attentions)
        out: dict[str, Any] = {"last_hidden_state": enc.last_hidden_state}
        if output_attentions:
            out["attentions"] = enc.attentions
        return out


class ViTForImageClassification(ViTPretrained):
    """ViT with a linear head on [CLS] (or the pooled patch tokens): ``n_labels`` logits.

    With ``config.distillation``, a second linear head ``head_dist`` reads the distillation
    token (DeiT, Touvron et al. 2021); see :meth:`forward`.
    """

    def __init__(self, config: ViTConfig) -> None:
        if config.n_labels is None:
            raise ValueError("argument `n_labels` is None (not decided yet); a classifier needs its number "
                             "of classes: set config.n_labels (or label_names)")
        super().__init__(config)
        self.head = torch.nn.Linear(config.d_model, config.n_labels)
        if config.distillation:
            self.head_dist = torch.nn.Linear(config.d_model, config.n_labels)

    def forward(self, pixel_values: Tensor, labels: Tensor | None = None, teacher_labels: Tensor | None = None,
                output_attentions: bool = False) -> dict[str, Any]:
        """Classify images (B, C, H, W), normalised as the model was trained.

        Parameters
        ----------
        pixel_values : Tensor, float, shape (B, C, H, W)
        labels : Tensor, int64, shape (B,), optional
            The true classes (-100: not scored).
        teacher_labels : Tensor, int64, shape (B,), optional
            A teacher's predicted classes, for the distillation head (``config.distillation``
            only): DeiT's hard-label distillation. Without them both heads learn ``labels``.
        output_attentions : bool

        Returns
        -------
        dict
            ``"logits"`` (B, n_labels); with ``labels`` (B,) int64 (or soft targets (B, n_labels)
            float, see :func:`gicho.nn.losses.classification_loss`), ``"loss"`` (mean
            cross-entropy, labels of -100 ignored) and ``"n_items"``; ``"attentions"`` when
            ``output_attentions``.

            With a distillation token, ``"logits"`` is the mean of the two heads' logits,
            ``(cls_logits + distillation_logits) / 2`` (DeiT's prediction at test time, as
            ``transformers.DeiTForImageClassificationWithTeacher``), with ``"cls_logits"`` (the
            head on what ``pool`` reads: [CLS] or the patch tokens) and
            ``"distillation_logits"`` (the head on the distillation token) beside it; the loss
            is ``0.5 · CE(cls_logits, labels) + 0.5 · CE(distillation_logits, teacher_labels)``
            (Touvron et al. 2021, eq. (3)), ``n_items`` the scored ``labels``.

        Raises
        ------
        ValueError
            ``teacher_labels`` for a model without a distillation token, or without ``labels``.
        """
        if teacher_labels is not None and (self.head_dist is None or labels is None):
            why = "the model has no distillation token (distillation=False)" if self.head_dist is None \
                else "labels are missing (the class head learns them)"
            raise ValueError(f"argument `teacher_labels` was given, but {why}")
        pooled, enc = self.backbone.forward_pooled(self.config.pool, output_attentions=output_attentions,
                                                   pixel_values=pixel_values)
        logits = self.forward_head(pooled)  # (B, C)
        out: dict[str, Any] = {"logits": logits}
        if self.head_dist is not None:
            dist_logits = self.head_dist(enc.last_hidden_state[:, 1])  # (B, C): the distillation token
            out = {"logits": (logits + dist_logits) / 2, "cls_logits": logits, "distillation_logits": dist_logits}
        if labels is not None:
            out.update(classification_loss(logits, labels))
            if self.head_dist is not None:
                teacher = labels if teacher_labels is None else teacher_labels
                out["loss"] = 0.5 * out["loss"] + 0.5 * classification_loss(dist_logits, teacher)["loss"]
        if output_attentions:
            out["attentions"] = enc.attentions
        return out

    @torch.no_grad()
    def rollout_maps(self, pixel_values: Tensor) -> Tensor:
        """Attention-rollout maps of [CLS] over the patch grid, (B, g, g), each summing to 1
        (the distillation token, when there is one, is left out like [CLS] itself)."""
        attentions = self.forward_features(pixel_values, output_attentions=True).attentions
        p = self.config.num_prefix_tokens
        cls_row = attention_rollout(attentions)[:, 0, p:]  # (B, N): [CLS] → patches
        cls_row = cls_row / cls_row.sum(dim=-1, keepdim=True)
        g = self.config.grid_size
        return cls_row.reshape(-1, g, g)  # (B, g, g)

    def reset_head(self, n_labels: int, label_names: tuple[str, ...] | None = None) -> ViTForImageClassification:
        """Replace the head (and the distillation head) by fresh ones for ``n_labels`` classes
        (fine-tuning); returns self."""
        self.config = dataclasses.replace(self.config, n_labels=n_labels, label_names=label_names)
        device = self.head.weight.device
        self.head = torch.nn.Linear(self.config.d_model, n_labels).to(device)
        if self.head_dist is not None:
            self.head_dist = torch.nn.Linear(self.config.d_model, n_labels).to(device)
        return self


ViTPretrained.heads = {"ViTModel": ViTModel, "ViTForImageClassification": ViTForImageClassification,
                       "DeiTModel": ViTModel, "DeiTForImageClassificationWithTeacher": ViTForImageClassification}
