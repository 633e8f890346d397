"""Hugging Face and timm ViT ↔ gicho ViT: tensor names (through the tables of
:mod:`gicho.models._hf`) and Hugging Face's ``config.json`` keys.

Hugging Face, on disk (every ``transformers`` version writes this layout; a ``vit.`` prefix for
``ViTForImageClassification``)::

    embeddings.cls_token (1, 1, D)             → backbone.stem.cls_token
    embeddings.position_embeddings (1, N+1, D) → backbone.stem.pos_embed.weight (N+1, D)
    embeddings.patch_embeddings.projection     → backbone.stem.patch_embed.proj
    encoder.layer.i.attention.attention.{query,key,value} → backbone.encoder.layers.i.attn.qkv (fused)
    encoder.layer.i.attention.output.dense     → ….attn.proj
    encoder.layer.i.layernorm_before / _after  → ….norm1 / ….norm2
    encoder.layer.i.intermediate.dense / output.dense → ….mlp.fc1 / ….mlp.fc2
    layernorm                                  → backbone.encoder.norm
    classifier                                 → head
    pooler.dense                               → dropped (the tanh pooler; classification never uses it)

DeiT with a distillation token (``DeiTModel``, ``DeiTForImageClassificationWithTeacher``,
``model_type: "deit"``, a ``deit.`` prefix for the classifier): the same names, plus::

    embeddings.distillation_token (1, 1, D)    → backbone.stem.dist_token
    embeddings.position_embeddings (1, N+2, D) → backbone.stem.pos_embed.weight (N+2, D)
    cls_classifier / distillation_classifier   → head / head_dist

``transformers`` 5's in-memory names (``layers.i.attention.{q,k,v,o}_proj``, ``layers.i.mlp.fc1``)
are read too. timm (``vit_*_patch16_224``)::

    cls_token, pos_embed (1, N+1, D), patch_embed.proj, blocks.i.{norm1, attn.qkv, attn.proj,
    norm2, mlp.fc1, mlp.fc2}, norm, head  (and dist_token, head_dist: deit_*_distilled_*)

A ViT with a stem or attention that no Hugging Face class computes (``stem="conv"``,
``"shifted"``, ``attention="lsa"``) is saved under gicho's own tensor names (no foreign layout
holds its tensors), its ``config.json`` refusing ``transformers``.
"""

from __future__ import annotations

from typing import Any

import torch

from gicho.models._hf import DEIT_HF, VIT_HF, VIT_TIMM, export_state, import_state, upgrade_names
from gicho.models._pretrained import config_from_dict, hf_refusing_act, is_hf_refusing_act
from gicho.weights import CheckpointError

__all__ = ["config_from_hf", "config_to_hf", "detect_layout", "export_hf", "hf_architecture", "import_vit_state"]

HF_DEFAULT_EPS = 1e-12  # Hugging Face ViTConfig's layer_norm_eps default (timm uses 1e-6)
# gicho's ViT options that no Hugging Face config has, and their defaults (the plain ViT); the
# distillation token is told by model_type "deit" instead
GICHO_OPTIONS = {"attention": "standard", "stem": "patch"}


def detect_layout(keys: list[str]) -> str:
    """``"gicho"``, ``"hf"`` or ``"timm"`` from a state dict's names."""
    if any(k.startswith("backbone.") for k in keys):
        return "gicho"
    if any(k.startswith(("embeddings.", "vit.embeddings.", "deit.embeddings.")) for k in keys):
        return "hf"
    if "cls_token" in keys or any(k.startswith("blocks.") for k in keys):
        return "timm"
    raise CheckpointError("the weights are not a ViT checkpoint in gicho's, Hugging Face's or timm's "
                          f"layout (first names: {sorted(keys)[:4]})")


