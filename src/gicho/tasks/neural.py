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
``encode_inputs``  native inputs (arrays, texts, images) → a batch, every input checked
``predict_batch``  a batch → one native answer per input (a label, a value, a date)
``parse_inputs``   ``gicho predict`` strings → native inputs (default: the strings themselves)
``format_outputs`` a batch → the lines ``gicho predict`` prints, with their fields (default: ``str``)
``probabilities``  a batch → class probabilities (N, C) (classifiers; default: none)
``ranked``         a batch → the top k answers with their probabilities (default: from ``probabilities``)
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
preprocessing to Python users as a :class:`Predictor`, which speaks Python, not the command
line: ``predict(X)`` takes what the task's data naturally is (arrays, texts, images) and returns
an array of answers; ``predict_proba(X)``, ``top_k(X, k)`` and ``classes_`` as scikit-learn and
Hugging Face taught. The command line's strings are parsed into the same native inputs
(``parse_inputs``) and the answers formatted (``format_outputs``) at the CLI's boundary only.
``tests/toy_task.py`` is a complete task in a few lines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
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


# Inputs run through the model this many at a time (predict, predict_proba, the CLI's progress).
PREDICT_BATCH_SIZE = 64


@dataclass
class Predictor:
    """A trained model with its task's preprocessing, called the way Python users expect.

    ``predict(X)`` takes the task's native inputs (``task.input_kind`` says which: arrays of
    rows, texts, text pairs, PIL images or image paths) and returns a NumPy array with one answer
    per input: a label name, a value, an ISO date. Classifiers also give ``predict_proba(X)``
    (N, C), rows summing to 1, columns in the order of ``classes_``, and ``top_k(X, k)``.
    ``predict_strings`` is ``gicho predict``'s own path: command-line strings in, printed answers
    out. Inputs run ``batch_size`` at a time on ``config.train.num_threads`` torch threads.

    Attributes
    ----------
    task : NeuralTask
    config : the task's Config
    model : torch.nn.Module, in eval mode
    info : dict, the preprocessing loaded beside the weights (vocabularies, ...)
    batch_size : int
    """

    task: NeuralTask
    config: Any
    model: Any
    info: dict[str, Any] = field(default_factory=dict)
    batch_size: int = PREDICT_BATCH_SIZE

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Run the model on a batch (no gradients), through the task's ``eval_forward``."""
        import torch

        with torch.no_grad():
            return self.task.eval_forward(self.model, batch)

    def __repr__(self) -> str:
        return f"<Predictor of task {self.task.name!r}: {type(self.model).__name__}; inputs: {self.task.input_kind}>"

    # ------------------------------------------------------------------ the Python API
    @property
    def classes_(self) -> Any:
        """The label names, in the order of ``predict_proba``'s columns (classifiers only: for any other
        task an ``AttributeError``, so that ``hasattr(predictor, "classes_")`` says whether it classifies)."""
        import numpy as np

        try:
            names = self.task.class_names(self.config, {**self.info, "model": self.model})
        except ValueError as exc:
            raise AttributeError(str(exc)) from None
        return np.asarray(list(names), dtype=object)

    def predict(self, inputs: Any, **options: Any) -> Any:
        """One answer per input, as a NumPy array (label names, values or ISO dates; see the task)."""
        import numpy as np

        options = self._options(options)
        answers: list[Any] = []
        with self._threads():
            for batch in self._batches(inputs):
                answers.extend(self.task.predict_batch(self.config, self, batch, options))
        return _answer_array(answers, np)

    def predict_proba(self, inputs: Any) -> Any:
        """Class probabilities (N, C) float64, each row summing to 1; columns follow ``classes_``."""
        import numpy as np

        with self._threads():
            parts = [np.asarray(self.task.probabilities(self.config, self, batch).double().cpu())
                     for batch in self._batches(inputs)]
        return np.concatenate(parts)

    def ood_score(self, inputs: Any) -> Any:
        """Out-of-distribution p-values (N,) float64: the share of held-out inputs whose features lie
        at least as far from every class as each input's (:mod:`gicho.tasks._ood`); small means
        unlike the training data (``gicho predict`` flags p < 0.01). Classifiers trained by this
        gicho only (the calibration is saved with the model)."""
        import numpy as np

        from gicho.tasks._ood import forward_with_features

        calibration = self.info.get("ood")
        if calibration is None:
            raise ValueError(f"this {self.task.name!r} model has no out-of-distribution calibration (ood.safetensors "
                             "beside its weights): only classifiers have one, and runs trained before gicho saved it have none")
        with self._threads():
            parts = [calibration.p_values(forward_with_features(self, batch)[1], batch).numpy()
                     for batch in self._batches(inputs)]
        return np.concatenate(parts)

    def top_k(self, inputs: Any, k: int = 5) -> list[Any]:
        """The ``k`` most probable answers of each input, as ``[(label, probability), ...]`` lists, most
        probable first (a task with several answers per input, such as fill-mask, nests one list
        per answer)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"argument `k` must be an integer >= 1; got {k!r}")
        out: list[Any] = []
        with self._threads():
            for batch in self._batches(inputs):
                out.extend(self.task.ranked(self.config, self, batch, k))
        return out

    # ------------------------------------------------------------------ the command line's path
    def predict_strings(self, texts: Sequence[str], *, on_batch: Callable[[int], None] | None = None,
                        **options: Any) -> list[str]:
        """Answer each input string (the format of ``gicho predict``) with one output string.

        Every string is parsed (and checked) before any is run; ``on_batch(n)`` is called after
        each batch of n inputs (the CLI's progress bar).
        """
        return [record["output"] for record in self.predict_records(texts, on_batch=on_batch, **options)]

    def predict_records(self, texts: Sequence[str], *, on_batch: Callable[[int], None] | None = None,
                        **options: Any) -> list[dict[str, Any]]:
        """:meth:`predict_strings` with the answers' fields: one dict per input, ``"output"`` (the
        printed line) and what the task adds (a classifier's ``label``, ``probability`` and
        ``top_k``; a date's ``date``; a value), for ``gicho predict --format json|csv``."""
        if isinstance(texts, str) or not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"argument `texts` must be a non-empty list of strings; got {texts!r:.200}")
        options = self._options(options)
        records: list[dict[str, Any]] = []
        with self._threads():
            inputs = self.task.parse_inputs(self.config, self, list(texts))
            for batch, n in self._batches(inputs, with_sizes=True):
                outputs = self.task.format_outputs(self.config, self, batch, options)
                records.extend(out if isinstance(out, dict) else {"output": out} for out in outputs)
                options.pop("attention", None)  # a map of the first input only, drawn with the first batch
                if on_batch is not None:
                    on_batch(n)
        return records

    # ------------------------------------------------------------------ helpers
    def _options(self, options: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(self.task.predict_options))
        if unknown:
            allowed = ", ".join(self.task.predict_options) or "(none)"
            raise ValueError(f"unknown predict option(s) {unknown}; allowed: {allowed}")
        return dict(options)

    def _threads(self) -> Any:
        from gicho.train.config import torch_threads

        return torch_threads(self.config.train.num_threads)

    def _batches(self, inputs: Any, with_sizes: bool = False) -> Iterator[Any]:
        """The inputs ``batch_size`` at a time, each encoded into a model batch."""
        from gicho.tasks._inputs import check_container

        check_container(inputs, self.task.input_kind)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"argument `batch_size` must be an integer >= 1; got {self.batch_size!r}")
        for start in range(0, len(inputs), self.batch_size):
            chunk = inputs[start:start + self.batch_size]
            try:
                batch = self.task.encode_inputs(self.config, self, chunk)
            except ValueError as exc:
                if start == 0:
                    raise
                raise ValueError(f"{exc} (counting from input {start}, the first of that batch)") from None
            yield (batch, len(chunk)) if with_sizes else batch


