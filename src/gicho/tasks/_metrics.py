"""Streaming metrics over model outputs: ``update(outputs, batch)`` per batch, ``compute()`` once.

Thin adapters from a model's output dict and its batch to :mod:`gicho.metrics`' accumulators
(exact, one pass, mergeable); the runner evaluates loss and metrics from the same forward pass.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ClassificationAccuracy", "RegressionScores"]

IGNORE_INDEX = -100


class ClassificationAccuracy:
    """Accuracy of ``outputs[logits_key].argmax(-1)`` against ``batch[labels_key]`` (-100 ignored)."""

    def __init__(self, logits_key: str = "logits", labels_key: str = "labels") -> None:
        self.logits_key, self.labels_key = logits_key, labels_key
        self.correct = 0
        self.total = 0

    def update(self, outputs: dict[str, Any], batch: dict[str, Any]) -> None:
        labels = batch[self.labels_key]
        keep = labels != IGNORE_INDEX
        predicted = outputs[self.logits_key].argmax(-1)
        self.correct += int((predicted[keep] == labels[keep]).sum())
        self.total += int(keep.sum())

    def compute(self) -> dict[str, float]:
        if self.total == 0:
            raise ValueError("accuracy of no labels is undefined; the evaluation data is empty")
        return {"accuracy": self.correct / self.total}


class RegressionScores:
    """MAE, RMSE and R² of ``outputs[predictions_key]`` against ``batch[labels_key]``."""

    def __init__(self, predictions_key: str = "predictions", labels_key: str = "labels") -> None:
        from gicho.metrics import RegressionMetrics

        self.predictions_key, self.labels_key = predictions_key, labels_key
        self.stats = RegressionMetrics()

    def update(self, outputs: dict[str, Any], batch: dict[str, Any]) -> None:
        y_pred = outputs[self.predictions_key].detach().double().cpu().numpy()
        y_true = batch[self.labels_key].detach().double().cpu().numpy()
        self.stats.update(y_true, y_pred)

    def compute(self) -> dict[str, float]:
        values = self.stats.compute()
        return {name: float(values[name]) for name in ("mae", "rmse", "r2")}
