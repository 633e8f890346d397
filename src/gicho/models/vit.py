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
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from gicho._validation import check_choice, check_dropout, check_positive
from gicho.models._pretrained import (
    PretrainedModel,
    config_from_dict,
    hf_refusing_act,
    is_hf_refusing_act,
)
from gicho.models._vit_keys import export_hf, import_vit_state
from gicho.models._vit_processor import ViTImageProcessor
from gicho.nn.backbone import EncoderBackbone, PatchStem
from gicho.weights import CheckpointError, read_config, tensor_shapes, weights_file

__all__ = ["MAX_IMAGE_SIZE", "MAX_PATCHES", "MAX_PATCH_INPUTS", "PRESETS", "ViTConfig", "ViTForImageClassification",
           "ViTImageProcessor", "ViTModel", "ViTPretrained", "attention_rollout", "interpolate_pos_embed"]

IGNORE_INDEX = -100
VIT_POOLS = ("cls", "mean")
# name → (d_model, n_layers, n_heads) at 224 px, patch 16 (the paper's and timm's sizes)
_SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)}
PRESETS: dict[str, dict[str, Any]] = {
    **{name: {"image_size": 224, "patch_size": 16, "in_channels": 3, "d_model": d, "n_layers": n,
              "n_heads": h, "n_classes": 1000} for name, (d, n, h) in _SIZES.items()},
    # scikit-learn's 8x8 digits: 16 patches of 2x2 pixels, one grey channel
    "digits": {"image_size": 8, "patch_size": 2, "in_channels": 1, "d_model": 64, "n_layers": 2,
               "n_heads": 4, "d_ff": 128, "n_classes": 10, "dropout": 0.0},
    # small RGB images (an image folder at 32 px): 16 patches of 8x8
    "mini": {"image_size": 32, "patch_size": 8, "in_channels": 3, "d_model": 64, "n_layers": 4,
             "n_heads": 4, "d_ff": 128, "n_classes": 2, "dropout": 0.1},
}
_HF_DEFAULT_EPS = 1e-12  # Hugging Face ViTConfig's layer_norm_eps default (timm uses 1e-6)
# Sane sizes, checked by ViTConfig before any tensor is allocated (a 100,000 px side would ask
# for billions of position rows): the largest published ViTs use 1,024 px, 4,096 patches and
# 16x16x3 = 768 inputs per patch.
MAX_IMAGE_SIZE = 8192  # pixels per side
MAX_PATCHES = 16_384  # patches per image, (image_size // patch_size) ** 2: a 128 x 128 grid
MAX_PATCH_INPUTS = 65_536  # in_channels * patch_size ** 2, the inputs of one patch embedding


