"""Streaming accumulators over torch tensors: what :class:`gicho.train.Trainer` and
:func:`gicho.train.evaluate_model` score a model with.

Each accumulator is a :class:`gicho.train.StreamingMetric`: ``update(outputs, batch)`` once per
batch (the model's outputs and the batch, on the device), ``compute()`` once at the end. Each
class is its own factory (``metrics=ClassificationAccuracy``); give other arguments with
``functools.partial`` or a lambda. Sums stay on the model's device, in integer or float64
arithmetic, until :meth:`compute`, so an evaluation synchronises with the host once.

* :class:`ClassificationAccuracy` — accuracy of arg-max logits (labels of -100 ignored);
* :class:`ConfusionMatrix` — the (true, predicted) counts behind it, with per-class accuracy;
* :class:`RegressionScores` — MAE, RMSE and R², streamed exactly;
* :class:`MaskedLMScores` — masked-token accuracy and perplexity of a masked language model;
* :class:`SequenceMatchScores` — exact match and character accuracy of decoded strings.

Their NumPy siblings for data seen in chunks, without a model, are :class:`gicho.metrics.AccuracyMetric`
and :class:`gicho.metrics.RegressionMetrics`. This module imports torch: ``gicho.metrics`` loads it
on first use of one of these names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from gicho._validation import IGNORE_INDEX  # labels never scored, defined once there
from gicho.metrics._classification import score_strings

__all__ = ["ClassificationAccuracy", "ConfusionMatrix", "MaskedLMScores", "RegressionScores", "SequenceMatchScores"]


def _get(container: Any, key: str, where: str, owner: str) -> torch.Tensor:
    value = container.get(key) if isinstance(container, Mapping) else getattr(container, key, None)
    if value is None:
        keys = sorted(container) if isinstance(container, Mapping) else []
        raise KeyError(f"{owner} needs {where}[{key!r}]; the {where} has keys {keys}")
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{owner}: {where}[{key!r}] must be a tensor; got {type(value).__name__}")
    return value.detach()


def _float64(t: torch.Tensor) -> torch.Tensor:
    # MPS has no float64: accumulate on the CPU there.
    device = torch.device("cpu") if t.device.type == "mps" else t.device
    return t.to(device=device, dtype=torch.float64)


class ClassificationAccuracy:
    """Fraction of labelled items whose arg-max logit is the label; labels of -100 are ignored.

    Works for sequence classification (logits (B, C), labels (B,)) and token classification
    (logits (B, T, C), labels (B, T)).

    Parameters
    ----------
    logits_key : str
        Key of the logits in the model's outputs.
    labels_key : str
        Key of the labels in the batch.
    name : str
        Name of the reported metric.
    ignore_index : int
        Label value that marks an item left out (Hugging Face's -100).
    """

    def __init__(self, logits_key: str = "logits", labels_key: str = "labels", *,
                 name: str = "accuracy", ignore_index: int = IGNORE_INDEX) -> None:
        self.logits_key = logits_key
        self.labels_key = labels_key
        self.name = name
        self.ignore_index = ignore_index
        self.correct: torch.Tensor | int = 0
        self.total: torch.Tensor | int = 0

    def update(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> None:
        """Add one batch: ``outputs[logits_key]`` (..., C) against ``batch[labels_key]`` (...)."""
        logits = _get(outputs, self.logits_key, "outputs", "ClassificationAccuracy")
        labels = _get(batch, self.labels_key, "batch", "ClassificationAccuracy")
        if logits.shape[:-1] != labels.shape:
            raise ValueError(f"ClassificationAccuracy: logits of shape {tuple(logits.shape)} do not "
                             f"match labels of shape {tuple(labels.shape)}; expected logits of "
                             f"shape {(*labels.shape, 'n_classes')}")
        keep = labels != self.ignore_index
        self.correct = self.correct + ((logits.argmax(-1) == labels) & keep).sum()
        self.total = self.total + keep.sum()

    def compute(self) -> dict[str, float]:
        """``{name: correct / labelled}``.

        Raises
        ------
        ValueError
            When no labelled item was seen.
        """
        total = int(self.total)
        if total == 0:
            raise ValueError("ClassificationAccuracy saw no labelled item (every label was "
                             f"{self.ignore_index}, or update was never called)")
        return {self.name: int(self.correct) / total}


class ConfusionMatrix:
    """Counts of (true class, predicted class) of arg-max logits, with accuracy and per-class accuracy.

    ``counts[i, j]`` is the number of items of class ``i`` predicted as ``j`` (scikit-learn's
    ``confusion_matrix`` layout); labels equal to ``ignore_index`` are left out, as in
    :class:`ClassificationAccuracy`, whose accuracy it reports too. Works for sequence
    classification (logits (B, C), labels (B,)) and token classification (logits (B, T, C),
    labels (B, T)). The counts stay on the device until :meth:`compute` or :meth:`matrix`.

    Parameters
    ----------
    classes : int or sequence of str
        The number of classes, or their names (which name the per-class metrics).
    per_class : bool
        Also report ``<name>_<class>``: the accuracy on the items of each class (its recall;
        NaN for a class with no item).
    logits_key, labels_key : str
        Keys of the logits in the model's outputs and of the labels in the batch.
    name : str
        Name of the reported accuracy.
    ignore_index : int
        Label value that marks an item left out (Hugging Face's -100).
    """

    def __init__(self, classes: int | Sequence[str], *, per_class: bool = False, logits_key: str = "logits",
                 labels_key: str = "labels", name: str = "accuracy", ignore_index: int = IGNORE_INDEX) -> None:
        if isinstance(classes, int) and not isinstance(classes, bool):
            names = [str(k) for k in range(classes)]
        elif isinstance(classes, Sequence) and not isinstance(classes, str):
            names = [str(c) for c in classes]
        else:
            raise TypeError(f"argument `classes` must be a number of classes or a sequence of class names; "
                            f"got {type(classes).__name__}")
        if len(names) < 1:
            raise ValueError(f"argument `classes` must name at least one class; got {classes!r}")
        self.names, self.per_class = names, per_class
        self.logits_key, self.labels_key, self.name = logits_key, labels_key, name
        self.ignore_index = ignore_index
        self.counts: torch.Tensor | None = None  # (C, C) int64: (true, predicted)
        self.out_of_range: torch.Tensor | int = 0  # labels outside [0, C) (not ignore_index)

    def update(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> None:
        """Add one batch: ``outputs[logits_key]`` (..., C) against ``batch[labels_key]`` (...)."""
        logits = _get(outputs, self.logits_key, "outputs", "ConfusionMatrix")
        labels = _get(batch, self.labels_key, "batch", "ConfusionMatrix").to(logits.device)
        c = len(self.names)
        if logits.shape[:-1] != labels.shape or logits.shape[-1] != c:
            raise ValueError(f"ConfusionMatrix: logits of shape {tuple(logits.shape)} do not match labels of "
                             f"shape {tuple(labels.shape)} and {c} classes; expected logits of shape "
                             f"{(*labels.shape, c)}")
        labels = labels.reshape(-1).long()
        predicted = logits.argmax(-1).reshape(-1)
        scored = labels != self.ignore_index
        valid = scored & (labels >= 0) & (labels < c)
        cell = torch.where(valid, labels * c + predicted, torch.zeros_like(labels))  # row-major (true, pred)
        if self.counts is None:
            self.counts = torch.zeros(c, c, dtype=torch.long, device=logits.device)
        # adds 1 per valid item, 0 per left-out one: no host synchronisation (a bincount's size would need one)
        self.counts.view(-1).index_add_(0, cell, valid.long())
        self.out_of_range = self.out_of_range + (scored & ~valid).sum()

    def matrix(self) -> Any:
        """The counts as a NumPy int64 array of shape (C, C): rows true classes, columns predicted.

        Raises
        ------
        ValueError
            When a label outside [0, C) (and not ``ignore_index``) was seen.
        """
        bad = int(self.out_of_range)
        if bad:
            raise ValueError(f"ConfusionMatrix saw {bad} label(s) outside [0, {len(self.names)}) that are not "
                             f"ignore_index={self.ignore_index}; labels must be class indices")
        c = len(self.names)
        counts = self.counts if self.counts is not None else torch.zeros(c, c, dtype=torch.long)
        return counts.cpu().numpy()

    def compute(self) -> dict[str, float]:
        """``{name: correct / labelled}``, and ``{name}_{class}`` for each class with ``per_class``.

        Raises
        ------
        ValueError
            When no labelled item was seen, or a label outside [0, C) was.
        """
        counts = self.matrix()
        total = int(counts.sum())
        if total == 0:
            raise ValueError("ConfusionMatrix saw no labelled item (every label was "
                             f"{self.ignore_index}, or update was never called)")
        out = {self.name: int(counts.trace()) / total}
        if self.per_class:
            for k, class_name in enumerate(self.names):
                row = int(counts[k].sum())
                out[f"{self.name}_{class_name}"] = int(counts[k, k]) / row if row else float("nan")
        return out


class RegressionScores:
    """Mean absolute error, root mean squared error and R² of predictions, streamed exactly.

    Per target column it keeps, in float64, the count, Σ|e|, Σe² and the mean and centred sum
    of squares of the targets (merged across batches with Chan, Golub & LeVeque's update), so
    the result equals scikit-learn's on the concatenated data up to float64 round-off, for any
    batching. With several targets, each score is the unweighted mean over columns
    (scikit-learn's ``multioutput="uniform_average"``); R² of a constant target column is 1
    when it is predicted exactly and 0 otherwise, as scikit-learn reports it.

    Parameters
    ----------
    predictions_key : str
        Key of the predictions in the model's outputs: (B,) or (B, k).
    labels_key : str
        Key of the targets in the batch, of the same number of elements per sample.
    prefix : str
        Prepended to the metric names (``mae``, ``rmse``, ``r2``).
    """

    def __init__(self, predictions_key: str = "predictions", labels_key: str = "labels", *,
                 prefix: str = "") -> None:
        self.predictions_key = predictions_key
        self.labels_key = labels_key
        self.prefix = prefix
        self.count = 0
        self.abs_error: torch.Tensor | None = None  # (k,)
        self.sq_error: torch.Tensor | None = None
        self.mean: torch.Tensor | None = None  # mean of the targets
        self.m2: torch.Tensor | None = None  # Σ (y - mean)²

    def update(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> None:
        """Add one batch of predictions and targets."""
        pred = _float64(_get(outputs, self.predictions_key, "outputs", "RegressionScores"))
        true = _float64(_get(batch, self.labels_key, "batch", "RegressionScores")).to(pred.device)
        if pred.ndim == 0 or pred.numel() != true.numel() or pred.shape[0] != true.shape[0]:
            raise ValueError(f"RegressionScores: predictions of shape {tuple(pred.shape)} do not "
                             f"match targets of shape {tuple(true.shape)}")
        n = pred.shape[0]
        if n == 0:
            return
        pred, true = pred.reshape(n, -1), true.reshape(n, -1)  # (n, k)
        if self.mean is not None and pred.shape[1] != self.mean.shape[0]:
            raise ValueError(f"RegressionScores: {pred.shape[1]} target column(s) in this batch, "
                             f"{self.mean.shape[0]} before")
        error = true - pred
        batch_mean = true.mean(0)
        batch_m2 = ((true - batch_mean) ** 2).sum(0)
        if self.mean is None:
            self.abs_error, self.sq_error = error.abs().sum(0), (error**2).sum(0)
            self.mean, self.m2, self.count = batch_mean, batch_m2, n
            return
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + batch_m2 + delta**2 * (self.count * n / total)
        self.abs_error = self.abs_error + error.abs().sum(0)
        self.sq_error = self.sq_error + (error**2).sum(0)
        self.count = total

    def compute(self) -> dict[str, float]:
        """``{prefix + "mae", prefix + "rmse", prefix + "r2"}``.

        Raises
        ------
        ValueError
            When no sample was seen.
        """
        if self.mean is None:
            raise ValueError("RegressionScores saw no sample (update was never called, or only "
                             "with empty batches)")
        mae = self.abs_error / self.count
        rmse = torch.sqrt(self.sq_error / self.count)
        exact = self.sq_error == 0
        r2 = torch.where(self.m2 > 0, 1 - self.sq_error / torch.where(self.m2 > 0, self.m2, 1.0),
                         torch.where(exact, 1.0, 0.0).to(torch.float64))
        p = self.prefix
        return {f"{p}mae": mae.mean().item(), f"{p}rmse": rmse.mean().item(), f"{p}r2": r2.mean().item()}


class MaskedLMScores:
    """Masked-token accuracy and perplexity of a masked language model, against a baseline.

    Reads ``outputs["masked_logits"]`` (K, V) and ``outputs["masked_labels"]`` (K,) (-100 where
    a slot holds no masked token), as :class:`gicho.models.bert.BertForMaskedLM` returns them.
    Reports ``masked_accuracy``, ``perplexity`` (exp of the mean cross-entropy over the masked
    tokens) and, given ``baseline_id``, ``unigram_accuracy``: the accuracy of always answering
    that token (the most frequent one of the training data), which a model must beat.
    """

    def __init__(self, baseline_id: int | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        self.baseline_id, self.ignore_index = baseline_id, ignore_index
        self.correct: torch.Tensor | int = 0
        self.baseline: torch.Tensor | int = 0
        self.nll: torch.Tensor | float = 0.0
        self.total: torch.Tensor | int = 0

    def update(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> None:
        """Add one batch's masked positions."""
        logits = _get(outputs, "masked_logits", "outputs", "MaskedLMScores")
        labels = _get(outputs, "masked_labels", "outputs", "MaskedLMScores")
        keep = labels != self.ignore_index
        self.correct = self.correct + ((logits.argmax(-1) == labels) & keep).sum()
        if self.baseline_id is not None:
            self.baseline = self.baseline + ((labels == self.baseline_id) & keep).sum()
        nll = torch.nn.functional.cross_entropy(_float64(logits), labels.to(logits.device),
                                                ignore_index=self.ignore_index, reduction="sum")
        self.nll = self.nll + nll
        self.total = self.total + keep.sum()

    def compute(self) -> dict[str, float]:
        total = int(self.total)
        if total == 0:
            raise ValueError("MaskedLMScores saw no masked token (is the evaluation data empty?)")
        import math

        scores = {"masked_accuracy": int(self.correct) / total,
                  "perplexity": math.exp(min(float(self.nll) / total, 700.0))}
        if self.baseline_id is not None:
            scores["unigram_accuracy"] = int(self.baseline) / total
        return scores


class SequenceMatchScores:
    """Exact match and character accuracy of decoded outputs (``outputs["generated"]``, token
    ids) against ``batch["labels"]``, overall and per group (e.g. per locale).

    Parameters
    ----------
    decode : callable
        Token ids (list of int) → string; negative ids (padding labels) are dropped first.
    groups : sequence of str, optional
        The group of each evaluated example, in the data's order (evaluation keeps it).
    order : sequence of str, optional
        The order in which per-group scores are reported.
    """

    def __init__(self, decode: Any, groups: Sequence[str] | None = None, order: Sequence[str] = ()) -> None:
        self.decode, self.groups, self.order = decode, groups, tuple(order)
        self.predictions: list[str] = []
        self.targets: list[str] = []

    def update(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> None:
        generated = _get(outputs, "generated", "outputs", "SequenceMatchScores")
        labels = _get(batch, "labels", "batch", "SequenceMatchScores")
        self.predictions += [self.decode([i for i in row if i >= 0]) for row in generated.tolist()]
        self.targets += [self.decode([i for i in row if i >= 0]) for row in labels.tolist()]

    def compute(self) -> dict[str, float]:
        scores = score_strings(self.predictions, self.targets)
        if self.groups is not None:
            rank = {g: i for i, g in enumerate(self.order)}
            for group in sorted(set(self.groups), key=lambda g: (rank.get(g, len(rank)), g)):
                idx = [i for i, g in enumerate(self.groups) if g == group]
                part = score_strings([self.predictions[i] for i in idx], [self.targets[i] for i in idx])
                scores.update({f"{k}_{group}": v for k, v in part.items()})
        return scores
