"""Stems: everything a Transformer encoder's input goes through before the first layer.

A stem turns a model's raw inputs into token vectors (B, T', D) and says which of them are
padding, as Hugging Face's ``BertEmbeddings`` / ``ViTEmbeddings`` do. Each stem first embeds
its input kind (:meth:`Stem.embed`), then, in this order and each only when configured:

1. prepends a learned [CLS] vector (``cls="learned"``: ViT, the digits-rows classifier). With
   ``cls="input"`` the input's first token already is [CLS] (BERT's tokenizer puts it there);
   with ``cls="none"`` there is none. ``distillation=True`` (with a learned [CLS] only) puts a
   second learned vector after it, DeiT's distillation token (Touvron et al. 2021, "Training
   data-efficient image transformers & distillation through attention"), which a second head reads;
2. adds position embeddings (``position``: ``"learned"``, ``"sinusoidal"`` or ``"none"``),
   over a learned [CLS] too (as ViT);
3. normalises (``norm``: BERT and post-LN classifiers) and applies dropout.

:attr:`Stem.num_prefix_tokens` is how many tokens the stem added in front (timm's name): 1 for
a learned [CLS] (2 with a distillation token), else 0. Mean and max pooling skip them (:func:`gicho.nn.pooling.pool`); a
tokenizer's [CLS] is a real input token, pooled like the others (as sentence-transformers).
:attr:`Stem.has_cls` says whether row 0 is a [CLS] at all (learned or from the input), which
``pool="cls"`` needs.

The stems: :class:`TokenStem` (token ids, with optional segment embeddings: BERT),
:class:`PatchStem` (images cut into patches: ViT) and :class:`FeatureStem` (continuous
features: one token per feature, or vector tokens, with the input scaling saved in the model).
A new input kind subclasses :class:`Stem`: create its own layers, call
:meth:`Stem._add_prefix_and_positions`, and implement :meth:`Stem.embed`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from gicho.nn.embeddings import FeatureTokenizer, make_patch_embedding, make_position_embedding
from gicho.nn.fast_dropout import Dropout

__all__ = ["CLS_SOURCES", "ClsSource", "FeatureStem", "PatchStem", "Stem", "TokenStem"]

ClsSource = Literal["learned", "input", "none"]
CLS_SOURCES: tuple[str, ...] = ("learned", "input", "none")


class Stem(nn.Module):
    """Base of the stems (see the module docstring): embed, [CLS], positions, norm, dropout.

    Attributes
    ----------
    input_names : tuple of str
        The keyword inputs :meth:`forward` reads (``input_ids``, ``pixel_values``, ...).
    max_len : int
        Longest input sequence, not counting a learned [CLS].
    cls_token : Parameter (1, 1, D) or None
    dist_token : Parameter (1, 1, D) or None
        DeiT's distillation token (timm's name), row 1 of the output.
    pos_embed : position module or None
    norm : LayerNorm or Identity
    dropout : Dropout
    """

    input_names: ClassVar[tuple[str, ...]] = ()

    def _add_prefix_and_positions(self, d_model: int, *, max_len: int, cls: ClsSource = "none",
                                  position: str = "learned", norm: bool = False, dropout: float = 0.0,
                                  layer_norm_eps: float = 1e-5, distillation: bool = False) -> None:
        """Create the shared parts; a subclass calls this after creating its own input layer,
        so that parameters are initialised in the order they are used (seeded runs of every
        family draw the same numbers as before stems owned these parts; the distillation
        token, drawn after [CLS], changes nothing when it is off)."""
        if cls not in CLS_SOURCES:
            raise ValueError(f"argument `cls` must be one of {CLS_SOURCES}; got {cls!r}")
        if distillation and cls != "learned":
            raise ValueError(f"argument `distillation` needs a learned [CLS] before it (cls='learned'); "
                             f"got cls={cls!r}")
        self.cls, self.max_len = cls, max_len
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model)) if cls == "learned" else None
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)
        self.dist_token = nn.Parameter(torch.zeros(1, 1, d_model)) if distillation else None
        if self.dist_token is not None:
            nn.init.normal_(self.dist_token, std=0.02)
        self.pos_embed = make_position_embedding(position, max_len + self.num_prefix_tokens, d_model)
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps) if norm else nn.Identity()
        self.dropout = Dropout(dropout)  # random-bit masks on the CPU (gicho.nn.fast_dropout)

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens this stem puts in front of the input's: 1 for a learned [CLS] (2 with a
        distillation token after it), else 0."""
        return int(self.cls == "learned") + int(self.dist_token is not None)

    @property
    def has_cls(self) -> bool:
        """Whether row 0 of the output is a [CLS] token (learned, or the input's first)."""
        return self.cls != "none"

    def embed(self, **inputs: Tensor) -> tuple[Tensor, Tensor | None]:
        """The input kind's own embedding: ``(tokens (B, T, D), padding mask (B, T) or None)``."""
        raise NotImplementedError

    def forward(self, attention_mask: Tensor | None = None, **inputs: Tensor) -> tuple[Tensor, Tensor | None]:
        """Inputs → ``(tokens (B, T', D), mask (B, T') bool or None)``, T' = T + num_prefix_tokens.

        ``attention_mask`` (B, T), 1/True for real tokens, replaces the stem's own padding mask.

        Raises
        ------
        ValueError
            ``T > max_len``, or an ``attention_mask`` of another shape than (B, T).
        """
        x, mask = self.embed(**inputs)  # (B, T, D), (B, T) | None
        B, T, _ = x.shape
        if T > self.max_len:
            raise ValueError(f"sequence length {T} exceeds max_len={self.max_len}; truncate the input "
                             "or build the model with a larger max_len")
        if attention_mask is not None:
            if tuple(attention_mask.shape) != (B, T):
                raise ValueError(f"attention_mask must have shape (B, T) = {(B, T)}; got "
                                 f"{tuple(attention_mask.shape)}")
            mask = attention_mask.bool()
        if self.cls_token is not None:
            prefix = [t.expand(B, -1, -1).to(x.dtype) for t in (self.cls_token, self.dist_token) if t is not None]
            x = torch.cat([*prefix, x], dim=1)  # (B, p+T, D), p = num_prefix_tokens
            if mask is not None:
                mask = torch.cat([mask.new_ones(B, len(prefix)), mask], dim=1)  # (B, p+T)
        if self.pos_embed is not None:
            x = self.pos_embed(x)
        return self.dropout(self.norm(x)), mask


