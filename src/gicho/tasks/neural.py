"""The one runner of every neural task: a task declares, this module trains, evaluates, predicts.

A neural task is a :class:`NeuralSpec` — how to build its data splits and its model from the
task's Config, which streaming metrics score it, and how to turn input strings into a batch and
outputs back into strings — plus a Config dataclass with three parts, ``model``, ``data`` and
``train`` (a :class:`gicho.train.TrainConfig`), each validated on its own. :func:`neural_task`
turns the two into a registered :class:`~gicho.tasks.Task` whose hooks are:

* ``run``: build data and model, save the data's preprocessing (vocabularies, tokenizer) into
  ``run_dir/preprocessing/`` before the first step, :meth:`gicho.train.Trainer.fit`, pick the
  result (the last step, or the best evaluation when ``select="best"``), save it as
  ``run_dir/model/`` (``save_pretrained`` + the task's preprocessing files), score it on the
  test split. A resumed run reads its preprocessing back instead of building it again, so its
  weights and its vocabulary always belong together;
* ``evaluate``: reload ``run_dir/model/`` and score it on the test split again;
* ``predict``: reload it, read the inputs, answer with strings.

:func:`load_predictor` (``gicho.load(run_dir)``) gives the same reloaded model and its
preprocessing to Python users.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gicho._dist import is_main_process
from gicho.rundir import MODEL_DIR, PREPROCESSING_DIR, RESULTS_FILE, RunDir
from gicho.tasks import RunContext, Task
from gicho.tasks._training import config_threads, torch_threads, with_config_threads

__all__ = ["MODEL_DIR", "PREPROCESSING_DIR", "NeuralSpec", "Predictor", "Splits", "load_predictor", "neural_task", "score"]

# MODEL_DIR (run_dir/model/: the run's result, in save_pretrained's layout) and PREPROCESSING_DIR
# (run_dir/preprocessing/: the data's, from the first step on) are gicho.rundir's, re-exported.


@dataclass
class Splits:
    """A task's data: map-style datasets, the collate function, and facts the model needs.

    ``valid`` (may be None) is what the Trainer evaluates during training; ``test`` scores the
    final model. ``info`` carries whatever ``build_model`` needs from the data (vocabularies,
    feature statistics, label names).
    """

    train: Any
    valid: Any
    test: Any
    collate: Callable[[list[Any]], dict[str, Any]] | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NeuralSpec:
    """What a neural task declares; :func:`neural_task` does the rest.

    Attributes
    ----------
    build_data : (config) -> Splits, or (config, preprocessing) -> Splits
        The second form gets the preprocessing saved with the run (``load_extras``) when a
        finished run is evaluated or an interrupted one resumed, and None when a run starts, so
        that data are encoded as the model was trained.
    build_model : (config, splits) -> PretrainedModel
        Seeded by the runner (``config.train.seed``) before it is called.
    metrics : (config, info, split) -> () -> StreamingMetric
        A factory of fresh accumulators with ``update(outputs, batch)`` and ``compute()``;
        ``split`` is ``"valid"`` (during training) or ``"test"`` (the final score).
    read_inputs : (config, predictor, strings) -> batch dict
        Validates every input (a clear ``ValueError`` naming the bad one) before any is run.
    write_outputs : (config, predictor, batch, options) -> list of str
        Runs the model (``predictor(batch)``, or its own decoding) and formats each answer.
    model_type : str or type
        The model family: a ``model_type`` of ``gicho.models.MODEL_TYPES``, or the class itself
        (a :class:`gicho.models._pretrained.PretrainedModel`), used to reload the result.
    select : "last" or "best"
        Which checkpoint is the run's result.
    eval_forward : (model, batch) -> outputs, optional
        What evaluation runs per batch when the plain forward is not enough (decoding).
    save_extras / load_extras : (directory, info) -> None / (directory) -> dict, optional
        Preprocessing files beside the weights (vocabularies); ``load_extras`` returns the
        ``info`` that ``read_inputs`` / ``write_outputs`` need.
    after_fit : (config, predictor, splits, ctx, metrics) -> dict, optional
        Figures (and extra metrics) after the final evaluation.
    param_groups : (model, train_config) -> list of dict, optional
        The optimizer's parameter groups (see :mod:`gicho.train.optim`); the Trainer's default
        (no weight decay on 1-D parameters) when None.
    predict_options : names of the options ``predict`` accepts.
    describe : (config) -> (T, E), optional
    """

    build_data: Callable[..., Splits]
    build_model: Callable[[Any, Splits], Any]
    metrics: Callable[[Any, dict[str, Any], str], Callable[[], Any]]
    read_inputs: Callable[[Any, Predictor, Sequence[str]], dict[str, Any]]
    write_outputs: Callable[[Any, Predictor, dict[str, Any], dict[str, Any]], list[str]]
    model_type: str | type
    select: Literal["last", "best"] = "last"
    eval_forward: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None
    save_extras: Callable[[Path, dict[str, Any]], None] | None = None
    load_extras: Callable[[Path], dict[str, Any]] | None = None
    after_fit: Callable[..., dict[str, float]] | None = None
    predict_options: tuple[str, ...] = ()
    param_groups: Callable[[Any, Any], list[dict[str, Any]]] | None = None


@dataclass
class Predictor:
    """A trained model with its task's preprocessing: ``predict(strings) -> strings``.

    Attributes
    ----------
    task : Task
    config : the task's Config
    model : torch.nn.Module, in eval mode
    info : dict, the preprocessing loaded beside the weights (vocabularies, ...)
    """

    task: Task
    config: Any
    model: Any
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> NeuralSpec:
        return self.task.spec


    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Run the model on a batch (no gradients); ``eval_forward`` when the task has one."""
        import torch

        with torch.no_grad():
            forward = self.spec.eval_forward
            return forward(self.model, batch) if forward else self.model(**batch)

    def predict(self, inputs: Sequence[str], **options: Any) -> list[str]:
        """Answer each input string (the format of ``gicho predict``) with one output string."""
        if isinstance(inputs, str) or not inputs:
            raise ValueError(f"argument `inputs` must be a non-empty list of strings; got {inputs!r}")
        unknown = sorted(set(options) - set(self.spec.predict_options))
        if unknown:
            allowed = ", ".join(self.spec.predict_options) or "(none)"
            raise ValueError(f"unknown predict option(s) {unknown}; allowed: {allowed}")
        with torch_threads(config_threads(self.config)):
            batch = self.spec.read_inputs(self.config, self, list(inputs))
            return self.spec.write_outputs(self.config, self, batch, options)


