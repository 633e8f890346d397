"""Run directories: create, execute a task into, reload, evaluate, predict, tour.

A run lives in ``runs/<task>-<YYYYmmdd-HHMMSS>/`` (:class:`gicho.rundir.RunDir` names its files)::

    config.json     {"task": ..., "gicho_version": ..., "config": {...}}   (parsed, never executed)
    results.json    the final held-out metrics and the wall time
    metrics.jsonl   per-step training / evaluation log (written by the Trainer)
    checkpoints/    model.safetensors + config.json + trainer state
    plots/          PNG figures (learning curves and the task's own)
    report.html     a self-contained page (images embedded)

This module sits beside the CLI: it wires the registry (``gicho.tasks``) to the run directory
and the report, and owns the process: under ``torchrun``, :func:`run_task` joins the process
group and leaves it again, so that the CLI stays a thin layer of argument parsing and printing.
"""

from __future__ import annotations

import json
import numbers
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gicho import __version__, _dist
from gicho._io import TMP_PREFIX, atomic_write_text
from gicho.rundir import CONFIG_FILE, RESULTS_FILE, RunDir
from gicho.tasks import RunContext, Task, config_from_dict, config_to_dict, get

__all__ = [
    "CONFIG_FILE",
    "RESULTS_FILE",
    "RunOutcome",
    "TourRow",
    "evaluate_run",
    "load",
    "load_run",
    "new_run_dir",
    "predict_run",
    "run_task",
    "tour",
]


@dataclass
class RunOutcome:
    """What :func:`run_task` returns: where the run went and what it measured."""

    task: str
    run_dir: Path
    metrics: dict[str, float]
    seconds: float


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON through a temporary file and a rename: readers never see half a file."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # NumPy / torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _clean_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Plain Python numbers for JSON and tables: counts stay ``int``, scores become ``float``."""
    return {k: int(v) if isinstance(v, numbers.Integral) else float(v) for k, v in metrics.items()}


def new_run_dir(task_name: str, root: Path | str = "runs") -> Path:
    """Create and return ``root/<task>-<timestamp>`` (a suffix keeps two runs apart).

    Under ``torchrun`` every process must write into the same directory: rank 0 chooses it
    and broadcasts it to the others.
    """
    root = Path(root)
    world_size = _dist.world_size()
    chosen: Path | None = None
    if _dist.is_main_process():
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        candidate = root / f"{task_name}-{stamp}"
        n = 1
        while candidate.exists():
            n += 1
            candidate = root / f"{task_name}-{stamp}-{n}"
        candidate.mkdir(parents=True)
        chosen = candidate
    if world_size > 1:
        from gicho.train.distributed import broadcast_object, init_distributed

        init_distributed()
        chosen = Path(broadcast_object(str(chosen) if chosen else None))
    if chosen is None:  # pragma: no cover - rank > 0 without a process group
        raise RuntimeError("RANK is set but WORLD_SIZE is 1: not launched by torchrun?")
    return chosen


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_unstarted_run(created: Sequence[Path]) -> bool:
    """Remove a run directory this process created if the run saved nothing; return whether it did.

    ``created`` lists the run directory, then the parents made for it. A run counts as
    unstarted while it has no checkpoint, no ``results.json`` and no logged training event
    (``metrics.jsonl`` absent or empty): what it holds then (``config.json``, empty ``plots/``,
    preprocessing files) only served a training that never produced anything. A directory
    with any of those is kept, whatever failed.
    """
    run_dir = created[0]
    if not run_dir.is_dir() or run_dir.is_symlink():
        return False
    files = RunDir(run_dir)
    checkpoints = files.checkpoints
    if checkpoints.is_dir() and any(not p.name.startswith(TMP_PREFIX) for p in checkpoints.iterdir()):
        return False
    metrics_log = files.metrics_log
    if files.results.exists() or (metrics_log.exists() and metrics_log.stat().st_size > 0):
        return False
    try:
        shutil.rmtree(run_dir)
    except OSError:  # a read-only parent, say: the run's own error is the one to report
        return False
    for parent in created[1:]:  # parents made for this run, while they stay empty
        try:
            parent.rmdir()
        except OSError:
            break
    return True


