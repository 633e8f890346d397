"""gicho vs Hugging Face BERT and timm ViT on a GPU: throughput, peak memory, MFU, parity.

Run on the GPU machine (H100 / H200 with torch, transformers and timm; nothing is downloaded)::

    python benchmarks/gpu.py --json gpu.json
    python benchmarks/gpu.py --cases mlm-128x128,vit-infer-256 --modes eager --max-seconds 120

and the CPU smoke run (tiny models, seconds; what ``tests/test_gpu_benchmark.py`` runs)::

    python benchmarks/gpu.py --smoke --device cpu --dtype fp32 --modes eager --json smoke.json

Time on the GPU (estimates, not yet measured): building a pair and its parity check take
~10 s a case and the eager timing a few seconds, so ``--modes eager`` over every case fits in ~2 minutes; ``torch.compile``
compiles each side's forward and backward once per input shape (the varlen case: a static
graph, then one dynamic one), ~1 minute a side for BERT-base. With one short shot, run eager for
all cases first, then ``--modes compile`` on the cases whose target is against a compiled peer
(``--varlen-batches 1`` halves the varlen case's compilations). ``--max-seconds`` bounds each
case's timing (a compilation in progress is not interrupted).

Cases (``--cases``, comma-separated; default all), each against its target from issue 14:

====================  ==========================================================  ================
mlm-128x128           BERT-base MLM training, 128 x 128 tokens                    >= 1.5x HF best
mlm-32x512            BERT-base MLM training, 32 x 512 tokens                     >= 1.4x HF best
mlm-varlen            BERT-base MLM training, 32 sequences of U[16, 512] tokens   >= 2x HF best
                      padded to the batch's longest (4 batches cycled); real tokens/s
bert-infer-256x128    BERT-base inference (hidden states + pooler), 256 x 128     >= 1.3x HF
vit-train-128         ViT-B/16 training, batch 128, 224 px                        >= 1.15x timm compiled
vit-infer-256         ViT-B/16 inference, batch 256                               >= 1.15x timm compiled
====================  ==========================================================  ================

Per case: the peer is built with random weights (HF ``BertForMaskedLM``/``BertModel`` from
gicho's ``base`` preset; timm ``vit_base_patch16_224``, ``pretrained=False``, or HF's ViT when
timm is missing, labelled so), gicho loads the peer's own saved weights with its
``from_pretrained``; a parity check (outputs and every parameter's gradient, float32 and bf16)
prints PASS or FAIL; then each side is timed alone on the GPU (the other moved to the CPU) in
each mode (eager, ``torch.compile`` with the same options for both), after warm-up, with CUDA
events. Precision (``--dtype bf16``): training keeps float32 master weights under
``torch.autocast(bfloat16)`` with AdamW (``fused=True`` on CUDA, the same hyper-parameters for
both); inference casts both models' weights to bfloat16. One failing case or mode prints its
error and the rest still run. Results: a table and ``--json``.

Parity (before timing, eager, eval mode so that dropout is off; the first 16 rows of the first
batch): the outputs (MLM loss and the logits at the masked positions; BERT hidden states at the
real tokens and the pooler; ViT logits and loss) and, for training cases, every parameter's
gradient, the peer's mapped to gicho's names by gicho's own checkpoint importer. float32 (TF32
off): relative Frobenius error <= 1e-3 for every tensor. bf16 (the timed policy): gicho's error
against the float32 result <= max(2e-2, 1.5 x the peer's own bf16 error), i.e. gicho in bf16 is
as faithful as the peer in bf16. A failed or crashed check prints FAIL; the case is still timed.

Throughput counts real tokens (padding excluded) or images per second of the timed steps. MFU
uses one model-FLOP count for both sides (``_gpu_cases.FLOP_FORMULA``, printed in the header)
against the GPU's dense bf16 peak (H100 SXM / H200: 989 TFLOP/s), so it is n/a on the CPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
import torch._dynamo  # compile-mode counters (graphs, graph breaks)
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: _gpu_cases beside it
import _gpu_cases as cases

MODES = ("eager", "compile")
LR, BETAS, WEIGHT_DECAY = 1e-4, (0.9, 0.999), 0.01  # AdamW, both sides


def log(message: str) -> None:
    print(message, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------ one side

def compiled_graphs() -> int:
    """Graphs dynamo has compiled since its counters were last cleared."""
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def time_side(case: cases.Case, pair: cases.Pair, side: str, batches: list[dict[str, torch.Tensor]],
              mode: str, args: argparse.Namespace, device: torch.device, deadline: float) -> dict[str, Any]:
    """Warm up and time one side in one mode, alone on the device. Returns throughput, peak
    memory, iterations timed and the mean step time."""
    model: nn.Module = pair.peer if side == "peer" else pair.gicho
    model.to(device).train(case.train)
    run = torch.compile(model, mode=args.compile_mode) if mode == "compile" else model
    bf16 = args.dtype == "bf16"
    if case.train:
        optimizer = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY,
                                      fused=device.type == "cuda")
        loss_fn = pair.loss[side]

        def step(batch):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(run, batch)
            loss.backward()
            optimizer.step()
    else:
        forward = pair.outputs[side]

        def step(batch):
            with torch.inference_mode():
                forward(run, batch)
    try:
        if mode == "compile":
            torch._dynamo.utils.counters.clear()
        free_memory(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        # compile mode: every distinct batch shape is seen (and compiled) during warm-up, twice
        warmup = max(args.warmup, 2 * len(batches) + 1) if mode == "compile" else args.warmup
        start = time.perf_counter()
        for i in range(warmup):
            step(batches[i % len(batches)])
        sync(device)
        warm_s = time.perf_counter() - start
        graphs_warm = compiled_graphs() if mode == "compile" else None
        # timed: a whole number of passes over the batches (varlen: each batch equally often)
        n_iters = max(len(batches), args.iters - args.iters % len(batches))
        done, elapsed, counted = 0, 0.0, 0
        while done < n_iters:
            chunk = batches if len(batches) > 1 else batches * min(n_iters - done, 5)
            if device.type == "cuda":
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record()
                for batch in chunk:
                    step(batch)
                end.record()
                end.synchronize()
                elapsed += begin.elapsed_time(end) / 1000
            else:
                t0 = time.perf_counter()
                for batch in chunk:
                    step(batch)
                elapsed += time.perf_counter() - t0
            done += len(chunk)
            counted += sum(cases.units(case, b) for b in chunk)
            if time.perf_counter() > deadline and done >= len(batches):
                break  # the case's --max-seconds budget: keep what was timed
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        flops = sum(cases.model_flops(case, pair, batches[i % len(batches)]) for i in range(done))
        out = {"throughput": counted / elapsed, "step_ms": 1000 * elapsed / done, "iters": done,
               "warmup": warmup, "warmup_s": warm_s, "peak_mb": peak, "flops_per_s": flops / elapsed}
        if mode == "compile":
            # graphs compiled (recompilations included) and graph breaks: a side that recompiles
            # during the timed steps has compile time inside its figure, which must be visible
            out.update({"graphs": graphs_warm, "graph_breaks": sum(torch._dynamo.utils.counters["graph_break"].values()),
                        "recompiled_while_timed": compiled_graphs() > graphs_warm})
        return out
    finally:
        # leave the device to the other side: drop the optimizer state, the compiled graph and grads
        if case.train:
            del optimizer
        model.zero_grad(set_to_none=True)
        model.to("cpu")
        free_memory(device)


# ------------------------------------------------------------------------------ one case

def row_for(case: cases.Case, mode: str, gicho: dict[str, Any] | str, peer: dict[str, Any] | str,
            peak: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {"case": case.name, "mode": mode, "unit": case.unit,
                           "target": case.target, "against": case.against}
    for side, r in (("gicho", gicho), ("peer", peer)):
        if isinstance(r, str):
            row[f"{side}_error"] = r
        else:
            row.update({f"{side}_{k}": v for k, v in r.items()})
            row[f"{side}_mfu"] = r["flops_per_s"] / peak if peak else None
    if "gicho_throughput" in row and "peer_throughput" in row:
        row["ratio"] = row["gicho_throughput"] / row["peer_throughput"]
        if row["gicho_peak_mb"] is not None and row["peer_peak_mb"] is not None:
            row["memory_ok"] = row["gicho_peak_mb"] <= row["peer_peak_mb"]
    return row


def judge(case: cases.Case, rows: list[dict[str, Any]], vit_fallback: bool, unjudged: str = "") -> None:
    """Set each row's ``met`` against the case's target: the peer's best measured mode, the
    peer compiled, or the peer in the same mode (see ``Case``). ``unjudged``: why no row is
    judged (the targets are for the full sizes on a GPU, not for a smoke run)."""
    peer = {r["mode"]: r["peer_throughput"] for r in rows if "peer_throughput" in r}
    for r in rows:
        if "gicho_throughput" not in r:
            r["met"] = None
            continue
        if unjudged:
            r["met"], r["met_note"] = None, unjudged
            continue
        if vit_fallback:
            r["met"], r["met_note"] = None, "target is against timm; timm not installed"
            continue
        if case.against == "best":
            ref = max(peer.values(), default=None)
            r["met_note"] = "vs peer's best measured mode" + ("" if len(peer) == len(MODES) else
                                                               f" (only {', '.join(peer)} measured)")
        elif case.against == "compile":
            ref = peer.get("compile")
            r["met_note"] = "vs peer compiled" if ref else "peer compiled not measured"
        else:
            ref = peer.get(r["mode"])
            r["met_note"] = "vs peer, same mode"
        r["reference_throughput"] = ref
        r["met"] = None if ref is None else r["gicho_throughput"] >= case.target * ref


def run_case(case: cases.Case, args: argparse.Namespace, device: torch.device,
             peak: float | None) -> dict[str, Any]:
    started = time.perf_counter()
    deadline = started + args.max_seconds
    result: dict[str, Any] = {"case": case.name, "description": case.description, "rows": []}
    log(f"[{case.name}] building the pair ...")
    pair = cases.build_pair(case, args.smoke, args.vit_peer)
    result["peer"] = pair.peer_name
    result["notes"] = pair.notes
    n_peer = sum(p.numel() for p in pair.peer.parameters())
    n_gicho = sum(p.numel() for p in pair.gicho.parameters())
    result["params"] = {"peer": n_peer, "gicho": n_gicho}
    log(f"[{case.name}] peer {pair.peer_name}: {n_peer:,} parameters; gicho: {n_gicho:,}"
        + "".join(f"; {n}" for n in pair.notes))
    batches = [{k: v.to(device) for k, v in b.items()} for b in cases.make_batches(case, pair, args.smoke,
                                                                                     n_varlen=args.varlen_batches)]
    result["batch_shapes"] = [list(next(iter(b.values())).shape) for b in batches]
    result["units_per_pass"] = sum(cases.units(case, b) for b in batches)
    bf16 = args.dtype == "bf16"

    def to_bf16() -> None:  # inference policy: both models' weights in bfloat16
        pair.peer.to(torch.bfloat16)
        pair.gicho.to(torch.bfloat16)
        for b in batches:
            if "pixel_values" in b:
                b["pixel_values"] = b["pixel_values"].to(torch.bfloat16)

    # parity, both models on the device, on the first rows of the first batch
    try:
        pair.peer.to(device)
        pair.gicho.to(device)
        small = {k: v[:cases.PARITY_ROWS] for k, v in batches[0].items()}
        if bf16 and not case.train:
            # pixels are cast with the weights; the fp32 pass reads the fp32 copy made here
            small = {k: v.clone() for k, v in small.items()}

            def cast_all() -> None:
                to_bf16()
                if "pixel_values" in small:
                    small["pixel_values"] = small["pixel_values"].to(torch.bfloat16)
        else:
            cast_all = None
        result["parity"] = cases.parity(pair, case, small, bf16, cast_all)
    except Exception as exc:  # a crash in the check is a FAIL, not a skipped check
        traceback.print_exc()
        result["parity"] = {"ok": False, "status": "FAIL", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        pair.peer.to("cpu")
        pair.gicho.to("cpu")
        free_memory(device)
    if bf16 and not case.train and next(pair.gicho.parameters()).dtype != torch.bfloat16:
        to_bf16()  # the check stopped before casting: time the policy's models all the same
    p = result["parity"]
    worst = p.get("bf16", {}).get("worst", {}) or p.get("fp32_worst", {})
    log(f"[{case.name}] parity {p['status']}: {p.get('compared', 0)} tensors"
        + (f"; worst {worst.get('name')} " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items() if k != "name")
           if worst else "") + (f"; error {p['error']}" if "error" in p else "")
        + (f"; missing {p['missing']}" if p.get("missing") else ""))

    for mode in args.modes:
        measured: dict[str, Any] = {}
        for side in ("gicho", "peer"):
            if time.perf_counter() > deadline:
                measured[side] = f"skipped: the case's --max-seconds {args.max_seconds:g} s was spent"
                log(f"[{case.name}] {mode} {side}: {measured[side]}")
                continue
            try:
                r = time_side(case, pair, side, batches, mode, args, device, deadline)
                measured[side] = r
                log(f"[{case.name}] {mode} {side}: {r['throughput']:,.0f} {case.unit}, "
                    f"{r['step_ms']:.2f} ms/step over {r['iters']} steps (warm-up {r['warmup']} steps, "
                    f"{r['warmup_s']:.1f} s)" + (f", peak {r['peak_mb']:,.0f} MB" if r["peak_mb"] else "")
                    + (f"; {r['graphs']} graph(s), {r['graph_breaks']} graph break(s)"
                       + (", RECOMPILED while timed" if r["recompiled_while_timed"] else "")
                       if "graphs" in r else ""))
            except Exception as exc:
                traceback.print_exc()
                measured[side] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                log(f"[{case.name}] {mode} {side}: ERROR {measured[side]}")
                free_memory(device)
            if mode == "compile":
                torch._dynamo.reset()  # drop the compiled graphs before the next model
        row = row_for(case, mode, measured["gicho"], measured["peer"], peak)
        row["parity"] = result["parity"]["status"]
        result["rows"].append(row)
    unjudged = ("smoke run: the targets are for the full sizes on a GPU" if args.smoke else
                "" if device.type == "cuda" else "CPU run: the targets are for a GPU")
    judge(case, result["rows"], any("timm not installed" in n for n in pair.notes), unjudged)
    result["seconds"] = time.perf_counter() - started
    return result


# ------------------------------------------------------------------------------ output

def header(args: argparse.Namespace, device: torch.device, peak: float | None) -> dict[str, Any]:
    import transformers

    try:
        import timm
        timm_version = timm.__version__
    except Exception as exc:
        timm_version = f"not installed ({type(exc).__name__})"
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else f"none (CPU: {platform.processor() or platform.machine()})"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "device": str(device), "gpu": gpu, "python": platform.python_version(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "transformers": transformers.__version__, "timm": timm_version,
        "dtype": args.dtype, "modes": list(args.modes), "compile_mode": args.compile_mode,
        "smoke": args.smoke, "warmup": args.warmup, "iters": args.iters, "max_seconds": args.max_seconds,
        "precision_policy": (
            "training: float32 master weights, forward+loss under torch.autocast(bfloat16), backward, "
            "AdamW step; inference: both models' weights cast to bfloat16, torch.inference_mode"
            if args.dtype == "bf16" else "float32 everywhere (TF32 as torch's defaults)"),
        "optimizer": f"torch.optim.AdamW(lr={LR}, betas={BETAS}, weight_decay={WEIGHT_DECAY}, "
                     f"fused={device.type == 'cuda'}), the same for both sides",
        "timing": "per side alone on the device (the other model on the CPU); warm-up steps excluded "
                  "(compile mode: at least 2 passes over the batches); CUDA events around the timed steps; "
                  "throughput = real tokens or images / timed seconds",
        "memory": "torch.cuda.max_memory_allocated after reset_peak_memory_stats, per side: weights, grads, "
                  "optimizer state, activations and the input batches",
        "parity": "eval mode (dropout off), eager, first rows of the first batch; outputs and (training) "
                  f"every parameter's gradient; fp32 relative Frobenius error <= {cases.TOL_FP32}; bf16: "
                  f"gicho's error vs the fp32 result <= max({cases.TOL_BF16}, {cases.BF16_SLACK} x the peer's)",
        "peak_dense_bf16_flops": peak, "flop_formula": cases.FLOP_FORMULA,
    }


def fmt(value: float | None, spec: str, none: str = "n/a") -> str:
    return none if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def table(rows: list[dict[str, Any]]) -> str:
    cols = ("case", "mode", "gicho thr", "peer thr", "ratio", "target", "met?", "gicho MB", "peer MB",
            "mem ok", "MFU gicho", "MFU peer", "parity")
    lines = []
    for r in rows:
        met = {True: "yes", False: "NO", None: "n/a"}[r.get("met")]
        lines.append((
            r["case"], r["mode"],
            fmt(r.get("gicho_throughput"), ",.0f", "ERROR"), fmt(r.get("peer_throughput"), ",.0f", "ERROR"),
            fmt(r.get("ratio"), ".2f"), f">={r['target']:g}x {r['against']}", met,
            fmt(r.get("gicho_peak_mb"), ",.0f"), fmt(r.get("peer_peak_mb"), ",.0f"),
            {True: "yes", False: "NO", None: "n/a"}[r.get("memory_ok")],
            fmt(r.get("gicho_mfu"), ".1%"), fmt(r.get("peer_mfu"), ".1%"), r.get("parity", "?"),
        ))
    widths = [max(len(c), *(len(line[i]) for line in lines)) if lines else len(c) for i, c in enumerate(cols)]
    out = ["  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(cols, widths, strict=True)))]
    for line in lines:
        out.append("  ".join(c.rjust(w) if i > 1 else c.ljust(w)
                             for i, (c, w) in enumerate(zip(line, widths, strict=True))))
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Cases: " + "; ".join(f"{c.name}: {c.description}"
                                                                   for c in cases.CASES.values()))
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke runs)")
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--modes", default="eager,compile", help="comma-separated: eager, compile")
    parser.add_argument("--cases", default=",".join(cases.CASES), help="comma-separated case names")
    parser.add_argument("--smoke", action="store_true", help="tiny models and batches (CPU, seconds)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 5; smoke 1)")
    parser.add_argument("--iters", type=int, default=None, help="timed steps (default 20; smoke 2)")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="per-case budget: timing stops and later modes are skipped once spent")
    parser.add_argument("--compile-mode", default="default", help="torch.compile's mode, both sides")
    parser.add_argument("--vit-peer", choices=("auto", "timm", "hf"), default="auto",
                        help="auto: timm when importable, else HF's ViT (labelled)")
    parser.add_argument("--varlen-batches", type=int, default=cases.VARLEN_BATCHES,
                        help="distinct batches of the varlen case, cycled (each is another shape, so "
                             "another compilation in compile mode; 1 saves compile time)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's; 1 for --smoke on the CPU, where "
                             "oversubscribed cores make the tiny steps erratic)")
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    args = parser.parse_args(argv)
    args.modes = [m for m in args.modes.split(",") if m]
    args.cases = [c for c in args.cases.split(",") if c]
    for m in args.modes:
        if m not in MODES:
            parser.error(f"unknown mode {m!r}; choose from {', '.join(MODES)}")
    for c in args.cases:
        if c not in cases.CASES:
            parser.error(f"unknown case {c!r}; choose from {', '.join(cases.CASES)}")
    args.warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 5)
    args.iters = args.iters if args.iters is not None else (2 if args.smoke else 20)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(args.device)
    threads = args.threads if args.threads is not None else (1 if args.smoke and device.type == "cpu" else None)
    if threads is not None:
        torch.set_num_threads(threads)
    try:  # transformers' "Writing model shards" bars would interleave with the progress lines
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except Exception:
        pass
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no GPU; use --device cpu (with --smoke)")
    peak = cases.peak_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" and args.dtype == "bf16" else None
    head = header(args, device, peak)
    for key in ("date", "command", "gpu", "torch", "cuda", "transformers", "timm", "dtype", "precision_policy",
                "optimizer", "timing", "parity", "flop_formula"):
        log(f"# {key}: {head[key]}")
    log(f"# MFU against dense bf16 peak: {fmt(peak and peak / 1e12, '.1f')} TFLOP/s"
        + ("" if peak else " (n/a: no known GPU, or not bf16)"))
    results = []
    for name in args.cases:
        case = cases.CASES[name]
        try:
            results.append(run_case(case, args, device, peak))
        except Exception as exc:  # a case that cannot even be built: report, go on
            traceback.print_exc()
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            log(f"[{name}] ERROR {error}")
            results.append({"case": name, "description": case.description, "error": error,
                            "parity": {"ok": False, "status": "FAIL", "error": error},
                            "rows": [{"case": name, "mode": m, "unit": case.unit, "target": case.target,
                                      "against": case.against, "gicho_error": error, "peer_error": error,
                                      "met": None, "parity": "FAIL"} for m in args.modes]})
        free_memory(device)
    rows = [r for res in results for r in res["rows"]]
    log("")
    log(table(rows))
    for r in rows:
        for side in ("gicho", "peer"):
            if f"{side}_error" in r:
                log(f"  {r['case']} {r['mode']} {side}: {r[f'{side}_error']}")
    output = {"header": head, "cases": results, "rows": rows}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(output, indent=1, default=str) + "\n", encoding="utf-8")
        log(f"# wrote {args.json}")
    return output


if __name__ == "__main__":
    main()
