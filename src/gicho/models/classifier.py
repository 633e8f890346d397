"""Transformer encoder for sequence classification and regression, pooled by mean, max or [CLS].

Both models are a head over the shared :class:`gicho.nn.EncoderBackbone`. Inputs are one of
three kinds (exactly one is configured), each a stem of the backbone:

* ``vocab_size``: token ids ``input_ids`` (B, T) → :class:`gicho.nn.TokenStem`;
* ``n_features``: tabular features ``features`` (B, F), one token per feature,
  ``x_j · W_j + b_j`` (FT-Transformer; Gorishniy et al. 2021) → :class:`gicho.nn.FeatureStem`;
* ``token_dim``: continuous vector tokens ``features`` (B, T, token_dim) (for example the 8
  rows of a digits image) → :class:`gicho.nn.FeatureStem`.

Continuous inputs are standardised inside the model with buffers set from the training data
(``model.backbone.stem.set_input_scaling``), so a saved model takes raw inputs. The forward
pass is timm's: ``forward_features()`` → ``pool()`` → ``forward_head()``; :meth:`embed` is the
pooled embedding. Given ``labels``, ``forward`` returns the loss (:mod:`gicho.nn.losses`; class
labels equal to -100 are ignored) and ``n_items``, the number of labels it averages over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch import Tensor, nn

from gicho._validation import check_choice, check_positive
from gicho.models._pretrained import HeadConfig, PretrainedModel
from gicho.nn.backbone import EncoderBackbone
from gicho.nn.losses import classification_loss, regression_loss
from gicho.nn.pooling import POOL_MODES
from gicho.nn.stems import CLS_SOURCES, FeatureStem, Stem, TokenStem
from gicho.nn.transformer import EncoderOutput, TransformerEncoder

__all__ = ["ClassifierConfig", "SequenceClassifier", "SequenceRegressor"]

POSITIONS = ("learned", "sinusoidal", "none")


@dataclass
class ClassifierConfig(HeadConfig):
    """Configuration of :class:`SequenceClassifier` and :class:`SequenceRegressor`.

    Parameters
    ----------
    vocab_size : int or None
        Input kind "token ids": their vocabulary size (exactly one of ``vocab_size``,
        ``n_features`` and ``token_dim`` is set; see the module docstring).
    n_features : int or None
        Input kind "one token per feature": the number of features (one scalar each).
    token_dim : int or None
        Input kind "vector tokens": the width of each input vector.
    n_labels : int
        Number of classes (classifier) or of regression targets (regressor).
    d_model : int
        Width of the token vectors (``d_model % n_heads == 0``).
    n_heads : int
        Attention heads per layer.
    n_layers : int
        Number of encoder layers (depth).
    d_ff : int or None
        MLP hidden width; ``None`` means ``4 * d_model`` (see :attr:`ff_dim`).
    dropout : float in [0, 1)
        Dropout in the blocks and on the embeddings.
    attention_dropout : float in [0, 1)
        Dropout on the attention weights.
    head_dropout : float in [0, 1)
        Dropout on the pooled vector, before the head.
    max_len : int
        Longest input sequence (not counting a learned [CLS]); longer inputs raise ``ValueError``.
    position : {"learned", "sinusoidal", "none"}
        Position embedding. Feature tokens are identified by their own weights, so
        ``"none"`` suits ``n_features`` inputs.
    pool : {"mean", "cls", "max"}
        How the sequence becomes one vector.
    cls : {"learned", "input", "none"} or None
        Where [CLS] comes from: a learned vector prepended by the model, the first input token
        (a tokenizer's [CLS]), or none. ``None``: ``"learned"`` when ``pool="cls"``, else ``"none"``.
    norm_first : bool
        Pre-LN blocks with a final LayerNorm (ViT) or post-LN blocks with a LayerNorm on the
        embeddings (BERT).
    layer_norm_eps : float
        Epsilon of the LayerNorms.
    pad_token_id : int or None
        With token ids and no ``attention_mask``, positions equal to this id are padding.
    target_mean : float
        Regressor only: the head predicts ``(y - target_mean) / target_std`` and the loss is
        the mean squared error on that standardised scale; predictions are in ``y``'s units.
    target_std : float
        Regressor only: the scale of that standardisation (> 0).
    label_names : tuple of str or None
        Names of the classes (classifier) or targets (regressor), ``n_labels`` of them.
    """

    vocab_size: int | None = None
    n_features: int | None = None
    token_dim: int | None = None
    n_labels: int = 2
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int | None = None
    dropout: float = 0.1
    attention_dropout: float = 0.0
    head_dropout: float = 0.0
    max_len: int = 512
    position: Literal["learned", "sinusoidal", "none"] = "learned"
    pool: Literal["mean", "cls", "max"] = "mean"
    cls: Literal["learned", "input", "none"] | None = None
    norm_first: bool = True
    layer_norm_eps: float = 1e-5
    pad_token_id: int | None = 0
    target_mean: float = 0.0
    target_std: float = 1.0
    label_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        kinds = {"vocab_size": self.vocab_size, "n_features": self.n_features, "token_dim": self.token_dim}
        given = [name for name, value in kinds.items() if value is not None]
        if len(given) != 1:
            raise ValueError(
                "exactly one of vocab_size (token ids), n_features (one token per feature) and "
                f"token_dim (vector tokens) must be set; got {given or 'none'}"
            )
        check_positive(kinds[given[0]], given[0], integer=True)
        self.check_head()
        for name in ("d_model", "n_heads", "n_layers", "max_len"):
            check_positive(getattr(self, name), name, integer=True)
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.d_ff is not None:
            check_positive(self.d_ff, "d_ff", integer=True)
        check_choice(self.position, "position", POSITIONS)
        check_choice(self.pool, "pool", POOL_MODES)
        if self.cls is not None:
            check_choice(self.cls, "cls", CLS_SOURCES)
        if self.pool == "cls" and self.cls_source == "none":
            raise ValueError("pool='cls' needs a [CLS] token; set cls='learned' or cls='input'")
        check_positive(self.layer_norm_eps, "layer_norm_eps")
        check_positive(self.target_std, "target_std")
        if self.n_features is not None and self.n_features > self.max_len:
            raise ValueError(f"n_features={self.n_features} exceeds max_len={self.max_len}")

    @property
    def ff_dim(self) -> int:
        """The MLP width: ``d_ff``, or ``4 * d_model`` when ``d_ff`` is None."""
        return 4 * self.d_model if self.d_ff is None else self.d_ff

    @property
    def cls_source(self) -> str:
        """``cls`` with its default resolved."""
        if self.cls is not None:
            return self.cls
        return "learned" if self.pool == "cls" else "none"

    @property
    def has_cls(self) -> bool:
        """Whether the encoded sequence starts with a [CLS] token."""
        return self.cls_source != "none"


def _stem(c: ClassifierConfig) -> Stem:
    """The input kind's stem with the [CLS], positions and embedding norm (post-LN) configured."""
    shared = {"max_len": c.max_len, "cls": c.cls_source, "position": c.position, "norm": not c.norm_first,
              "dropout": c.dropout, "layer_norm_eps": c.layer_norm_eps}
    if c.vocab_size is not None:
        return TokenStem(c.vocab_size, c.d_model, pad_token_id=c.pad_token_id, **shared)
    return FeatureStem(c.d_model, n_features=c.n_features, token_dim=c.token_dim, **shared)


class _EncoderHeadModel(PretrainedModel):
    """The shared backbone with a linear head; classifier and regressor differ in the loss."""

    config_class = ClassifierConfig

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        stem = _stem(config)  # first: parameters are initialised in the order they are used
        encoder = TransformerEncoder(c.n_layers, c.d_model, c.n_heads, c.ff_dim, dropout=c.dropout,
                                     attention_dropout=c.attention_dropout, norm_first=c.norm_first,
                                     layer_norm_eps=c.layer_norm_eps)
        self.backbone = EncoderBackbone(stem, encoder)
        self.head_dropout = nn.Dropout(config.head_dropout)
        self.head = nn.Linear(config.d_model, config.n_labels)

    def _inputs(self, input_ids: Tensor | None, features: Tensor | None) -> dict[str, Tensor]:
        if self.config.vocab_size is not None:
            if input_ids is None or features is not None:
                raise ValueError("this model reads token ids: pass input_ids (B, T), not features")
            return {"input_ids": input_ids}
        if features is None or input_ids is not None:
            raise ValueError("this model reads continuous features: pass features, not input_ids")
        return {"features": features}

    def forward_features(self, input_ids: Tensor | None = None, features: Tensor | None = None,
                         attention_mask: Tensor | None = None, output_attentions: bool = False,
                         rows: int | None = None) -> EncoderOutput:
        """Embed and encode: ``last_hidden_state`` (B, T', D), ``mask``, ``attentions``."""
        return self.backbone.forward_features(attention_mask, output_attentions=output_attentions, rows=rows,
                                              **self._inputs(input_ids, features))

    def pool(self, features: EncoderOutput) -> Tensor:
        """(B, T', D) → (B, D) with the configured mode (padding and a learned [CLS] excluded)."""
        return self.backbone.pool(features, self.config.pool)

    def forward_head(self, pooled: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, D) → (B, n_labels): class logits, or standardised predictions for the regressor;
        ``pre_logits``: the vector the head reads."""
        x = self.head_dropout(pooled)
        return x if pre_logits else self.head(x)

    def embed(self, input_ids: Tensor | None = None, features: Tensor | None = None,
              attention_mask: Tensor | None = None) -> Tensor:
        """The pooled embedding (B, D) of a batch: what the head reads."""
        pooled, _ = self._pooled(input_ids, features, attention_mask, False)
        return self.forward_head(pooled, pre_logits=True)

    def _pooled(self, input_ids: Tensor | None, features: Tensor | None, attention_mask: Tensor | None,
                output_attentions: bool) -> tuple[Tensor, EncoderOutput]:
        return self.backbone.forward_pooled(self.config.pool, attention_mask, output_attentions=output_attentions,
                                            **self._inputs(input_ids, features))


class SequenceClassifier(_EncoderHeadModel):
    """Transformer encoder + pooling + linear classifier over ``config.n_labels`` classes."""

    model_type = "sequence-classifier"

    def forward(self, input_ids: Tensor | None = None, features: Tensor | None = None,
                attention_mask: Tensor | None = None, labels: Tensor | None = None,
                output_attentions: bool = False) -> dict[str, Any]:
        """Classify a batch.

        Returns
        -------
        dict
            ``"logits"`` (B, n_labels); ``"loss"`` (scalar cross-entropy, labels of -100
            ignored) and ``"n_items"`` (labels counted) when ``labels`` (B,) int64 are given;
            ``"attentions"`` (tuple of (B, H, T', T') per layer) when ``output_attentions``.
        """
        pooled, enc = self._pooled(input_ids, features, attention_mask, output_attentions)
        out: dict[str, Any] = {"logits": self.forward_head(pooled)}  # (B, C)
        if labels is not None:
            out.update(classification_loss(out["logits"], labels))
        if output_attentions:
            out["attentions"] = enc.attentions
        return out


class SequenceRegressor(_EncoderHeadModel):
    """Transformer encoder + pooling + linear head predicting ``config.n_labels`` targets."""

    model_type = "sequence-regressor"

    def forward(self, input_ids: Tensor | None = None, features: Tensor | None = None,
                attention_mask: Tensor | None = None, labels: Tensor | None = None,
                output_attentions: bool = False) -> dict[str, Any]:
        """Regress a batch.

        Returns
        -------
        dict
            ``"predictions"`` in the targets' units, (B,) when ``n_labels == 1`` else
            (B, n_labels); ``"loss"`` (scalar MSE on the standardised scale, see
            :class:`ClassifierConfig`) and ``"n_items"`` (targets averaged) when ``labels`` of
            the same shape are given; ``"attentions"`` when ``output_attentions``.
        """
        c = self.config
        pooled, enc = self._pooled(input_ids, features, attention_mask, output_attentions)
        z = self.forward_head(pooled).float()  # (B, n_labels), standardised
        if c.n_labels == 1:
            z = z.squeeze(-1)  # (B,)
        out: dict[str, Any] = {"predictions": z * c.target_std + c.target_mean}
        if labels is not None:
            out.update(regression_loss(z, labels, shift=c.target_mean, scale=c.target_std))
        if output_attentions:
            out["attentions"] = enc.attentions
        return out
