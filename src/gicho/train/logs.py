"""Where the Trainer's events go: ``metrics.jsonl`` always, TensorBoard when asked.

An event is one dict, ``{"step", "split", ...numbers}``: ``"train"`` lines (loss, learning
rate, throughput) and ``"eval"`` lines (``eval_loss`` and the metrics).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

from gicho._io import atomic_write_text
from gicho.rundir import TENSORBOARD_DIR

__all__ = ["TENSORBOARD_DIR", "MetricsLog", "TensorBoardLog", "summary_writer"]


def _json_line(event: dict[str, Any]) -> str:
    # NaN/inf are kept (Python's json reads them back) so that a bad value is never hidden.
    return json.dumps(event, allow_nan=True) + "\n"


class MetricsLog:
    """Append-only ``metrics.jsonl``: one JSON object per event, flushed as it is written.

    Parameters
    ----------
    path : Path or None
        The file; ``None`` writes nothing (non-main ranks, no run directory).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh: Any = None

    def start(self, resume_step: int | None) -> list[dict[str, Any]]:
        """Open the log: afresh (``resume_step`` None) or keeping events up to ``resume_step``.

        A resumed run rewrites the file without the events after its checkpoint (the crashed
        run logged them, the resumed run logs them again) and without a torn last line. A line
        that is not UTF-8 text (a damaged file) is dropped too, with a warning that names it.
        Returns the kept events.
        """
        if self.path is None:
            return []
        kept: list[dict[str, Any]] = []
        if resume_step is not None and self.path.is_file():
            not_text: list[int] = []
            for number, raw in enumerate(self.path.read_bytes().splitlines(), start=1):
                try:
                    event = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    not_text.append(number)
                    continue
                except json.JSONDecodeError:
                    continue  # a line torn by the crash
                step = event.get("step") if isinstance(event, dict) else None
                if isinstance(step, int) and not isinstance(step, bool) and step <= resume_step:
                    kept.append(event)
            if not_text:
                shown = ", ".join(map(str, not_text[:5])) + (", ..." if len(not_text) > 5 else "")
                warnings.warn(f"{self.path}: {len(not_text)} line(s) are not UTF-8 text (line {shown}); "
                              "the resumed run drops them", UserWarning, stacklevel=2)
        atomic_write_text(self.path, "".join(_json_line(e) for e in kept))
        self._fh = open(self.path, "a", encoding="utf-8")  # closed in close()
        return kept

    def write(self, event: dict[str, Any]) -> None:
        """Append one event and flush it to the operating system (a SIGKILL cannot lose it)."""
        if self._fh is not None:
            self._fh.write(_json_line(event))
            self._fh.flush()

    def close(self) -> None:
        """Flush the file to disk and close it (idempotent)."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None


def summary_writer() -> Any:
    """torch's ``SummaryWriter`` class.

    Raises
    ------
    ImportError
        When the ``tensorboard`` package is not installed, naming the extra to install.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError(
            "TrainConfig.log_to='tensorboard' needs the tensorboard package, which is not "
            "installed; install gicho's extra: pip install 'gicho[tensorboard]'") from None
    return SummaryWriter


class TensorBoardLog:
    """Events as TensorBoard scalars (``split/name``, e.g. ``eval/accuracy``) in ``directory``.

    Parameters
    ----------
    directory : Path
        ``run_dir/tensorboard``.
    purge_step : int or None
        On resume, the first step after the checkpoint: TensorBoard hides the events the
        interrupted run wrote from there on (the resumed run writes them again).

    Raises
    ------
    ImportError
        When the ``tensorboard`` package is not installed (naming the extra to install).
    """

    def __init__(self, directory: Path, purge_step: int | None = None) -> None:
        self.directory = directory
        self._writer = summary_writer()(log_dir=str(directory), purge_step=purge_step)

    def write(self, event: dict[str, Any]) -> None:
        """Add every number of ``event`` at its step."""
        step, split = event["step"], event["split"]
        for key, value in event.items():
            if key in ("step", "split") or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)) and math.isfinite(value):
                self._writer.add_scalar(f"{split}/{key}", value, step)

    def close(self) -> None:
        """Flush the events to disk and close the writer."""
        self._writer.flush()
        self._writer.close()
