"""What every classifying task shares at prediction time: probabilities, labels, top-k answers.

:class:`ClassifierTask` is the base of ``digits-rows``, ``bert-classify`` and the image tasks. Its
model returns ``"logits"`` (N, C); from them it gives

* ``predict_batch``: the most probable class's name per input;
* ``probabilities``: ``softmax(logits)`` in float64 (``Predictor.predict_proba``);
* ``format_outputs``: ``gicho predict``'s line, the ``top_k`` (default :attr:`default_top_k`)
  classes with their probabilities, ``"7 (0.981), 1 (0.012)"``, and the out-of-distribution
  note when the run saved its calibration (:mod:`gicho.tasks._ood`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gicho.tasks.neural import NeuralTask, Predictor, top_classes

__all__ = ["ClassifierTask", "label_names"]


def label_names(model: Any) -> tuple[str, ...]:
    """The model's label names (``config.label_names``), or "0".."C-1"."""
    c = model.config
    return tuple(c.label_names) if c.label_names else tuple(str(k) for k in range(c.n_labels))


class ClassifierTask(NeuralTask):
    """A task whose model classifies: ``logits`` (N, C) per batch, one class per input."""

    predict_options: tuple[str, ...] = ("top_k",)
    default_top_k = 1  # classes on each line of `gicho predict`
    # What `gicho evaluate RUN --data.<source> PATH` can score (gicho.tasks._new_data): "csv", "root".
    new_data_sources: tuple[str, ...] = ()

    def class_names(self, config: Any, info: dict[str, Any]) -> Sequence[str]:
        """The label names saved with the model (a predictor passes it as ``info["model"]``)."""
        model = info.get("model")
        if model is None:
            raise NotImplementedError(f"{type(self).__name__} must define class_names(config, info) for "
                                      "training (its metrics name the classes)")
        return label_names(model)

    def probabilities(self, config: Any, predictor: Predictor, batch: dict[str, Any]) -> Any:
        """``softmax(logits)`` in float64 (each row sums to 1 to rounding, as scikit-learn's)."""
        return predictor(batch)["logits"].double().softmax(-1)

    def predict_batch(self, config: Any, predictor: Predictor, batch: dict[str, Any],
                      options: dict[str, Any]) -> list[Any]:
        names = self.class_names(config, {**predictor.info, "model": predictor.model})
        return [names[int(i)] for i in self.probabilities(config, predictor, batch).argmax(-1)]

    def format_outputs(self, config: Any, predictor: Predictor, batch: dict[str, Any],
                       options: dict[str, Any]) -> list[dict[str, Any]]:
        """Per input: the line (``"7 (0.981), 1 (0.012)"``), the most probable ``label`` with its
        ``probability``, the ``top_k`` classes, and with a calibrated run the out-of-distribution
        ``ood_p_value`` (the line says "unlike the training data" below :data:`FLAG_BELOW`)."""
        from gicho.tasks._ood import FLAG_BELOW, forward_with_features

        k = options.get("top_k", self.default_top_k)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"option `top_k` must be an integer >= 1; got {k!r}")
        calibration = predictor.info.get("ood")
        if calibration is None:
            probs, p_values = self.probabilities(config, predictor, batch), None
        else:
            outputs, features = forward_with_features(predictor, batch)
            probs, p_values = outputs["logits"].double().softmax(-1), calibration.p_values(features, batch).tolist()
        names = self.class_names(config, {**predictor.info, "model": predictor.model})
        records = []
        for i, answers in enumerate(top_classes(probs, names, k)):
            record = {"output": ", ".join(f"{name} ({p:.3f})" for name, p in answers),
                      "label": answers[0][0], "probability": answers[0][1],
                      "top_k": [{"label": name, "probability": p} for name, p in answers]}
            if p_values is not None:
                record["ood_p_value"] = p_values[i]
                if p_values[i] < FLAG_BELOW:
                    record["output"] += f"  [unlike the training data: p={p_values[i]:.3g}]"
            records.append(record)
        return records

    def calibrate(self, config: Any, predictor: Predictor, splits: Any, directory: Path, batch_size: int) -> None:
        """Save the out-of-distribution calibration (:mod:`gicho.tasks._ood`) into ``directory``:
        class means and covariance of the training inputs' features, validation inputs' scores."""
        from gicho.tasks._ood import calibrate

        calibration = calibrate(predictor, splits.train, splits.valid if splits.valid is not None else splits.test,
                                splits.collate, batch_size)
        calibration.save(directory)
        predictor.info["ood"] = calibration