class TokenStem(Stem):
    """Token ids (B, T) → word (+ segment) embeddings, then the shared parts.

    With ``n_segments``, segment (token type) embeddings are added (BERT's sentence pairs). The
    padding mask is ``input_ids != pad_token_id`` (when ``pad_token_id`` is set). BERT:
    ``cls="input", position="learned", norm=True``; the digits-rows style classifier on tokens:
    a learned [CLS] (when pooling on it) and the defaults.
    """

    input_names = ("input_ids", "token_type_ids")

    def __init__(self, vocab_size: int, d_model: int, *, max_len: int = 512, pad_token_id: int | None = 0,
                 n_segments: int = 0, cls: ClsSource = "none", position: str = "learned",
                 norm: bool = False, dropout: float = 0.0, layer_norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.pad_token_id, self.vocab_size = pad_token_id, vocab_size
        self.word_embeddings = nn.Embedding(vocab_size, d_model)
        self._add_prefix_and_positions(d_model, max_len=max_len, cls=cls, position=position, norm=norm,
                                       dropout=dropout, layer_norm_eps=layer_norm_eps)
        self.token_type_embeddings = nn.Embedding(n_segments, d_model) if n_segments else None

    def embed(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if input_ids.ndim != 2 or input_ids.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"input_ids must be an integer tensor of shape (B, T); got {input_ids.dtype} "
                             f"of shape {tuple(input_ids.shape)}")
        segments = self.token_type_embeddings
        if segments is None and token_type_ids is not None:
            raise ValueError("token_type_ids given but the embeddings have n_segments=0")
        try:  # the lookups raise IndexError themselves: no extra check, no host sync
            x = self.word_embeddings(input_ids)  # (B, T, D)
            if segments is not None:  # without ids every token is segment 0: its row, no lookup
                x = x + (segments.weight[0] if token_type_ids is None else segments(token_type_ids))
        except IndexError:
            also = (f", and token_type_ids in [0, {segments.num_embeddings}) (the number of segments)"
                    if segments is not None and token_type_ids is not None else "")
            raise ValueError(f"input_ids must lie in [0, {self.vocab_size}) (the vocabulary size){also}; "
                             "some ids are outside") from None
        mask = None if self.pad_token_id is None else input_ids != self.pad_token_id
        return x, mask


class PatchStem(Stem):
    """Images (B, C, H, W) → patch tokens, then the shared parts (ViT: a learned [CLS] and
    learned positions over the N + 1 tokens; DeiT: a distillation token too, positions over
    N + 2).

    ``patch_embedding`` says how patches become tokens: ``"patch"`` (one linear map per patch,
    :class:`~gicho.nn.PatchEmbedding`), ``"conv"`` (convolutions first,
    :class:`~gicho.nn.ConvPatchEmbedding`) or ``"shifted"`` (Shifted Patch Tokenization,
    :class:`~gicho.nn.ShiftedPatchEmbedding`); each gives the same N tokens.
    """

    input_names = ("pixel_values",)

    def __init__(self, image_size: int, patch_size: int, in_channels: int, d_model: int, *,
                 cls: ClsSource = "learned", position: str = "learned", norm: bool = False,
                 dropout: float = 0.0, layer_norm_eps: float = 1e-5, distillation: bool = False,
                 patch_embedding: str = "patch") -> None:
        super().__init__()
        self.patch_embed = make_patch_embedding(patch_embedding, image_size, patch_size, in_channels, d_model)
        self._add_prefix_and_positions(d_model, max_len=self.patch_embed.n_patches, cls=cls, position=position,
                                       norm=norm, dropout=dropout, layer_norm_eps=layer_norm_eps,
                                       distillation=distillation)

    def embed(self, pixel_values: Tensor) -> tuple[Tensor, None]:
        return self.patch_embed(pixel_values), None  # (B, N, D)


class FeatureStem(Stem):
    """Continuous inputs → tokens, with the input scaling stored in the model.

    Exactly one of ``n_features`` (``features`` (B, F): one token per feature, the
    FT-Transformer's ``x_j · W_j + b_j``) and ``token_dim`` (``features`` (B, T, token_dim):
    each vector one token, through ``nn.Linear``) is given. The inputs are first standardised
    as ``(x - input_shift) / input_scale`` with buffers that the task sets from its training
    data (:meth:`set_input_scaling`): they are saved with the weights, so a reloaded model
    takes raw inputs.
    """

    input_names = ("features",)

    def __init__(self, d_model: int, *, n_features: int | None = None, token_dim: int | None = None,
                 max_len: int = 512, cls: ClsSource = "none", position: str = "learned",
                 norm: bool = False, dropout: float = 0.0, layer_norm_eps: float = 1e-5) -> None:
        super().__init__()
        if (n_features is None) == (token_dim is None):
            raise ValueError("give exactly one of n_features and token_dim")
        self.n_features, self.token_dim = n_features, token_dim
        width = n_features if n_features is not None else token_dim
        self.proj: nn.Module = (FeatureTokenizer(n_features, d_model) if n_features is not None
                                else nn.Linear(token_dim, d_model))
        self.register_buffer("input_shift", torch.zeros(width))
        self.register_buffer("input_scale", torch.ones(width))
        self._add_prefix_and_positions(d_model, max_len=max_len, cls=cls, position=position, norm=norm,
                                       dropout=dropout, layer_norm_eps=layer_norm_eps)

    @torch.no_grad()
    def set_input_scaling(self, shift: Tensor | float, scale: Tensor | float) -> None:
        """Standardise inputs as ``(x - shift) / scale`` (per feature, or one scalar)."""
        scale = torch.as_tensor(scale, dtype=self.input_scale.dtype)
        if not bool(torch.isfinite(scale).all()) or bool((scale <= 0).any()):
            raise ValueError(f"argument `scale` must be finite and > 0; got {scale.tolist()}")
        self.input_shift.copy_(torch.as_tensor(shift, dtype=self.input_shift.dtype).expand_as(self.input_shift))
        self.input_scale.copy_(scale.expand_as(self.input_scale))

    def embed(self, features: Tensor) -> tuple[Tensor, None]:
        if self.token_dim is not None and (features.ndim != 3 or features.shape[-1] != self.token_dim):
            raise ValueError(f"features must have shape (B, T, {self.token_dim}); got {tuple(features.shape)}")
        x = (features - self.input_shift) / self.input_scale
        return self.proj(x.to(self.input_scale.dtype)), None  # (B, T, D)
