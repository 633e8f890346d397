"""Model families: one module each, a Config dataclass, ``save_pretrained`` / ``from_pretrained``.

* :mod:`gicho.models.classifier`: :class:`SequenceClassifier` / :class:`SequenceRegressor`
  (heads over :class:`gicho.nn.EncoderBackbone`);
* :mod:`gicho.models.seq2seq`: :class:`Seq2Seq` (attention RNN encoder-decoder);
* :mod:`gicho.models.bert`: :class:`BertModel`, :class:`BertForMaskedLM`,
  :class:`BertForSequenceClassification` (Hugging Face checkpoints both ways).
* :mod:`gicho.models.vit`: :class:`ViTModel` / :class:`ViTForImageClassification` (Hugging
  Face's ``model_type: "vit"`` directories and DeiT's ``"deit"`` with a distillation token, timm
  state dicts);
* :mod:`gicho.models.cnn`: :class:`SmallCNN` (the ViT studies' convolutional baseline).

Every family follows one contract: a Config dataclass with the
:class:`~gicho.models._pretrained.HeadConfig` fields (``n_labels``, ``label_names``, dropouts in
[0, 1), ``from_preset``), ``forward_features → pool → forward_head(pooled, pre_logits=False)``,
``embed`` (the pooled embedding), losses from :mod:`gicho.nn.losses`, and
``save_pretrained`` / ``from_pretrained`` with Hugging Face key tables in
:mod:`gicho.models._hf` where a foreign layout exists.

:func:`from_pretrained` loads any of them from a directory (``config.json`` names the family
in ``model_type``). Families are imported lazily: ``import gicho.models`` does not import torch.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from gicho._lazy import lazy_exports
from gicho.models._legacy import LEGACY_CONFIG_FIELDS

__all__ = ["LEGACY_CONFIG_FIELDS", "MODEL_TYPES", "HeadConfig", "PretrainedModel", "from_pretrained", "model_class"]

# The two seams a new family builds on (docs/architecture.md, "Adding a model family"); loaded on
# first use so that `import gicho.models` stays free of torch.
_LAZY = {"HeadConfig": "gicho.models._pretrained", "PretrainedModel": "gicho.models._pretrained"}


__getattr__, __dir__ = lazy_exports("gicho.models", globals(), _LAZY)

# model_type (as written in config.json) → "module:Class"
MODEL_TYPES: dict[str, str] = {
    "sequence-classifier": "gicho.models.classifier:SequenceClassifier",
    "sequence-regressor": "gicho.models.classifier:SequenceRegressor",
    "seq2seq": "gicho.models.seq2seq:Seq2Seq",
    "small-cnn": "gicho.models.cnn:SmallCNN",
    # Hugging Face's model_type; the head is chosen by config.json's "architectures"
    "bert": "gicho.models.bert:BertPreTrainedModel",
    "vit": "gicho.models.vit:ViTPretrained",  # Hugging Face's model_type; dispatches on `architectures`
    "deit": "gicho.models.vit:ViTPretrained",  # a ViT with DeiT's distillation token
}


def model_class(model_type: str) -> type:
    """The model class registered for ``model_type`` (gicho's families, and any subclass of
    :class:`gicho.models._pretrained.PretrainedModel` defined in this process)."""
    from gicho.models._pretrained import REGISTERED

    if model_type in REGISTERED:
        return REGISTERED[model_type]
    if model_type not in MODEL_TYPES:
        known = sorted({*MODEL_TYPES, *REGISTERED})
        raise ValueError(f"unknown model_type {model_type!r}; allowed: {', '.join(known)}")
    module, name = MODEL_TYPES[model_type].split(":")
    return getattr(importlib.import_module(module), name)


def from_pretrained(path: str | os.PathLike, *, precision: str = "fp32") -> Any:
    """Load the model saved in ``path`` (by ``save_pretrained``), whatever its family, in eval mode.

    ``precision`` (``"fp32"``, ``"bf16"`` or ``"int8"``): CPU inference precision of a BERT or
    ViT (:mod:`gicho.models.precision`); other families take ``"fp32"`` only.

    Raises
    ------
    ValueError
        An unknown ``precision``, or a reduced one for a family without a Transformer encoder.
    RuntimeError
        ``"bf16"`` on a CPU without native bfloat16 (the message says why).
    gicho.weights.CheckpointError
        When ``config.json`` lacks ``model_type`` or the weights do not match it.
    """
    from gicho.models.precision import check_precision
    from gicho.weights import CheckpointError, read_config

    check_precision(precision)
    data = read_config(path)
    model_type = data.get("model_type")
    if not isinstance(model_type, str):
        raise CheckpointError(f"{path}/config.json has no 'model_type'; load it with the model "
                              "class's own from_pretrained")
    try:
        cls = model_class(model_type)
    except ValueError as exc:
        raise CheckpointError(f"{path}/config.json: {exc}") from None
    return cls.from_pretrained(path, precision=precision)
