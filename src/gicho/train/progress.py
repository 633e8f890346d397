"""Progress of a training run: a bar on a terminal, plain lines elsewhere, or nothing.

:class:`ProgressReporter` is the only thing in :mod:`gicho.train` that writes to the
terminal. On a terminal it draws a tqdm bar; when stderr is not one (a log file, a batch job,
CI) it writes one plain line per ``"train"`` log event (every ``log_every`` steps) and per
evaluation, so that logs stay readable::

    step 40/200 (20%) | loss 0.4123 | lr 1.00e-03 | items/s 5321 | eta 0:00:31
"""

from __future__ import annotations

import sys
import time
from typing import Any, Literal, TextIO

from tqdm import tqdm

__all__ = ["ProgressMode", "ProgressReporter"]

ProgressMode = Literal["bar", "lines", "none"]


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressReporter:
    """Shows training progress on ``stream`` (stderr by default).

    Parameters
    ----------
    mode : {"bar", "lines", "none"}
        A tqdm bar, one plain line per log event, or nothing.
    total : int
        ``max_steps``.
    initial : int
        The step the run starts from (non-zero on resume).
    stream : text file or None
        Where to write; ``sys.stderr`` when None.
    """

    def __init__(self, mode: ProgressMode, *, total: int, initial: int = 0,
                 stream: TextIO | None = None) -> None:
        if mode not in ("bar", "lines", "none"):
            raise ValueError(f"argument `mode` must be 'bar', 'lines' or 'none'; got {mode!r}")
        self.mode = mode
        self.total = total
        self.initial = initial
        self.stream = stream if stream is not None else sys.stderr
        self._start = time.perf_counter()
        self._bar = None
        if mode == "bar":
            self._bar = tqdm(total=total, initial=initial, desc="train", unit="step",
                             file=self.stream, dynamic_ncols=True)

    @classmethod
    def choose(cls, progress: bool | None, *, is_main: bool, total: int, initial: int = 0,
               stream: TextIO | None = None) -> ProgressReporter:
        """The reporter for ``TrainConfig.progress``: True → the bar; None → the bar on a
        terminal and lines elsewhere; False (and every rank but 0) → nothing."""
        stream = stream if stream is not None else sys.stderr
        if not is_main or progress is False:
            mode: ProgressMode = "none"
        elif progress is True:
            mode = "bar"
        else:
            isatty = getattr(stream, "isatty", None)
            mode = "bar" if isatty is not None and isatty() else "lines"
        return cls(mode, total=total, initial=initial, stream=stream)

    def step(self, step: int) -> None:
        """One optimizer step is done."""
        if self._bar is not None:
            self._bar.update(1)

    def train(self, event: dict[str, Any], items_per_s: float) -> None:
        """A ``"train"`` log event (step, loss, lr); ``items_per_s``: loss items per second."""
        step = event["step"]
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{event['loss']:.4f}", lr=f"{event['lr']:.2e}",
                                  items_s=f"{items_per_s:.0f}", refresh=False)
        elif self.mode == "lines":
            done = step - self.initial
            elapsed = time.perf_counter() - self._start
            eta = _clock(elapsed / done * (self.total - step)) if done > 0 else "?"
            self._line(f"step {step}/{self.total} ({100 * step / self.total:.0f}%) | loss "
                       f"{event['loss']:.4f} | lr {event['lr']:.2e} | items/s {items_per_s:.0f} | "
                       f"eta {eta}")

    def evaluation(self, event: dict[str, Any]) -> None:
        """An ``"eval"`` event: one line in line mode (the bar shows none)."""
        if self.mode == "lines":
            values = " | ".join(f"{k} {v:.4g}" for k, v in event.items() if k not in ("step", "split"))
            self._line(f"eval step {event['step']}/{self.total} | {values}")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Close the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
