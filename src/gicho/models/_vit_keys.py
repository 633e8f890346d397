"""Tensor names of ViT checkpoints: Hugging Face and timm layouts ↔ gicho's.

gicho's names (``backbone.*``, ``head.*``) follow timm's block layout (fused ``attn.qkv``); the
differences are a prefix, the position table's leading batch axis, and Hugging Face's separate
query/key/value projections. Every function here works on ``meta`` tensors as well (only
renames, ``view`` and ``cat``), so ``from_pretrained`` can check shapes before reading.

Hugging Face, on disk (every ``transformers`` version writes this layout; an optional ``vit.``
prefix for ``ViTForImageClassification``)::

    embeddings.cls_token (1, 1, D)            → backbone.cls_token
    embeddings.position_embeddings (1, N+1, D) → backbone.pos_embed.weight (N+1, D)
    embeddings.patch_embeddings.projection     → backbone.stem.patch_embed.proj
    encoder.layer.i.attention.attention.{query,key,value} → backbone.encoder.layers.i.attn.qkv (fused)
    encoder.layer.i.attention.output.dense     → ….attn.proj
    encoder.layer.i.layernorm_before / _after  → ….norm1 / ….norm2
    encoder.layer.i.intermediate.dense / output.dense → ….mlp.fc1 / ….mlp.fc2
    layernorm                                  → backbone.encoder.norm
    classifier                                 → head
    pooler.dense                               → dropped (the tanh pooler; classification never uses it)

``transformers`` 5's in-memory names (``layers.i.attention.{q,k,v,o}_proj``, ``layers.i.mlp.fc1``)
are read too. timm (``vit_*_patch16_224``)::

    cls_token, pos_embed (1, N+1, D), patch_embed.proj, blocks.i.{norm1, attn.qkv, attn.proj,
    norm2, mlp.fc1, mlp.fc2}, norm, head
"""

from __future__ import annotations

import re

import torch

from gicho.weights import CheckpointError, split_qkv

__all__ = ["detect_layout", "export_hf", "import_vit_state"]

_BLOCK = "backbone.encoder.layers.{}."
_HF_LAYER = re.compile(r"^(?:encoder\.layer|layers)\.(\d+)\.(.+)$")
_TIMM_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_HF_BLOCK_NAMES = {
    "attention.output.dense": "attn.proj", "attention.o_proj": "attn.proj",
    "layernorm_before": "norm1", "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
    "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
}
_HF_QKV = {"attention.attention.query": 0, "attention.attention.key": 1, "attention.attention.value": 2,
           "attention.q_proj": 0, "attention.k_proj": 1, "attention.v_proj": 2}
_HF_TOP = {
    "embeddings.cls_token": "backbone.cls_token",
    "embeddings.position_embeddings": "backbone.pos_embed.weight",
    "embeddings.patch_embeddings.projection.weight": "backbone.stem.patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "backbone.stem.patch_embed.proj.bias",
    "layernorm.weight": "backbone.encoder.norm.weight", "layernorm.bias": "backbone.encoder.norm.bias",
}
_TIMM_TOP = {
    "cls_token": "backbone.cls_token", "pos_embed": "backbone.pos_embed.weight",
    "patch_embed.proj.weight": "backbone.stem.patch_embed.proj.weight",
    "patch_embed.proj.bias": "backbone.stem.patch_embed.proj.bias",
    "norm.weight": "backbone.encoder.norm.weight", "norm.bias": "backbone.encoder.norm.bias",
}
_HF_DROPPED = ("pooler.", "embeddings.mask_token")  # HF's tanh pooler, masked-image-modeling token


def detect_layout(keys: list[str]) -> str:
    """``"gicho"``, ``"hf"`` or ``"timm"`` from a state dict's names."""
    if any(k.startswith("backbone.") for k in keys):
        return "gicho"
    if any(k.startswith(("embeddings.", "vit.embeddings.")) for k in keys):
        return "hf"
    if "cls_token" in keys or any(k.startswith("blocks.") for k in keys):
        return "timm"
    raise CheckpointError("the weights are not a ViT checkpoint in gicho's, Hugging Face's or timm's "
                          f"layout (first names: {sorted(keys)[:4]})")


