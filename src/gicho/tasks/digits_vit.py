"""Task ``digits-vit``: a Vision Transformer on scikit-learn's 8x8 digits.

* T: :class:`~gicho.models.vit.ViTForImageClassification`, preset ``digits`` (16 patches of
  2x2 pixels + [CLS], 2 pre-LN layers of width 64), head on [CLS] (``--model.pool mean``);
* E: the 1,797 digits, a stratified ``--data.test-fraction`` held out; pixels [0, 16] scaled to
  [-1, 1] (:func:`gicho.data.images.digits_pixel_values`); training images shifted by up to
  ``--data.max-shift`` pixels;
* P: accuracy and per-class accuracy on the held-out split, a confusion-matrix figure and
  attention-rollout maps of test images (wrong ones first) in ``plots/``.

``gicho predict RUN_DIR image.png`` (light strokes on a dark background, resized to 8x8) or
``"0 0 5 13 ..."`` (64 pixel values in [0, 16], row by row) prints the top classes with their
probabilities; ``--attention out.png`` draws the rollout map of the first input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from gicho.tasks import register
from gicho.tasks._image_classification import ImageClassificationTask
from gicho.tasks.neural import Predictor, Splits
from gicho.train.config import TrainConfig

__all__ = ["DigitsViTConfig", "DigitsViTData", "DigitsViTTask"]

SIDE, N_CLASSES = 8, 10
DIGIT_NAMES = tuple(str(d) for d in range(N_CLASSES))


def _default_model() -> Any:
    from gicho.models.vit import ViTConfig

    return ViTConfig.from_preset("digits", label_names=DIGIT_NAMES)


@dataclass
class DigitsViTData:
    """The held-out split and the training augmentation."""

    test_fraction: float = field(default=0.2, metadata={"help": "fraction of images held out"})
    split_seed: int = field(default=0, metadata={"help": "seed of the stratified split"})
    max_shift: int = field(default=1, metadata={"help": "random shift of training images (pixels)"})
    train_fraction: float = field(default=1.0, metadata={"help": "fraction of the training split used"})

    def __post_init__(self) -> None:
        for name in ("test_fraction", "train_fraction"):
            value = getattr(self, name)
            if not 0 < value <= 1 or (name == "test_fraction" and value == 1):
                raise ValueError(f"field `{name}` must lie in (0, 1{')' if name == 'test_fraction' else ']'}; "
                                 f"got {value!r}")
        if isinstance(self.max_shift, bool) or not isinstance(self.max_shift, int) or not 0 <= self.max_shift < SIDE:
            raise ValueError(f"field `max_shift` must be an integer in [0, {SIDE}); got {self.max_shift!r}")


@dataclass
class DigitsViTConfig:
    """Config of ``digits-vit``: ``model`` (ViTConfig), ``data``, ``train``."""

    model: Any = field(default_factory=_default_model)
    data: DigitsViTData = field(default_factory=DigitsViTData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=3000, batch_size=64, lr=3e-3, weight_decay=0.05, warmup_steps=100,
        eval_every=500, log_every=100, num_threads=1))


def _processor() -> Any:
    """Grey 8x8 inputs scaled to [0, 1], normalised 0.5 / 0.5 (:func:`digits_pixel_values`); image
    files resized whole (``crop_pct=1.0``, as ``read_inputs``)."""
    from gicho.models.vit import ViTImageProcessor

    return ViTImageProcessor.for_model(SIDE, 1, crop_pct=1.0)


class DigitsViTTask(ImageClassificationTask):
    """``digits-vit``: the hooks of :class:`~gicho.tasks.neural.NeuralTask` for a ViT on the 8x8 digits
    (the metrics, answers and figures are :class:`ImageClassificationTask`'s)."""

    name = "digits-vit"
    config_cls = DigitsViTConfig
    model = "ViT (2x2 patches of 8x8 digits, [CLS] head)"
    data = "sklearn digits 8x8, 20% held out"
    metrics = ("accuracy",)
    description = "Digits images as 16 patch tokens + [CLS], classified by a Vision Transformer."
    input_kind = ("digit images: a NumPy array or tensor (N, 8, 8) or (N, 64) of pixel values in [0, 16] (as "
                  "sklearn.datasets.load_digits().images), or a list of PIL images, image paths or such arrays")
    tour: ClassVar = {"train.max_steps": 1000, "train.eval_every": 500}
    # --quick: 4x4 patches (4 tokens) learn much faster than 2x2 ones on 8x8 images
    quick: ClassVar = {"train.max_steps": 150, "train.eval_every": 150, "model.d_model": 32, "model.d_ff": 64,
                       "model.patch_size": 4, "data.max_shift": 0}

    def build_data(self, config: DigitsViTConfig, preprocessing: dict[str, Any] | None = None) -> Splits:
        from gicho.data.arrays import ArrayDataset
        from gicho.data.images import (
            RandomShift,
            digits_pixel_values,
            digits_split,
            stratified_subset,
        )

        X_train, X_test, y_train, y_test = digits_split(config.data.test_fraction, config.data.split_seed)
        keep = stratified_subset(y_train, config.data.train_fraction, config.data.split_seed)
        train = ArrayDataset(pixel_values=digits_pixel_values(X_train[keep]), labels=y_train[keep])
        test = ArrayDataset(pixel_values=digits_pixel_values(X_test), labels=y_test)
        return Splits(RandomShift(train, config.data.max_shift), test, test, info={"processor": _processor()})

    def build_model(self, config: DigitsViTConfig, splits: Splits) -> Any:
        from gicho.models.vit import ViTForImageClassification

        m = config.model
        if (m.image_size, m.in_channels, m.n_labels) != (SIDE, 1, N_CLASSES):
            raise ValueError(f"digits are {SIDE}x{SIDE} grey images in {N_CLASSES} classes: model.image_size must "
                             f"be 8, model.in_channels 1, model.n_labels 10; got {m.image_size}, "
                             f"{m.in_channels}, {m.n_labels}")
        model = ViTForImageClassification(m)
        model.image_processor = _processor()  # saved with it as preprocessor_config.json
        return model

    def class_names(self, config: DigitsViTConfig, info: dict[str, Any]) -> Sequence[str]:
        return config.model.label_names or DIGIT_NAMES

    def load_extras(self, directory: Path) -> dict[str, Any]:
        """The image processor saved with the model (``preprocessor_config.json``, written by
        ``save_pretrained``); a ``model/`` written before gicho saved one gets the task's (the values
        it was trained with)."""
        from gicho.models.vit import ViTImageProcessor

        return {"processor": ViTImageProcessor.load(directory) or _processor()}

    def parse_inputs(self, config: DigitsViTConfig, predictor: Predictor, texts: list[str]) -> Any:
        """Each string: an image file, or 64 pixel values in [0, 16] row by row."""
        from gicho.data.images import DIGITS_MAX_INTENSITY as MAX_PIXEL
        from gicho.tasks._image_classification import grey_images

        return grey_images(texts, SIDE, MAX_PIXEL)

    def encode_inputs(self, config: DigitsViTConfig, predictor: Predictor, inputs: Any) -> dict[str, Any]:
        import torch

        from gicho.data.images import DIGITS_MAX_INTENSITY as MAX_PIXEL
        from gicho.data.images import digits_pixel_values
        from gicho.tasks._image_classification import grey_digits

        images = grey_digits(inputs, SIDE, MAX_PIXEL, self.input_kind)
        return {"pixel_values": torch.from_numpy(digits_pixel_values(images))}

    def describe(self, config: DigitsViTConfig) -> tuple[str, str]:
        m, d = config.model, config.data
        model = (f"ViT ({m.n_layers}x{m.d_model}, {m.n_heads} heads, {m.grid_size}x{m.grid_size} patches of "
                 f"{m.patch_size}x{m.patch_size} px, {m.pool} pooling)")
        share = "" if d.train_fraction == 1 else f", {d.train_fraction:.0%} of the training split"
        return model, f"sklearn digits 8x8, {d.test_fraction:.0%} held out (stratified){share}, shift ±{d.max_shift} px"


TASK = register(DigitsViTTask())
