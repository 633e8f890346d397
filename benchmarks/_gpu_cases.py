"""What ``benchmarks/gpu.py`` measures: the cases, the model pairs, their inputs, steps,
model FLOPs and the parity check. How it is timed and printed lives in ``gpu.py``.

Every case is a *pair*: the peer (Hugging Face ``transformers`` BERT, timm's ViT, or Hugging
Face's ViT where timm is missing) built with random weights, and gicho's model loaded from the
peer's own weights through gicho's checkpoint readers (``from_pretrained`` on the directory or
file the peer wrote), so both compute the same function of the same parameters.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IGNORE_INDEX = -100
MASK_FRACTION = 0.15  # BERT's masking rate: labels at 15% of the real tokens, -100 elsewhere
VARLEN_RANGE = (16, 512)  # varlen case: lengths uniform in this range (inclusive)
VARLEN_BATCHES = 4  # distinct variable-length batches, cycled (compile mode sees every shape in warm-up)
PARITY_ROWS = 16  # the parity check runs on the first rows of the case's first batch


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    ``target`` is the gicho/peer throughput ratio the issue asks for, against the peer's
    throughput in ``against``: ``"best"`` (the peer's best measured mode), ``"compile"`` (the
    peer compiled) or ``"same"`` (the peer in the row's own mode).
    """

    name: str
    family: str  # "bert-mlm" | "bert" | "vit"
    train: bool
    batch: int
    seq: int = 0  # tokens per sequence (BERT; for varlen the longest allowed)
    varlen: bool = False
    target: float = 1.0
    against: str = "same"
    smoke_batch: int = 0
    smoke_seq: int = 0
    description: str = ""

    @property
    def unit(self) -> str:
        return "images/s" if self.family == "vit" else "tokens/s"


CASES: dict[str, Case] = {c.name: c for c in (
    Case("mlm-128x128", "bert-mlm", True, 128, 128, target=1.5, against="best", smoke_batch=8,
         smoke_seq=32, description="BERT-base MLM training, 128 sequences x 128 tokens"),
    Case("mlm-32x512", "bert-mlm", True, 32, 512, target=1.4, against="best", smoke_batch=4,
         smoke_seq=64, description="BERT-base MLM training, 32 sequences x 512 tokens"),
    Case("mlm-varlen", "bert-mlm", True, 32, 512, varlen=True, target=2.0, against="best",
         smoke_batch=8, smoke_seq=64,
         description="BERT-base MLM training, 32 sequences of lengths U[16, 512] padded to the "
                     "batch's longest; real tokens/s"),
    Case("bert-infer-256x128", "bert", False, 256, 128, target=1.3, against="same", smoke_batch=16,
         smoke_seq=32, description="BERT-base inference (BertModel: hidden states + pooler), 256 x 128"),
    Case("vit-train-128", "vit", True, 128, target=1.15, against="compile", smoke_batch=8,
         description="ViT-B/16 training at 224 px, batch 128 (1000 classes)"),
    Case("vit-infer-256", "vit", False, 256, target=1.15, against="compile", smoke_batch=16,
         description="ViT-B/16 inference at 224 px, batch 256"),
)}


# ------------------------------------------------------------------------------ model pairs

@dataclass
class Pair:
    """The two models of a case and how to drive each of them.

    ``loss[side](model, batch)`` → scalar loss (training cases); ``outputs[side](model, batch)``
    → dict of named output tensors, compared between the sides in the parity check (same
    names, same shapes); ``peer_grads_to_gicho(grads)`` maps the peer's parameter-name → grad
    dict to gicho's names through gicho's own checkpoint importer (the one that loaded the
    weights), so every parameter's gradient is compared.
    """

    peer_name: str
    peer: nn.Module
    gicho: nn.Module
    loss: dict[str, Callable[[nn.Module, dict[str, Tensor]], Tensor]]
    outputs: dict[str, Callable[[nn.Module, dict[str, Tensor]], dict[str, Tensor]]]
    peer_grads_to_gicho: Callable[[dict[str, Tensor]], dict[str, Tensor]]
    sizes: dict[str, int] = field(default_factory=dict)  # for the FLOP count
    notes: list[str] = field(default_factory=list)


