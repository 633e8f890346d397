"""Foreign checkpoints ↔ gicho's tensor names, driven by tables: one converter for every layout.

A :class:`KeyTable` says how one foreign layout (Hugging Face BERT, Hugging Face ViT, timm ViT)
names each gicho tensor:

* ``encoder``: name prefixes of the encoder side (embeddings, final norm, pooler), stored under
  the model's Hugging Face prefix (``bert.``, ``vit.``) in a head's checkpoint;
* ``heads``: name prefixes of the task heads, stored without that prefix;
* ``layer``: module names inside layer ``i`` (``layer_prefix`` + ``i.``), mapped to gicho's
  ``backbone.encoder.layers.i.`` modules; ``qkv``: the separate query/key/value modules that
  gicho fuses into one ``attn.qkv`` (:func:`gicho.weights.fuse_qkv`);
* ``reshape``: gicho name → (import, export) shape functions (ViT's (1, N+1, D) position table);
* ``dropped``: foreign prefixes ignored on reading (buffers gicho recomputes, unused heads).

Renames match whole dotted components (``embeddings.word_embeddings.`` → ...), longest first.
Every function uses only renames, ``reshape`` and ``cat``, so it runs on ``meta`` tensors too
(:meth:`~gicho.models._pretrained.PretrainedModel.from_pretrained` checks shapes before reading).

:data:`LEGACY_RENAMES` maps gicho's own names of earlier versions to today's (the stems took
over [CLS], positions and the embedding norm from the backbone); :func:`upgrade_names` applies
it, so run directories and checkpoints written before still load.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from gicho.weights import CheckpointError, fuse_qkv, split_qkv

__all__ = ["BERT_HF", "DEIT_HF", "LEGACY_RENAMES", "VIT_HF", "VIT_TIMM", "KeyTable", "export_state", "import_state",
           "upgrade_names"]

ENCODER_LAYERS = "backbone.encoder.layers."
Reshape = Callable[[torch.Tensor], torch.Tensor]

# gicho name prefix of an earlier version → today's (tests/models/test_legacy_names.py)
LEGACY_RENAMES: dict[str, str] = {
    "backbone.stem.embeddings.word_embeddings.": "backbone.stem.word_embeddings.",
    "backbone.stem.embeddings.token_type_embeddings.": "backbone.stem.token_type_embeddings.",
    "backbone.stem.embeddings.position_embeddings.": "backbone.stem.pos_embed.",
    "backbone.stem.embeddings.LayerNorm.": "backbone.stem.norm.",
    "backbone.cls_token": "backbone.stem.cls_token",
    "backbone.pos_embed.": "backbone.stem.pos_embed.",
    "backbone.embed_norm.": "backbone.stem.norm.",
}


@dataclass(frozen=True)
class KeyTable:
    """How one foreign layout names gicho's tensors (see the module docstring)."""

    name: str
    encoder: dict[str, str]
    heads: dict[str, str]
    layer_prefix: str
    layer: dict[str, str]
    qkv: tuple[str, str, str]
    dropped: tuple[str, ...] = ()
    reshape: dict[str, tuple[Reshape, Reshape]] = field(default_factory=dict)
    # extra foreign spellings read (never written): another transformers version's names
    layer_aliases: dict[str, str] = field(default_factory=dict)
    qkv_aliases: tuple[str, str, str] | None = None
    layer_prefix_aliases: tuple[str, ...] = ()


Renames = list[tuple[str, str]]


def _longest_first(table: dict[str, str]) -> Renames:
    """``table``'s (old, new) prefixes, longest first, so the most specific one matches; sorted
    once per conversion, not once per tensor name."""
    return sorted(table.items(), key=lambda item: len(item[0]), reverse=True)


def _rename(name: str, renames: Renames) -> str | None:
    """``name`` with its longest matching prefix (a whole name or ending in ``.``) replaced."""
    for old, new in renames:
        if name == old or (old.endswith(".") and name.startswith(old)):
            return new + name[len(old):]
    return None


def upgrade_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """gicho names of earlier versions → today's (:data:`LEGACY_RENAMES`); others unchanged."""
    renames = _longest_first(LEGACY_RENAMES)
    return {(_rename(name, renames) or name): t for name, t in state.items()}