def top_classes(probs: Any, names: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
    """Each row's ``k`` most probable ``(name, probability)``, most probable first, of probabilities (N, C)."""
    top = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return [[(names[i], p) for p, i in zip(ps, ix, strict=True)]
            for ps, ix in zip(top.values.tolist(), top.indices.tolist(), strict=True)]


def _answer_array(answers: list[Any], np: Any) -> Any:
    """Answers as a 1-D array: numbers as numbers, anything else (names, dates, lists) as objects."""
    if answers and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in answers):
        return np.asarray(answers, dtype=np.float64)
    out = np.empty(len(answers), dtype=object)
    out[:] = answers
    return out


class Scores(NamedTuple):
    """What :func:`score` returns: the task's metrics on the test split, and the accumulators of
    that one pass (a confusion matrix's counts, say), which ``after_fit`` draws from."""

    values: dict[str, float]
    accumulators: list[StreamingMetric]


class NeuralTask(Task):
    """The base class of a neural task: subclass it, set the class attributes, define the hooks.

    A subclass takes no constructor arguments: ``register(MyTask())``. The five hooks without a
    default (``build_data``, ``build_model``, ``build_metrics``, ``encode_inputs``,
    ``predict_batch``) must be defined; the others do nothing, or the plain thing, unless
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
    input_kind : str
        What ``Predictor.predict`` accepts, in words ("a NumPy array (N, 64) of pixels in [0, 16]"):
        every error about a wrong input says it.
    """

    model_type: str | type
    select: Literal["last", "best"] = "last"
    input_kind: str = "the task's inputs"  # what Predictor.predict accepts, in words (for errors)

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
        renamed = [hook for hook in ("read_inputs", "write_outputs") if hasattr(cls, hook)]
        if renamed:  # the string hooks gicho had before its predictor took native inputs
            raise TypeError(f"{cls.__name__} defines {' and '.join(renamed)}, hooks that gicho replaced: define "
                            "encode_inputs (native inputs → batch) and predict_batch (batch → answers), and "
                            "parse_inputs / format_outputs for the command line's strings")
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

    def encode_inputs(self, config: Any, predictor: Predictor, inputs: Any) -> dict[str, Any]:
        """Native inputs (a slice of what ``Predictor.predict`` was given: arrays, texts, images, as
        ``input_kind`` says) → a batch; checks every input (a ``ValueError`` naming the bad one and
        what the task accepts, see :mod:`gicho.tasks._inputs`)."""
        raise NotImplementedError(f"{type(self).__name__} must define encode_inputs(config, predictor, inputs)")

    def predict_batch(self, config: Any, predictor: Predictor, batch: dict[str, Any],
                      options: dict[str, Any]) -> list[Any]:
        """Run the model (``predictor(batch)``, or its own decoding) and give one native answer per
        input: a label name, a number, a date string."""
        raise NotImplementedError(f"{type(self).__name__} must define predict_batch(config, predictor, batch, "
                                  "options)")

    # ------------------------------------------------------------------ hooks with a default

    def parse_inputs(self, config: Any, predictor: Predictor, texts: list[str]) -> Any:
        """``gicho predict``'s strings → native inputs for :meth:`encode_inputs`; checks every one
        before any runs. Default: the strings themselves (a text task's inputs are strings)."""
        return texts

    def format_outputs(self, config: Any, predictor: Predictor, batch: dict[str, Any],
                       options: dict[str, Any]) -> list[str] | list[dict[str, Any]]:
        """A batch → what ``gicho predict`` prints, one per input: a string, or a dict with the
        string as ``"output"`` and the answer's fields beside it (``--format json`` shows them).
        It runs the model, so that a line can say more than the answer (probabilities, a
        confidence). Default: ``str`` of each of :meth:`predict_batch`'s answers."""
        return [str(a) for a in self.predict_batch(config, predictor, batch, options)]

    def probabilities(self, config: Any, predictor: Predictor, batch: dict[str, Any]) -> Any:
        """Class probabilities (N, C), a torch tensor. Default: none (a task that is not a classifier)."""
        raise ValueError(f"task {self.name!r} does not classify into classes: it has no probabilities "
                         "(predict_proba and top_k are for classifiers)")

    def ranked(self, config: Any, predictor: Predictor, batch: dict[str, Any], k: int) -> list[Any]:
        """The ``k`` most probable answers per input, ``[(label, probability), ...]``. Default: from
        :meth:`probabilities` and :meth:`class_names`."""
        names = self.class_names(config, {**predictor.info, "model": predictor.model})
        return top_classes(self.probabilities(config, predictor, batch), names, k)

    def class_names(self, config: Any, info: dict[str, Any]) -> Sequence[str]:
        """The names of the classes, in the order of the model's outputs (``info["model"]`` is the
        model when a predictor asks). Default: none (not a classifier)."""
        raise ValueError(f"task {self.name!r} does not classify into classes: it has no class names")

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
        ``info`` that ``encode_inputs`` and ``predict_batch`` need. Default: ``{}``."""
        return {}

    def after_fit(self, config: Any, predictor: Predictor, splits: Splits, ctx: RunContext,
                  scores: dict[str, float], accumulators: Sequence[StreamingMetric]) -> dict[str, float]:
        """After the final score (on the main process): figures in ``ctx.plots_dir``, and extra
        metrics to add to ``scores``. ``accumulators`` are that score's (see :func:`score`), in
        the order of ``build_metrics(config, info, "test")``. Default: nothing."""
        return {}

    def calibrate(self, config: Any, predictor: Predictor, splits: Splits, directory: Path, batch_size: int) -> None:
        """After ``model/`` is saved (main process): write what tells the model's inputs apart from
        the data it knows into ``directory`` (a classifier's out-of-distribution calibration,
        :mod:`gicho.tasks._ood`). Default: nothing."""

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
                self.calibrate(config, predictor, splits, RunDir(ctx.run_dir).model,
                               train_config.effective_eval_batch_size)
            scores, accumulators = score(predictor, splits.test, splits.collate,
                                         train_config.effective_eval_batch_size)
            if is_main_process():
                scores.update(self.after_fit(config, predictor, splits, ctx, scores, accumulators) or {})
            return scores

    def evaluate(self, config: Any, ctx: RunContext) -> dict[str, float]:
        """Reload ``ctx.run_dir/model/`` and score it on the test split again."""
        from gicho.train.config import torch_threads

        with torch_threads(config.train.num_threads):
            predictor = load_predictor(self, config, ctx.run_dir, ctx.precision)
            splits = self.build_data(config, predictor.info)
            # the data's facts (which locale each test example is) under the saved preprocessing
            predictor.info = {**splits.info, **predictor.info}
            return score(predictor, splits.test, splits.collate, config.train.effective_eval_batch_size).values

    def predict(self, config: Any, ctx: RunContext, inputs: Sequence[str],
                options: dict[str, Any]) -> list[str]:
        """Reload ``ctx.run_dir/model/`` and answer each input string (:meth:`Predictor.predict_strings`,
        which sets the threads)."""
        return load_predictor(self, config, ctx.run_dir).predict_strings(list(inputs), **options)

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


def load_predictor(task: NeuralTask, config: Any, run_dir: str | Path, precision: str = "fp32") -> Predictor:
    """The result of a finished run of ``task`` (``run_dir/model/``) with its preprocessing, its model
    in ``precision`` (``"fp32"``; ``"bf16"`` or ``"int8"`` for a BERT or a ViT:
    :mod:`gicho.models.precision`)."""
    from gicho.models.precision import check_precision

    check_precision(precision)
    directory = RunDir(run_dir).model
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is missing: {run_dir} is not a finished {task.name!r} run "
                                "(train it to the end, or resume it from its last checkpoint with --resume)")
    model = (task.model_class().from_pretrained(directory) if precision == "fp32"
             else task.model_class().from_pretrained(directory, precision=precision))
    info = task.load_extras(directory)
    from gicho.tasks._ood import OODCalibration

    calibration = OODCalibration.load(directory)  # a classifier's, when the run saved one
    if calibration is not None:
        info["ood"] = calibration
    return Predictor(task, config, model, info)
