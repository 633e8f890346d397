"""Hugging Face BERT ↔ gicho BERT: tensor names, the fused QKV, and ``config.json`` keys.

Hugging Face names (``BertModel``; the heads prefix the encoder with ``bert.``)::

    embeddings.{word,position,token_type}_embeddings.weight, embeddings.LayerNorm.*
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
a ``BertModel``, the pooler when loading a ``BertForMaskedLM``), as ``transformers`` does. The
conversion uses only renames and ``torch.cat``, so it also runs on ``meta`` tensors (shape
checks before allocation). Names already in gicho's layout (a training checkpoint) pass
through unchanged.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from gicho.models._pretrained import hf_refusing_act, is_hf_refusing_act
from gicho.weights import CheckpointError, fuse_qkv, split_qkv

__all__ = ["config_from_hf", "config_to_hf", "from_hf_state_dict", "to_hf_state_dict"]

ENC = "backbone.encoder.layers"
EMB = "backbone.stem.embeddings"
_LAYER_RENAMES = {  # HF name inside encoder.layer.{i}. → gicho name inside layers.{i}.
    "attention.output.dense": "attn.proj",
    "attention.output.LayerNorm": "norm1",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "output.LayerNorm": "norm2",
}
_RENAMES = {
    "cls.predictions.transform.dense": "lm_head.transform.dense",
    "cls.predictions.transform.LayerNorm": "lm_head.transform.LayerNorm",
    "pooler.dense": "pooler.dense",
    "classifier": "classifier",
}
_DROPPED = ("embeddings.position_ids", "cls.predictions.decoder.weight", "cls.seq_relationship.")
_QKV = re.compile(r"encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.(weight|bias)$")
_LAYER = re.compile(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")


def _rename(name: str) -> str:
    """One HF name (without ``bert.``, not a q/k/v tensor) → gicho's; unknown names unchanged."""
    if name.startswith("embeddings."):
        return f"{EMB}.{name[len('embeddings.'):]}"
    if name == "cls.predictions.bias":
        return "lm_head.bias"
    match = _LAYER.match(name)
    if match and match.group(2) in _LAYER_RENAMES:
        i, module, kind = match.groups()
        return f"{ENC}.{i}.{_LAYER_RENAMES[module]}.{kind}"
    for hf, ours in _RENAMES.items():
        if name.startswith(hf + "."):
            return ours + name[len(hf):]
    return name


def from_hf_state_dict(state: dict[str, torch.Tensor], own: set[str]) -> dict[str, torch.Tensor]:
    """A Hugging Face BERT state dict (any head, with or without ``bert.``) → gicho's names.

    Parameters
    ----------
    state : dict of str to Tensor
        Real or ``meta`` tensors.
    own : set of str
        Top-level parts the target model has (``{"backbone", "pooler", "lm_head",
        "classifier"}`` or a subset): other heads' tensors are dropped.

    Raises
    ------
    CheckpointError
        When a layer lacks one of its query/key/value tensors.
    """
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for name, tensor in state.items():
        name = name.removeprefix("bert.")
        if name.startswith(_DROPPED) or (name == "cls.predictions.decoder.bias"
                                         and "cls.predictions.bias" in state):
            continue
        if name == "cls.predictions.decoder.bias":  # older checkpoints store the bias only here
            name = "cls.predictions.bias"
        match = _QKV.match(name)
        if match:
            i, part, kind = match.groups()
            qkv.setdefault((i, kind), {})[part] = tensor
            continue
        ours = _rename(name)
        if ours.split(".")[0] in {"pooler", "lm_head", "classifier"} - own:
            continue
        out[ours] = tensor
    for (i, kind), parts in sorted(qkv.items()):
        if set(parts) != {"query", "key", "value"}:
            missing = sorted({"query", "key", "value"} - set(parts))
            raise CheckpointError(f"layer {i} has no attention.self.{'/'.join(missing)}.{kind} tensor")
        shapes = {part: tuple(parts[part].shape) for part in ("query", "key", "value")}
        if len(set(shapes.values())) > 1:
            listed = ", ".join(f"encoder.layer.{i}.attention.self.{part}.{kind} {shape}"
                               for part, shape in shapes.items())
            raise CheckpointError(f"layer {i}'s query, key and value must have one shape; got {listed}")
        out[f"{ENC}.{i}.attn.qkv.{kind}"] = fuse_qkv(parts["query"], parts["key"], parts["value"])
    return out


def to_hf_state_dict(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """gicho's BERT state dict → Hugging Face names, encoder tensors under ``prefix``
    (``""`` for ``BertModel``, ``"bert."`` for the heads); QKV split, the tied decoder omitted
    (as ``transformers`` saves it)."""
    inverse_layer = {v: k for k, v in _LAYER_RENAMES.items()}
    inverse = {v: k for k, v in _RENAMES.items()}
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name.startswith(EMB + "."):
            out[f"{prefix}embeddings.{name[len(EMB) + 1:]}"] = tensor
        elif name.startswith(ENC + "."):
            i, rest = name[len(ENC) + 1:].split(".", 1)
            module, kind = rest.rsplit(".", 1)
            if module == "attn.qkv":
                for part, t in zip(("query", "key", "value"), split_qkv(tensor), strict=True):
                    out[f"{prefix}encoder.layer.{i}.attention.self.{part}.{kind}"] = t
            else:
                out[f"{prefix}encoder.layer.{i}.{inverse_layer[module]}.{kind}"] = tensor
        elif name == "lm_head.bias":
            out["cls.predictions.bias"] = tensor
        else:
            module, kind = name.rsplit(".", 1)
            hf = inverse[module]
            out[f"{prefix if hf == 'pooler.dense' else ''}{hf}.{kind}"] = tensor
    return out


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
    return fields


def config_to_hf(config: Any, architecture: str) -> dict[str, Any]:
    """A Hugging Face BERT ``config.json`` (dict) for ``config``, for class ``architecture``.

    A mean-pooled ``BertForSequenceClassification`` has no counterpart in ``transformers``
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
    if architecture == "BertForSequenceClassification" and config.pool == "mean":
        data["hidden_act"] = hf_refusing_act(architecture, f"mean pooling ({POOLING_KEY}='mean')")
    return data
