"""BERT (Devlin et al. 2019): a post-LN Transformer encoder over token + segment + position
embeddings, pretrained by masked language modelling, fine-tuned with a small head.

Heads over the shared :class:`gicho.nn.EncoderBackbone` (stem :class:`gicho.nn.TokenStem` with
BERT's embeddings: word + segment + learned position, LayerNorm, dropout; [CLS] is the
tokenizer's first token):

* :class:`BertModel` — hidden states and the pooler output ``tanh(W h_[CLS] + b)``;
  :meth:`~BertPreTrainedModel.embed` gives normalised mean-pooled sentence embeddings
  (sentence-transformers' recipe);
* :class:`BertForMaskedLM` — the MLM head ``LayerNorm(gelu(W h + b)) Eᵀ + b_vocab`` with the
  decoder tied to the word embeddings ``E`` (§3.1, Task #1);
* :class:`BertForSequenceClassification` — a linear classifier over the pooler output
  (``pool="cls"``, as Hugging Face) or over the mean of the real tokens (``pool="mean"``);
  sentence pairs are ``[CLS] A [SEP] B [SEP]`` with ``token_type_ids`` 0 for A and 1 for B.

Checkpoints are Hugging Face's: :meth:`~BertPreTrainedModel.from_pretrained` reads a
``transformers`` BERT directory (``config.json`` + ``model.safetensors`` or
``pytorch_model.bin``) and :meth:`~gicho.models._pretrained.PretrainedModel.save_pretrained`
writes one that ``transformers`` loads (names and QKV layout in :mod:`gicho.models._bert_hf`).
Padding: positions where ``attention_mask`` is 0 (by default, ``input_ids == pad_token_id``)
are never attended to and never pooled.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gicho._validation import check_choice, check_positive
from gicho.models._bert_hf import config_from_hf, config_to_hf, from_hf_state_dict, to_hf_state_dict
from gicho.models._pretrained import HeadConfig, PretrainedModel, config_from_dict
from gicho.nn import packed_linear
from gicho.nn.backbone import EncoderBackbone
from gicho.nn.embeddings import LearnedPositionEmbedding
from gicho.nn.execution import static_shapes
from gicho.nn.losses import IGNORE_INDEX, classification_loss, regression_loss
from gicho.nn.pooling import POOL_MODES, PoolMode
from gicho.nn.stems import TokenStem
from gicho.nn.token_loss import summed_cross_entropy
from gicho.nn.transformer import EncoderOutput, TransformerEncoder
from gicho.weights import CheckpointError, read_config, tensor_shapes, weights_file

__all__ = ["PRESETS", "BertConfig", "BertForMaskedLM", "BertForSequenceClassification", "BertModel",
           "BertPreTrainedModel", "NoMaskedLMHeadError"]

INIT_STD = 0.02  # BERT's initializer_range: N(0, 0.02²) weights, zero biases
# The MLM head scores a fixed budget of positions per batch (static shapes under torch.compile):
# this fraction of the B·T positions, at least MIN_PREDICTIONS (all of them in small batches).
MAX_PREDICTIONS_FRACTION = 0.25
MIN_PREDICTIONS = 32
# The BERT miniatures (Turc et al. 2019) and the paper's sizes; d_ff = 4 * d_model
PRESETS: dict[str, dict[str, Any]] = {
    name: {"n_layers": n_layers, "d_model": d_model, "n_heads": n_heads, "d_ff": 4 * d_model}
    for name, n_layers, d_model, n_heads in [
        ("tiny", 2, 128, 2), ("mini", 4, 256, 4), ("small", 4, 512, 8),
        ("medium", 8, 512, 8), ("base", 12, 768, 12), ("large", 24, 1024, 16)]
}


@dataclass
class BertConfig(HeadConfig):
    """BERT's sizes (paper names; Hugging Face's in brackets) and its fine-tuning head.

    Parameters
    ----------
    vocab_size : int  [vocab_size]
    d_model, n_layers, n_heads, d_ff : int  [hidden_size, num_hidden_layers, num_attention_heads,
        intermediate_size]; ``d_model % n_heads == 0``.
    max_len : int  [max_position_embeddings]
        Longest input; longer ones raise ``ValueError``.
    n_segments : int  [type_vocab_size]
    dropout, attention_dropout : float in [0, 1)  [hidden_dropout_prob, attention_probs_dropout_prob]
    layer_norm_eps : float
    pad_token_id : int or None
        Without ``attention_mask``, tokens equal to it are padding.
    n_labels : int
        Classes of :class:`BertForSequenceClassification` (1: regression with a squared error).
    pool : {"cls", "mean", "max"}
        Classifier input: the pooler on [CLS], or the mean (max) of the real tokens.
    label_names : tuple of str or None
        ``n_labels`` class names (``id2label`` in ``config.json``).
    classifier_dropout : float or None
        Dropout before the classifier; None: ``dropout``.
    norm_first : bool
        Pre-LN layers (LayerNorm before attention and MLP, one more after the last layer), as the
        compute-limited pretraining recipes use (Geiping & Goldstein, 2022: stable at higher
        learning rates); False (BERT's post-LN) is what ``transformers`` computes: a pre-LN
        BERT saves a ``config.json`` that ``transformers`` refuses, with the reason.
    """

    vocab_size: int = 30522
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int = 3072
    max_len: int = 512
    n_segments: int = 2
    dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    n_labels: int = 2
    pool: PoolMode = "cls"
    label_names: tuple[str, ...] | None = None
    classifier_dropout: float | None = None
    norm_first: bool = False
    presets: ClassVar[dict[str, dict[str, Any]]] = PRESETS

    def __post_init__(self) -> None:
        self.check_head()
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_len", "n_segments"):
            check_positive(getattr(self, name), name, integer=True)
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"argument `d_model`={self.d_model} must be divisible by "
                             f"`n_heads`={self.n_heads}")
        check_positive(self.layer_norm_eps, "layer_norm_eps")
        if self.pad_token_id is not None:
            check_positive(self.pad_token_id, "pad_token_id", strict=False, integer=True)
            if self.pad_token_id >= self.vocab_size:
                raise ValueError(f"argument `pad_token_id`={self.pad_token_id} must lie in "
                                 f"[0, vocab_size={self.vocab_size})")
        check_choice(self.pool, "pool", POOL_MODES)
        if not isinstance(self.norm_first, bool):
            raise ValueError(f"argument `norm_first` must be True or False; got {self.norm_first!r}")

    @classmethod
    def from_hf(cls, data: dict[str, Any], source: str = "config") -> BertConfig:
        """The config of a Hugging Face BERT ``config.json`` (a parsed dict).

        Raises
        ------
        CheckpointError
            A missing key, an unsupported value (``hidden_act``, ``position_embedding_type``)
            or an invalid size, naming ``source``.
        """
        try:
            return cls(**config_from_hf(data, source))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{source} is not a valid BERT config: {exc}") from None

    def to_hf(self, architecture: str = "BertModel") -> dict[str, Any]:
        """This config as a Hugging Face ``config.json`` dict for class ``architecture``."""
        return config_to_hf(self, architecture)


def _backbone(c: BertConfig) -> EncoderBackbone:
    """BERT's embeddings (word + segment + learned position, LayerNorm, dropout; [CLS] is the
    tokenizer's first token) and a post-LN encoder (pre-LN with a final LayerNorm when
    ``norm_first``) without dropout inside the MLP."""
    stem = TokenStem(c.vocab_size, c.d_model, max_len=c.max_len, pad_token_id=c.pad_token_id,
                     n_segments=c.n_segments, cls="input", position="learned", norm=True, dropout=c.dropout,
                     layer_norm_eps=c.layer_norm_eps)
    encoder = TransformerEncoder(c.n_layers, c.d_model, c.n_heads, c.d_ff, dropout=c.dropout,
                                 attention_dropout=c.attention_dropout, norm_first=c.norm_first,
                                 layer_norm_eps=c.layer_norm_eps, mlp_dropout=0.0)
    return EncoderBackbone(stem, encoder)


class BertPooler(nn.Module):
    """``tanh(dense(h_[CLS]))``: the [CLS] vector (B, D) through a dense layer → (B, D)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, cls_vector: Tensor) -> Tensor:
        return torch.tanh(self.dense(cls_vector))  # (B, D)