def bert_pair(case: Case, smoke: bool) -> Pair:
    """HF ``BertForMaskedLM`` / ``BertModel`` from gicho's ``base`` preset (``tiny`` for the
    smoke run) with random weights, saved by ``transformers`` and loaded by gicho."""
    import transformers

    from gicho.models.bert import BertConfig, BertForMaskedLM, BertModel

    config = (BertConfig.from_preset("tiny", vocab_size=2048) if smoke else BertConfig.from_preset("base"))
    mlm = case.family == "bert-mlm"
    arch = "BertForMaskedLM" if mlm else "BertModel"
    hf_config = transformers.BertConfig(**config.to_hf(arch))
    torch.manual_seed(0)
    peer_cls = transformers.BertForMaskedLM if mlm else transformers.BertModel
    ours_cls = BertForMaskedLM if mlm else BertModel
    peer = peer_cls(hf_config)
    with tempfile.TemporaryDirectory() as tmp:
        peer.save_pretrained(tmp)
        ours = ours_cls.from_pretrained(tmp)  # gicho's reader of transformers' directories

    def inputs(b: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")}

    if mlm:
        def peer_out(m, b):
            out = m(**inputs(b), labels=b["labels"])
            flat = b["labels"].reshape(-1) != IGNORE_INDEX
            return {"loss": out.loss, "masked_logits": out.logits.reshape(-1, out.logits.shape[-1])[flat]}

        def ours_out(m, b):
            out = m(**inputs(b), labels=b["labels"])
            # gicho scores a static budget of positions, masked ones first in row-major order
            # (the order of the boolean selection above); the rest of the budget is -100
            return {"loss": out["loss"], "masked_logits": out["masked_logits"][out["masked_labels"] != IGNORE_INDEX]}

        loss = {"peer": lambda m, b: m(**inputs(b), labels=b["labels"]).loss,
                "gicho": lambda m, b: m(**inputs(b), labels=b["labels"])["loss"]}
    else:
        def peer_out(m, b):
            out = m(**inputs(b))
            real = b["attention_mask"].bool()
            return {"last_hidden_state[real]": out.last_hidden_state[real], "pooler_output": out.pooler_output}

        def ours_out(m, b):
            out = m(**inputs(b))
            real = b["attention_mask"].bool()
            return {"last_hidden_state[real]": out["last_hidden_state"][real], "pooler_output": out["pooler_output"]}

        loss = {}  # inference only
    notes = [f"HF attention: {getattr(peer.config, '_attn_implementation', '?')}"]
    sizes = {"d": config.d_model, "layers": config.n_layers, "d_ff": config.d_ff, "vocab": config.vocab_size}
    return Pair(f"transformers.{peer_cls.__name__}", peer, ours, loss, {"peer": peer_out, "gicho": ours_out},
                lambda grads: ours_cls.import_state_dict(grads, config), sizes, notes)


def vit_peer_kind(requested: str) -> tuple[str, str]:
    """(``"timm"`` or ``"hf"``, why): timm when importable (the issue's peer), else HF's ViT."""
    if requested in ("timm", "auto"):
        try:
            import timm  # noqa: F401
            return "timm", ""
        except Exception as exc:  # timm imports torchvision, which may be missing or broken
            if requested == "timm":
                raise RuntimeError(f"timm not installed or not importable ({type(exc).__name__}: {exc})") from None
            return "hf", f"timm not installed ({type(exc).__name__}); peer is HF ViTForImageClassification"
    return "hf", "peer is HF ViTForImageClassification (requested)"


def vit_pair(case: Case, smoke: bool, peer_kind: str) -> Pair:
    """timm ``vit_base_patch16_224`` (``pretrained=False``) or HF ``ViTForImageClassification``
    with random weights; gicho's ``ViTForImageClassification`` reads the file the peer wrote."""
    from safetensors.torch import save_file

    from gicho.models.vit import ViTConfig, ViTForImageClassification

    # smoke: 32 px images in 8x8 patches, width 64, 2 layers, 10 classes (timm accepts the
    # same overrides as keyword arguments of create_model)
    small = {"image_size": 32, "patch_size": 8, "d_model": 64, "n_layers": 2, "n_heads": 4, "n_labels": 10}
    config = ViTConfig.from_preset("base", **(small if smoke else {}))
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        if peer_kind == "timm":
            import timm

            kwargs = ({"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 4,
                       "num_classes": 10} if smoke else {})
            peer = timm.create_model("vit_base_patch16_224", pretrained=False, **kwargs)
            peer_name = f"timm vit_base_patch16_224{' (smoke sizes)' if smoke else ''}"
            file = Path(tmp) / "timm.safetensors"
            save_file({k: v.contiguous() for k, v in peer.state_dict().items()}, str(file))
            ours = ViTForImageClassification.from_pretrained(file, config=config)  # timm key map

            def peer_logits(m, b):
                return m(b["pixel_values"])
        else:
            import transformers

            with torch.device("meta"):
                hf_fields = ViTForImageClassification(config).config_dict()
            hf_fields.pop("pool")
            hf_fields.pop("model_type")
            peer = transformers.ViTForImageClassification(transformers.ViTConfig(**hf_fields))
            peer_name = "transformers.ViTForImageClassification"
            peer.save_pretrained(tmp)
            ours = ViTForImageClassification.from_pretrained(tmp)

            def peer_logits(m, b):
                return m(pixel_values=b["pixel_values"]).logits
    # both losses are the same mean cross-entropy over the batch, computed in float32
    loss = {"peer": lambda m, b: F.cross_entropy(peer_logits(m, b).float(), b["labels"]),
            "gicho": lambda m, b: m(b["pixel_values"], labels=b["labels"])["loss"]}
    outputs = {"peer": lambda m, b: {"logits": peer_logits(m, b)},
               "gicho": lambda m, b: {"logits": m(b["pixel_values"])["logits"]}}
    if case.train:
        outputs = {side: _with_loss(outputs[side], loss[side]) for side in outputs}
    sizes = {"d": config.d_model, "layers": config.n_layers, "d_ff": config.ff_dim, "classes": config.n_labels,
             "patch": config.patch_size, "channels": config.in_channels, "tokens": config.n_patches + 1}
    return Pair(peer_name, peer, ours, loss, outputs,
                lambda grads: ViTForImageClassification.import_state_dict(grads, config), sizes)


def _with_loss(outputs, loss):
    def both(m, b):
        out = outputs(m, b)
        out["loss"] = F.cross_entropy(out["logits"].float(), b["labels"])
        return out
    return both


def build_pair(case: Case, smoke: bool, vit_peer: str) -> Pair:
    if case.family == "vit":
        kind, why = vit_peer_kind(vit_peer)
        pair = vit_pair(case, smoke, kind)
        if why:
            pair.notes.append(why)
        return pair
    return bert_pair(case, smoke)


# ------------------------------------------------------------------------------ inputs

def make_batches(case: Case, pair: Pair, smoke: bool, seed: int = 0,
                 n_varlen: int = VARLEN_BATCHES) -> list[dict[str, Tensor]]:
    """The case's input batches on the CPU, from a seeded generator (identical for both sides).

    BERT: ids uniform in [1, vocab) (0 is [PAD]), ``token_type_ids`` 0, an explicit
    ``attention_mask``; MLM labels hold the original id at 15% of the real tokens and -100
    elsewhere (padding included). Varlen: ``n_varlen`` batches of lengths uniform in
    ``VARLEN_RANGE`` (scaled down for the smoke run), each padded to its longest sequence.
    ViT: standard-normal pixels and labels uniform over the classes.
    """
    g = torch.Generator().manual_seed(seed)
    B = case.smoke_batch if smoke else case.batch
    if case.family == "vit":
        size = 32 if smoke else 224
        return [{"pixel_values": torch.randn(B, 3, size, size, generator=g),
                 "labels": torch.randint(0, pair.sizes["classes"], (B,), generator=g)}]
    T = case.smoke_seq if smoke else case.seq
    vocab = pair.sizes["vocab"]
    batches = []
    for _ in range(n_varlen if case.varlen else 1):
        if case.varlen:
            low, high = (8, T) if smoke else VARLEN_RANGE
            lengths = torch.randint(low, high + 1, (B,), generator=g)
        else:
            lengths = torch.full((B,), T)
        width = int(lengths.max())
        mask = torch.arange(width)[None, :] < lengths[:, None]  # (B, width)
        ids = torch.randint(1, vocab, (B, width), generator=g).masked_fill(~mask, 0)
        batch = {"input_ids": ids, "attention_mask": mask.long(), "token_type_ids": torch.zeros_like(ids)}
        if case.family == "bert-mlm":
            chosen = (torch.rand(B, width, generator=g) < MASK_FRACTION) & mask
            batch["labels"] = ids.masked_fill(~chosen, IGNORE_INDEX)
        batches.append(batch)
    return batches


def units(case: Case, batch: dict[str, Tensor]) -> int:
    """What the throughput counts in one batch: real (unpadded) tokens, or images."""
    if case.family == "vit":
        return int(batch["pixel_values"].shape[0])
    return int(batch["attention_mask"].sum())


# ------------------------------------------------------------------------------ model FLOPs

FLOP_FORMULA = (
    "model FLOPs per forward, matmuls only (embedding look-ups, norms, softmax, GELU not counted), "
    "over the REAL tokens of each sequence (padding is not useful work): per layer and sequence of "
    "t tokens 2*t*(4*d^2 + 2*d*d_ff) + 4*t^2*d (QK^T and AV); BERT MLM head 2*(d^2 + d*V) per "
    "masked token only (what the loss needs); BERT pooler 2*d^2 per sequence; ViT patch embedding "
    "2*N*(3*P^2)*d and head 2*d*C per image (t = N + 1 with [CLS]). Training = 3 x forward "
    "(backward = 2 x forward). The same count is used for gicho and the peer, so MFU ratios equal "
    "throughput ratios; MFU = FLOPs / time / the GPU's dense bf16 peak."
)


def model_flops(case: Case, pair: Pair, batch: dict[str, Tensor]) -> float:
    """Model FLOPs of one step on ``batch`` (see :data:`FLOP_FORMULA`)."""
    s = pair.sizes
    d, L, dff = s["d"], s["layers"], s["d_ff"]

    def encoder(t: float, n: int = 1) -> float:  # n sequences of t tokens
        return L * n * (2 * t * (4 * d * d + 2 * d * dff) + 4 * t * t * d)

    if case.family == "vit":
        B = batch["pixel_values"].shape[0]
        t = s["tokens"]
        fwd = encoder(t, B) + B * (2 * (t - 1) * s["channels"] * s["patch"] ** 2 * d + 2 * d * s["classes"])
    else:
        lengths = batch["attention_mask"].sum(dim=1).double()
        fwd = float(L * (2 * lengths.sum() * (4 * d * d + 2 * d * dff) + 4 * (lengths**2).sum() * d))
        if case.family == "bert-mlm":
            fwd += float((batch["labels"] != IGNORE_INDEX).sum()) * 2 * (d * d + d * s["vocab"])
        else:
            fwd += lengths.numel() * 2 * d * d
    return 3 * fwd if case.train else fwd


# dense bf16 tensor-core peaks (no sparsity), FLOP/s, from NVIDIA's data sheets; matched in order
DENSE_BF16_PEAK = (
    ("H200", 989.4e12),          # H200 SXM (same tensor cores as H100 SXM)
    ("H100 PCIe", 756.0e12),
    ("H100 NVL", 835.0e12),
    ("H100", 989.4e12),          # H100 SXM / HBM3
    ("A100", 312.0e12),
)


def peak_flops(device_name: str) -> float | None:
    for key, value in DENSE_BF16_PEAK:
        if key.lower() in device_name.lower():
            return value
    return None


# ------------------------------------------------------------------------------ parity

TOL_FP32 = 1e-3  # float32: different kernels, the same function; relative Frobenius error
TOL_BF16 = 2e-2  # bf16: gicho's error against the float32 result, at least this loose ...
BF16_SLACK = 1.5  # ... or up to 1.5x the peer's own bf16 error, whichever is larger


def rel_err(a: Tensor, b: Tensor) -> float:
    """``||a - b|| / ||b||`` in float64 (0 when both are exactly zero; inf on a shape mismatch)."""
    if a.shape != b.shape:
        return math.inf
    a, b = a.detach().double(), b.detach().double()
    diff, norm = float((a - b).norm()), float(b.norm())
    if norm == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / norm


def run_outputs(pair: Pair, side: str, batch: dict[str, Tensor], train: bool,
                autocast: torch.dtype | None) -> dict[str, Tensor]:
    """One side's outputs on ``batch`` and, for training cases, every parameter's gradient
    (named ``grad:<gicho name>``); in eval mode (dropout off), so both sides are deterministic."""
    model = pair.peer if side == "peer" else pair.gicho
    model.eval()
    model.zero_grad(set_to_none=True)
    device = next(model.parameters()).device
    precision = (torch.autocast(device.type, dtype=autocast) if autocast is not None
                 else contextlib.nullcontext())
    with torch.set_grad_enabled(train), precision:
        out = pair.outputs[side](model, batch)
    if train:
        out["loss"].backward()
        grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
        if side == "peer":
            grads = pair.peer_grads_to_gicho(grads)
        out.update({f"grad:{name}": g for name, g in grads.items()})
        model.zero_grad(set_to_none=True)
    return {k: v.detach().float().cpu() for k, v in out.items()}


def compare(peer: dict[str, Tensor], ours: dict[str, Tensor]) -> tuple[dict[str, float], list[str]]:
    """Relative error of every tensor of ``ours`` against ``peer``; names present on one side only."""
    missing = sorted(set(peer) ^ set(ours))
    return {k: rel_err(ours[k], peer[k]) for k in sorted(set(peer) & set(ours))}, missing


def parity(pair: Pair, case: Case, batch: dict[str, Tensor], bf16: bool,
           to_bf16: Callable[[], None] | None = None) -> dict[str, Any]:
    """Check that gicho and the peer compute the same outputs and gradients.

    float32 pass: every output and gradient agrees within ``TOL_FP32`` (relative Frobenius
    error; TF32 is switched off for it). bf16 pass (``bf16``): both sides run under the timed
    policy (autocast for training; for inference ``to_bf16`` casts both models' weights), and
    gicho's error against the float32 peer must be at most ``max(TOL_BF16, BF16_SLACK x the
    peer's own bf16 error)``: gicho in bf16 is as faithful as the peer in bf16.
    """
    train = case.train
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        ref = run_outputs(pair, "peer", batch, train, None)
        ours32 = run_outputs(pair, "gicho", batch, train, None)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
    errs32, missing = compare(ref, ours32)
    worst32 = max(errs32, key=errs32.get) if errs32 else ""
    ok = not missing and bool(errs32) and all(e <= TOL_FP32 for e in errs32.values())
    result: dict[str, Any] = {
        "compared": len(errs32), "missing": missing[:10], "fp32_tol": TOL_FP32,
        "fp32_worst": {"name": worst32, "rel_err": errs32.get(worst32, math.inf)},
        "loss_fp32": {"peer": float(ref["loss"]), "gicho": float(ours32["loss"])} if "loss" in ref else None,
    }
    if bf16:
        autocast = torch.bfloat16 if train else None
        if not train and to_bf16 is not None:
            to_bf16()
        peer16 = run_outputs(pair, "peer", batch, train, autocast)
        ours16 = run_outputs(pair, "gicho", batch, train, autocast)
        e_peer, _ = compare(ref, peer16)
        e_ours, missing16 = compare(ref, ours16)
        allowed = {k: max(TOL_BF16, BF16_SLACK * e_peer.get(k, 0.0)) for k in e_ours}
        bad = sorted((k for k in e_ours if e_ours[k] > allowed[k]), key=lambda k: -e_ours[k] / allowed[k])
        worst = bad[0] if bad else max(e_ours, key=lambda k: e_ours[k] / allowed[k], default="")
        direct, _ = compare(peer16, ours16)
        result["bf16"] = {
            "rule": f"gicho's error vs fp32 <= max({TOL_BF16}, {BF16_SLACK} x peer's)",
            "worst": {"name": worst, "gicho_rel_err": e_ours.get(worst, math.inf),
                      "peer_rel_err": e_peer.get(worst, math.inf), "allowed": allowed.get(worst, 0.0)},
            "failing": bad[:10], "max_direct_rel_err": max(direct.values(), default=math.inf),
        }
        ok = ok and not missing16 and not bad
    result["ok"] = ok
    result["status"] = "PASS" if ok else "FAIL"
    return result
