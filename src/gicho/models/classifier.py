"""Transformer encoder for sequence classification and regression, pooled by mean or [CLS].

Inputs are one of three token kinds (exactly one is configured):

* ``vocab_size``: token ids ``input_ids`` (B, T) → ``nn.Embedding``;
* ``n_features``: tabular features ``features`` (B, F), one token per feature,
  ``x_j · W_j + b_j`` (FT-Transformer; Gorishniy et al. 2021);
* ``token_dim``: continuous vector tokens ``features`` (B, T, token_dim) → ``nn.Linear``
  (for example the 8 rows of a digits image).

The model is ``forward_features()`` (embed, prepend [CLS] when ``pool="cls"``, add positions,
encode) → ``pool()`` (:func:`gicho.nn.pool_tokens`) → ``forward_head()`` (dropout + linear),
so the pooled embedding is reachable. Given ``labels``, ``forward`` returns the loss
(Hugging Face convention; class labels equal to -100 are ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gicho._validation import check_choice, check_positive, check_probability
from gicho.nn.embeddings import FeatureTokenizer, make_position_embedding
from gicho.nn.pooling import POOL_MODES, pool_tokens
from gicho.nn.transformer import EncoderOutput, TransformerEncoder

__all__ = ["ClassifierConfig", "SequenceClassifier", "SequenceRegressor"]

POSITIONS = ("learned", "sinusoidal", "none")
IGNORE_INDEX = -100


@dataclass
class ClassifierConfig:
    """Configuration of :class:`SequenceClassifier` and :class:`SequenceRegressor`.

    Parameters
    ----------
    vocab_size, n_features, token_dim : int or None
        The input kind; exactly one must be set (see the module docstring).
    n_outputs : int
        Number of classes (classifier) or of regression targets (regressor).
    d_model, n_heads, n_layers : int
        Width, heads (``d_model % n_heads == 0``) and depth of the encoder.
    d_ff : int or None
        MLP hidden width; ``None`` means ``4 * d_model``.
    dropout, attention_dropout, head_dropout : float
        Dropout in the blocks and on the embeddings, on the attention weights, before the head.
    max_len : int
        Longest input sequence (not counting [CLS]); longer inputs raise ``ValueError``.
    position : {"learned", "sinusoidal", "none"}
        Position embedding. Feature tokens are identified by their own weights, so
        ``"none"`` suits ``n_features`` inputs.
    pool : {"mean", "cls", "max"}
        How the sequence becomes one vector; ``"cls"`` prepends a learned [CLS] token.
    norm_first : bool
        Pre-LN blocks with a final LayerNorm (ViT) or post-LN blocks with a LayerNorm on the
        embeddings (BERT).
    layer_norm_eps : float
    pad_token_id : int or None
        With token ids and no ``attention_mask``, positions equal to this id are padding.
    target_mean, target_std : float
        Regressor only: the head predicts ``(y - target_mean) / target_std`` and the loss is
        the mean squared error on that standardised scale; predictions are in ``y``'s units.
    """

    vocab_size: int | None = None
    n_features: int | None = None
    token_dim: int | None = None
    n_outputs: int = 2
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int | None = None
    dropout: float = 0.1
    attention_dropout: float = 0.0
    head_dropout: float = 0.0
    max_len: int = 512
    position: str = "learned"
    pool: str = "mean"
    norm_first: bool = True
    layer_norm_eps: float = 1e-5
    pad_token_id: int | None = 0
    target_mean: float = 0.0
    target_std: float = 1.0

    def __post_init__(self) -> None:
        kinds = {
            "vocab_size": self.vocab_size,
            "n_features": self.n_features,
            "token_dim": self.token_dim,
        }
        given = [name for name, value in kinds.items() if value is not None]
        if len(given) != 1:
            raise ValueError(
                "exactly one of vocab_size (token ids), n_features (one token per feature) and "
                f"token_dim (vector tokens) must be set; got {given or 'none'}"
            )
        check_positive(kinds[given[0]], given[0], integer=True)
        for name in ("n_outputs", "d_model", "n_heads", "n_layers", "max_len"):
            check_positive(getattr(self, name), name, integer=True)
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        check_positive(self.d_ff, "d_ff", integer=True)
        for name in ("dropout", "attention_dropout", "head_dropout"):
            check_probability(getattr(self, name), name)
        check_choice(self.position, "position", POSITIONS)
        check_choice(self.pool, "pool", POOL_MODES)
        check_positive(self.layer_norm_eps, "layer_norm_eps")
        check_positive(self.target_std, "target_std")
        if self.n_features is not None and self.n_features > self.max_len:
            raise ValueError(f"n_features={self.n_features} exceeds max_len={self.max_len}")

    @property
    def has_cls(self) -> bool:
        return self.pool == "cls"


class _SequenceEncoder(nn.Module):
    """Embeddings + [CLS] + positions + Transformer encoder + pooling; heads are subclasses'."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        if config.vocab_size is not None:
            self.embed: nn.Module = nn.Embedding(config.vocab_size, d)
        elif config.n_features is not None:
            self.embed = FeatureTokenizer(config.n_features, d)
        else:
            self.embed = nn.Linear(config.token_dim, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d)) if config.has_cls else None
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)
        self.pos_embed = make_position_embedding(
            config.position, config.max_len + int(config.has_cls), d
        )
        self.embed_norm = (
            nn.Identity() if config.norm_first else nn.LayerNorm(d, eps=config.layer_norm_eps)
        )
        self.embed_dropout = nn.Dropout(config.dropout)
        self.encoder = TransformerEncoder(
            config.n_layers,
            d,
            config.n_heads,
            config.d_ff,
            dropout=config.dropout,
            attention_dropout=config.attention_dropout,
            norm_first=config.norm_first,
            layer_norm_eps=config.layer_norm_eps,
        )
        self.head_dropout = nn.Dropout(config.head_dropout)
        self.head = nn.Linear(config.d_model, config.n_outputs)

    def _embed(
        self, input_ids: Tensor | None, features: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        c = self.config
        if c.vocab_size is not None:
            if input_ids is None or features is not None:
                raise ValueError("this model reads token ids: pass input_ids (B, T), not features")
            if input_ids.ndim != 2 or input_ids.dtype not in (torch.int32, torch.int64):
                raise ValueError(
                    f"input_ids must be an integer tensor of shape (B, T); got {input_ids.dtype} "
                    f"of shape {tuple(input_ids.shape)}"
                )
            pad = None if c.pad_token_id is None else input_ids != c.pad_token_id
            return self.embed(input_ids), pad  # (B, T, D)
        if features is None or input_ids is not None:
            raise ValueError("this model reads continuous features: pass features, not input_ids")
        if c.token_dim is not None and (features.ndim != 3 or features.shape[-1] != c.token_dim):
            raise ValueError(
                f"features must have shape (B, T, {c.token_dim}); got {tuple(features.shape)}"
            )
        return self.embed(features), None  # (B, T, D)

    def forward_features(
        self,
        input_ids: Tensor | None = None,
        features: Tensor | None = None,
        attention_mask: Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[Tensor, Tensor | None, EncoderOutput]:
        """Embed and encode.

        Parameters
        ----------
        input_ids : Tensor, int64, shape (B, T), optional
        features : Tensor, float, shape (B, F) or (B, T, token_dim), optional
        attention_mask : Tensor, bool or int, shape (B, T), optional
            1/True for real tokens, 0/False for padding. Default: all real (token ids:
            ``input_ids != pad_token_id`` when ``pad_token_id`` is set).
        output_attentions : bool

        Returns
        -------
        hidden : Tensor, shape (B, T', D), T' = T + 1 with [CLS] at position 0
        mask : Tensor, bool, shape (B, T'), or None (no padding)
        encoder_output : EncoderOutput (per-layer attentions when requested)
        """
        x, mask = self._embed(input_ids, features)  # (B, T, D)
        B, T, _ = x.shape
        if T > self.config.max_len:
            raise ValueError(
                f"sequence length {T} exceeds max_len={self.config.max_len}; truncate the input "
                "or build the model with a larger max_len"
            )
        if attention_mask is not None:
            if attention_mask.shape != (B, T):
                raise ValueError(
                    f"attention_mask must have shape (B, T) = {(B, T)}; got {tuple(attention_mask.shape)}"
                )
            mask = attention_mask.bool()
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(B, -1, -1).to(x.dtype), x], dim=1)  # (B, T+1, D)
            if mask is not None:
                mask = torch.cat([mask.new_ones(B, 1), mask], dim=1)  # (B, T+1)
        if self.pos_embed is not None:
            x = self.pos_embed(x)
        x = self.embed_dropout(self.embed_norm(x))
        out = self.encoder(x, mask, output_attentions=output_attentions)
        return out.last_hidden_state, mask, out

    def pool(self, hidden: Tensor, mask: Tensor | None) -> Tensor:
        """(B, T', D) → (B, D) with the configured mode (padding and [CLS] excluded)."""
        return pool_tokens(hidden, mask, self.config.pool, has_cls=self.config.has_cls)

    def forward_head(self, pooled: Tensor) -> Tensor:
        """(B, D) → (B, n_outputs): class logits, or standardised predictions for the regressor."""
        return self.head(self.head_dropout(pooled))

    def embed_sequences(self, **inputs: Any) -> Tensor:
        """The pooled embedding (B, D) of a batch (``forward_features`` then ``pool``)."""
        hidden, mask, _ = self.forward_features(**inputs)
        return self.pool(hidden, mask)