class BertPreTrainedModel(PretrainedModel):
    """What every BERT head shares: the backbone, Hugging Face checkpoints, initialisation.

    ``BertPreTrainedModel.from_pretrained(path)`` builds the class named by ``config.json``'s
    ``architectures`` (``BertModel`` when absent; ``heads`` lists them); a head's own
    ``from_pretrained`` builds that head. Extra tensors of other heads are ignored, missing ones
    are an error.
    """

    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16", "int8")  # gicho.models.precision
    config_class = BertConfig
    model_type = "bert"
    parts: ClassVar[frozenset[str]] = frozenset()  # top-level modules besides the backbone
    json_keys: ClassVar[dict[str, str]] = {"n_layers": "num_hidden_layers"}

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = _backbone(config)

    def _init_weights(self) -> None:
        """BERT's initialisation: N(0, INIT_STD²) weights, zero biases, unit LayerNorms."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=INIT_STD)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, LearnedPositionEmbedding):
                nn.init.normal_(module.weight, std=INIT_STD)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_features(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                         token_type_ids: Tensor | None = None, output_attentions: bool = False,
                         rows: int | None = None, positions: Tensor | None = None) -> EncoderOutput:
        """Encode ``input_ids`` (B, T) int64 → ``last_hidden_state`` (B, T, D), ``mask`` (B, T).

        ``rows=1``: the [CLS] state only, (B, 1, D). ``positions`` (K,) int64, flat (B·T)
        indices: those positions' states only, (K, D), the last layer computing just them.

        Raises
        ------
        ValueError
            ``T > max_len``; ids outside ``[0, vocab_size)``; masks of the wrong shape.
        """
        return self.backbone.forward_features(attention_mask, output_attentions=output_attentions, rows=rows,
                                              positions=positions, input_ids=input_ids,
                                              token_type_ids=token_type_ids)

    def pool(self, features: EncoderOutput) -> Tensor:
        """(B, T, D) → (B, D) by ``config.pool``: the [CLS] state, or the mean (max) of the real
        tokens ([CLS] and [SEP] included: they are the tokenizer's)."""
        return self.backbone.pool(features, self.config.pool)

    def embed(self, input_ids: Tensor, attention_mask: Tensor | None = None,
              token_type_ids: Tensor | None = None) -> Tensor:
        """Sentence embeddings (B, D): the mean of the real tokens' last hidden states ([CLS]
        and [SEP] included, as sentence-transformers), L2-normalised, whatever the head."""
        enc = self.forward_features(input_ids, attention_mask, token_type_ids)
        return F.normalize(self.backbone.pool(enc, "mean"), p=2, dim=-1)  # (B, D)

    # ---------------------------------------------------------------- Hugging Face checkpoints
    def config_dict(self) -> dict[str, Any]:
        return self.config.to_hf(type(self).__name__)

    def export_state_dict(self) -> dict[str, Tensor]:
        prefix = "" if type(self) is BertModel else "bert."
        return to_hf_state_dict(self.state_dict(), prefix)

    @classmethod
    def config_from_json(cls, data: dict[str, Any], source: str) -> BertConfig:
        if "d_model" in data:  # gicho's own field names
            return config_from_dict(BertConfig, data, source)
        return BertConfig.from_hf(data, source)

    @classmethod
    def import_state_dict(cls, state: dict[str, Tensor], config: BertConfig) -> dict[str, Tensor]:
        parts = cls.parts - ({"pooler"} if config.pool != "cls" and cls is not BertModel else set())
        return from_hf_state_dict(state, set(parts))

    @classmethod
    def default_head(cls, path: Path) -> type:
        """Without ``architectures``: the encoder, :class:`BertModel`."""
        return BertModel


class BertModel(BertPreTrainedModel):
    """The BERT encoder with its pooler (Hugging Face's ``BertModel``; 109,482,240 parameters
    at the ``base`` size)."""

    parts = frozenset({"pooler"})

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.pooler = BertPooler(config.d_model)
        self._init_weights()

    def forward_head(self, pooled: Tensor, pre_logits: bool = False) -> Tensor:
        """The pooler, ``tanh(dense(pooled))`` (B, D) (``pooler_output`` when ``pool="cls"``);
        ``pre_logits``: ``pooled`` itself."""
        return pooled if pre_logits else self.pooler(pooled)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, output_attentions: bool = False) -> dict[str, Any]:
        """``last_hidden_state`` (B, T, D), ``pooler_output`` (B, D), ``attentions`` if asked."""
        enc = self.forward_features(input_ids, attention_mask, token_type_ids, output_attentions)
        hidden = enc.last_hidden_state  # (B, T, D)
        out = {"last_hidden_state": hidden, "pooler_output": self.pooler(hidden[:, 0])}
        if output_attentions:
            out["attentions"] = enc.attentions
        return out


