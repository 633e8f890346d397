"""Task ``vit``: a Vision Transformer on the user's image folder (``--data.root PATH``).

* T: :class:`~gicho.models.vit.ViTForImageClassification`, preset ``mini`` (32 px, 16 patches
  of 8x8, 4 pre-LN layers of width 64); ``--model.image-size`` / ``--model.patch-size`` and the
  other ViTConfig fields change it; the classes (count and names) come from the folder:
  ``model.n_labels`` and ``model.label_names`` stay ``None`` ("from the folder") in the run's
  config, the trained model's ``config.json`` holds them (``id2label``), and the report's data
  line names them;
  ``--model.checkpoint DIR`` fine-tunes a pretrained ViT instead (a Hugging Face or timm directory,
  or a gicho run): its encoder and image processor, a new head, positions interpolated when
  ``--model.image-size`` differs; the rules are :mod:`gicho.tasks._vit_checkpoint`'s;
* E: :class:`gicho.data.image_folder.ImageFolder` over ``root/<class>/<image>`` (cat-vs-dog
  style), a stratified ``--data.test-fraction`` held out; training images augmented as
  ``--data.augment`` says (:data:`gicho.data.augment.FOLDER_PRESETS`): ``flip-crop`` (random crop
  and flip, the default), ``none``, or ``strong`` (flip-crop + MixUp / CutMix, soft targets);
  held-out images never are. Without ``--data.root`` the digits 0, 1, 2 are written as 32 px PNG files into a
  temporary folder (so the tour runs with no download). Refused before training, each with a
  one-line message: a folder with fewer than 2 classes (a one-class "classifier" scores
  accuracy 1.0), and a class left with no training image by the split (it could never be
  predicted); a class with no held-out image trains, with a warning (its accuracy is NaN);
* P: accuracy and per-class accuracy, a confusion-matrix figure and rollout maps.

``gicho predict RUN_DIR cat.jpg dog.png`` prints the top classes; ``--attention out.png``
draws the rollout map of the first image. The preprocessing (0.5 / 0.5 normalisation, the
evaluation crop ``crop_pct = 0.875``) is the model's image processor, saved in ``model/`` as
Hugging Face's ``preprocessor_config.json`` (so ``transformers.pipeline("image-classification",
model=RUN_DIR/model)`` classifies as gicho does); ``model/`` directories written before it, with
gicho's ``preprocessing.json``, still load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from gicho.models.vit import ViTConfig
from gicho.tasks import register
from gicho.tasks._image_classification import ImageClassificationTask
from gicho.tasks.neural import Predictor, Splits
from gicho.train.config import TrainConfig

__all__ = ["FolderData", "FolderViTConfig", "FolderViTModel", "FolderViTTask"]

MIN_CLASSES = 2  # a classifier of one class is always right
IMAGE_CHANNELS = (3, 1)  # what read_image gives: RGB or grey
DIGIT_CLASSES = ("0", "1", "2")  # the default folder (no --data.root)
SHOWN_CLASSES = 10  # class names listed in the task's description (the report's data line)


AugmentName = Literal["none", "flip-crop", "strong"]  # gicho.data.augment.FOLDER_PRESETS' names


@dataclass
class FolderViTModel(ViTConfig):
    """The ``vit`` task's model part: a :class:`~gicho.models.vit.ViTConfig` and where to start from.

    Parameters
    ----------
    checkpoint : str
        A pretrained ViT directory to fine-tune (its encoder, image processor and architecture;
        see :mod:`gicho.tasks._vit_checkpoint`); "" trains from scratch.
    """

    checkpoint: str = field(default="", metadata={
        "help": "fine-tune this ViT (HF/timm dir or gicho run; its sizes; image size: its own unless "
                "set to another than 32); '' = from scratch"})

    def vit_config(self) -> ViTConfig:
        """The ViTConfig of these fields (without ``checkpoint``)."""
        return ViTConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ViTConfig)})


def _default_model() -> FolderViTModel:
    return FolderViTModel.from_preset("mini", n_labels=None)  # None: the folder decides


@dataclass
class FolderData:
    """Where the images are and how they are split."""

    root: str = field(default="", metadata={"help": "image folder root/<class>/<image> (default: digits 0-2)"})
    test_fraction: float = field(default=0.2, metadata={"help": "fraction of images held out"})
    split_seed: int = field(default=0, metadata={"help": "seed of the stratified split"})
    on_error: str = field(default="raise", metadata={"help": "unreadable files: raise or skip"})
    augment: AugmentName = field(default="flip-crop", metadata={
        "help": "training images: none, flip-crop (random crop + flip), strong (flip-crop + MixUp/CutMix)"})

    def __post_init__(self) -> None:
        if self.augment not in get_args(AugmentName):
            raise ValueError(f"field `augment` must be one of {', '.join(map(repr, get_args(AugmentName)))}; "
                             f"got {self.augment!r}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"field `test_fraction` must lie in (0, 1); got {self.test_fraction!r}")
        if self.on_error not in ("raise", "skip"):
            raise ValueError(f"field `on_error` must be 'raise' or 'skip'; got {self.on_error!r}")


@dataclass
class FolderViTConfig:
    """Config of ``vit``: ``model`` (ViTConfig), ``data`` (FolderData), ``train``."""

    model: Any = field(default_factory=_default_model)
    data: FolderData = field(default_factory=FolderData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=1000, batch_size=32, lr=1e-3, weight_decay=0.05, warmup_steps=50,
        eval_every=250, log_every=50, num_threads=1))

    def __post_init__(self) -> None:
        if self.model.in_channels not in IMAGE_CHANNELS:
            raise ValueError(f"field `model.in_channels` must be 3 (RGB) or 1 (grey) for image files; "
                             f"got {self.model.in_channels!r}")


def _check_split(classes: list[str], labels: Any, train_idx: Any, held: Any, root: Any,
                 test_fraction: float) -> None:
    """Refuse a class with no training image; warn about a class with no held-out image."""
    import warnings

    import numpy as np

    counts = np.bincount(labels, minlength=len(classes))
    in_train = np.bincount(labels[train_idx], minlength=len(classes))
    in_test = np.bincount(labels[held], minlength=len(classes))
    untrained = [f"{classes[k]!r} ({counts[k]} images)" for k in range(len(classes)) if in_train[k] == 0]
    if untrained:
        raise ValueError(f"the split of {root} with test_fraction={test_fraction} leaves class(es) "
                         f"{', '.join(untrained)} with no training image, so the model could never predict "
                         "them; lower data.test_fraction or add images")
    untested = [repr(classes[k]) for k in range(len(classes)) if in_test[k] == 0]
    if untested:
        warnings.warn(f"the split of {root} with test_fraction={test_fraction} leaves class(es) "
                      f"{', '.join(untested)} with no held-out image: their accuracy is NaN", stacklevel=3)


def _folder_classes(root: str) -> tuple[str, ...] | None:
    """The class names of ``root`` (its sub-folders inside it), or None when it cannot be listed."""
    if not root:
        return DIGIT_CLASSES
    try:
        base = Path(root).resolve()
        return tuple(sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")
                            and p.resolve().is_relative_to(base)))
    except OSError:
        return None


class FolderViTTask(ImageClassificationTask):
    """``vit``: the hooks of :class:`~gicho.tasks.neural.NeuralTask` for a ViT on an image folder
    (the metrics, answers and figures are :class:`ImageClassificationTask`'s)."""

    name = "vit"
    config_cls = FolderViTConfig
    model = "ViT (32 px, 8x8 patches, [CLS] head)"
    data = "image folder --data.root (default: digits 0-2 as PNGs)"
    metrics = ("accuracy",)
    description = "A Vision Transformer on an image folder root/<class>/<image> (--data.root PATH)."
    input_kind = ("images: a list of PIL images, image paths, or arrays (H, W, C) uint8 (or floats in [0, 1]); or "
                  "one array (N, H, W, C)")
    tour: ClassVar = {"train.max_steps": 200, "train.eval_every": 100}
    quick: ClassVar = {"train.max_steps": 60, "train.eval_every": 60, "model.d_model": 32, "model.n_layers": 1,
                       "model.d_ff": 64}

    def build_data(self, config: FolderViTConfig, preprocessing: dict[str, Any] | None = None) -> Splits:
        """The folder's images split by class (stratified); without ``data.root``, the digits 0-2
        written as PNG files into a temporary folder that lives as long as the dataset. Images are
        read by the run's image processor: the saved one (``preprocessing``, on resume and
        evaluation), else the checkpoint's, else 0.5 / 0.5 with crop_pct 0.875. Training images
        are augmented as ``data.augment`` says (``Splits.train_collate`` mixes batches)."""
        import tempfile

        import numpy as np
        from torch.utils.data import Subset

        from gicho.data.augment import FOLDER_PRESETS, augment_training, get_preset
        from gicho.data.image_folder import ImageFolder, write_digits_folder
        from gicho.data.images import stratified_subset

        d = config.data
        processor = (preprocessing or {}).get("processor") or _processor(config.model)
        size, channels = processor.image_size, processor.channels
        keep_alive = None
        root: str | Path = d.root
        if not root:
            keep_alive = tempfile.TemporaryDirectory(prefix="gicho-digits-folder-")
            root = write_digits_folder(keep_alive.name, DIGIT_CLASSES, size=size)
        folder = ImageFolder(root, size, train=False, channels=channels, on_error=d.on_error,
                             min_classes=MIN_CLASSES, processor=processor)
        folder.keep_alive = keep_alive  # the temporary folder lives as long as the dataset
        labels = np.array([label for _, label in folder.samples])
        try:
            kept = stratified_subset(labels, 1 - d.test_fraction, d.split_seed)
            held = np.setdiff1d(np.arange(len(labels)), kept)
        except ValueError as exc:  # a class with one image cannot be stratified
            raise ValueError(f"cannot split {root} ({len(labels)} images in {len(folder.classes)} classes) "
                             f"with test_fraction={d.test_fraction}: {exc}") from None
        train_idx = np.setdiff1d(np.arange(len(labels)), held)
        _check_split(folder.classes, labels, train_idx, held, root, d.test_fraction)
        test = Subset(folder, held.tolist())
        info = {"classes": tuple(folder.classes), "processor": processor}
        augmentation = get_preset(d.augment, FOLDER_PRESETS)
        train, train_collate = augment_training(Subset(folder.with_train(augmentation.crop_flip), train_idx.tolist()),
                                                augmentation, n_classes=len(folder.classes), seed=config.train.seed)
        return Splits(train, test, test, info=info, train_collate=train_collate)

    def build_model(self, config: FolderViTConfig, splits: Splits) -> Any:
        from gicho.models.vit import ViTForImageClassification

        classes = splits.info["classes"]  # the folder decides the classes
        for name, value in (("n_labels", len(classes)), ("label_names", classes)):
            given = getattr(config.model, name)
            if given is not None and given != value:  # a user's override (None: from the folder)
                raise ValueError(f"model.{name}={given!r} contradicts the image folder, whose sub-folders "
                                 f"give {value!r}; leave model.{name} unset (the folder decides it)")
        processor = splits.info["processor"]
        if config.model.checkpoint:
            from gicho.tasks._vit_checkpoint import fine_tune_model

            path, run = _fine_tuned(config.model)
            model = fine_tune_model(path, dataclasses.replace(run, image_size=processor.image_size), classes)
        else:
            model = ViTForImageClassification(dataclasses.replace(config.model.vit_config(), n_labels=len(classes),
                                                                  label_names=classes))
        model.image_processor = processor  # saved with it as preprocessor_config.json
        return model

    def class_names(self, config: FolderViTConfig, info: dict[str, Any]) -> Sequence[str]:
        """The folder's classes while training; the names saved with the model afterwards."""
        return info["classes"] if "classes" in info else super().class_names(config, info)

    def save_extras(self, directory: Path, info: dict[str, Any]) -> None:
        """The image processor as ``preprocessor_config.json`` (``run_dir/preprocessing/``; in ``model/``
        ``save_pretrained`` writes the same file)."""
        info["processor"].save(directory)

    def load_extras(self, directory: Path) -> dict[str, Any]:
        """The saved image processor: ``preprocessor_config.json``, or gicho's earlier
        ``preprocessing.json`` (its image size from ``config.json`` beside it)."""
        from gicho.models.vit import ViTImageProcessor
        from gicho.weights import CONFIG_NAME

        if not (directory / ViTImageProcessor.FILE).exists() and not (directory / CONFIG_NAME).exists() \
                and (directory / ViTImageProcessor.LEGACY_FILE).is_file():
            # run_dir/preprocessing/ of a run started by an older gicho: no image size beside it; its
            # values (0.5 / 0.5, crop_pct 0.875) are the ones build_data gives again on resume
            return {}
        processor = ViTImageProcessor.load(directory)
        if processor is None:
            raise FileNotFoundError(f"{directory / ViTImageProcessor.FILE} is missing: the model directory lacks "
                                    "its preprocessing")
        return {"processor": processor}

    def parse_inputs(self, config: FolderViTConfig, predictor: Predictor, texts: list[str]) -> Any:
        """Each string: an image file (all of them checked before any is read)."""
        missing = [t for t in texts if not Path(t).is_file()]
        if missing:
            raise ValueError(f"input(s) {missing[:3]} are not image files")
        return texts

    def encode_inputs(self, config: FolderViTConfig, predictor: Predictor, inputs: Any) -> dict[str, Any]:
        """Images (PIL, files, arrays), preprocessed as the evaluation images."""
        import torch

        from gicho.data.image_folder import ImageTransform
        from gicho.tasks._inputs import image_arrays

        transform = ImageTransform.from_processor(predictor.info["processor"])
        images = image_arrays(inputs, predictor.model.config.in_channels, self.input_kind)
        return {"pixel_values": torch.stack([transform(image) for image in images])}

    def unused_fields(self, config: FolderViTConfig) -> dict[str, str]:
        from gicho.tasks._vit_checkpoint import unset_fields

        if not config.model.checkpoint:
            return {}
        return {f"model.{name}": "model.checkpoint decides" for name in unset_fields(config.model, _default_model())}

    def describe(self, config: FolderViTConfig) -> tuple[str, str]:
        m, d = config.model, config.data
        start = ""
        if m.checkpoint:
            start = f" fine-tuned from {m.checkpoint}"
            try:
                m = _fine_tuned(m)[1]
            except (OSError, ValueError):  # the run reports the error; the words need not
                return f"ViT{start}", f"image folder {d.root or '(digits 0-2 as PNG files)'}"
        model = (f"ViT ({m.n_layers}x{m.d_model}, {m.n_heads} heads, {m.image_size} px, "
                 f"{m.patch_size}x{m.patch_size} patches, {m.pool} pooling){start}")
        classes = _folder_classes(d.root)
        shown = ", ".join(classes[:SHOWN_CLASSES]) + (", ..." if len(classes or ()) > SHOWN_CLASSES else "")
        named = "" if not classes else f" ({len(classes)} classes: {shown})"
        return model, (f"image folder {d.root or '(digits 0-2 as PNG files)'}{named}, {d.test_fraction:.0%} held out, "
                       f"augmentation {d.augment}")


def _fine_tuned(model: FolderViTModel) -> tuple[Path, ViTConfig]:
    """The checkpoint directory of ``model.checkpoint`` and the run's ViTConfig from it."""
    from gicho.tasks._vit_checkpoint import checkpoint_config, checkpoint_dir, resolve_model

    path = checkpoint_dir(model.checkpoint)
    return path, resolve_model(model, _default_model(), checkpoint_config(path))


def _processor(model: FolderViTModel) -> Any:
    """The image processor of a new run: the checkpoint's at the run's image size, or 0.5 / 0.5
    with crop_pct 0.875 for a ViT trained from scratch."""
    from gicho.models.vit import ViTImageProcessor
    from gicho.tasks._vit_checkpoint import checkpoint_config, checkpoint_processor

    if not model.checkpoint:
        return ViTImageProcessor.for_model(model.image_size, model.in_channels)
    path, run = _fine_tuned(model)
    return checkpoint_processor(path, checkpoint_config(path), run.image_size)


TASK = register(FolderViTTask())
