"""Hugging Face BERT ↔ gicho BERT: tensor names (through :data:`gicho.models._hf.BERT_HF`) and
``config.json`` keys.

Hugging Face names (``BertModel``; the heads prefix the encoder with ``bert.``)::

    embeddings.{word,token_type}_embeddings.*              → backbone.stem.{word,token_type}_embeddings.*
    embeddings.position_embeddings.*, embeddings.LayerNorm.* → backbone.stem.pos_embed.*, backbone.stem.norm.*
    encoder.layer.{i}.attention.self.{query,key,value}.*   → backbone.encoder.layers.{i}.attn.qkv.*
    encoder.layer.{i}.attention.output.dense.*             → ...attn.proj.*
    encoder.layer.{i}.attention.output.LayerNorm.*         → ...norm1.*
    encoder.layer.{i}.intermediate.dense.*                 → ...mlp.fc1.*
    encoder.layer.{i}.output.dense.*                       → ...mlp.fc2.*
    encoder.layer.{i}.output.LayerNorm.*                   → ...norm2.*
    pooler.dense.*                                         → pooler.dense.*
    cls.predictions.transform.{dense,LayerNorm}.*          → lm_head.transform.{dense,LayerNorm}.*
    cls.predictions.bias                                   → lm_head.bias
    classifier.*                                           → classifier.*

Dropped on reading: ``embeddings.position_ids`` (a buffer gicho recomputes), the decoder of
the MLM head (``cls.predictions.decoder.*``: tied to the word embeddings and to
``cls.predictions.bias``), the next-sentence head ``cls.seq_relationship.*``, and the parts of
a checkpoint that the head being loaded does not have (the MLM head or classifier when loading
a ``BertModel``, the pooler when loading a ``BertForMaskedLM``), as ``transformers`` does.
Names already in gicho's layout (today's or an earlier version's, as training checkpoints of
earlier versions hold) are accepted too.
"""

from __future__ import annotations

from typing import Any

import torch

from gicho.models._hf import BERT_HF, export_state, import_state, upgrade_names
from gicho.models._pretrained import hf_refusing_act, is_hf_refusing_act
from gicho.weights import CheckpointError

__all__ = ["config_from_hf", "config_to_hf", "from_hf_state_dict", "to_hf_state_dict"]

HEAD_PARTS = frozenset({"pooler", "lm_head", "classifier"})


def from_hf_state_dict(state: dict[str, torch.Tensor], own: set[str]) -> dict[str, torch.Tensor]:
    """A Hugging Face (or gicho) BERT state dict, any head, with or without ``bert.`` → gicho's
    names, keeping of the heads' parts only ``own`` (``{"pooler", "lm_head", "classifier"}`` or
    a subset). Works on ``meta`` tensors.

    Raises
    ------
    CheckpointError
        When a layer lacks one of its query/key/value tensors.
    """
    state = dict(state)
    bias = next((k for k in state if k.endswith("cls.predictions.decoder.bias")), None)
    if bias is not None:  # older checkpoints store the MLM bias only there
        kept = state.pop(bias)
        state.setdefault("cls.predictions.bias", kept)
    out = upgrade_names(import_state(state, BERT_HF, prefix="bert."))
    return {name: t for name, t in out.items() if name.split(".")[0] not in HEAD_PARTS - own}


def to_hf_state_dict(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """gicho's BERT state dict → Hugging Face names, encoder tensors under ``prefix``
    (``""`` for ``BertModel``, ``"bert."`` for the heads); QKV split, the tied decoder omitted
    (as ``transformers`` saves it)."""
    return export_state(state, BERT_HF, prefix=prefix)


# ------------------------------------------------------------------------------ config.json

# gicho field ← HF key
_FIELDS = {
    "vocab_size": "vocab_size",
    "d_model": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "d_ff": "intermediate_size",
    "max_len": "max_position_embeddings",
    "n_segments": "type_vocab_size",
    "dropout": "hidden_dropout_prob",
    "attention_dropout": "attention_probs_dropout_prob",
    "layer_norm_eps": "layer_norm_eps",
    "pad_token_id": "pad_token_id",
    "classifier_dropout": "classifier_dropout",
}
# keys without a default: a guessed size would only fail later, against the weights
_SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
          "max_position_embeddings")