class BertLMHead(nn.Module):
    """``LayerNorm(gelu(dense(h))) Eᵀ + bias``; ``E`` (V, D), the word embeddings, is passed in."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.transform = nn.Module()
        self.transform.dense = nn.Linear(config.d_model, config.d_model)
        self.transform.LayerNorm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: Tensor, embeddings: Tensor) -> Tensor:
        """(..., D) → logits (..., V)."""
        h = self.transform.LayerNorm(packed_linear.linear(self.transform.dense, hidden, gelu=True))
        return packed_linear.linear_weight(h, embeddings, self.bias)  # oneDNN on the CPU (float32)


class NoMaskedLMHeadError(CheckpointError):
    """A checkpoint loaded as :class:`BertForMaskedLM` has no masked-language-model head (an
    encoder only, such as a sentence-transformers model)."""


class BertForMaskedLM(BertPreTrainedModel):
    """BERT with the masked-language-model head (no pooler, as Hugging Face's)."""

    parts = frozenset({"lm_head"})
    # stored names of the head: Hugging Face's and gicho's own
    HEAD_PREFIXES: ClassVar[tuple[str, ...]] = ("cls.predictions.", "lm_head.")

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.lm_head = BertLMHead(config)
        self._init_weights()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> BertPreTrainedModel:
        """As :meth:`BertPreTrainedModel.from_pretrained`; first checks that the checkpoint has
        an MLM head.

        Raises
        ------
        NoMaskedLMHeadError
            When the weights hold no ``cls.predictions.*`` (nor ``lm_head.*``) tensor.
        """
        if kwargs.get("key_map") is None:
            cls._check_head(Path(path))
        return super().from_pretrained(path, **kwargs)

    @classmethod
    def _check_head(cls, path: Path) -> None:
        try:
            names = tensor_shapes(weights_file(path))
            architectures = read_config(path).get("architectures") or ["BertModel"]
        except CheckpointError:
            return  # from_pretrained names the missing or damaged file
        if not any(name.startswith(cls.HEAD_PREFIXES) for name in names):
            architecture = architectures[0] if isinstance(architectures, list) else architectures
            raise NoMaskedLMHeadError(
                f"checkpoint {path} ({architecture}) has no masked-language-model head (no "
                "cls.predictions.* tensors), so it cannot fill masks; use a BertForMaskedLM checkpoint")

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, labels: Tensor | None = None,
                max_predictions: int | None = None) -> dict[str, Tensor]:
        """Token logits, or the MLM loss at the masked positions.

        Parameters
        ----------
        input_ids, attention_mask, token_type_ids : Tensor (B, T)
        labels : Tensor, int64, shape (B, T), optional
            The original token at masked positions, -100 elsewhere.
        max_predictions : int, optional
            How many positions of the batch the vocabulary projection scores (default:
            ``max(MIN_PREDICTIONS, ceil(MAX_PREDICTIONS_FRACTION · B·T))``, at most B·T; eager on
            the CPU, at most the number of masked tokens).

        Returns
        -------
        dict
            Without ``labels``: ``"logits"`` (B, T, V). With ``labels``: ``"loss"`` (mean
            cross-entropy over the scored masked tokens), ``"n_items"`` (their number),
            ``"n_masked"`` (all masked tokens; more than ``n_items`` only if the batch masked
            more than ``max_predictions``), ``"masked_logits"`` (K, V) and ``"masked_labels"``
            (K,) (-100 where fewer than K tokens are masked).

        Notes
        -----
        Why a fixed budget: selecting ``hidden[labels != -100]`` has a data-dependent shape (a
        host synchronisation and a graph break under ``torch.compile``), and projecting every
        position onto the vocabulary costs ~6x more than needed at 15% masking. A stable sort
        puts the masked positions first and the first K are gathered, a shape known from B·T
        alone; BERT's own pretraining code does the same with ``max_predictions_per_seq``.
        Eager on the CPU, where reading the count on the host costs nothing, K is the number of
        masked tokens (at most the budget): the same loss, without the budget's empty slots.
        The last encoder layer computes the K scored positions only (their attention still
        over every token): no other state reaches the loss.
        """
        embeddings = self.backbone.stem.word_embeddings.weight  # (V, D)
        if labels is None:
            hidden = self.forward_features(input_ids, attention_mask, token_type_ids).last_hidden_state
            return {"logits": self.lm_head(hidden, embeddings)}  # (B, T, V)
        if labels.shape != input_ids.shape:
            raise ValueError(f"labels must have the shape of input_ids {tuple(input_ids.shape)}; "
                             f"got {tuple(labels.shape)}")
        n = labels.numel()  # B·T
        if max_predictions is None:
            k = max(MIN_PREDICTIONS, math.ceil(MAX_PREDICTIONS_FRACTION * n))
        elif isinstance(max_predictions, bool) or not isinstance(max_predictions, int) or max_predictions < 1:
            raise ValueError(f"argument `max_predictions` must be an integer >= 1; got {max_predictions!r}")
        else:
            k = max_predictions
        k = min(k, n)
        flat_labels = labels.reshape(n)  # (N,)
        is_masked = flat_labels != IGNORE_INDEX  # (N,)
        n_masked = is_masked.sum()
        if input_ids.device.type == "cpu" and not static_shapes():
            # eager on the CPU, reading the count costs nothing (no device to wait for) and
            # drops the budget's empty slots: ~40% of the vocabulary projection at 15% masking
            k = min(k, max(int(n_masked), 1))
        order = torch.argsort((~is_masked).to(torch.uint8), stable=True)  # masked first, (N,)
        positions = order[:k]  # (K,)
        masked_labels = flat_labels.index_select(0, positions)  # (K,)
        # the last layer computes these K positions only: no other state reaches the loss
        selected = self.forward_features(input_ids, attention_mask, token_type_ids,
                                         positions=positions).last_hidden_state  # (K, D)
        logits = self.lm_head(selected, embeddings)  # (K, V)
        n_items = (masked_labels != IGNORE_INDEX).sum()
        try:
            total = summed_cross_entropy(logits.float(), masked_labels)  # blocked on the CPU
        except IndexError:
            raise ValueError(f"labels must be token ids in [0, {self.config.vocab_size}) or "
                             f"{IGNORE_INDEX} (not masked); some are outside") from None
        return {"loss": total / n_items.clamp(min=1), "n_items": n_items, "n_masked": n_masked,
                "masked_logits": logits, "masked_labels": masked_labels}