def run_task(
    task: Task,
    config: Any,
    *,
    root: Path | str = "runs",
    run_dir: Path | str | None = None,
    resume: bool = False,
    progress: bool | None = None,
    report: bool = True,
    on_start: Callable[[Path], None] | None = None,
) -> RunOutcome:
    """Run ``task`` with ``config`` into a run directory and write its report.

    Parameters
    ----------
    task, config
        The registered task and an instance of its ``config_cls``.
    root
        Parent of new run directories (ignored when ``run_dir`` is given).
    run_dir
        Use this directory (created if needed) instead of a new timestamped one; required
        for ``resume``.
    resume
        Continue from the last checkpoint in ``run_dir``.
    progress
        Progress bars on/off; ``None`` shows them only on a terminal.
    report
        Write learning curves and ``report.html`` after the run.
    on_start
        Called with the run directory once it exists, before training starts (the CLI prints it).

    A run that fails (or is interrupted) before it has saved anything (no checkpoint, no
    result, no logged step) leaves nothing behind: the directory this call created for it is
    removed again, with any parent it created. A directory that existed before the call (a
    resumed run's, say) is never removed.

    Under ``torchrun`` every process calls it: rank 0 chooses the run directory and writes the
    run's files, and after a run that succeeded every process waits for rank 0's report and
    leaves the process group (:func:`_leave_process_group`).
    """
    if resume and run_dir is None:
        raise ValueError("argument `run_dir` is required with resume=True (which run to continue?)")
    main_process = _dist.is_main_process()
    # The directories this call creates (the run's first, then any missing parents): removed
    # again if the run fails before it has saved anything (see _remove_unstarted_run).
    created: list[Path] = []
    if run_dir is None:
        missing_root = _missing_dirs(Path(root))
        run_dir = new_run_dir(task.name, root)
        created = [Path(run_dir), *missing_root]
    elif not resume:
        created = _missing_dirs(Path(run_dir))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        outcome = _run_in(task, config, run_dir, resume=resume, progress=progress, report=report,
                          on_start=on_start, main_process=main_process)
    except BaseException:
        if main_process and created:
            _remove_unstarted_run(created)
        raise
    _leave_process_group()
    return outcome


def _leave_process_group() -> None:
    """Under ``torchrun``: wait for rank 0's report, then leave the process group cleanly (a
    process that exits with gloo's threads still running is aborted: "terminate called
    without an active exception"). Nothing to do in a single process."""
    if _dist.world_size() > 1:
        from gicho.train.distributed import cleanup

        cleanup()  # waits for every rank (rank 0's report included) before leaving


def _run_in(task: Task, config: Any, run_dir: Path, *, resume: bool, progress: bool | None,
            report: bool, on_start: Callable[[Path], None] | None, main_process: bool) -> RunOutcome:
    """The body of :func:`run_task`, in a run directory that exists."""
    run_config = {"task": task.name, "gicho_version": __version__, "config": config_to_dict(config)}
    # A resumed run keeps the config its checkpoints were made with until it succeeds, so a
    # failed resume (say, with a changed model size) leaves evaluate/predict working.
    if main_process and not resume:
        write_json_atomic(RunDir(run_dir).config, run_config)
    if on_start is not None and main_process:
        on_start(run_dir)
    start = time.perf_counter()
    metrics = task.run(config, RunContext(run_dir=run_dir, resume=resume, progress=progress))
    seconds = time.perf_counter() - start
    metrics = _clean_metrics(metrics)
    if main_process and resume:
        write_json_atomic(RunDir(run_dir).config, run_config)
    if main_process:
        write_json_atomic(
            RunDir(run_dir).results,
            {"task": task.name, "metrics": metrics, "seconds": seconds,
             "finished": datetime.now().isoformat(timespec="seconds")},
        )
        if report:
            from gicho.report import write_run_report

            write_run_report(run_dir)
    return RunOutcome(task=task.name, run_dir=run_dir, metrics=metrics, seconds=seconds)


def _model_dir_message(path: Path, model_type: Any) -> str:
    """What to say when a model directory is given where a run directory is expected."""
    parent = path.resolve().parent
    if RunDir.is_run(parent):
        task_name = RunDir(parent).read_config()["task"]
        run = path.parent if path.name not in ("", ".", "..") else parent
        return (f"{path} is the model directory of the run {run} (task {task_name!r}); "
                f"pass the run directory {run}")
    return (f"{path} is a model directory (model_type {model_type!r}), not a run directory; pass a run "
            f"directory (runs/<task>-<time>), or load the model with gicho.load({str(path)!r})")


