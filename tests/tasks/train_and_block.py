"""Run ``gicho train ...`` in this process and block once training has taken BLOCK_AT steps.

Usage: python train_and_block.py BLOCK_AT MARKER gicho-train-arguments...

Just before optimizer step BLOCK_AT + 1 the process writes MARKER and sleeps, so a test can
SIGKILL it at a known step (after a checkpoint, with some logged steps past it) instead of at
a moment that depends on the machine's speed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from gicho.train.trainer import Trainer


def main() -> None:
    block_at, marker, args = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    step = Trainer._train_step

    def blocking_step(self, *a, **k):
        if self.state_.step == block_at:
            marker.write_text("blocked\n")
            while True:  # until the test kills this process
                time.sleep(1)
        return step(self, *a, **k)

    Trainer._train_step = blocking_step
    from gicho.cli import main as gicho

    gicho(args)


if __name__ == "__main__":
    main()