# ----------------------------------------------------------------------------- the runner


def _model_class(spec: NeuralSpec) -> Any:
    from gicho.models import model_class

    return spec.model_type if isinstance(spec.model_type, type) else model_class(spec.model_type)


def score(predictor: Predictor, data: Any, collate: Any, batch_size: int = 256) -> dict[str, float]:
    """The task's metrics of ``predictor.model`` on ``data``: one pass, no gradients."""
    from gicho.train import evaluate_model

    spec = predictor.spec
    scores = evaluate_model(predictor.model, data, spec.metrics(predictor.config, predictor.info, "test"),
                            eval_forward=spec.eval_forward, batch_size=batch_size, collate_fn=collate)
    scores.pop("eval_loss", None)  # the task's metrics are its result; the loss is in the curves
    return scores


def _run(task: Task, config: Any, ctx: RunContext) -> dict[str, float]:
    import torch

    from gicho.train import Trainer, best_checkpoint, latest_checkpoint

    spec: NeuralSpec = task.spec
    saved = None
    if ctx.resume:
        _refuse_finished(task, config, ctx.run_dir)
        saved = _saved_preprocessing(spec, ctx.run_dir)
    splits = _build_data(spec, config, saved)
    if saved is None and is_main_process():
        _save_preprocessing(spec, splits.info, ctx.run_dir)
    torch.manual_seed(config.train.seed)
    model = spec.build_model(config, splits)
    progress = ctx.progress if ctx.progress is not None else config.train.progress
    train_config = dataclasses.replace(config.train, progress=progress)
    trainer = Trainer(model, splits.train, splits.valid, spec.metrics(config, splits.info, "valid"),
                      train_config, run_dir=ctx.run_dir, collate_fn=splits.collate,
                      eval_forward=spec.eval_forward, param_groups=spec.param_groups)
    trainer.fit(resume=ctx.resume)
    chosen = best_checkpoint(ctx.run_dir) if spec.select == "best" else latest_checkpoint(ctx.run_dir)
    result = _model_class(spec).from_pretrained(chosen).to(trainer.device_)
    predictor = Predictor(task, config, result, dict(splits.info))
    if is_main_process():
        save_model_dir(predictor, RunDir(ctx.run_dir).model)
    scores = score(predictor, splits.test, splits.collate, train_config.effective_eval_batch_size)
    if spec.after_fit is not None and is_main_process():
        scores.update(spec.after_fit(config, predictor, splits, ctx, scores) or {})
    return scores


def _refuse_finished(task: Task, config: Any, run_dir: Path) -> None:
    """Raise ValueError when ``run_dir`` has nothing left to train and its result is written.

    Resuming it would only rewrite ``model/`` and ``results.json``; a run killed after its last
    step but before ``model/`` was written is not finished and resumes (to write them).
    """
    from gicho._io import read_json
    from gicho.train import CheckpointError, TrainState
    from gicho.train import checkpoint as ckpt

    if not (RunDir(run_dir).model.is_dir() and RunDir(run_dir).results.is_file()):
        return
    try:
        path = ckpt.latest_checkpoint(run_dir) / ckpt.STATE_NAME
        state = TrainState.from_dict(read_json(path, "trainer state", error=CheckpointError), path)
    except CheckpointError:
        return  # damaged or missing: the Trainer's resume reports it, or falls back
    if state.step >= config.train.max_steps or state.stopped_early:
        why = "stopped early" if state.stopped_early else f"reached train.max_steps={config.train.max_steps}"
        raise ValueError(f"run {run_dir} is already finished: it {why} at step {state.step}, and its "
                         f"model/ and {RESULTS_FILE} are written, so there is nothing to resume. "
                         f"Score it with `gicho evaluate {run_dir}`, or train longer with "
                         f"`gicho train {task.name} --resume {run_dir} --train.max-steps N` (N > {state.step})")


