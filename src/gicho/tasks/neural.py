"""Neural tasks: :class:`NeuralTask`, the base class of every one, and the runner it carries.

A neural task is a subclass of :class:`NeuralTask`. Its class attributes say what it is (the
fields of :class:`~gicho.tasks.Task`, plus ``model_type``: the model family to reload, and
``select``: which checkpoint is the result); its Config dataclass has three parts, ``model``,
``data`` and ``train`` (a :class:`gicho.train.TrainConfig`), each validated on its own; its
methods are hooks:

=================  ==========================================================================
``build_data``     the data splits (:class:`Splits`), given the run's saved preprocessing or None
``build_model``    the model (a :class:`gicho.models._pretrained.PretrainedModel`)
``build_metrics``  factories of the streaming metrics, for the validation or the test split
``read_inputs``    ``gicho predict`` strings → a batch (every input checked before any runs)
``write_outputs``  a batch → one answer string per input
``eval_forward``   what evaluation runs per batch (default: ``model(**batch)``)
``save_extras``    preprocessing files beside the weights (default: none) ...
``load_extras``    ... and reading them back (default: ``{}``)
``after_fit``      figures (and extra metrics) after the final score (default: nothing)
``param_groups``   the optimizer's parameter groups (default: the Trainer's)
``describe``       T and E in words for a config (default: the ``model`` and ``data`` fields)
=================  ==========================================================================

The runner is NeuralTask's own ``run``, ``evaluate`` and ``predict``, the same for every task;
each sets torch's CPU threads to ``config.train.num_threads`` once and calls the hooks by name:

* :meth:`NeuralTask.run`: build data and model, save the data's preprocessing into
  ``run_dir/preprocessing/`` before the first step, :meth:`gicho.train.Trainer.fit`, pick the
  result (the last step, or the best evaluation when ``select = "best"``), save it as
  ``run_dir/model/`` (``save_pretrained`` + the task's preprocessing files), score it on the
  test split in one pass (:func:`score`), hand that pass's accumulators to ``after_fit``. A
  resumed run reads its preprocessing back instead of building it again, so its weights and its
  vocabulary always belong together;
* :meth:`NeuralTask.evaluate`: reload ``run_dir/model/`` and score it on the test split again;
* :meth:`NeuralTask.predict`: reload it, read the inputs, answer with strings.

:func:`load_predictor` (``gicho.load(run_dir)``) gives the same reloaded model and its
preprocessing to Python users. ``tests/toy_task.py`` is a complete task in a few lines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from gicho._dist import is_main_process
from gicho.rundir import MODEL_DIR, PREPROCESSING_DIR, RESULTS_FILE, RunDir
from gicho.tasks import RunContext, Task

if TYPE_CHECKING:
    from gicho.train import MetricsFactory, StreamingMetric, TrainConfig

__all__ = ["MODEL_DIR", "PREPROCESSING_DIR", "NeuralTask", "Predictor", "Scores", "Splits", "load_predictor",
           "save_model_dir", "score"]

# MODEL_DIR (run_dir/model/: the run's result, in save_pretrained's layout) and PREPROCESSING_DIR
# (run_dir/preprocessing/: the data's, from the first step on) are gicho.rundir's, re-exported.


@dataclass
class Splits:
    """A task's data: map-style datasets, the collate function, and facts the model needs.

    ``valid`` (may be None) is what the Trainer evaluates during training; ``test`` scores the
    final model. ``collate`` builds every batch unless ``train_collate`` is given, which then
    builds the training batches (a batch-level augmentation such as MixUp, see
    :mod:`gicho.data.augment`; evaluation never sees it). ``info`` carries whatever
    ``build_model`` needs from the data (vocabularies, feature statistics, label names).
    """

    train: Any
    valid: Any
    test: Any
    collate: Callable[[list[Any]], dict[str, Any]] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    train_collate: Callable[[list[Any]], dict[str, Any]] | None = None


@dataclass
class Predictor:
    """A trained model with its task's preprocessing: ``predict(strings) -> strings``.

    Attributes
    ----------
    task : NeuralTask
    config : the task's Config
    model : torch.nn.Module, in eval mode
    info : dict, the preprocessing loaded beside the weights (vocabularies, ...)
    """

    task: NeuralTask
    config: Any
    model: Any
    info: dict[str, Any] = field(default_factory=dict)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Run the model on a batch (no gradients), through the task's ``eval_forward``."""
        import torch

        with torch.no_grad():
            return self.task.eval_forward(self.model, batch)

    def predict(self, inputs: Sequence[str], **options: Any) -> list[str]:
        """Answer each input string (the format of ``gicho predict``) with one output string,
        on ``config.train.num_threads`` torch threads."""
        from gicho.train.config import torch_threads

        if isinstance(inputs, str) or not inputs:
            raise ValueError(f"argument `inputs` must be a non-empty list of strings; got {inputs!r}")
        unknown = sorted(set(options) - set(self.task.predict_options))
        if unknown:
            allowed = ", ".join(self.task.predict_options) or "(none)"
            raise ValueError(f"unknown predict option(s) {unknown}; allowed: {allowed}")
        with torch_threads(self.config.train.num_threads):
            batch = self.task.read_inputs(self.config, self, list(inputs))
            return self.task.write_outputs(self.config, self, batch, options)


