"""Stopping a training run cleanly on SIGINT (Ctrl-C) and SIGTERM (a scheduler's kill).

While :meth:`gicho.train.Trainer.fit` runs, the first such signal only sets a flag: the
Trainer finishes the current optimizer step, writes a checkpoint (when it has a run
directory) and raises :class:`TrainingInterrupted`. A second signal stops at once with a plain
``KeyboardInterrupt``. The previous handlers are restored when ``fit`` returns or raises.
Handlers can only be installed from the main thread; elsewhere signals keep their usual effect.

After ``fit`` the signals have their previous effect again; :func:`completed_guards` tells a
caller (``gicho train``) whether a signal that stopped it came after training had ended, so
that it can say so ("interrupted after training; finish with: ...").
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["InterruptGuard", "TrainingInterrupted", "completed_guards"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How many InterruptGuards of this process have ended without an exception: fits that ran to
# their end (every optimizer step done, or early-stopped).
_completed = 0


def completed_guards() -> int:
    """The number of :class:`InterruptGuard` blocks of this process that ended without an exception.

    Read it before and after a run: if it grew, the run's training loop ended normally, and a
    signal since came during what follows it (final evaluation, saving the model, the report).
    """
    return _completed


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM after a complete step.

    A ``KeyboardInterrupt``, so a plain script still stops; catch it to report where the run
    stands.

    Attributes
    ----------
    step : int
        The last completed optimizer step.
    checkpoint : Path or None
        The checkpoint of that step (None without a run directory); ``fit(resume=True)``
        continues from it exactly.
    signal_name : str
        ``"SIGINT"`` or ``"SIGTERM"`` (``"a signal"`` when another process received it).
    """

    def __init__(self, message: str, *, step: int, checkpoint: Path | None,
                 signal_name: str = "SIGINT") -> None:
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint
        self.signal_name = signal_name


class InterruptGuard:
    """Context manager that turns the first SIGINT/SIGTERM into a flag (:attr:`received`).

    A second signal while the guard is active raises ``KeyboardInterrupt`` at once.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def signal_name(self) -> str:
        """Name of the signal received (``"a signal"`` when none was)."""
        return signal.Signals(self.received).name if self.received is not None else "a signal"

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping immediately, "
                                    "without a checkpoint")
        self.received = signum

    def __enter__(self) -> InterruptGuard:
        self.received = None
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        global _completed
        if exc_type is None:
            _completed += 1
        for sig, previous in self._previous.items():
            # None: the previous handler was not installed from Python; the default is closest.
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