@dataclass
class ViTConfig:
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
    n_classes : int or None
        Classes of the head (:class:`ViTForImageClassification`); ``None``: not decided yet,
        set from the data (the ``vit`` task counts the folder's classes); with ``label_names``
        given, their number.
    pool : {"cls", "mean"}
        What the head reads: the [CLS] token, or the mean of the patch tokens.
    label_names : tuple of str or None
        ``n_classes`` names (Hugging Face's ``id2label``).

    Use :meth:`preset` for the standard sizes: ``tiny``, ``small``, ``base``, ``large`` (patch 16,
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
    n_classes: int | None = 1000
    pool: Literal["cls", "mean"] = "cls"
    label_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.n_classes is None and self.label_names is not None:
            self.n_classes = len(self.label_names)
        for name in ("image_size", "patch_size", "in_channels", "d_model", "n_layers", "n_heads"):
            check_positive(getattr(self, name), name, integer=True)
        if self.n_classes is not None:
            check_positive(self.n_classes, "n_classes", integer=True)
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
        for name in ("dropout", "attention_dropout"):
            check_dropout(getattr(self, name), name)
        check_positive(self.layer_norm_eps, "layer_norm_eps")
        check_choice(self.pool, "pool", VIT_POOLS)
        if self.label_names is not None:
            self.label_names = tuple(str(n) for n in self.label_names)
            if len(self.label_names) != self.n_classes:
                raise ValueError(f"label_names has {len(self.label_names)} names; n_classes={self.n_classes}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ViTConfig:
        """The config of a named size (see the class docstring), with ``overrides``."""
        check_choice(name, "preset", tuple(PRESETS))
        return cls(**{**PRESETS[name], **overrides})

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


def interpolate_pos_embed(pos_embed: Tensor, grid_size: int) -> Tensor:
    """Resize a ViT position table to another patch grid (bicubic; [CLS]'s row kept apart).

    Parameters
    ----------
    pos_embed : Tensor, shape (1 + N, D)
        [CLS]'s position, then a square grid of N = g² patch positions, row-major.
    grid_size : int
        The new grid side g'.

    Returns
    -------
    Tensor, shape (1 + g'², D)
        As ``transformers``' ``interpolate_pos_encoding`` (bicubic, ``align_corners=False``).
    """
    check_positive(grid_size, "grid_size", integer=True)
    n, d = pos_embed.shape[0] - 1, pos_embed.shape[1]
    old = math.isqrt(n)
    if old * old != n:
        raise ValueError(f"pos_embed has {n} patch positions, not a square grid")
    if old == grid_size:
        return pos_embed.clone()
    grid = pos_embed[1:].reshape(1, old, old, d).permute(0, 3, 1, 2)  # (1, D, g, g)
    grid = F.interpolate(grid.float(), size=(grid_size, grid_size), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(grid_size * grid_size, d)  # (g'², D)
    return torch.cat([pos_embed[:1], grid.to(pos_embed.dtype)], dim=0)


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
    weights hold a head.
    ``image_processor`` (:class:`ViTImageProcessor`, saved and loaded with the model): how images
    become ``pixel_values``; 0.5 / 0.5 and gicho's evaluation crop unless a task sets its own.
    """

    config_class = ViTConfig
    model_type = "vit"
    _architecture = ""
    json_keys: ClassVar[dict[str, str]] = {"n_layers": "num_hidden_layers"}

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = EncoderBackbone(
            PatchStem(config.image_size, config.patch_size, config.in_channels, config.d_model),
            d_model=config.d_model, n_heads=config.n_heads, n_layers=config.n_layers,
            d_ff=config.ff_dim, dropout=config.dropout, attention_dropout=config.attention_dropout,
            norm_first=True, layer_norm_eps=config.layer_norm_eps, cls="learned", pool=config.pool,
            position="learned", max_len=config.n_patches, embed_norm=False)
        torch.nn.init.trunc_normal_(self.backbone.pos_embed.weight, std=0.02)
        self.image_processor = ViTImageProcessor.for_model(config.image_size, config.in_channels)

    # ------------------------------------------------------------------ forward
    def forward_features(self, pixel_values: Tensor, output_attentions: bool = False,
                         n_outputs: int | None = None) -> Any:
        """(B, C, H, W) → ``EncoderOutput``: ``last_hidden_state`` (B, 1 + N, D), ``attentions``.

        ``n_outputs=1``: the [CLS] state only, (B, 1, D) (the last layer skips the patch rows).
        """
        return self.backbone.forward_features(None, output_attentions, n_outputs,
                                              pixel_values=pixel_values)

    def pool(self, features: Any) -> Tensor:
        """(B, 1 + N, D) → (B, D): [CLS], or the mean of the patch tokens."""
        return self.backbone.pool(features)

    # ------------------------------------------------------------------ checkpoints
    def config_dict(self) -> dict[str, Any]:
        """Hugging Face's ``ViTConfig`` fields (plus gicho's ``pool``).

        A ``pool="mean"`` classifier has no counterpart in ``transformers`` (its
        ``ViTForImageClassification`` reads [CLS] and would give other logits), so its
        ``hidden_act`` is :func:`~gicho.models._pretrained.hf_refusing_act`: ``transformers``
        refuses it with that text as the error; gicho reads it as GELU.
        """
        c = self.config
        act = "gelu"
        if c.pool == "mean" and isinstance(self, ViTForImageClassification):
            act = hf_refusing_act(self._architecture, "mean pooling of the patch tokens (pool='mean')")
        names = c.label_names or tuple(f"LABEL_{i}" for i in range(c.n_classes or 0))
        return {
            "model_type": self.model_type, "architectures": [self._architecture],
            "hidden_size": c.d_model, "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads,
            "intermediate_size": c.ff_dim, "hidden_act": act, "hidden_dropout_prob": c.dropout,
            "attention_probs_dropout_prob": c.attention_dropout, "layer_norm_eps": c.layer_norm_eps,
            "image_size": c.image_size, "patch_size": c.patch_size, "num_channels": c.in_channels,
            "qkv_bias": True, "initializer_range": 0.02, "encoder_stride": c.patch_size,
            "id2label": {str(i): n for i, n in enumerate(names)},
            "label2id": {n: i for i, n in enumerate(names)}, "pool": c.pool,
        }

    @classmethod
    def config_from_json(cls, data: dict[str, Any], source: str) -> ViTConfig:
        """A Hugging Face ViT ``config.json`` (what ``transformers`` and gicho write) → ViTConfig."""
        if data.get("model_type", "vit") != "vit":
            raise CheckpointError(f"{source} holds a {data.get('model_type')!r} model, not 'vit'")
        if "hidden_size" not in data:  # a plain dump of gicho's ViTConfig fields
            return config_from_dict(ViTConfig, data, source)
        act = data.get("hidden_act", "gelu")
        if (act != "gelu" and not is_hf_refusing_act(act)) or data.get("qkv_bias", True) is not True:
            raise CheckpointError(f"{source}: hidden_act={data.get('hidden_act')!r}, qkv_bias="
                                  f"{data.get('qkv_bias')!r}; gicho's ViT has exact GELU and biased q/k/v")
        id2label = data.get("id2label") or {}
        try:
            names = [str(id2label[str(i)]) for i in range(len(id2label))]
        except KeyError:
            raise CheckpointError(f"{source}: id2label keys must be 0..{len(id2label) - 1}") from None
        default = all(n == f"LABEL_{i}" for i, n in enumerate(names))
        d_ff = data.get("intermediate_size")
        if d_ff == 4 * data["hidden_size"]:
            d_ff = None  # the default width: a config written from d_ff=None reads back equal
        values = {
            "image_size": data.get("image_size", 224), "patch_size": data.get("patch_size", 16),
            "in_channels": data.get("num_channels", 3), "d_model": data["hidden_size"],
            "n_layers": data.get("num_hidden_layers", 12), "n_heads": data.get("num_attention_heads", 12),
            "d_ff": d_ff, "dropout": data.get("hidden_dropout_prob", 0.0),
            "attention_dropout": data.get("attention_probs_dropout_prob", 0.0),
            "layer_norm_eps": data.get("layer_norm_eps", _HF_DEFAULT_EPS),
            "n_classes": len(names) or 2, "pool": data.get("pool", "cls"),
            "label_names": None if default or not names else tuple(names),
        }
        return config_from_dict(ViTConfig, values, source)

    @classmethod
    def import_state_dict(cls, state: dict[str, Tensor], config: Any) -> dict[str, Tensor]:
        """Hugging Face, timm or gicho names → gicho's (works on meta tensors)."""
        return import_vit_state(state)

    def export_state_dict(self) -> dict[str, Tensor]:
        """Hugging Face's on-disk layout (``vit.`` prefix for the classifier)."""
        prefix = "vit." if isinstance(self, ViTForImageClassification) else ""
        return export_hf(self.state_dict(), self.config.n_layers, prefix=prefix)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """As the base, plus ``preprocessor_config.json`` (ValueError: a processor not fitting the model)."""
        self.image_processor.check_fits(self.config.image_size, self.config.in_channels, "image_processor")
        directory = super().save_pretrained(directory)
        self.image_processor.save(directory)
        return directory

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, key_map: Any = None,
                        config: ViTConfig | str | None = None) -> ViTPretrained:
        """Load a Hugging Face ViT directory, a gicho checkpoint, or a timm state dict.

        Parameters
        ----------
        path : path
            A directory (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``) or a
            weights file (timm's ``.safetensors``), which then needs ``config``.
        config : ViTConfig or str, optional
            The config, or a preset name (``"base"``), instead of ``config.json``.

        Raises
        ------
        CheckpointError
            A non-ViT config, unsupported options, or weights that do not match (checked on
            the meta device before reading); an image processor gicho cannot apply or not fitting.
        """
        if isinstance(config, str):
            config = ViTConfig.preset(config)
        target = cls
        if cls is ViTPretrained:
            data = read_config(path) if config is None else {}
            arch = data.get("architectures") or []
            if "ViTForImageClassification" in arch:
                target = ViTForImageClassification
            elif "ViTModel" in arch:
                target = ViTModel
            else:
                names = tensor_shapes(weights_file(path))
                has_head = any(k.startswith(("head.", "classifier.")) for k in names)
                target = ViTForImageClassification if has_head else ViTModel
        model = PretrainedModel.from_pretrained.__func__(target, path, key_map=key_map, config=config)
        c = model.config
        if Path(path).is_dir() and (processor := ViTImageProcessor.load(
                path, image_size=c.image_size, channels=c.in_channels)) is not None:
            processor.check_fits(c.image_size, c.in_channels, f"the image processor of {path}", CheckpointError)
            model.image_processor = processor
        return model

    def with_image_size(self, image_size: int) -> ViTPretrained:
        """A copy of this model for ``image_size`` px, its position table interpolated.

        The patch size is kept; see :func:`interpolate_pos_embed`.
        """
        config = dataclasses.replace(self.config, image_size=image_size)
        state = dict(self.state_dict())
        state["backbone.pos_embed.weight"] = interpolate_pos_embed(state["backbone.pos_embed.weight"],
                                                                   config.grid_size)
        model = type(self)(config).to(next(self.parameters()).device)
        model.load_state_dict(state)
        model.image_processor = dataclasses.replace(self.image_processor, image_size=image_size)
        return model.train(self.training)


class ViTModel(ViTPretrained):
    """The ViT encoder: pixels → token states and one pooled vector (no head)."""

    _architecture = "ViTModel"

    @classmethod
    def import_state_dict(cls, state: dict[str, Tensor], config: Any) -> dict[str, Tensor]:
        """As the base, dropping a classifier's head (the encoder of a classifier checkpoint)."""
        return {k: v for k, v in import_vit_state(state).items() if not k.startswith("head.")}

    def forward(self, pixel_values: Tensor, output_attentions: bool = False) -> dict[str, Any]:
        """Encode images.

        Returns
        -------
        dict
            ``"last_hidden_state"`` (B, 1 + N, D) after the final LayerNorm ([CLS] first), as
            ``transformers.ViTModel``; ``"pooled"`` (B, D) ([CLS] or mean, per ``pool``);
            ``"attentions"`` (tuple of (B, H, 1 + N, 1 + N)) when ``output_attentions``.
        """
        enc = self.forward_features(pixel_values, output_attentions)
        out: dict[str, Any] = {"last_hidden_state": enc.last_hidden_state, "pooled": self.pool(enc)}
        if output_attentions:
            out["attentions"] = enc.attentions
        return out


class ViTForImageClassification(ViTPretrained):
    """ViT with a linear head on [CLS] (or the mean patch token): ``n_classes`` logits."""

    _architecture = "ViTForImageClassification"

    def __init__(self, config: ViTConfig) -> None:
        if config.n_classes is None:
            raise ValueError("argument `n_classes` is None (not decided yet); a classifier needs its number "
                             "of classes: set config.n_classes (or label_names)")
        super().__init__(config)
        self.head = torch.nn.Linear(config.d_model, config.n_classes)

    def forward_head(self, pooled: Tensor) -> Tensor:
        """(B, D) → (B, n_classes)."""
        return self.head(pooled)

    def forward(self, pixel_values: Tensor, labels: Tensor | None = None,
                output_attentions: bool = False) -> dict[str, Any]:
        """Classify images (B, C, H, W), normalised as the model was trained.

        Returns
        -------
        dict
            ``"logits"`` (B, n_classes); with ``labels`` (B,) int64, ``"loss"`` (mean
            cross-entropy, labels of -100 ignored) and ``"n_items"``; ``"attentions"`` when
            ``output_attentions``.
        """
        cls_only = 1 if self.config.pool == "cls" else None  # the head reads [CLS] only
        enc = self.forward_features(pixel_values, output_attentions, n_outputs=cls_only)
        logits = self.forward_head(self.pool(enc))  # (B, C)
        out: dict[str, Any] = {"logits": logits}
        if labels is not None:
            try:
                out["loss"] = F.cross_entropy(logits.float(), labels.long(), ignore_index=IGNORE_INDEX)
            except IndexError:
                raise ValueError(f"labels must be class indices in [0, {self.config.n_classes}) or "
                                 f"{IGNORE_INDEX}; some are outside") from None
            out["n_items"] = (labels != IGNORE_INDEX).sum()
        if output_attentions:
            out["attentions"] = enc.attentions
        return out

    @torch.no_grad()
    def rollout_maps(self, pixel_values: Tensor) -> Tensor:
        """Attention-rollout maps of [CLS] over the patch grid, (B, g, g), each summing to 1."""
        attentions = self.forward_features(pixel_values, output_attentions=True).attentions
        cls_row = attention_rollout(attentions)[:, 0, 1:]  # (B, N): [CLS] → patches
        cls_row = cls_row / cls_row.sum(dim=-1, keepdim=True)
        g = self.config.grid_size
        return cls_row.reshape(-1, g, g)  # (B, g, g)

    def reset_head(self, n_classes: int, label_names: tuple[str, ...] | None = None) -> ViTForImageClassification:
        """Replace the head by a fresh one for ``n_classes`` classes (fine-tuning); returns self."""
        self.config = dataclasses.replace(self.config, n_classes=n_classes, label_names=label_names)
        device = self.head.weight.device
        self.head = torch.nn.Linear(self.config.d_model, n_classes).to(device)
        return self
