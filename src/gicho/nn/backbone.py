"""The encoder backbone every Transformer model in gicho shares: stem → encoder → pool.

A *stem* turns the model's raw inputs into token vectors (B, T, D) and says which tokens are
padding. The backbone then

1. prepends a learned [CLS] vector when ``cls="learned"`` (ViT, the digits-rows classifier);
   with ``cls="input"`` the first input token already is [CLS] (BERT's tokenizer puts it
   there), and with ``cls="none"`` there is none;
2. adds position embeddings (``position``; ``"none"`` when the stem adds its own, as BERT's
   :class:`~gicho.nn.TokenEmbeddings` does);
3. normalises the embeddings (post-LN stacks, as BERT) and applies dropout;
4. runs the :class:`~gicho.nn.TransformerEncoder` (pre-LN stacks end with a LayerNorm);

and, as timm's models do, splits the forward pass into ``forward_features()`` (the steps
above) and ``pool()`` (one vector per sequence); heads live in the model families
(:mod:`gicho.models`). Where [CLS] comes from (``cls``) is independent of how to pool
(``pool``): mean pooling of a BERT model averages every real token including [CLS] (as
sentence-transformers does), mean pooling with a learned [CLS] skips it (as timm does).

Stems
-----
:class:`FeatureStem` (continuous features: one token per feature, or vector tokens),
:class:`TokenStem` (token ids) and :class:`PatchStem` (images cut into patches). A stem is any
module with ``input_names`` (the keyword inputs it reads) whose ``forward(**inputs)`` returns
``(tokens (B, T, D), padding mask (B, T) bool or None)``.

Inputs are checked where batches are built (:func:`gicho.nn.pooling.check_nonempty`), not on
every call. The one host synchronisation of the forward pass is the encoder reading the lengths
of a padded batch to unpad it (:mod:`gicho.nn.ragged`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from gicho.nn.embeddings import (
    FeatureTokenizer,
    PatchEmbedding,
    TokenEmbeddings,
    make_position_embedding,
)
from gicho.nn.pooling import PoolMode, pool_tokens
from gicho.nn.transformer import EncoderOutput, TransformerEncoder

__all__ = ["CLS_SOURCES", "ClsSource", "EncoderBackbone", "FeatureStem", "PatchStem", "TokenStem"]

ClsSource = Literal["learned", "input", "none"]
CLS_SOURCES: tuple[str, ...] = ("learned", "input", "none")


class FeatureStem(nn.Module):
    """Continuous inputs → tokens, with the input scaling stored in the model.

    Exactly one of ``n_features`` (``features`` (B, F): one token per feature, the
    FT-Transformer's ``x_j · W_j + b_j``) and ``token_dim`` (``features`` (B, T, token_dim):
    each vector one token, through ``nn.Linear``) is given. The inputs are first standardised
    as ``(x - input_shift) / input_scale`` with buffers that the task sets from its training
    data (:meth:`set_input_scaling`): they are saved with the weights, so a reloaded model
    takes raw inputs.
    """

    input_names = ("features",)

    def __init__(self, d_model: int, *, n_features: int | None = None, token_dim: int | None = None) -> None:
        super().__init__()
        if (n_features is None) == (token_dim is None):
            raise ValueError("give exactly one of n_features and token_dim")
        self.n_features, self.token_dim = n_features, token_dim
        width = n_features if n_features is not None else token_dim
        self.proj: nn.Module = (FeatureTokenizer(n_features, d_model) if n_features is not None
                                else nn.Linear(token_dim, d_model))
        self.register_buffer("input_shift", torch.zeros(width))
        self.register_buffer("input_scale", torch.ones(width))

    @torch.no_grad()
    def set_input_scaling(self, shift: Tensor | float, scale: Tensor | float) -> None:
        """Standardise inputs as ``(x - shift) / scale`` (per feature, or one scalar)."""
        scale = torch.as_tensor(scale, dtype=self.input_scale.dtype)
        if not bool(torch.isfinite(scale).all()) or bool((scale <= 0).any()):
            raise ValueError(f"argument `scale` must be finite and > 0; got {scale.tolist()}")
        self.input_shift.copy_(torch.as_tensor(shift, dtype=self.input_shift.dtype).expand_as(self.input_shift))
        self.input_scale.copy_(scale.expand_as(self.input_scale))

    def forward(self, features: Tensor) -> tuple[Tensor, None]:
        if self.token_dim is not None and (features.ndim != 3 or features.shape[-1] != self.token_dim):
            raise ValueError(f"features must have shape (B, T, {self.token_dim}); got {tuple(features.shape)}")
        x = (features - self.input_shift) / self.input_scale
        return self.proj(x.to(self.input_scale.dtype)), None  # (B, T, D)


class TokenStem(nn.Module):
    """Token ids (B, T) → vectors via :class:`~gicho.nn.TokenEmbeddings`.

    The padding mask is ``input_ids != pad_token_id`` (when ``pad_token_id`` is set). Extra
    keyword arguments configure the embeddings (``n_segments``, ``position``, ``norm``, ...);
    by default only the word embeddings are used, and the backbone adds positions.
    """

    input_names = ("input_ids", "token_type_ids")

    def __init__(self, vocab_size: int, d_model: int, *, pad_token_id: int | None = 0,
                 max_len: int = 512, n_segments: int = 0, position: str = "none", norm: bool = False,
                 dropout: float = 0.0, layer_norm_eps: float = 1e-12) -> None:
        super().__init__()
        self.pad_token_id = pad_token_id
        self.vocab_size = vocab_size
        self.embeddings = TokenEmbeddings(vocab_size, d_model, max_len, n_segments=n_segments,
                                          position=position, padding_idx=None, dropout=dropout,
                                          layer_norm_eps=layer_norm_eps, norm=norm)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if input_ids.ndim != 2 or input_ids.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"input_ids must be an integer tensor of shape (B, T); got {input_ids.dtype} "
                             f"of shape {tuple(input_ids.shape)}")
        mask = None if self.pad_token_id is None else input_ids != self.pad_token_id
        try:
            return self.embeddings(input_ids, token_type_ids), mask  # (B, T, D)
        except IndexError:  # raised by the embedding lookup itself: no extra check, no host sync
            segments = self.embeddings.token_type_embeddings
            also = (f", and token_type_ids in [0, {segments.num_embeddings}) (the number of segments)"
                    if segments is not None and token_type_ids is not None else "")
            raise ValueError(f"input_ids must lie in [0, {self.vocab_size}) (the vocabulary size){also}; "
                             "some ids are outside") from None


class PatchStem(nn.Module):
    """Images (B, C, H, W) → patch tokens (B, N, D) via :class:`~gicho.nn.PatchEmbedding`."""

    input_names = ("pixel_values",)

    def __init__(self, image_size: int, patch_size: int, in_channels: int, d_model: int) -> None:
        super().__init__()
        self.patch_embed = PatchEmbedding(image_size, patch_size, in_channels, d_model)

    def forward(self, pixel_values: Tensor) -> tuple[Tensor, None]:
        return self.patch_embed(pixel_values), None


class EncoderBackbone(nn.Module):
    """stem → [CLS] → positions → embedding norm → dropout → Transformer encoder → pool.

    Parameters
    ----------
    stem : nn.Module
        See the module docstring.
    d_model, n_heads, n_layers, d_ff : int
        Width, heads, depth and MLP width of the encoder.
    dropout, attention_dropout : float
    norm_first : bool
        Pre-LN blocks with a final LayerNorm (ViT) or post-LN blocks (BERT).
    layer_norm_eps : float
    cls : {"learned", "input", "none"}
        Where the [CLS] token comes from (see the module docstring).
    pool : {"mean", "cls", "max"}
        How :meth:`pool` turns the sequence into one vector; ``"cls"`` needs ``cls != "none"``.
    position : {"learned", "sinusoidal", "none"}
        Position embedding added by the backbone (over [CLS] too, as in ViT).
    max_len : int
        Longest input sequence, not counting a learned [CLS].
    embed_norm : bool or None
        LayerNorm on the embeddings; default: for post-LN stacks (``not norm_first``).
    embed_dropout : float or None
        Dropout on the embeddings; default ``dropout``. A stem that normalises and drops out
        itself (BERT's :class:`~gicho.nn.TokenEmbeddings`) passes ``embed_norm=False,
        embed_dropout=0.0``.
    mlp_dropout : float or None
        Dropout between the MLP's two layers; default ``dropout`` (BERT: 0.0).
    """

    def __init__(self, stem: nn.Module, *, d_model: int, n_heads: int, n_layers: int, d_ff: int,
                 dropout: float = 0.1, attention_dropout: float = 0.0, norm_first: bool = True,
                 layer_norm_eps: float = 1e-5, cls: ClsSource = "none", pool: PoolMode = "mean",
                 position: str = "learned", max_len: int = 512, embed_norm: bool | None = None,
                 embed_dropout: float | None = None, mlp_dropout: float | None = None) -> None:
        super().__init__()
        if cls not in CLS_SOURCES:
            raise ValueError(f"cls must be one of {CLS_SOURCES}; got {cls!r}")
        if pool == "cls" and cls == "none":
            raise ValueError("pool='cls' needs a [CLS] token: set cls='learned' or cls='input'")
        self.stem = stem
        self.cls, self.pool_mode, self.max_len = cls, pool, max_len
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model)) if cls == "learned" else None
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)
        self.pos_embed = make_position_embedding(position, max_len + int(cls == "learned"), d_model)
        embed_norm = not norm_first if embed_norm is None else embed_norm
        self.embed_norm = nn.LayerNorm(d_model, eps=layer_norm_eps) if embed_norm else nn.Identity()
        self.embed_dropout = nn.Dropout(dropout if embed_dropout is None else embed_dropout)
        self.encoder = TransformerEncoder(n_layers, d_model, n_heads, d_ff, dropout=dropout,
                                          attention_dropout=attention_dropout, norm_first=norm_first,
                                          layer_norm_eps=layer_norm_eps, mlp_dropout=mlp_dropout)

    def forward_features(self, attention_mask: Tensor | None = None, output_attentions: bool = False,
                         n_outputs: int | None = None, **inputs: Tensor) -> EncoderOutput:
        """Embed and encode; ``inputs`` are the stem's (``stem.input_names``).

        Parameters
        ----------
        attention_mask : Tensor, bool or int, shape (B, T), optional
            1/True for real tokens. Default: the stem's padding mask (or no padding).
        output_attentions : bool
            Return per-layer attention weights (explicit attention path).
        n_outputs : int, optional
            Only the first ``n_outputs`` positions of ``last_hidden_state`` are wanted (1: the
            [CLS] state); the last layer then skips the other rows
            (:meth:`TransformerEncoder.forward`).

        Returns
        -------
        EncoderOutput
            ``last_hidden_state`` (B, T', D) with T' = T + 1 when a learned [CLS] is prepended
            at position 0 (T' = ``n_outputs`` when given), ``mask`` (B, T') or None,
            ``attentions`` when requested.
        """
        x, mask = self.stem(**inputs)  # (B, T, D), (B, T) | None
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
            x = torch.cat([self.cls_token.expand(B, -1, -1).to(x.dtype), x], dim=1)  # (B, T+1, D)
            if mask is not None:
                mask = torch.cat([mask.new_ones(B, 1), mask], dim=1)  # (B, T+1)
        if self.pos_embed is not None:
            x = self.pos_embed(x)
        x = self.embed_dropout(self.embed_norm(x))
        out = self.encoder(x, mask, output_attentions=output_attentions, n_outputs=n_outputs)
        out.mask = mask if n_outputs is None or mask is None else mask[:, :n_outputs]
        return out

    def pool(self, features: EncoderOutput) -> Tensor:
        """(B, T', D) → (B, D) by ``pool`` (padding, and a learned [CLS], excluded from mean/max)."""
        hidden = features.last_hidden_state
        if self.pool_mode == "cls":
            return hidden[:, 0]  # (B, D)
        return pool_tokens(hidden, features.mask, self.pool_mode, has_cls=self.cls == "learned",
                           check_empty=False)

    def forward(self, attention_mask: Tensor | None = None, **inputs: Tensor) -> Tensor:
        """The pooled embedding (B, D) of a batch."""
        n_outputs = 1 if self.pool_mode == "cls" else None  # [CLS] pooling reads row 0 only
        return self.pool(self.forward_features(attention_mask, n_outputs=n_outputs, **inputs))