def _pos(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[-2], t.shape[-1])  # (1, N+1, D) → (N+1, D)


def _import_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], list[torch.Tensor | None]] = {}
    for name, t in state.items():
        key = name.removeprefix("vit.")
        if key.startswith(_HF_DROPPED):
            continue
        if key in _HF_TOP:
            out[_HF_TOP[key]] = _pos(t) if key.endswith("position_embeddings") else t
        elif key.startswith("classifier."):
            out["head." + key.removeprefix("classifier.")] = t
        elif (m := _HF_LAYER.match(key)) is not None:
            module, _, kind = m.group(2).rpartition(".")  # kind: weight | bias
            prefix = _BLOCK.format(m.group(1))
            if module in _HF_QKV:
                qkv.setdefault((prefix, kind), [None, None, None])[_HF_QKV[module]] = t
            elif module in _HF_BLOCK_NAMES:
                out[prefix + _HF_BLOCK_NAMES[module] + "." + kind] = t
            else:
                out[name] = t  # unknown: reported as unexpected by the strict load
        else:
            out[name] = t
    for (prefix, kind), parts in qkv.items():
        if any(p is None for p in parts):
            raise CheckpointError(f"{prefix}attn.qkv.{kind}: the checkpoint lacks one of query, key, value")
        if len({tuple(p.shape) for p in parts}) > 1:
            listed = ", ".join(f"{part} {tuple(p.shape)}" for part, p in zip(("query", "key", "value"), parts,
                                                                                strict=True))
            raise CheckpointError(f"{prefix}attn.qkv.{kind}: the checkpoint's query, key and value {kind}s must "
                                  f"have one shape; got {listed}")
        out[f"{prefix}attn.qkv.{kind}"] = torch.cat(parts, dim=0)  # (3D, D) or (3D,): rows [q; k; v]
    return out


def _import_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if "fc_norm.weight" in state:
        raise CheckpointError("this timm ViT pools by average with a LayerNorm after pooling (fc_norm); "
                              "gicho's ViT normalises before pooling: only [CLS]-pooled timm ViTs "
                              "(vit_*_patch16_224) are supported")
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if name in _TIMM_TOP:
            out[_TIMM_TOP[name]] = _pos(t) if name == "pos_embed" else t
        elif name.startswith("head."):
            out[name] = t
        elif (m := _TIMM_BLOCK.match(name)) is not None:
            out[_BLOCK.format(m.group(1)) + m.group(2)] = t
        else:
            out[name] = t
    return out


def import_vit_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ViT state dict in any supported layout → gicho's names and shapes."""
    layout = detect_layout(list(state))
    if layout == "hf":
        return _import_hf(state)
    if layout == "timm":
        return _import_timm(state)
    return dict(state)


def export_hf(state: dict[str, torch.Tensor], n_layers: int, *, prefix: str) -> dict[str, torch.Tensor]:
    """gicho's state dict → Hugging Face's on-disk layout (``prefix`` ``"vit."`` or ``""``)."""
    inverse_top = {v: k for k, v in _HF_TOP.items()}
    inverse_block = {"attn.proj": "attention.output.dense", "norm1": "layernorm_before",
                     "norm2": "layernorm_after", "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if name in inverse_top:
            value = t[None] if name == "backbone.pos_embed.weight" else t  # (1, N+1, D)
            out[prefix + inverse_top[name]] = value
        elif name.startswith("head."):
            out["classifier." + name.removeprefix("head.")] = t
    for i in range(n_layers):
        src, dst = _BLOCK.format(i), f"{prefix}encoder.layer.{i}."
        for kind in ("weight", "bias"):
            q, k, v = split_qkv(state[f"{src}attn.qkv.{kind}"])
            for part, value in zip(("query", "key", "value"), (q, k, v), strict=True):
                out[f"{dst}attention.attention.{part}.{kind}"] = value
            for ours, theirs in inverse_block.items():
                out[f"{dst}{theirs}.{kind}"] = state[f"{src}{ours}.{kind}"]
    return out
