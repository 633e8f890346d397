"""Run ``gicho train ...`` in this process (a ``torchrun`` rank), recording what the data built,
and SIGTERM one rank at a known step.

Usage: python train_and_signal.py SIGNAL_AT SIGNAL_RANK INFO_DIR gicho-train-arguments...

Rank SIGNAL_RANK sends itself SIGTERM just before optimizer step SIGNAL_AT + 1 (-1: never), so
a test interrupts a run at a step that does not depend on the machine's speed; the Trainer
finishes that step, the ranks agree at the next log line, write a checkpoint and stop. Each
rank writes ``INFO_DIR/rank{R}.json``: the class of its training blocks and a SHA-256 of them,
of the held-out blocks and of the vocabulary (every rank must build the same data).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

from gicho.tasks.mlm_bert import MLMBertTask
from gicho.train.trainer import Trainer


def main() -> None:
    signal_at, signal_rank, info_dir, args = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]
    rank = int(os.environ.get("RANK", "0"))
    step = Trainer._train_step
    build_data = MLMBertTask.build_data
    sent = []

    def signalling_step(self, *a, **k):
        if rank == signal_rank and self.state_.step == signal_at and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, *a, **k)

    def recording_build_data(self, config, preprocessing=None):
        import torch

        splits = build_data(self, config, preprocessing)
        valid = torch.cat([splits.valid[i]["input_ids"] for i in range(len(splits.valid))])
        vocab = json.dumps(sorted(splits.info["tokenizer"].get_vocab().items())).encode()
        info = {"train_class": type(splits.train).__name__, "n_train_blocks": len(splits.train),
                "n_valid_blocks": len(splits.valid),
                **{name: hashlib.sha256(data).hexdigest() for name, data in (
                    ("train", splits.train.blocks.numpy().tobytes()), ("valid", valid.numpy().tobytes()),
                    ("vocab", vocab))}}
        info_dir.mkdir(parents=True, exist_ok=True)
        (info_dir / f"rank{rank}.json").write_text(json.dumps(info))
        return splits

    Trainer._train_step = signalling_step
    MLMBertTask.build_data = recording_build_data
    from gicho.cli import main as gicho

    gicho(args)


if __name__ == "__main__":
    main()