class SequenceClassifier(_SequenceEncoder):
    """Transformer encoder + pooling + linear classifier over ``config.n_outputs`` classes."""

    def forward(
        self,
        input_ids: Tensor | None = None,
        features: Tensor | None = None,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool = False,
    ) -> dict[str, Any]:
        """Classify a batch.

        Returns
        -------
        dict
            ``"logits"`` (B, n_outputs); ``"loss"`` (scalar cross-entropy, labels of -100
            ignored) when ``labels`` (B,) int64 are given; ``"attentions"`` (tuple of
            (B, H, T', T') per layer) when ``output_attentions``.
        """
        hidden, mask, enc = self.forward_features(
            input_ids, features, attention_mask, output_attentions
        )
        logits = self.forward_head(self.pool(hidden, mask))  # (B, C)
        out: dict[str, Any] = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits.float(), labels.long(), ignore_index=IGNORE_INDEX)
        if output_attentions:
            out["attentions"] = enc.attentions
        return out


class SequenceRegressor(_SequenceEncoder):
    """Transformer encoder + pooling + linear head predicting ``config.n_outputs`` targets."""

    def forward(
        self,
        input_ids: Tensor | None = None,
        features: Tensor | None = None,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool = False,
    ) -> dict[str, Any]:
        """Regress a batch.

        Returns
        -------
        dict
            ``"predictions"`` in the targets' units, (B,) when ``n_outputs == 1`` else
            (B, n_outputs); ``"loss"`` (scalar MSE on the standardised scale, see
            :class:`ClassifierConfig`) when ``labels`` of the same shape are given;
            ``"attentions"`` when ``output_attentions``.
        """
        c = self.config
        hidden, mask, enc = self.forward_features(
            input_ids, features, attention_mask, output_attentions
        )
        z = self.forward_head(self.pool(hidden, mask)).float()  # (B, n_outputs), standardised
        if c.n_outputs == 1:
            z = z.squeeze(-1)  # (B,)
        out: dict[str, Any] = {"predictions": z * c.target_std + c.target_mean}
        if labels is not None:
            if labels.shape != z.shape:
                raise ValueError(
                    f"labels must have shape {tuple(z.shape)} (like the predictions); got "
                    f"{tuple(labels.shape)}"
                )
            target = (labels.float() - c.target_mean) / c.target_std
            out["loss"] = F.mse_loss(z, target)
        if output_attentions:
            out["attentions"] = enc.attentions
        return out