def import_state(state: dict[str, torch.Tensor], table: KeyTable, *, prefix: str = "") -> dict[str, torch.Tensor]:
    """A state dict in ``table``'s layout (``prefix`` stripped where present) → gicho's names.

    Unknown names pass through (without ``prefix``), so the strict load reports them as unexpected.

    Raises
    ------
    CheckpointError
        A layer lacking one of query/key/value, or the three of different shapes.
    """
    out: dict[str, torch.Tensor] = {}
    qkv_modules = {m: i for names in (table.qkv, table.qkv_aliases or ()) for i, m in enumerate(names)}
    layer_names = {**table.layer, **table.layer_aliases}
    encoder, heads = _longest_first(table.encoder), _longest_first(table.heads)
    prefixes = "|".join(re.escape(p) for p in (table.layer_prefix, *table.layer_prefix_aliases))
    layer = re.compile(rf"^(?:{prefixes})(\d+)\.(.+)\.(weight|bias)$")
    qkv: dict[tuple[str, str], list[torch.Tensor | None]] = {}
    for stored, t in state.items():
        name = stored.removeprefix(prefix) if prefix else stored
        if name.startswith(table.dropped):
            continue
        if (m := layer.match(name)) is not None:
            i, module, kind = m.groups()
            if module in qkv_modules:
                qkv.setdefault((i, kind), [None, None, None])[qkv_modules[module]] = t
                continue
            if module in layer_names:
                out[f"{ENCODER_LAYERS}{i}.{layer_names[module]}.{kind}"] = t
                continue
        ours = _rename(name, encoder) or _rename(name, heads)
        if ours is None:
            out[name] = t
            continue
        out[ours] = table.reshape[ours][0](t) if ours in table.reshape else t
    for (i, kind), parts in sorted(qkv.items()):
        where = f"{table.name} layer {i}"
        if any(p is None for p in parts):
            missing = [f"{m}.{kind}" for m, p in zip(table.qkv, parts, strict=True) if p is None]
            raise CheckpointError(f"{where} has no {' / '.join(missing)} tensor (under {table.layer_prefix}{i}.)")
        if len({tuple(p.shape) for p in parts}) > 1:
            listed = ", ".join(f"{n} {tuple(p.shape)}" for n, p in zip(("query", "key", "value"), parts, strict=True))
            raise CheckpointError(f"{where}: query, key and value {kind}s must have one shape; got {listed}")
        out[f"{ENCODER_LAYERS}{i}.attn.qkv.{kind}"] = fuse_qkv(*parts)
    return out


def export_state(state: dict[str, torch.Tensor], table: KeyTable, *, prefix: str = "") -> dict[str, torch.Tensor]:
    """gicho's state dict → ``table``'s layout, encoder tensors under ``prefix``.

    A gicho tensor the table has no name for is left out (a tied weight, a buffer).
    """
    encoder = _longest_first({ours: theirs for theirs, ours in table.encoder.items()})
    heads = _longest_first({ours: theirs for theirs, ours in table.heads.items()})
    layer = {ours: theirs for theirs, ours in table.layer.items()}
    pattern = re.compile(rf"^{re.escape(ENCODER_LAYERS)}(\d+)\.(.+)\.(weight|bias)$")
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        value = table.reshape[name][1](t) if name in table.reshape else t
        if (m := pattern.match(name)) is not None:
            i, module, kind = m.groups()
            stored = f"{prefix}{table.layer_prefix}{i}."
            if module == "attn.qkv":
                for part, piece in zip(table.qkv, split_qkv(t), strict=True):
                    out[f"{stored}{part}.{kind}"] = piece
            elif module in layer:
                out[f"{stored}{layer[module]}.{kind}"] = t
        elif (theirs := _rename(name, encoder)) is not None:
            out[prefix + theirs] = value
        elif (theirs := _rename(name, heads)) is not None:
            out[theirs] = value
    return out


def _pos_in(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[-2], t.shape[-1])  # (1, N+1, D) → (N+1, D)


