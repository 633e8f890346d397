"""gicho vs Hugging Face ``transformers`` on the CPU: same weights, same inputs, same process.

Run: ``python benchmarks/cpu_transformers.py [--case all|mlm-train|varlen-train|varlen-infer|
bert-infer|bert-infer-varlen|vit-infer] [--rounds 7] [--threads 2] [--smoke]
[--same-process]``

Every case builds a ``transformers`` model with random weights, writes it with
``save_pretrained`` and loads that directory into gicho (``from_pretrained``, gicho's own import
hooks), so both sides hold the same float32 weights. Each round runs one step of each side on
the same batch (the order alternates between rounds), and the printed figure is the median over
rounds of the paired ratio ``time(transformers) / time(gicho)`` (> 1: gicho faster), i.e. of
gicho's throughput over theirs. Both run eager, with the same thread count.

Each case runs in a fresh process (``--same-process`` runs them all in this one). Why: much of
a CPU forward pass can be page faults on freshly mapped memory (glibc maps allocations above
its mmap threshold, at most 32 MiB, fresh every time), and how many a side pays depends on
the heap that earlier work left behind. After the training cases, the heap is large and
fragmented and both sides reuse its free chunks without a fault; in a process that only embeds
sentences, Hugging Face's 37-50 MiB activations are mapped fresh in every layer. A fresh process
per case is what a user's job sees; the minor page faults per step of each side are printed.

Cases (sizes are the defaults; ``--smoke`` shrinks everything to a few milliseconds):

* ``mlm-train``: one BERT MLM training step (forward, backward, AdamW step; dropout 0.1) of the
  ``mini`` preset (4 layers, 256 wide, vocabulary 30522), batch 32 x 128, no padding, 15% of
  the tokens masked (80/10/10 as BERT). ``transformers`` uses ``torch.optim.AdamW(fused=True)``,
  the default optimizer of its ``Trainer`` on torch >= 2.8; gicho uses the Trainer's optimizer
  (``gicho.train.optim.build_optimizer``).
* ``varlen-train``: the same step on 16 sequences whose lengths are drawn uniformly from
  [16, 512] (a fresh draw per round, the same for both sides), padded to the longest for both
  (the collator's output); tokens/s counts real tokens only.
* ``varlen-infer``: the ``mini`` encoder's forward (``BertModel``, no grad) on such batches.
* ``bert-infer``: sentence embeddings (mean of the real tokens' last hidden states,
  L2-normalised, the sentence-transformers recipe) with the all-MiniLM-L6-v2 shape (6 layers,
  384 wide, 12 heads), batch 64 x 128 with no padding.
* ``bert-infer-varlen``: the same on 64 sentences with lengths uniform in [8, 128], padded to
  the longest (as a tokenizer's ``padding=True`` gives).
* ``vit-infer``: ViT-S/16 (12 layers, 384 wide, 6 heads) classifying 16 images of 224 x 224.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_name

VOCAB = 30522
CLS, SEP, MASK = 101, 102, 103


@dataclass
class Case:
    """Two step functions over the same work and what one step processes."""

    name: str
    ours: Callable[[], object]
    theirs: Callable[[], object]
    tokens: Callable[[], int]  # real tokens (or images) of the current batch
    unit: str
    shape: str
    next_batch: Callable[[], None] = lambda: None


def _bert_config(transformers, layers: int, width: int, heads: int, vocab: int, dropout: float):
    return transformers.BertConfig(vocab_size=vocab, hidden_size=width, num_hidden_layers=layers,
                                   num_attention_heads=heads, intermediate_size=4 * width,
                                   hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)


def _pair(transformers, hf_cls, gicho_cls, config, tmp: Path):
    torch.manual_seed(0)
    theirs = hf_cls(config)
    theirs.save_pretrained(tmp / hf_cls.__name__)
    ours = gicho_cls.from_pretrained(tmp / hf_cls.__name__)
    return theirs, ours


def _lengths(g: torch.Generator, batch: int, low: int, high: int) -> list[int]:
    return torch.randint(low, high + 1, (batch,), generator=g).tolist()


def _token_batch(g: torch.Generator, lengths: list[int], vocab: int, mlm: bool) -> dict[str, torch.Tensor]:
    """[CLS] w... [SEP] per row, padded with 0 to the longest; with ``mlm``, 15% masked."""
    B, T = len(lengths), max(lengths)
    ids = torch.randint(1000 if vocab > 1000 else 5, vocab, (B, T), generator=g)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    ids[:, 0] = CLS if vocab > 1000 else 1
    ids[torch.arange(B), torch.tensor(lengths) - 1] = SEP if vocab > 1000 else 2
    ids = ids.masked_fill(~mask, 0)
    batch = {"input_ids": ids, "attention_mask": mask.long()}
    if mlm:
        special = (ids == ids[:, :1]) | (ids == ids[torch.arange(B), torch.tensor(lengths) - 1][:, None])
        selected = mask & ~special & (torch.rand(B, T, generator=g) < 0.15)
        labels = torch.where(selected, ids, torch.full_like(ids, -100))
        action = torch.rand(B, T, generator=g)
        masked = torch.where(selected & (action < 0.8), torch.full_like(ids, MASK if vocab > 1000 else 3), ids)
        random_ids = torch.randint(1000 if vocab > 1000 else 5, vocab, (B, T), generator=g)
        batch["input_ids"] = torch.where(selected & (action >= 0.8) & (action < 0.9), random_ids, masked)
        batch["labels"] = labels
    return batch


def _train_step(model, optimizer, batch, hf: bool):
    optimizer.zero_grad(set_to_none=True)
    out = model(**batch)
    loss = out.loss if hf else out["loss"]
    loss.backward()
    optimizer.step()


def mlm_train(transformers, tmp: Path, smoke: bool, varlen: bool) -> Case:
    from gicho.models.bert import BertForMaskedLM
    from gicho.train.config import TrainConfig
    from gicho.train.optim import build_optimizer

    layers, width, heads, vocab = (1, 32, 2, 200) if smoke else (4, 256, 4, VOCAB)
    theirs, ours = _pair(transformers, transformers.BertForMaskedLM, BertForMaskedLM,
                         _bert_config(transformers, layers, width, heads, vocab, 0.1), tmp)
    theirs.train()
    ours.train()
    config = TrainConfig(lr=1e-4, weight_decay=0.01)
    opt_ours = build_optimizer(ours, config, None, torch.device("cpu"))
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
    g = torch.Generator().manual_seed(1)
    if varlen:
        batch_size, low, high = (4, 8, 32) if smoke else (16, 16, 512)
        shape = f"{batch_size} sequences, lengths ~ U[{low}, {high}], padded to the longest"
    else:
        batch_size, low, high = (4, 16, 16) if smoke else (32, 128, 128)
        shape = f"{batch_size} x {high}, no padding"
    state = {}

    def next_batch() -> None:
        state["batch"] = _token_batch(g, _lengths(g, batch_size, low, high), vocab, mlm=True)

    next_batch()
    return Case("varlen-train" if varlen else "mlm-train",
                lambda: _train_step(ours, opt_ours, state["batch"], hf=False),
                lambda: _train_step(theirs, opt_theirs, state["batch"], hf=True),
                lambda: int(state["batch"]["attention_mask"].sum()), "real tokens/s",
                f"BERT mini ({layers} layers, {width} wide, vocab {vocab}), {shape}, AdamW, 15% masked",
                next_batch if varlen else lambda: None)


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(hidden.dtype)[..., None]
    return torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


def bert_infer(transformers, tmp: Path, smoke: bool, which: str) -> Case:
    from gicho.models.bert import BertModel

    if which == "varlen-infer":
        layers, width, heads = (1, 32, 2) if smoke else (4, 256, 4)
        batch_size, low, high = (4, 8, 32) if smoke else (16, 16, 512)
        name = f"BERT mini encoder ({layers} layers, {width} wide)"
    else:  # all-MiniLM-L6-v2's shape
        layers, width, heads = (1, 32, 2) if smoke else (6, 384, 12)
        batch_size, low, high = (4, 16, 16) if smoke else (64, 128, 128)
        if which == "bert-infer-varlen":
            low = 4 if smoke else 8
        name = f"sentence embeddings, all-MiniLM-L6-v2 shape ({layers} layers, {width} wide, {heads} heads)"
    vocab = 200 if smoke else VOCAB
    theirs, ours = _pair(transformers, transformers.BertModel, BertModel,
                         _bert_config(transformers, layers, width, heads, vocab, 0.1), tmp)
    theirs.eval()
    ours.eval()
    g = torch.Generator().manual_seed(2)
    state = {}

    def next_batch() -> None:
        state["batch"] = _token_batch(g, _lengths(g, batch_size, low, high), vocab, mlm=False)

    def run_ours():
        with torch.inference_mode():
            return ours.embed(**state["batch"])

    def run_theirs():
        with torch.inference_mode():
            b = state["batch"]
            return _mean_pool(theirs(**b).last_hidden_state, b["attention_mask"])

    next_batch()
    with torch.inference_mode():  # same work: the embeddings agree
        if which != "varlen-infer":
            torch.testing.assert_close(run_ours(), run_theirs(), atol=1e-4, rtol=0)
    padding = "no padding" if low == high else f"lengths ~ U[{low}, {high}], padded to the longest"
    return Case(which, run_ours, run_theirs, lambda: int(state["batch"]["attention_mask"].sum()),
                "real tokens/s", f"{name}, {batch_size} sequences, {padding}",
                next_batch if low != high else lambda: None)


def vit_infer(transformers, tmp: Path, smoke: bool) -> Case:
    from gicho.models.vit import ViTForImageClassification

    if smoke:
        size, patch, width, layers, heads, batch = 32, 8, 32, 1, 2, 2
    else:
        size, patch, width, layers, heads, batch = 224, 16, 384, 12, 6, 16
    config = transformers.ViTConfig(image_size=size, patch_size=patch, hidden_size=width,
                                    num_hidden_layers=layers, num_attention_heads=heads,
                                    intermediate_size=4 * width, num_labels=1000, layer_norm_eps=1e-6)
    theirs, ours = _pair(transformers, transformers.ViTForImageClassification, ViTForImageClassification,
                         config, tmp)
    theirs.eval()
    ours.eval()
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(3))

    def run_ours():
        with torch.inference_mode():
            return ours(x)["logits"]

    def run_theirs():
        with torch.inference_mode():
            return theirs(pixel_values=x).logits

    torch.testing.assert_close(run_ours(), run_theirs(), atol=1e-4, rtol=0)
    return Case("vit-infer", run_ours, run_theirs, lambda: batch, "images/s",
                f"ViT-S/16 shape ({layers} layers, {width} wide, {heads} heads), {batch} images of {size} px, "
                "1000 classes")


CASES = ("mlm-train", "varlen-train", "varlen-infer", "bert-infer", "bert-infer-varlen", "vit-infer")


def build(name: str, transformers, tmp: Path, smoke: bool) -> Case:
    if name in ("mlm-train", "varlen-train"):
        return mlm_train(transformers, tmp, smoke, varlen=name == "varlen-train")
    if name in ("varlen-infer", "bert-infer", "bert-infer-varlen"):
        return bert_infer(transformers, tmp, smoke, name)
    if name == "vit-infer":
        return vit_infer(transformers, tmp, smoke)
    raise ValueError(f"unknown case {name!r}; choose from {', '.join(CASES)}")


def measure(case: Case, rounds: int, warmup: int) -> dict[str, float]:
    """Interleaved rounds (order alternating); median of the paired ratios theirs/ours."""
    for _ in range(warmup):
        case.ours()
        case.theirs()
    ratios, t_ours, t_theirs, tokens = [], [], [], []
    faults: dict[str, list[int]] = {"ours": [], "theirs": []}
    for r in range(rounds):
        case.next_batch()
        times = {}
        for side in (("ours", "theirs") if r % 2 == 0 else ("theirs", "ours")):
            fn = case.ours if side == "ours" else case.theirs
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            fn()
            times[side] = time.perf_counter() - start
            faults[side].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        ratios.append(times["theirs"] / times["ours"])
        t_ours.append(times["ours"])
        t_theirs.append(times["theirs"])
        tokens.append(case.tokens())
    return {"ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "ours_per_s": statistics.median(n / t for n, t in zip(tokens, t_ours, strict=True)),
            "theirs_per_s": statistics.median(n / t for n, t in zip(tokens, t_theirs, strict=True)),
            "ours_ms": 1000 * statistics.median(t_ours), "theirs_ms": 1000 * statistics.median(t_theirs),
            "ours_faults": statistics.median(faults["ours"]), "theirs_faults": statistics.median(faults["theirs"])}


def header(threads: int) -> list[str]:
    import transformers

    import gicho

    return [f"CPU: {cpu_name()}; {os.cpu_count()} logical cores; load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}",
            f"torch {torch.__version__} ({threads} threads), transformers {transformers.__version__}, "
            f"gicho {getattr(gicho, '__version__', '?')}, Python {platform.python_version()}; float32, eager"]


ROW_PREFIX = "ROW "  # how a one-case child process hands its measurements to the parent


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="all", help=f"all, or a comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round (a test runs this)")
    parser.add_argument("--same-process", action="store_true",
                        help="run every case in this process instead of one fresh process per case")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = CASES if args.case == "all" else tuple(args.case.split(","))
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; choose from all, {', '.join(CASES)}")
    if not args.child:
        for line in header(args.threads):
            print(line, flush=True)
    if len(names) > 1 and not args.same_process:
        rows = [_run_child(name, args) for name in names]
    else:
        rows = _run_here(names, args)
    if not args.child:
        print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return rows


def _run_here(names: tuple[str, ...], args: argparse.Namespace) -> list[dict[str, object]]:
    import transformers

    torch.set_num_threads(args.threads)
    rounds, warmup = (1, 1) if args.smoke else (args.rounds, args.warmup)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            case = build(name, transformers, Path(tmp), args.smoke)
            m = measure(case, rounds, warmup)
            rows.append({"case": name, **m})
            print(f"{name:18s} gicho/transformers {m['ratio']:.2f}x (rounds {rounds}: {m['ratio_min']:.2f}-"
                  f"{m['ratio_max']:.2f}); gicho {m['ours_per_s']:,.0f} {case.unit} ({m['ours_ms']:.0f} ms), "
                  f"transformers {m['theirs_per_s']:,.0f} ({m['theirs_ms']:.0f} ms); {case.shape}; "
                  f"page faults per step {m['ours_faults']:,.0f} / {m['theirs_faults']:,.0f}", flush=True)
            if args.child:
                print(ROW_PREFIX + json.dumps(rows[-1]), flush=True)
    return rows


def _run_child(name: str, args: argparse.Namespace) -> dict[str, object]:
    """One case in a fresh interpreter (see the module docstring); its row line is passed on."""
    command = [sys.executable, __file__, "--child", "--case", name, "--rounds", str(args.rounds),
               "--warmup", str(args.warmup), "--threads", str(args.threads)] + (["--smoke"] if args.smoke else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"case {name} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    row = None
    for line in done.stdout.splitlines():
        if line.startswith(ROW_PREFIX):
            row = json.loads(line[len(ROW_PREFIX):])
        else:
            print(line, flush=True)
    if row is None:
        raise RuntimeError(f"case {name} printed no measurements:\n{done.stdout[-4000:]}")
    return row


if __name__ == "__main__":
    main()
