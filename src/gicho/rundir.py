"""The run directory: the one owner of its file names.

A run lives in ``runs/<task>-<YYYYmmdd-HHMMSS>/``; :class:`RunDir` names every file in it, so
that the runner, the trainer, the report, the plots and the CLI spell no file name of their
own. This module sits low (torch-free; of gicho it imports only :mod:`gicho._io`), so that
:mod:`gicho.runs`, :mod:`gicho.report`, :mod:`gicho.train` and :mod:`gicho.plots` all use it
without importing each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gicho._io import read_json

__all__ = [
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "METRICS_LOG",
    "MODEL_DIR",
    "PLOTS_DIR",
    "PREPROCESSING_DIR",
    "REPORT_FILE",
    "RESULTS_FILE",
    "TENSORBOARD_DIR",
    "RunDir",
    "model_directory",
    "read_json",
]

CONFIG_FILE = "config.json"  # {"task": ..., "gicho_version": ..., "config": {...}}
RESULTS_FILE = "results.json"  # the final held-out metrics and the wall time
METRICS_LOG = "metrics.jsonl"  # per-step training / evaluation records (written by the Trainer)
CHECKPOINTS_DIR = "checkpoints"  # step-XXXXXXXX/ directories and best.json
MODEL_DIR = "model"  # the run's result, in save_pretrained's layout
PREPROCESSING_DIR = "preprocessing"  # the data's preprocessing files, from the first step on
PLOTS_DIR = "plots"  # PNG figures
REPORT_FILE = "report.html"  # a self-contained page
TENSORBOARD_DIR = "tensorboard"  # event files, when TensorBoard logging is on


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory (nothing is created or read by naming them).

    >>> RunDir("runs/toy-1").results.as_posix()
    'runs/toy-1/results.json'
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def results(self) -> Path:
        return self.root / RESULTS_FILE

    @property
    def metrics_log(self) -> Path:
        return self.root / METRICS_LOG

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    @property
    def model(self) -> Path:
        return self.root / MODEL_DIR

    @property
    def preprocessing(self) -> Path:
        return self.root / PREPROCESSING_DIR

    @property
    def plots(self) -> Path:
        return self.root / PLOTS_DIR

    @property
    def report(self) -> Path:
        return self.root / REPORT_FILE

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD_DIR

    def read_config(self) -> Any:
        """The parsed ``config.json`` (ValueError naming it when missing or not JSON)."""
        return read_json(self.config, "run config")

    @staticmethod
    def is_run(path: str | os.PathLike) -> bool:
        """Whether ``path`` is a run directory: its ``config.json`` is a JSON object naming a
        ``task`` (a model directory's ``config.json`` names a ``model_type`` instead)."""
        try:
            data = RunDir(Path(path)).read_config()
        except ValueError:
            return False
        return isinstance(data, dict) and "task" in data


def model_directory(path: str | os.PathLike) -> Path:
    """The model directory that ``path`` names: itself, or a run directory's ``model/`` (what
    ``gicho embed``, ``fill-mask`` and ``export`` accept in place of a model directory).

    Raises
    ------
    FileNotFoundError
        When ``path`` is a run directory without a model (a run that did not finish).
    """
    path = Path(path)
    if not RunDir.is_run(path):
        return path  # a model directory (or nothing: the model loader reports it)
    run = RunDir(path)
    if not (run.model / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{path} is a run directory of the task {run.read_config()['task']!r} without "
                                f"a model ({run.model} is missing: the run did not finish)")
    return run.model
