"""Fine-tuning the ``vit`` task from a pretrained ViT (``--model.checkpoint PATH``).

``PATH`` is a directory that :meth:`gicho.models.vit.ViTPretrained.from_pretrained` reads with a
``config.json``: a Hugging Face ViT (``config.json`` + ``model.safetensors``, optional
``preprocessor_config.json``), a timm state dict beside the ``config.json`` gicho writes, a
gicho model directory, or a gicho run directory (its ``model/``). What comes from where:

* the architecture (patch size, channels, width, depth, heads, MLP width, pooling, ...) is the
  checkpoint's. A field of ``--model.*`` left at the task's default is replaced by it; one set
  to another value that disagrees is refused (a ViT cannot change its width and keep its
  weights). ``n_labels`` / ``label_names`` come from the folder as without a checkpoint;
* ``image_size``: the checkpoint's, unless ``--model.image-size`` is set to another value than
  the task's default (32, which therefore reads as "unset"); a size other than the checkpoint's
  interpolates the position table (:func:`gicho.models.vit.interpolate_pos_embed`) and must be
  a multiple of the patch size;
* ``dropout`` / ``attention_dropout``: the user's when set (they are training choices), else the
  checkpoint's;
* the encoder's weights are the checkpoint's; the head is new (seeded by ``train.seed``), one
  logit per class of the folder;
* the image processor (mean, std, crop) is the checkpoint's ``preprocessor_config.json`` at the
  run's image size (gicho's 0.5 / 0.5 with crop_pct 0.875 when it has none); images are read
  with the checkpoint's channel count (grey folders become RGB for an RGB checkpoint).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

__all__ = ["TRAINING_FIELDS", "checkpoint_config", "checkpoint_dir", "checkpoint_processor", "fine_tune_model",
           "resolve_model", "unset_fields"]

FOLDER_FIELDS = ("n_labels", "label_names")  # the folder decides them, checkpoint or not
TRAINING_FIELDS = ("dropout", "attention_dropout")  # the user's when set, else the checkpoint's


def checkpoint_dir(checkpoint: str) -> Path:
    """The directory of ``--model.checkpoint`` (a run directory gives its ``model/``).

    Raises
    ------
    FileNotFoundError
        A missing path, a lone weights file, or a directory with no ``config.json``.
    """
    from gicho.rundir import CONFIG_FILE, MODEL_DIR, RunDir, read_json

    path = Path(checkpoint).expanduser()
    where = f"--model.checkpoint {checkpoint}"
    if not path.exists():
        raise FileNotFoundError(f"{where}: {path} does not exist")
    if path.is_file():
        raise FileNotFoundError(f"{where}: {path} is a file; give the directory that holds it with its "
                                "config.json (a timm file: save gicho's config.json beside it, see "
                                "gicho.models.vit)")
    if (RunDir(path).model / CONFIG_FILE).is_file():  # a gicho run directory: its result
        return RunDir(path).model
    if (path / CONFIG_FILE).is_file() and "task" in read_json(path / CONFIG_FILE, "run config"):
        raise FileNotFoundError(f"{where}: {path} is a gicho run directory without a {MODEL_DIR}/ (still "
                                "training, or stopped before the end? resume it: `gicho train --resume RUN`)")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{where}: {path} holds no ViT (no config.json)")
    return path


def checkpoint_config(path: Path) -> Any:
    """The :class:`~gicho.models.vit.ViTConfig` of the checkpoint directory ``path``.

    Raises
    ------
    ValueError
        The directory holds another model family (a BERT, say), naming it.
    """
    from gicho.models.vit import ViTPretrained
    from gicho.weights import CheckpointError, read_config

    data = read_config(path)
    found = data.get("model_type", "vit")
    if found != "vit":
        raise ValueError(f"--model.checkpoint {path} holds a {found!r} model, not a ViT ('vit'); the vit task "
                         "fine-tunes ViT checkpoints only")
    try:
        return ViTPretrained.config_from_json(data, f"model config {path / 'config.json'}")
    except CheckpointError as exc:
        raise ValueError(f"--model.checkpoint {path}: {exc}") from None


def unset_fields(given: Any, default: Any) -> tuple[str, ...]:
    """The ViTConfig fields of ``given`` left at the task's ``default`` (the folder's excluded):
    with a checkpoint, :func:`resolve_model` takes the checkpoint's values for them."""
    from gicho.models.vit import ViTConfig

    return tuple(f.name for f in dataclasses.fields(ViTConfig)
                 if f.name not in FOLDER_FIELDS and getattr(given, f.name) == getattr(default, f.name))


def resolve_model(given: Any, default: Any, checkpoint: Any) -> Any:
    """The run's ViTConfig: ``checkpoint``'s, with the image size and dropouts the user set.

    ``given`` is the task's model part, ``default`` the task's default one (a field equal to it
    counts as unset). Raises ValueError naming every field that contradicts the checkpoint.
    """
    from gicho.models.vit import ViTConfig

    changes, clashes, unset = {}, [], unset_fields(given, default)
    for f in dataclasses.fields(ViTConfig):
        name = f.name
        value, theirs = getattr(given, name), getattr(checkpoint, name)
        if name in FOLDER_FIELDS or name in unset or value == theirs:
            continue
        if name in ("image_size", *TRAINING_FIELDS):
            changes[name] = value
        else:
            clashes.append(f"model.{name}={value!r} (the checkpoint's is {theirs!r})")
    if clashes:
        raise ValueError(f"--model.checkpoint {given.checkpoint}: {', '.join(clashes)}; the architecture comes "
                         "from the checkpoint: leave these fields unset")
    try:
        return dataclasses.replace(checkpoint, **changes)
    except ValueError as exc:
        raise ValueError(f"--model.checkpoint {given.checkpoint}: {exc}") from None


def checkpoint_processor(path: Path, checkpoint: Any, image_size: int) -> Any:
    """The checkpoint's image processor (gicho's default without one) at ``image_size`` px."""
    from gicho.models.vit import ViTImageProcessor
    from gicho.weights import CheckpointError

    c = checkpoint
    try:
        processor = ViTImageProcessor.load(path, image_size=c.image_size, channels=c.in_channels)
        if processor is not None:
            processor.check_fits(c.image_size, c.in_channels, f"the image processor of {path}", CheckpointError)
    except CheckpointError as exc:
        raise ValueError(f"--model.checkpoint {path}: {exc}") from None
    if processor is None:
        processor = ViTImageProcessor.for_model(c.image_size, c.in_channels)
    return dataclasses.replace(processor, image_size=image_size)


def fine_tune_model(path: Path, run: Any, classes: tuple[str, ...]) -> Any:
    """A classifier with ``path``'s encoder and a new head for ``classes``, at ``run.image_size``
    (positions interpolated when it is not the checkpoint's); in training mode."""
    from gicho.models.vit import ViTForImageClassification

    overrides = {name: getattr(run, name) for name in TRAINING_FIELDS}
    model = ViTForImageClassification.from_pretrained_parts(path, ["backbone"], n_labels=len(classes),
                                                            label_names=classes, **overrides)
    if model.config.image_size != run.image_size:
        model = model.with_image_size(run.image_size)
    return model.train()