def import_vit_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ViT state dict in any supported layout → gicho's names and shapes."""
    layout = detect_layout(list(state))
    if layout == "hf":
        if any(k.endswith("embeddings.distillation_token") for k in state):
            return import_state(state, DEIT_HF, prefix="deit.")
        return import_state(state, VIT_HF, prefix="vit.")
    if layout == "timm":
        if "fc_norm.weight" in state:
            raise CheckpointError("this timm ViT pools by average with a LayerNorm after pooling (fc_norm); "
                                  "gicho's ViT normalises before pooling: only [CLS]-pooled timm ViTs "
                                  "(vit_*_patch16_224) are supported")
        return import_state(state, VIT_TIMM)
    return upgrade_names(state)


def export_hf(state: dict[str, torch.Tensor], *, head: bool, distillation: bool) -> dict[str, torch.Tensor]:
    """gicho's state dict → Hugging Face's on-disk layout: ViT's, or DeiT's with a distillation
    token; encoder tensors under ``vit.`` / ``deit.`` when the model has a ``head``."""
    table, prefix = (DEIT_HF, "deit.") if distillation else (VIT_HF, "vit.")
    return export_state(state, table, prefix=prefix if head else "")


def hf_architecture(name: str, distillation: bool) -> str:
    """The ``transformers`` class of gicho's ViT class ``name``: DeiT's with a distillation token."""
    deit = {"ViTModel": "DeiTModel", "ViTForImageClassification": "DeiTForImageClassificationWithTeacher"}
    return deit.get(name, name) if distillation else name


def config_to_hf(config: Any, architecture: str, *, refuse: str | None = None,
                 encoder_ok: bool = True) -> dict[str, Any]:
    """Hugging Face's ``ViTConfig`` (``DeiTConfig`` with a distillation token) fields, plus
    gicho's ``pool`` (and ``stem``, ``attention`` where not the defaults), for ``architecture``.

    ``refuse`` names a gicho feature ``transformers``' ``architecture`` lacks: ``hidden_act`` is
    then :func:`~gicho.models._pretrained.hf_refusing_act` (``transformers`` refuses the
    directory with that text; gicho reads it as GELU); ``encoder_ok``: whether the encoder alone
    is one ``transformers`` computes (the text then says how to load it).
    """
    c = config
    act = "gelu" if refuse is None else hf_refusing_act(architecture, refuse, encoder_ok=encoder_ok)
    names = c.label_names or tuple(f"LABEL_{i}" for i in range(c.n_labels or 0))
    # written only when set, so a plain ViT's config.json is what it always was
    options = {k: getattr(c, k) for k, plain in GICHO_OPTIONS.items() if getattr(c, k) != plain}
    return {
        "model_type": "deit" if c.distillation else "vit", "architectures": [architecture],
        "hidden_size": c.d_model, "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads,
        "intermediate_size": c.ff_dim, "hidden_act": act, "hidden_dropout_prob": c.dropout,
        "attention_probs_dropout_prob": c.attention_dropout, "layer_norm_eps": c.layer_norm_eps,
        "image_size": c.image_size, "patch_size": c.patch_size, "num_channels": c.in_channels,
        "qkv_bias": True, "initializer_range": 0.02, "encoder_stride": c.patch_size,
        "id2label": {str(i): n for i, n in enumerate(names)},
        "label2id": {n: i for i, n in enumerate(names)}, "pool": c.pool, **options,
    }


def config_from_hf(config_cls: type, data: dict[str, Any], source: str) -> Any:
    """A Hugging Face ViT ``config.json`` (what ``transformers`` and gicho write) → ``config_cls``."""
    model_type = data.get("model_type", "vit")
    if model_type not in ("vit", "deit"):
        raise CheckpointError(f"{source} holds a {model_type!r} model, not 'vit' or 'deit'")
    if "hidden_size" not in data:  # a plain dump of gicho's ViTConfig fields
        return config_from_dict(config_cls, data, source)
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
        "layer_norm_eps": data.get("layer_norm_eps", HF_DEFAULT_EPS),
        "n_labels": len(names) or 2, "pool": data.get("pool", "cls"),
        "label_names": None if default or not names else tuple(names),
        "distillation": model_type == "deit",
        **{k: data.get(k, plain) for k, plain in GICHO_OPTIONS.items()},
    }
    return config_from_dict(config_cls, values, source)