class Scores(NamedTuple):
    """What :func:`score` returns: the task's metrics on the test split, and the accumulators of
    that one pass (a confusion matrix's counts, say), which ``after_fit`` draws from."""

    values: dict[str, float]
    accumulators: list[StreamingMetric]


class NeuralTask(Task):
    """The base class of a neural task: subclass it, set the class attributes, define the hooks.

    A subclass takes no constructor arguments: ``register(MyTask())``. The five hooks without a
    default (``build_data``, ``build_model``, ``build_metrics``, ``read_inputs``,
    ``write_outputs``) must be defined; the others do nothing, or the plain thing, unless
    overridden. See the module docstring for the runner that calls them.

    Attributes
    ----------
    name, model, data, metrics, config_cls, description, tour, quick, predict_options
        As for every :class:`~gicho.tasks.Task`; ``config_cls`` has the parts ``model``,
        ``data`` and ``train`` (a TrainConfig).
    model_type : str or type
        The model family: a ``model_type`` of ``gicho.models.MODEL_TYPES``, or the class itself
        (a :class:`gicho.models._pretrained.PretrainedModel`), used to reload the result.
    select : "last" or "best"
        Which checkpoint is the run's result: the last step's, or the best evaluation's.
    """

    model_type: str | type
    select: Literal["last", "best"] = "last"

    def __init__(self) -> None:
        """Check the class attributes (a NeuralTask's fields are its class's)."""
        cls = type(self)
        missing = [a for a in ("name", "model", "data", "metrics", "config_cls", "model_type") if not hasattr(cls, a)]
        if missing:
            raise TypeError(f"{cls.__name__} must set the class attribute(s) {', '.join(missing)}")
        self.metrics = tuple(self.metrics)
        self._check_fields()
        names = {f.name for f in dataclasses.fields(self.config_cls)}
        if not {"model", "data", "train"} <= names:
            raise TypeError(f"task {self.name!r}: config_cls must have the parts model, data and train; "
                            f"got fields {sorted(names)}")
        if self.select not in ("last", "best"):
            raise ValueError(f"task {self.name!r}: select must be 'last' or 'best'; got {self.select!r}")
        if self._saves_preprocessing() and not _overrides(self, "load_extras"):
            raise TypeError(f"{cls.__name__} defines save_extras but not load_extras: the files it saves "
                            "could never be read back")

    # ------------------------------------------------------------------ hooks every task defines

    def build_data(self, config: Any, preprocessing: dict[str, Any] | None = None) -> Splits:
        """The data splits. ``preprocessing`` is what ``load_extras`` read back from the run
        (``run_dir/preprocessing/`` when a run resumes, ``model/`` when it is evaluated), so that
        data are encoded as the model was trained; None when a run starts."""
        raise NotImplementedError(f"{type(self).__name__} must define build_data(config, preprocessing=None)")

    def build_model(self, config: Any, splits: Splits) -> Any:
        """The model to train (seeded by the runner with ``config.train.seed`` before the call)."""
        raise NotImplementedError(f"{type(self).__name__} must define build_model(config, splits)")

    def build_metrics(self, config: Any, info: dict[str, Any],
                      split: Literal["valid", "test"]) -> MetricsFactory | Sequence[MetricsFactory]:
        """A factory (or several) of fresh streaming accumulators (``update(outputs, batch)``,
        ``compute()``, see :class:`gicho.train.StreamingMetric`), for ``split``: ``"valid"``
        (evaluations during training) or ``"test"`` (the final score, whose accumulators
        ``after_fit`` receives)."""
        raise NotImplementedError(f"{type(self).__name__} must define build_metrics(config, info, split)")

    def read_inputs(self, config: Any, predictor: Predictor, texts: list[str]) -> dict[str, Any]:
        """``gicho predict`` input strings → a batch; validates every input (a ``ValueError``
        naming the bad one) before any is run."""
        raise NotImplementedError(f"{type(self).__name__} must define read_inputs(config, predictor, texts)")

    def write_outputs(self, config: Any, predictor: Predictor, batch: dict[str, Any],
                      options: dict[str, Any]) -> list[str]:
        """Run the model (``predictor(batch)``, or its own decoding) and format each answer."""
        raise NotImplementedError(f"{type(self).__name__} must define write_outputs(config, predictor, batch, "
                                  "options)")

    # ------------------------------------------------------------------ hooks with a default

    def eval_forward(self, model: Any, batch: dict[str, Any]) -> Any:
        """What evaluation (and :class:`Predictor`) runs per batch: ``model(**batch)``; override
        when the metrics need more (a seq2seq model's decoding)."""
        return model(**batch)

    def save_extras(self, directory: Path, info: dict[str, Any]) -> None:
        """Write the preprocessing files (vocabularies, tokenizer) that ``info`` holds into
        ``directory``: ``run_dir/preprocessing/`` before the first step, and ``model/`` beside
        the weights. A task that defines it defines :meth:`load_extras` too. Default: none."""

    def load_extras(self, directory: Path) -> dict[str, Any]:
        """Read back what :meth:`save_extras` wrote (or what ``save_pretrained`` did): the
        ``info`` that ``read_inputs`` and ``write_outputs`` need. Default: ``{}``."""
        return {}

    def after_fit(self, config: Any, predictor: Predictor, splits: Splits, ctx: RunContext,
                  scores: dict[str, float], accumulators: Sequence[StreamingMetric]) -> dict[str, float]:
        """After the final score (on the main process): figures in ``ctx.plots_dir``, and extra
        metrics to add to ``scores``. ``accumulators`` are that score's (see :func:`score`), in
        the order of ``build_metrics(config, info, "test")``. Default: nothing."""
        return {}

    def param_groups(self, model: Any, train_config: TrainConfig) -> list[dict[str, Any]]:
        """The optimizer's parameter groups (see :mod:`gicho.train.optim`). Default: the
        Trainer's, :func:`gicho.train.default_param_groups` (no weight decay on 1-D tensors)."""
        from gicho.train import default_param_groups

        return default_param_groups(model, train_config)

    def describe(self, config: Any) -> tuple[str, str]:
        """T and E in words for ``config``. Default: the ``model`` and ``data`` fields."""
        return self.model, self.data

    # ------------------------------------------------------------------ the runner

    def run(self, config: Any, ctx: RunContext) -> dict[str, float]:
        """Train into ``ctx.run_dir``, save the result as ``model/``, score it on the test split."""
        import torch

        from gicho.train import Trainer, best_checkpoint, latest_checkpoint
        from gicho.train.config import torch_threads

        with torch_threads(config.train.num_threads):
            saved = None
            if ctx.resume:
                _refuse_finished(self, config, ctx.run_dir)
                saved = _saved_preprocessing(self, ctx.run_dir)
            splits = self.build_data(config, saved)
            if saved is None and is_main_process():
                _save_preprocessing(self, splits.info, ctx.run_dir)
            torch.manual_seed(config.train.seed)
            model = self.build_model(config, splits)
            progress = ctx.progress if ctx.progress is not None else config.train.progress
            train_config = dataclasses.replace(config.train, progress=progress)
            trainer = Trainer(model, splits.train, splits.valid, self.build_metrics(config, splits.info, "valid"),
                              train_config, run_dir=ctx.run_dir, collate_fn=splits.collate,
                              train_collate_fn=splits.train_collate,
                              eval_forward=self.eval_forward, param_groups=self.param_groups)
            trainer.fit(resume=ctx.resume)
            chosen = best_checkpoint(ctx.run_dir) if self.select == "best" else latest_checkpoint(ctx.run_dir)
            result = self.model_class().from_pretrained(chosen).to(trainer.device_)
            predictor = Predictor(self, config, result, dict(splits.info))
            if is_main_process():
                save_model_dir(predictor, RunDir(ctx.run_dir).model)
            scores, accumulators = score(predictor, splits.test, splits.collate,
                                         train_config.effective_eval_batch_size)
            if is_main_process():
                scores.update(self.after_fit(config, predictor, splits, ctx, scores, accumulators) or {})
            return scores

    def evaluate(self, config: Any, ctx: RunContext) -> dict[str, float]:
        """Reload ``ctx.run_dir/model/`` and score it on the test split again."""
        from gicho.train.config import torch_threads

        with torch_threads(config.train.num_threads):
            predictor = load_predictor(self, config, ctx.run_dir)
            splits = self.build_data(config, predictor.info)
            # the data's facts (which locale each test example is) under the saved preprocessing
            predictor.info = {**splits.info, **predictor.info}
            return score(predictor, splits.test, splits.collate, config.train.effective_eval_batch_size).values

    def predict(self, config: Any, ctx: RunContext, inputs: Sequence[str],
                options: dict[str, Any]) -> list[str]:
        """Reload ``ctx.run_dir/model/`` and answer each input (:meth:`Predictor.predict`, which
        sets the threads)."""
        return load_predictor(self, config, ctx.run_dir).predict(inputs, **options)

    def model_class(self) -> Any:
        """The class that reloads this task's model (from ``model_type``)."""
        from gicho.models import model_class

        return self.model_type if isinstance(self.model_type, type) else model_class(self.model_type)

    def _saves_preprocessing(self) -> bool:
        return _overrides(self, "save_extras")


