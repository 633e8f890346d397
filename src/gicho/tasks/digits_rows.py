"""Task ``digits-rows``: 8x8 digits read as sequences of 8 row tokens by a Transformer encoder.

* T: :class:`~gicho.models.classifier.SequenceClassifier` over vector tokens (one per image
  row), pooled by mean, max or [CLS] (``--model.pool``);
* E: scikit-learn's 8x8 digits (1,797 images, bundled with scikit-learn), a stratified
  ``--data.test-fraction`` held out; pixels are integers in [0, 16], scaled inside the model;
* P: accuracy on the held-out split. The held-out split is also what training evaluates for
  the learning curves; it never selects a checkpoint (the result is the model after the last
  step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gicho.data.images import DIGITS_MAX_INTENSITY
from gicho.tasks import register
from gicho.tasks._classifier import ClassifierTask
from gicho.tasks.neural import Predictor, Splits
from gicho.train.config import TrainConfig

__all__ = ["DigitsData", "DigitsRowsConfig", "DigitsRowsTask"]

ROWS = PIXELS_PER_ROW = 8
MAX_PIXEL = DIGITS_MAX_INTENSITY  # digits pixels are integers in [0, 16]


def _default_model() -> Any:
    from gicho.models.classifier import ClassifierConfig

    return ClassifierConfig(token_dim=PIXELS_PER_ROW, n_labels=10, max_len=ROWS, d_model=64,
                            n_heads=4, n_layers=2, dropout=0.1, norm_first=True,
                            label_names=tuple(str(d) for d in range(10)))


@dataclass
class DigitsData:
    """The held-out split: ``test_fraction`` of the images, stratified, seeded by ``split_seed``."""

    test_fraction: float = field(default=0.2, metadata={"help": "fraction of images held out"})
    split_seed: int = field(default=0, metadata={"help": "seed of the stratified split"})

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"field `test_fraction` must lie in (0, 1); got {self.test_fraction!r}")


@dataclass
class DigitsRowsConfig:
    """Config of ``digits-rows``: ``model`` (ClassifierConfig), ``data``, ``train``."""

    model: Any = field(default_factory=_default_model)
    data: DigitsData = field(default_factory=DigitsData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=1500, batch_size=64, lr=2e-3, weight_decay=0.01, warmup_steps=100,
        eval_every=250, log_every=50, num_threads=1))


class DigitsRowsTask(ClassifierTask):
    """``digits-rows``: the hooks of :class:`~gicho.tasks.neural.NeuralTask` for the digits as rows."""

    name = "digits-rows"
    config_cls = DigitsRowsConfig
    model_type = "sequence-classifier"
    model = "Transformer encoder (8 row tokens) + mean pooling"
    data = "sklearn digits 8x8, 20% held out"
    metrics = ("accuracy",)
    description = "Digits images as sequences of 8 row-tokens, classified by a Transformer encoder."
    tour: ClassVar = {"train.max_steps": 600, "train.eval_every": 200}
    quick: ClassVar = {"train.max_steps": 150, "train.eval_every": 150, "model.d_model": 32, "model.n_layers": 1}
    input_kind = ("digit images as numbers in [0, 16]: a NumPy array or tensor (N, 64) or (N, 8, 8), as "
                  "sklearn.datasets.load_digits().data / .images, or a list of such rows")

    def build_data(self, config: DigitsRowsConfig, preprocessing: dict[str, Any] | None = None) -> Splits:
        from gicho.data.arrays import ArrayDataset
        from gicho.data.images import digits_split

        X_train, X_test, y_train, y_test = digits_split(config.data.test_fraction, config.data.split_seed)
        test = ArrayDataset(features=X_test, labels=y_test)
        return Splits(ArrayDataset(features=X_train, labels=y_train), test, test)

    def build_model(self, config: DigitsRowsConfig, splits: Splits) -> Any:
        from gicho.models.classifier import SequenceClassifier

        m = config.model
        if (m.token_dim, m.n_labels) != (PIXELS_PER_ROW, 10) or m.max_len < ROWS:
            raise ValueError(f"digits rows are {ROWS} tokens of {PIXELS_PER_ROW} pixels in 10 classes: "
                             f"model.token_dim must be 8, model.n_labels 10, model.max_len >= 8; got "
                             f"{m.token_dim}, {m.n_labels}, {m.max_len}")
        model = SequenceClassifier(m)
        model.backbone.stem.set_input_scaling(0.0, MAX_PIXEL)  # pixels / 16, saved with the weights
        return model

    def build_metrics(self, config: DigitsRowsConfig, info: dict[str, Any], split: str) -> Any:
        from gicho.metrics import ClassificationAccuracy

        return ClassificationAccuracy

    def parse_inputs(self, config: DigitsRowsConfig, predictor: Predictor, texts: list[str]) -> Any:
        """Each string: 64 pixel values in [0, 16], row by row, separated by commas or spaces."""
        from gicho.tasks._parsing import parse_numbers

        return [parse_numbers(t, ROWS * PIXELS_PER_ROW, "pixels in [0, 16], row by row", low=0.0,
                              high=MAX_PIXEL) for t in texts]

    def encode_inputs(self, config: DigitsRowsConfig, predictor: Predictor, inputs: Any) -> dict[str, Any]:
        import torch

        from gicho.tasks._inputs import number_rows

        pixels = number_rows(inputs, ROWS * PIXELS_PER_ROW, self.input_kind, low=0.0, high=MAX_PIXEL,
                             shape=(ROWS, PIXELS_PER_ROW))
        return {"features": torch.from_numpy(pixels).view(-1, ROWS, PIXELS_PER_ROW)}

    def describe(self, config: DigitsRowsConfig) -> tuple[str, str]:
        m = config.model
        pool = {"mean": "mean pooling", "max": "max pooling", "cls": f"[CLS] ({m.cls_source}) pooling"}
        model = (f"Transformer encoder ({m.n_layers}x{m.d_model}, {m.n_heads} heads, "
                 f"{'pre' if m.norm_first else 'post'}-LN) over 8 row tokens + {pool[m.pool]}")
        held = math.ceil(1797 * config.data.test_fraction)
        return model, f"sklearn digits 8x8, {held} images held out (stratified)"


TASK = register(DigitsRowsTask())
