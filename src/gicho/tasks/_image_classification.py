"""What the ViT image tasks (``digits-vit``, ``vit``) share: their base class, scores, answers, figures.

* :class:`ImageClassificationTask` — the hooks they share: the metrics (accuracy, and on the test
  split per-class accuracy from one :class:`gicho.metrics.ConfusionMatrix`, plus each test
  image's prediction for the figures), the answers and the figures;
* the answers (:class:`gicho.tasks._classifier.ClassifierTask`'s: top-k classes with
  probabilities), and the attention-rollout map of the first input when ``options["attention"]``
  names a PNG;
* :func:`grey_digits` — what the grey-digit tasks (``digits-vit``, ``mnist``) accept from Python:
  arrays of pixel values on the data's own scale, PIL images, image files;
* :func:`image_figures` — after training: the confusion matrix and rollout maps of a few test
  images, right and wrong ones, in ``plots/``, drawn from the final score's one pass over the
  test split (only the few images drawn are read again).

Inputs are ``pixel_values`` normalised by the model's image processor (``info["processor"]``, a
:class:`gicho.models.vit.ViTImageProcessor`; or ``info["mean"]`` / ``info["std"]``); figures undo it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gicho.tasks._classifier import ClassifierTask, label_names
from gicho.tasks.neural import Predictor, Splits

__all__ = ["TOP_K", "ClassPredictions", "ImageClassificationTask", "ImagePredictions", "grey_digits", "grey_images",
           "image_figures", "label_names", "spread_over_classes", "to_display"]

TOP_K = 3  # classes shown per answer
N_ROLLOUTS = 6  # test images drawn with their rollout maps (wrong ones first, then right ones)


class ImageClassificationTask(ClassifierTask):
    """A ViT (or a CNN) classifying images: what ``digits-vit``, ``mnist`` and ``vit`` share. A
    subclass gives the data, the model, :meth:`class_names`, ``encode_inputs`` and ``parse_inputs``."""

    model_type = "vit"
    predict_options = ("top_k", "attention")
    default_top_k = TOP_K
    new_data_sources = ("root",)

    def build_metrics(self, config: Any, info: dict[str, Any], split: str) -> Any:
        """Accuracy; on the test split also per-class accuracy (``accuracy_<class>``), from the
        counts that the confusion-matrix figure draws, and each image's prediction."""
        from gicho.metrics import ConfusionMatrix

        names = self.class_names(config, info)
        if split == "test":
            return [lambda: ConfusionMatrix(names, per_class=True), ImagePredictions]
        return lambda: ConfusionMatrix(names)

    def format_outputs(self, config: Any, predictor: Predictor, batch: dict[str, Any],
                       options: dict[str, Any]) -> list[dict[str, Any]]:
        """Top-k "name (probability)" per input; ``options["attention"]``: the rollout map of input 0."""
        records = super().format_outputs(config, predictor, batch, options)
        if options.get("attention"):
            first = records[0]
            draw_rollout(predictor, batch["pixel_values"][:1], f"{first['label']} ({first['probability']:.3f})",
                         options["attention"])
        return records

    def after_fit(self, config: Any, predictor: Predictor, splits: Splits, ctx: Any, scores: dict[str, float],
                  accumulators: Sequence[Any]) -> dict[str, float]:
        image_figures(predictor, splits, ctx, accumulators)
        return {}