POOLING_KEY = "classifier_pooling"  # gicho's classification pooling ("cls" or "mean"), as ModernBERT
NORM_FIRST_KEY = "norm_first"  # gicho's pre-LN layers (no transformers BERT has them)
# HF keys whose other values would change the arithmetic: refused rather than ignored
_REQUIRED = {"hidden_act": "gelu", "position_embedding_type": "absolute", "is_decoder": False,
             "add_cross_attention": False, "tie_word_embeddings": True}


def config_from_hf(data: dict[str, Any], source: str) -> dict[str, Any]:
    """The BertConfig fields of a Hugging Face BERT ``config.json`` (parsed).

    Dropouts, ``type_vocab_size``, ``layer_norm_eps`` and ``pad_token_id`` default as in
    ``transformers`` (and :class:`~gicho.models.bert.BertConfig`); the sizes are required. Keys
    without a gicho meaning (``architectures``, ``initializer_range``, ``use_cache``, ...) are
    ignored; values gicho does not implement (an activation other than exact GELU,
    relative positions, a decoder) raise. The ``hidden_act`` that a mean-pooled classifier
    writes so that ``transformers`` refuses it (see :func:`config_to_hf`) reads as GELU.

    Raises
    ------
    CheckpointError
        Naming ``source``, the key, its value and what is allowed.
    """
    model_type = data.get("model_type", "bert")
    if model_type != "bert":
        raise CheckpointError(f"{source} holds a {model_type!r} model, not a BERT (model_type 'bert')")
    for key, allowed in _REQUIRED.items():
        if key == "hidden_act" and is_hf_refusing_act(data.get(key)):
            continue
        if key in data and data[key] != allowed:
            raise CheckpointError(f"{source}: {key}={data[key]!r} is not supported by gicho's BERT; "
                                  f"allowed: {allowed!r}")
    fields = {ours: data[hf] for ours, hf in _FIELDS.items() if hf in data}
    missing = [hf for hf in _SIZES if hf not in data]  # the others default as in transformers
    if missing:
        raise CheckpointError(f"{source} lacks the BERT size key(s) {missing}")
    id2label = data.get("id2label")
    if isinstance(id2label, dict) and id2label:
        try:
            names = [str(id2label[k]) for k in sorted(id2label, key=int)]
        except (TypeError, ValueError):
            raise CheckpointError(f"{source}: id2label keys must be integers; got {sorted(id2label)}") from None
        fields["n_labels"] = len(names)
        if names != [f"LABEL_{i}" for i in range(len(names))]:
            fields["label_names"] = tuple(names)
    elif "num_labels" in data:
        fields["n_labels"] = data["num_labels"]
    if POOLING_KEY in data:
        fields["pool"] = data[POOLING_KEY]
    if NORM_FIRST_KEY in data:
        fields["norm_first"] = data[NORM_FIRST_KEY]
    return fields


def config_to_hf(config: Any, architecture: str) -> dict[str, Any]:
    """A Hugging Face BERT ``config.json`` (dict) for ``config``, for class ``architecture``.

    A mean- or max-pooled ``BertForSequenceClassification`` has no counterpart in ``transformers``
    (whose classifier reads the [CLS] pooler, which this model lacks: it would be initialised
    afresh and give other logits), so its ``hidden_act`` is
    :func:`~gicho.models._pretrained.hf_refusing_act`: ``transformers`` refuses to build it,
    with that text as the error, and gicho reads it as GELU.
    """
    names = config.label_names or tuple(f"LABEL_{i}" for i in range(config.n_labels))
    data = {hf: getattr(config, ours) for ours, hf in _FIELDS.items()}
    data.update(_REQUIRED)
    data.update({
        "model_type": "bert",
        "architectures": [architecture],
        "initializer_range": 0.02,
        "id2label": {str(i): name for i, name in enumerate(names)},
        "label2id": {name: i for i, name in enumerate(names)},
        POOLING_KEY: config.pool,
    })
    if config.norm_first:
        data[NORM_FIRST_KEY] = True
        data["hidden_act"] = hf_refusing_act(architecture, f"pre-LN layers ({NORM_FIRST_KEY}=true)", encoder_ok=False)
    elif architecture == "BertForSequenceClassification" and config.pool != "cls":
        data["hidden_act"] = hf_refusing_act(architecture, f"{config.pool} pooling ({POOLING_KEY}={config.pool!r})")
    return data