def _saved_preprocessing(spec: NeuralSpec, run_dir: Path) -> dict[str, Any] | None:
    """The preprocessing a resumed run was started with (None for a task that saves none)."""
    import warnings

    if spec.save_extras is None or spec.load_extras is None:
        return None
    for where in (PREPROCESSING_DIR, MODEL_DIR):  # model/: runs finished before gicho saved the first
        directory = run_dir / where
        if directory.is_dir():
            return spec.load_extras(directory)
    warnings.warn(f"{run_dir} has no {PREPROCESSING_DIR}/ (a run started by an older gicho): its "
                  "preprocessing is built again, and a vocabulary trained again may differ from the "
                  "one its checkpoints were trained with", UserWarning, stacklevel=3)
    return None


def _save_preprocessing(spec: NeuralSpec, info: dict[str, Any], run_dir: Path) -> None:
    """Write ``run_dir/preprocessing/`` whole (a temporary directory, then a rename)."""
    import shutil

    from gicho._io import TMP_PREFIX, atomic_write_dir

    if spec.save_extras is None:
        return
    for stale in Path(run_dir).glob(f"{TMP_PREFIX}{PREPROCESSING_DIR}-*"):  # a crashed earlier write's
        shutil.rmtree(stale, ignore_errors=True)
    atomic_write_dir(RunDir(run_dir).preprocessing, lambda tmp: spec.save_extras(tmp, info))


def _build_data(spec: NeuralSpec, config: Any, preprocessing: dict[str, Any] | None) -> Splits:
    import inspect

    if len(inspect.signature(spec.build_data).parameters) >= 2:
        return spec.build_data(config, preprocessing)
    return spec.build_data(config)


def save_model_dir(predictor: Predictor, directory: Path) -> Path:
    """``save_pretrained`` plus the task's preprocessing files, into ``directory``."""
    predictor.model.save_pretrained(directory)
    if predictor.spec.save_extras is not None:
        predictor.spec.save_extras(directory, predictor.info)
    return directory


def load_predictor(task: Task, config: Any, run_dir: str | Path) -> Predictor:
    """The result of a finished run of ``task`` (``run_dir/model/``) with its preprocessing."""
    spec: NeuralSpec = task.spec
    directory = RunDir(run_dir).model
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is missing: {run_dir} is not a finished {task.name!r} run "
                                "(train it to the end, or resume it from its last checkpoint with --resume)")
    model = _model_class(spec).from_pretrained(directory)
    info = spec.load_extras(directory) if spec.load_extras is not None else {}
    return Predictor(task, config, model, info)


def _evaluate(task: Task, config: Any, ctx: RunContext) -> dict[str, float]:
    predictor = load_predictor(task, config, ctx.run_dir)
    splits = _build_data(task.spec, config, predictor.info)
    # the data's facts (which locale each test example is) under the saved preprocessing
    predictor.info = {**splits.info, **predictor.info}
    return score(predictor, splits.test, splits.collate, config.train.effective_eval_batch_size)


def _predict(task: Task, config: Any, ctx: RunContext, inputs: Sequence[str],
             options: dict[str, Any]) -> list[str]:
    return load_predictor(task, config, ctx.run_dir).predict(inputs, **options)


def neural_task(*, name: str, config_cls: type, spec: NeuralSpec, model: str, data: str,
                metrics: tuple[str, ...], description: str = "", tour: dict[str, Any] | None = None,
                quick: dict[str, Any] | None = None,
                describe: Callable[[Any], tuple[str, str]] | None = None) -> Task:
    """A :class:`~gicho.tasks.Task` whose hooks are this module's runner over ``spec``.

    ``config_cls`` has parts ``model``, ``data`` and ``train`` (a TrainConfig, whose
    ``num_threads`` sets torch's CPU threads while a hook runs; 0 = torch's default).
    """
    names = {f.name for f in dataclasses.fields(config_cls)}
    if not {"model", "data", "train"} <= names:
        raise TypeError(f"task {name!r}: config_cls must have the parts model, data and train; "
                        f"got fields {sorted(names)}")
    task: Task

    def threaded(hook: Callable[..., Any]) -> Callable[..., Any]:
        return with_config_threads(lambda config, *args: hook(task, config, *args))

    task = Task(name=name, model=model, data=data, metrics=metrics, config_cls=config_cls,
                run=threaded(_run), evaluate=threaded(_evaluate), predict=threaded(_predict),
                description=description, tour=dict(tour or {}), quick=dict(quick or {}),
                describe=describe, spec=spec)
    return task