class ClassPredictions:
    """Each item's (an image's, a text's) label, predicted class and confidence (its top probability), in the data's
    order (which evaluation keeps): what :func:`image_figures` picks its examples from. A
    streaming metric that reports no number; the tensors stay on the device until :meth:`arrays`."""

    def __init__(self) -> None:
        self.labels: list[Any] = []
        self.predicted: list[Any] = []
        self.confidence: list[Any] = []

    def update(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> None:
        probs = outputs["logits"].detach().float().softmax(-1)  # (B, C)
        self.labels.append(batch["labels"].detach())
        self.predicted.append(probs.argmax(-1))
        self.confidence.append(probs.max(-1).values)

    def compute(self) -> dict[str, float]:
        return {}

    def arrays(self) -> tuple[Any, Any, Any]:
        """``labels, predicted, confidence``: three CPU tensors of shape (N,)."""
        import torch

        return tuple(torch.cat(parts).cpu() for parts in (self.labels, self.predicted, self.confidence))


ImagePredictions = ClassPredictions  # its first name (the image tasks'); the text classifiers use it too


def grey_images(texts: Sequence[str], side: int, max_pixel: float) -> Any:
    """``gicho predict``'s strings for a grey-digit task: each an image file or ``side * side`` grey
    levels in [0, ``max_pixel``] row by row, as an array (N, side, side) float32 on that scale
    (files: resized whole, as the evaluation images). An input naming a missing image file is an
    error, not a list of numbers."""
    import numpy as np

    from gicho.data.image_folder import IMAGE_SUFFIXES
    from gicho.tasks._inputs import is_file
    from gicho.tasks._parsing import parse_numbers

    images = []
    for text in texts:
        path = Path(text.strip())
        if is_file(path):
            images.append(_scaled_grey([path], side, max_pixel, "an image file")[0])
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            raise ValueError(f"input {text!r}: image file not found")
        else:
            pixels = parse_numbers(text, side * side, f"pixels in [0, {max_pixel:g}], row by row", low=0.0,
                                   high=max_pixel)
            images.append(np.asarray(pixels, dtype=np.float32).reshape(side, side))
    return np.stack(images)


def grey_digits(inputs: Any, side: int, max_pixel: float, accepts: str) -> Any:
    """What a grey-digit task's ``predict`` accepts, as an array (N, side, side) float32 of pixel
    values on the scale [0, ``max_pixel``] the model was trained on.

    * one array or tensor (N, side, side) or (N, side * side), or a list of such arrays / rows:
      pixel values on the data's own scale (the numbers of ``gicho predict``);
    * PIL images and image files (paths), of any size: read as grey, resized whole to
      side x side and mapped from 0..255 to the data's scale, as the evaluation images.
    """
    import numpy as np

    from gicho.tasks._inputs import as_numbers, is_pil_image, number_rows

    if as_numbers(inputs) is not None:  # one numeric array (or a list of equal rows)
        return number_rows(inputs, side * side, accepts, low=0.0, high=max_pixel,
                           shape=(side, side)).reshape(-1, side, side)
    out = []
    for i, item in enumerate(inputs):
        if isinstance(item, (str, os.PathLike)) or is_pil_image(item):
            try:
                out.append(_scaled_grey([item], side, max_pixel, accepts)[0])
            except ValueError as exc:
                raise ValueError(str(exc).replace("input 0", f"input {i}", 1)) from None
        elif as_numbers(item) is not None:
            try:
                out.append(number_rows([item], side * side, accepts, low=0.0, high=max_pixel,
                                       shape=(side, side)).reshape(side, side))
            except ValueError as exc:
                raise ValueError(f"input {i}: {exc}") from None
        else:
            raise ValueError(f"input {i} is a {type(item).__name__}; this task accepts {accepts}")
    return np.stack(out)


def _scaled_grey(items: Sequence[Any], side: int, max_pixel: float, accepts: str) -> Any:
    """Images (paths, PIL) → (N, side, side) float32 in [0, max_pixel], resized whole."""
    import numpy as np

    from gicho.data.image_folder import ImageTransform
    from gicho.tasks._inputs import image_arrays

    to_scale = ImageTransform(side, mean=(0.0,), std=(1.0 / max_pixel,), crop_pct=1.0)  # → [0, max_pixel]
    return np.stack([to_scale(image)[0].numpy() for image in image_arrays(list(items), 1, accepts)])


def to_display(pixel_values: Any, info: dict[str, Any]) -> Any:
    """(C, H, W) normalised tensor → (H, W, C) array in [0, 1] (``x · std + mean``, the mean and
    std of ``info["processor"]``, else of ``info["mean"]`` / ``info["std"]``, else 0.5)."""
    import torch

    processor = info.get("processor")
    if processor is None:
        mean, std = info.get("mean", (0.5,)), info.get("std", (0.5,))
    else:
        mean, std = (processor.image_mean, processor.image_std) if processor.do_normalize else ((0.0,), (1.0,))
    mean = torch.tensor(mean)[:, None, None]
    std = torch.tensor(std)[:, None, None]
    return (pixel_values.cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


def draw_rollout(predictor: Any, pixel_values: Any, title: str, path: Path) -> None:
    """The attention-rollout map of one image (1, C, H, W) over the image, into ``path``."""
    from gicho.plots.rollout import plot_rollout

    model = predictor.model
    if not hasattr(model, "rollout_maps"):
        raise ValueError(f"option `attention`: the model ({type(model).__name__}) has no attention to draw; "
                         "only a ViT has")
    x = pixel_values.to(next(model.parameters()).device)
    grid = model.rollout_maps(x)[0].cpu().numpy()  # (g, g)
    plot_rollout([to_display(x[0], predictor.info)], [grid], path, value_range=(0.0, 1.0),
                 titles=[f"predicted {title}"])


def spread_over_classes(indices: list[int], labels: Any, k: int) -> list[int]:
    """At most ``k`` of ``indices``, taking each class in turn (in order of first appearance),
    so that the figure's examples are not all of the first class."""
    by_class: dict[int, list[int]] = {}
    for i in indices:
        by_class.setdefault(int(labels[i]), []).append(i)
    queues = list(by_class.values())
    chosen: list[int] = []
    while len(chosen) < k and any(queues):
        for queue in queues:
            if queue and len(chosen) < k:
                chosen.append(queue.pop(0))
    return chosen


def image_figures(predictor: Predictor, splits: Splits, ctx: Any, accumulators: Sequence[Any]) -> None:
    """Confusion matrix and rollout maps of test images (wrong ones first) in ``ctx.plots_dir``.

    ``accumulators`` are the final score's (a :class:`gicho.metrics.ConfusionMatrix` and a
    :class:`ImagePredictions` among them): the test split is not run again; only the few images
    drawn are read from it, for their rollout maps.
    """
    import torch
    from torch.utils.data import default_collate

    from gicho.metrics import ConfusionMatrix
    from gicho.plots.classification import plot_confusion_matrix
    from gicho.plots.rollout import plot_rollout

    confusion = _the(accumulators, ConfusionMatrix)
    model = predictor.model
    names = label_names(model)
    plot_confusion_matrix(confusion.matrix(), names, ctx.plots_dir / "confusion_matrix.png")
    labels, preds, confidence = _the(accumulators, ImagePredictions).arrays()
    wrong = spread_over_classes(torch.nonzero(preds != labels).flatten().tolist(), labels, N_ROLLOUTS // 2)
    right = spread_over_classes(torch.nonzero(preds == labels).flatten().tolist(), labels,
                                N_ROLLOUTS - len(wrong))
    chosen = wrong + right
    if chosen:
        pixels = (splits.collate or default_collate)([splits.test[i] for i in chosen])["pixel_values"]
        with torch.no_grad():
            maps = model.rollout_maps(pixels.to(next(model.parameters()).device)).cpu().numpy()
        # three short lines: one long line per panel ran into its neighbours' titles
        titles = [f"{'ok' if preds[i] == labels[i] else 'WRONG'} ({float(confidence[i]):.2f})\n"
                  f"true {names[int(labels[i])]}\npred {names[int(preds[i])]}" for i in chosen]
        plot_rollout([to_display(image, predictor.info) for image in pixels], list(maps),
                     ctx.plots_dir / "attention_rollout.png", titles=titles, value_range=(0.0, 1.0))


def _the(accumulators: Sequence[Any], kind: type) -> Any:
    """The one accumulator of type ``kind`` among ``accumulators`` (the task's test metrics)."""
    found = [a for a in accumulators if isinstance(a, kind)]
    if len(found) != 1:
        raise ValueError(f"the test metrics hold {len(found)} {kind.__name__}; the image figures need one "
                         f"(build_metrics(config, info, 'test') must include it)")
    return found[0]