def load_run(run_dir: Path | str) -> tuple[Task, Any]:
    """The task and the config a run directory was made with."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run directory not found: {run_dir}")
    data = RunDir(run_dir).read_config()
    if isinstance(data, dict) and "model_type" in data and "task" not in data:
        raise ValueError(_model_dir_message(run_dir, data["model_type"]))
    if not isinstance(data, dict) or "task" not in data or not isinstance(data.get("config"), dict):
        raise ValueError(f"run config {RunDir(run_dir).config} lacks the keys 'task' and 'config'")
    task = get(data["task"])
    return task, config_from_dict(task.config_cls, data["config"])


def evaluate_run(run_dir: Path | str, data: Mapping[str, str] | None = None, *,
                 precision: str = "fp32") -> dict[str, float]:
    """Reload a finished run and recompute its held-out metrics, or score it on new labelled data.

    ``data``: ``{"csv": path}`` (labelled texts) or ``{"root": path}`` (class folders of images),
    read with the run's own preprocessing (:mod:`gicho.tasks._new_data`); None: the run's own
    held-out split. ``precision``: the model's, as in :func:`load` (a classical task takes "fp32").
    """
    from gicho.models.precision import check_precision

    check_precision(precision)
    if data:
        from gicho.tasks._new_data import score_new_data

        return _clean_metrics(score_new_data(load(run_dir, precision=precision), data))
    task, config = load_run(run_dir)
    from gicho.tasks.neural import NeuralTask

    if precision != "fp32" and not isinstance(task, NeuralTask):
        raise ValueError(f"argument `precision`: {run_dir} is a run of the classical task {task.name!r}, which has "
                         f"no neural model to run in {precision!r}")
    metrics = task.evaluate(config, RunContext(run_dir=Path(run_dir), progress=False, precision=precision))
    return _clean_metrics(metrics)


def predict_run(
    run_dir: Path | str, inputs: Sequence[str], options: Mapping[str, Any] | None = None
) -> list[str]:
    """Answer each input string with the model trained in ``run_dir``."""
    task, config = load_run(run_dir)
    if not inputs:
        raise ValueError("argument `inputs` is empty; give at least one input")
    return list(task.predict(config, RunContext(run_dir=Path(run_dir), progress=False), inputs, dict(options or {})))


def load(path: Path | str, *, precision: str = "fp32") -> Any:
    """A trained model, ready to predict, from a run directory or a model directory.

    * A run directory (``runs/<task>-<time>``, with the run's ``config.json``): a
      :class:`gicho.tasks.neural.Predictor` — the model with its preprocessing — whose
      ``predict(X)`` takes the task's native inputs (arrays, texts, images) and returns an array
      of answers, with ``predict_proba``, ``top_k``, ``classes_`` and ``ood_score`` for
      classifiers; ``predict_strings`` answers as ``gicho predict`` does.
    * A model directory (``config.json`` with a ``model_type``, and ``model.safetensors``,
      such as ``run_dir/model``): the model itself (a ``torch.nn.Module`` in eval mode).

    ``precision``: ``"fp32"``, or ``"bf16"`` / ``"int8"`` for a BERT or a ViT (CPU inference,
    :mod:`gicho.models.precision`; bf16 is refused, with the reason, on a CPU without it).
    """
    from gicho.models.precision import check_precision
    from gicho.weights import read_config

    check_precision(precision)
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"argument `path`: {path} is not a directory (a run or a model directory)")
    data = read_config(path)
    if "task" in data:
        from gicho.tasks.neural import NeuralTask, load_predictor

        task, config = load_run(path)
        if not isinstance(task, NeuralTask):
            raise ValueError(f"{path} is a run of {task.name!r}, which has no model to load "
                             f"(a classical task: its results are in {RESULTS_FILE})")
        return load_predictor(task, config, path, precision)
    from gicho.models import from_pretrained

    return from_pretrained(path, precision=precision)


@dataclass
class TourRow:
    """One line of the tour table."""

    task: Task
    run_dir: Path | None
    metrics: dict[str, float]
    seconds: float
    error: str | None = None
    config: Any = None  # what ran (None when the config could not be made)

    def tep(self) -> tuple[str, str, str]:
        """T, E and P in words, of the config that ran (the task's own words without one)."""
        return self.task.tep(self.config)


def tour(
    *, quick: bool = False, root: Path | str = "runs/tour", tasks: Sequence[str] | None = None,
    progress: bool | None = None, on_task_start: Callable[[int, int, Task], None] | None = None,
) -> Iterator[TourRow]:
    """Run every registered task (or ``tasks``) with its tour budget; yield a row per task.

    A task that fails yields a row with ``error`` set and the tour goes on, so one broken
    task does not hide the others' results. ``on_task_start(i, n, task)`` is called before
    the i-th of n tasks starts (the CLI says which task is running and how far the tour is).
    """
    from gicho.tasks import all_tasks

    selected = all_tasks() if tasks is None else [get(name) for name in tasks]
    root = Path(root)
    for i, task in enumerate(selected, start=1):
        if on_task_start is not None:
            on_task_start(i, len(selected), task)
        overrides = task.quick if quick else task.tour
        start = time.perf_counter()
        run_dir = root / task.name
        if run_dir.exists():  # the tour owns runs/tour/: start each task afresh
            shutil.rmtree(run_dir)
        config = None
        try:
            config = task.make_config(overrides)
            outcome = run_task(task, config, run_dir=run_dir, progress=progress)
        except Exception as exc:
            yield TourRow(task, None, {}, time.perf_counter() - start, f"{type(exc).__name__}: {exc}", config)
            continue
        yield TourRow(task, outcome.run_dir, outcome.metrics, outcome.seconds, config=config)
