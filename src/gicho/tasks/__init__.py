"""The <T, E, P> registry: a task is a model family + head (T), a dataset (E) and metrics (P).

Every task lives in its own module under ``gicho.tasks`` and calls :func:`register` at import
time. The CLI, the tour and the reports only go through this registry, so a new model is
added in one place. Task modules import heavy dependencies (torch, models) inside their
functions, so that listing tasks stays fast.

Neural tasks are declarations (:class:`gicho.tasks.neural.NeuralSpec`: build the data, build
the model, its streaming metrics, how to read inputs and write outputs) that one shared runner
(:mod:`gicho.tasks.neural`) turns into the hooks below. Classical tasks write the hooks
themselves. A task provides three hooks, all taking the task's Config dataclass and a
:class:`RunContext`:

* ``run(config, ctx) -> dict[str, float]`` trains or fits on the task's data, writes what it
  produces into ``ctx.run_dir`` (checkpoints, ``metrics.jsonl``, figures under ``plots/``) and
  returns the final held-out metrics;
* ``evaluate(config, ctx) -> dict[str, float]`` (optional) reloads the trained model from
  ``ctx.run_dir`` and recomputes the held-out metrics;
* ``predict(config, ctx, inputs, options) -> list[str]`` (optional) reloads the model and
  answers each input string with one output string.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gicho.rundir import RunDir
from gicho.tasks.overrides import apply_overrides, config_from_dict, config_to_dict

__all__ = [
    "RunContext",
    "Task",
    "UnknownTaskError",
    "all_tasks",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "get",
    "register",
]

# The modules that define tasks, in the order the tour runs them. A module added here is
# imported on first use of the registry.
TASK_MODULES: tuple[str, ...] = (
    "gicho.tasks.ols",
    "gicho.tasks.pca",
    "gicho.tasks.digits_rows",
    "gicho.tasks.diabetes_transformer",
    "gicho.tasks.dates",
    "gicho.tasks.mlm_bert",
    "gicho.tasks.bert_classify",
    "gicho.tasks.digits_vit",
    "gicho.tasks.vit_folder",
)

# Users (and the tests) register tasks of their own without editing gicho: a comma-separated
# list of importable modules in this environment variable is imported after TASK_MODULES.
EXTRA_TASKS_ENV = "GICHO_EXTRA_TASKS"


@dataclass
class RunContext:
    """Where and how a task runs.

    Attributes
    ----------
    run_dir : Path
        Directory of this run (``runs/<task>-<time>/``); exists when the hook is called.
    resume : bool
        Continue from the last checkpoint in ``run_dir`` instead of starting afresh.
    progress : bool or None
        Show progress bars; ``None`` means "only when stderr is a terminal".
    """

    run_dir: Path
    resume: bool = False
    progress: bool | None = None

    @property
    def plots_dir(self) -> Path:
        path = RunDir(self.run_dir).plots
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True)
class Task:
    """One registered task: T (``model``), E (``data``) and P (``metrics``)."""

    name: str
    model: str
    data: str
    metrics: tuple[str, ...]
    config_cls: type
    run: Callable[[Any, RunContext], dict[str, float]]
    evaluate: Callable[[Any, RunContext], dict[str, float]] | None = None
    predict: Callable[[Any, RunContext, Sequence[str], dict[str, Any]], list[str]] | None = None
    description: str = ""
    # Config overrides used by `gicho tour` (a small budget) and `gicho tour --quick`.
    tour: dict[str, Any] = field(default_factory=dict)
    quick: dict[str, Any] = field(default_factory=dict)
    # T and E described from an actual config (``describe(config) -> (T, E)``), so a report
    # says what was run; ``model`` / ``data`` are the defaults' descriptions.
    describe: Callable[[Any], tuple[str, str]] | None = None
    # The declaration a neural task was built from (gicho.tasks.neural.NeuralSpec), or None.
    spec: Any = None

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.config_cls):
            raise TypeError(f"task {self.name!r}: config_cls must be a dataclass; got {self.config_cls!r}")
        if not self.metrics:
            raise ValueError(f"task {self.name!r}: at least one metric is required")

    def make_config(self, overrides: dict[str, Any] | Sequence[str] | None = None) -> Any:
        """Build the task's Config with ``overrides`` (a dict, or CLI-style ``--part.field value``)."""
        return apply_overrides(self.config_cls(), overrides or {})

    def tep(self, config: Any = None) -> tuple[str, str, str]:
        """T, E and P in words, for ``config`` when given (what was actually run)."""
        model, data = self.model, self.data
        if config is not None and self.describe is not None:
            model, data = self.describe(config)
        return model, data, ", ".join(self.metrics)


class UnknownTaskError(KeyError):
    """Raised by :func:`get` for a name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


_REGISTRY: dict[str, Task] = {}
_loaded = False


def register(task: Task) -> Task:
    """Add ``task`` to the registry (a second task with the same name is an error)."""
    if task.name in _REGISTRY and _REGISTRY[task.name] is not task:
        raise ValueError(f"a task named {task.name!r} is already registered")
    _REGISTRY[task.name] = task
    return task


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        extra = [m.strip() for m in os.environ.get(EXTRA_TASKS_ENV, "").split(",") if m.strip()]
        for module in (*TASK_MODULES, *extra):
            try:
                importlib.import_module(module)
            except Exception as exc:  # a user's module may fail in any way at import time
                if module in TASK_MODULES:
                    raise
                raise ValueError(f"{EXTRA_TASKS_ENV}: cannot import task module {module!r} "
                                 f"({type(exc).__name__}: {exc})") from None


def all_tasks() -> list[Task]:
    """All registered tasks, in tour order."""
    _load()
    return list(_REGISTRY.values())


def get(name: str) -> Task:
    """The task called ``name``; :class:`UnknownTaskError` lists the allowed names."""
    _load()
    if name not in _REGISTRY:
        allowed = ", ".join(sorted(_REGISTRY)) or "(none registered)"
        raise UnknownTaskError(f"unknown task {name!r}; allowed: {allowed}")
    return _REGISTRY[name]