def _overrides(task: NeuralTask, hook: str) -> bool:
    """Whether ``task``'s class defines ``hook`` itself (not NeuralTask's default)."""
    return getattr(type(task), hook) is not getattr(NeuralTask, hook)


def score(predictor: Predictor, data: Any, collate: Any = None, batch_size: int = 256) -> Scores:
    """The task's test metrics of ``predictor.model`` on ``data``: one pass, no gradients.

    Returns the numbers (without ``eval_loss``: the task's metrics are its result, the loss is
    in the curves) and the accumulators that computed them.
    """
    from gicho.train import evaluate_model
    from gicho.train.evaluation import make_metrics

    task = predictor.task
    accumulators = make_metrics(task.build_metrics(predictor.config, predictor.info, "test"))
    values = evaluate_model(predictor.model, data, [lambda m=m: m for m in accumulators],
                            eval_forward=task.eval_forward, batch_size=batch_size, collate_fn=collate)
    values.pop("eval_loss", None)
    return Scores(values, accumulators)


def _refuse_finished(task: NeuralTask, config: Any, run_dir: Path) -> None:
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


def _saved_preprocessing(task: NeuralTask, run_dir: Path) -> dict[str, Any] | None:
    """The preprocessing a resumed run was started with (None for a task that saves none)."""
    import warnings

    if not task._saves_preprocessing():
        return None
    for where in (PREPROCESSING_DIR, MODEL_DIR):  # model/: runs finished before gicho saved the first
        directory = run_dir / where
        if directory.is_dir():
            return task.load_extras(directory)
    warnings.warn(f"{run_dir} has no {PREPROCESSING_DIR}/ (a run started by an older gicho): its "
                  "preprocessing is built again, and a vocabulary trained again may differ from the "
                  "one its checkpoints were trained with", UserWarning, stacklevel=3)
    return None