class BertForSequenceClassification(BertPreTrainedModel):
    """BERT with a linear classifier on the pooler output (``pool="cls"``) or on the mean (max) of
    the real tokens (no pooler); ``n_labels == 1``: a regressor (squared error)."""

    parts = frozenset({"pooler", "classifier"})

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.pooler = BertPooler(config.d_model) if config.pool == "cls" else None
        p = config.dropout if config.classifier_dropout is None else config.classifier_dropout
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(config.d_model, config.n_labels)
        self._init_weights()

    def forward_head(self, pooled: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, D) → logits (B, n_labels): pooler (on [CLS]), dropout, classifier; ``pre_logits``:
        the vector the classifier reads."""
        x = self.dropout(pooled if self.pooler is None else self.pooler(pooled))
        return x if pre_logits else self.classifier(x)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, labels: Tensor | None = None,
                output_attentions: bool = False) -> dict[str, Any]:
        """Classify single sentences or pairs (``token_type_ids`` 1 on the second sentence).

        Returns
        -------
        dict
            ``"logits"`` (B, n_labels); with ``labels`` (B,) int64: ``"loss"`` (cross-entropy,
            -100 ignored; squared error on float labels when ``n_labels == 1``) and ``"n_items"``;
            ``"attentions"`` when ``output_attentions``.
        """
        pooled, enc = self.backbone.forward_pooled(self.config.pool, attention_mask,
                                                   output_attentions=output_attentions, input_ids=input_ids,
                                                   token_type_ids=token_type_ids)
        logits = self.forward_head(pooled)  # (B, C)
        out: dict[str, Any] = {"logits": logits}
        if labels is not None:
            if self.config.n_labels == 1:
                out.update(regression_loss(logits.squeeze(-1), labels))
            else:
                out.update(classification_loss(logits, labels))
        if output_attentions:
            out["attentions"] = enc.attentions
        return out

    @classmethod
    def from_encoder(cls, path: str | os.PathLike, **overrides: Any) -> BertForSequenceClassification:
        """A classifier whose encoder comes from any BERT checkpoint in ``path`` (``BertModel``,
        ``BertForMaskedLM``, ...), with a freshly initialised classifier; the pooler is loaded
        too when the checkpoint has one and ``pool="cls"``. ``overrides`` set config fields
        (``n_labels=3, pool="mean", label_names=...``). Returned in training mode.

        Raises
        ------
        CheckpointError
            As :meth:`from_pretrained`; the encoder's sizes are checked before allocating.
        ValueError
            An invalid override.
        """
        return cls.from_pretrained_parts(path, ["backbone"], optional=["pooler"], **overrides)


# Hugging Face's architecture names → gicho's heads (BertForPreTraining: the MLM head; its
# next-sentence head is dropped)
BertPreTrainedModel.heads = {"BertModel": BertModel, "BertForMaskedLM": BertForMaskedLM,
                             "BertForPreTraining": BertForMaskedLM,
                             "BertForSequenceClassification": BertForSequenceClassification}
