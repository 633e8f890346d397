"""The <T, E, P> registry: a task is a model family + head (T), a dataset (E) and metrics (P).

Every task lives in its own module under ``gicho.tasks`` and calls :func:`register` at import
time. The CLI, the tour and the reports only go through this registry, so a new model is
added in one place. Task modules import heavy dependencies (torch, models) inside their
functions, so that listing tasks stays fast.

A task is a :class:`Task`, made in one of two ways:

* a neural task is a subclass of :class:`gicho.tasks.neural.NeuralTask`: its methods build the
  data, the model and the streaming metrics, and read inputs and write outputs; NeuralTask's
  own ``run``, ``evaluate`` and ``predict`` (one runner for every neural task) call them;
* a classical task (``ols-diabetes``, ``pca-digits``) is a Task made from its functions:
  ``Task(name=..., model=..., data=..., metrics=(...), config_cls=..., run=fit_and_score)``.

Either way a task has three hooks, all taking the task's Config dataclass and a
:class:`RunContext`:

* ``run(config, ctx) -> dict[str, float]`` trains or fits on the task's data, writes what it
  produces into ``ctx.run_dir`` (checkpoints, ``metrics.jsonl``, figures under ``plots/``) and
  returns the final held-out metrics;
* ``evaluate(config, ctx) -> dict[str, float]`` reloads the trained model from ``ctx.run_dir``
  and recomputes the held-out metrics (a task without one raises ``ValueError``);
* ``predict(config, ctx, inputs, options) -> list[str]`` reloads the model and answers each
  input string with one output string (likewise optional).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gicho.rundir import RESULTS_FILE, RunDir
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
    "gicho.tasks.sentiment",
    "gicho.tasks.digits_vit",
    "gicho.tasks.vit_folder",
    "gicho.tasks.mnist",
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
    precision : {"fp32", "bf16", "int8"}
        The model's inference precision when a trained run is reloaded (evaluate, predict).
    """

    run_dir: Path
    resume: bool = False
    progress: bool | None = None
    precision: str = "fp32"

    @property
    def plots_dir(self) -> Path:
        path = RunDir(self.run_dir).plots
        path.mkdir(parents=True, exist_ok=True)
        return path


class Task:
    """One registered task: T (``model``), E (``data``), P (``metrics``), its Config and its hooks.

    Made from functions (``Task(name=..., run=...)``, a classical task), or subclassed
    (:class:`gicho.tasks.neural.NeuralTask`, whose class attributes give the same fields and
    whose methods are the hooks).

    Attributes
    ----------
    name : str
        The name on the command line (``gicho train NAME``).
    model, data : str
        T and E in words, for the defaults (:meth:`describe` says what a given config runs).
    metrics : tuple of str
        P: the names of the metrics ``run`` returns, the headline one first.
    config_cls : type
        The task's Config dataclass (``make_config`` builds it from overrides).
    description : str
        One line for ``gicho tasks``.
    tour, quick : dict
        Config overrides of ``gicho tour`` (a small budget) and ``gicho tour --quick``.
    predict_options : tuple of str
        The options ``predict`` accepts (``gicho predict --top-k`` needs ``"top_k"``).
    """

    name: str
    model: str
    data: str
    metrics: tuple[str, ...]
    config_cls: type
    description: str = ""
    tour: Mapping[str, Any] = MappingProxyType({})
    quick: Mapping[str, Any] = MappingProxyType({})
    predict_options: tuple[str, ...] = ()

    def __init__(
        self, *, name: str, model: str, data: str, metrics: tuple[str, ...], config_cls: type,
        run: Callable[[Any, RunContext], dict[str, float]],
        evaluate: Callable[[Any, RunContext], dict[str, float]] | None = None,
        predict: Callable[[Any, RunContext, Sequence[str], dict[str, Any]], list[str]] | None = None,
        describe: Callable[[Any], tuple[str, str]] | None = None,
        description: str = "", tour: Mapping[str, Any] | None = None, quick: Mapping[str, Any] | None = None,
        predict_options: tuple[str, ...] = (),
    ) -> None:
        """A task made from functions: ``run`` (required), ``evaluate`` and ``predict`` (None: the
        task has none), ``describe(config) -> (T, E)`` (None: ``model`` and ``data``)."""
        self.name, self.model, self.data, self.metrics = name, model, data, tuple(metrics)
        self.config_cls, self.description, self.predict_options = config_cls, description, tuple(predict_options)
        self.tour, self.quick = dict(tour or {}), dict(quick or {})
        self._run, self._evaluate, self._predict, self._describe = run, evaluate, predict, describe
        self._check_fields()

    def _check_fields(self) -> None:
        if not dataclasses.is_dataclass(self.config_cls):
            raise TypeError(f"task {self.name!r}: config_cls must be a dataclass; got {self.config_cls!r}")
        if not self.metrics:
            raise ValueError(f"task {self.name!r}: at least one metric is required")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def run(self, config: Any, ctx: RunContext) -> dict[str, float]:
        """Train or fit into ``ctx.run_dir`` and return the held-out metrics (see the module)."""
        return self._run(config, ctx)

    def evaluate(self, config: Any, ctx: RunContext) -> dict[str, float]:
        """Reload the model of ``ctx.run_dir`` and recompute its held-out metrics."""
        if self._evaluate is None:
            raise ValueError(f"task {self.name!r} has no evaluate step; its metrics are in {RESULTS_FILE}")
        return self._evaluate(config, ctx)

    def predict(self, config: Any, ctx: RunContext, inputs: Sequence[str],
                options: dict[str, Any]) -> list[str]:
        """Reload the model of ``ctx.run_dir`` and answer each input string with one string."""
        if self._predict is None:
            raise ValueError(f"task {self.name!r} does not support predict")
        return self._predict(config, ctx, inputs, options)

    def describe(self, config: Any) -> tuple[str, str]:
        """T and E in words for ``config`` (what was actually run), so a report says it."""
        return self._describe(config) if self._describe is not None else (self.model, self.data)

    def unused_fields(self, config: Any) -> dict[str, str]:
        """The dotted fields of ``config`` that this run does not read, each with why (``data.sources``
        when ``data.corpus`` is given), so a report does not show them as if they had been used.
        Default: none."""
        return {}

    def make_config(self, overrides: dict[str, Any] | Sequence[str] | None = None) -> Any:
        """Build the task's Config with ``overrides`` (a dict, or CLI-style ``--part.field value``)."""
        return apply_overrides(self.config_cls(), overrides or {})

    def tep(self, config: Any = None) -> tuple[str, str, str]:
        """T, E and P in words, for ``config`` when given (what was actually run)."""
        model, data = (self.model, self.data) if config is None else self.describe(config)
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