def _save_preprocessing(task: NeuralTask, info: dict[str, Any], run_dir: Path) -> None:
    """Write ``run_dir/preprocessing/`` whole (a temporary directory, then a rename)."""
    import shutil

    from gicho._io import TMP_PREFIX, atomic_write_dir

    if not task._saves_preprocessing():
        return
    for stale in Path(run_dir).glob(f"{TMP_PREFIX}{PREPROCESSING_DIR}-*"):  # a crashed earlier write's
        shutil.rmtree(stale, ignore_errors=True)
    atomic_write_dir(RunDir(run_dir).preprocessing, lambda tmp: task.save_extras(tmp, info))


def save_model_dir(predictor: Predictor, directory: Path) -> Path:
    """``save_pretrained`` plus the task's preprocessing files, into ``directory``."""
    predictor.model.save_pretrained(directory)
    predictor.task.save_extras(directory, predictor.info)
    return directory


def load_predictor(task: NeuralTask, config: Any, run_dir: str | Path) -> Predictor:
    """The result of a finished run of ``task`` (``run_dir/model/``) with its preprocessing."""
    directory = RunDir(run_dir).model
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is missing: {run_dir} is not a finished {task.name!r} run "
                                "(train it to the end, or resume it from its last checkpoint with --resume)")
    model = task.model_class().from_pretrained(directory)
    return Predictor(task, config, model, task.load_extras(directory))