def _pos_out(t: torch.Tensor) -> torch.Tensor:
    return t[None]  # (N+1, D) → (1, N+1, D)


_POS = {"backbone.stem.pos_embed.weight": (_pos_in, _pos_out)}

# Hugging Face BertModel and its heads (bert.* under a head; cls.*, classifier.* never prefixed)
BERT_HF = KeyTable(
    name="BERT",
    encoder={
        "embeddings.word_embeddings.": "backbone.stem.word_embeddings.",
        "embeddings.position_embeddings.": "backbone.stem.pos_embed.",
        "embeddings.token_type_embeddings.": "backbone.stem.token_type_embeddings.",
        "embeddings.LayerNorm.": "backbone.stem.norm.",
        # only a pre-LN BERT (norm_first) has it, and transformers refuses those (config_to_hf)
        "encoder.LayerNorm.": "backbone.encoder.norm.",
        "pooler.dense.": "pooler.dense.",
    },
    heads={
        "cls.predictions.transform.dense.": "lm_head.transform.dense.",
        "cls.predictions.transform.LayerNorm.": "lm_head.transform.LayerNorm.",
        "cls.predictions.bias": "lm_head.bias",
        "classifier.": "classifier.",
    },
    layer_prefix="encoder.layer.",
    layer={"attention.output.dense": "attn.proj", "attention.output.LayerNorm": "norm1",
           "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2", "output.LayerNorm": "norm2"},
    qkv=("attention.self.query", "attention.self.key", "attention.self.value"),
    # position ids (a buffer gicho recomputes), the tied MLM decoder, the next-sentence head
    dropped=("embeddings.position_ids", "cls.predictions.decoder.weight", "cls.seq_relationship."),
)

# Hugging Face ViTModel / ViTForImageClassification (vit.* under the classifier)
VIT_HF = KeyTable(
    name="ViT",
    encoder={
        "embeddings.cls_token": "backbone.stem.cls_token",
        "embeddings.position_embeddings": "backbone.stem.pos_embed.weight",
        "embeddings.patch_embeddings.projection.": "backbone.stem.patch_embed.proj.",
        "layernorm.": "backbone.encoder.norm.",
    },
    heads={"classifier.": "head."},
    layer_prefix="encoder.layer.",
    layer={"attention.output.dense": "attn.proj", "layernorm_before": "norm1", "layernorm_after": "norm2",
           "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2"},
    qkv=("attention.attention.query", "attention.attention.key", "attention.attention.value"),
    dropped=("pooler.", "embeddings.mask_token"),  # the tanh pooler, the masked-image-modeling token
    reshape=_POS,
    # transformers 5's in-memory names (layers.i.attention.{q,k,v,o}_proj)
    layer_aliases={"attention.o_proj": "attn.proj", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"},
    qkv_aliases=("attention.q_proj", "attention.k_proj", "attention.v_proj"),
    layer_prefix_aliases=("layers.",),
)

# Hugging Face DeiTModel / DeiTForImageClassificationWithTeacher (deit.* under the classifier):
# ViT's layout, a distillation token after [CLS] (positions (1, N+2, D)) and two heads
DEIT_HF = dataclasses.replace(
    VIT_HF,
    name="DeiT",
    encoder={**VIT_HF.encoder, "embeddings.distillation_token": "backbone.stem.dist_token"},
    heads={"cls_classifier.": "head.", "distillation_classifier.": "head_dist."},
)

# timm's vit_*_patch16_224 (blocks already use gicho's module names) and deit_*_distilled_*
# (dist_token, head_dist)
VIT_TIMM = KeyTable(
    name="timm ViT",
    encoder={
        "cls_token": "backbone.stem.cls_token",
        "dist_token": "backbone.stem.dist_token",
        "pos_embed": "backbone.stem.pos_embed.weight",
        "patch_embed.proj.": "backbone.stem.patch_embed.proj.",
        "norm.": "backbone.encoder.norm.",
    },
    heads={"head.": "head.", "head_dist.": "head_dist."},
    layer_prefix="blocks.",
    layer={m: m for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")},
    qkv=("", "", ""),  # timm stores the fused attn.qkv already
    reshape=_POS,
)
