"""What the ViT image tasks (``digits-vit``, ``vit``) share: scores, top-k answers, figures.

* :class:`ClassScores` — streaming accuracy and, on the test split, per-class accuracy
  (``accuracy_<class>``) from one confusion matrix;
* :func:`answer` — top-k classes with probabilities, and the attention-rollout map of the first
  input when ``options["attention"]`` names a PNG;
* :func:`image_figures` — after training: the confusion matrix and rollout maps of a few test
  images, right and wrong ones, in ``plots/``.

Inputs are ``pixel_values`` normalised by the model's image processor (``info["processor"]``, a
:class:`gicho.models.vit.ViTImageProcessor`; or ``info["mean"]`` / ``info["std"]``); figures undo it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["TOP_K", "ClassScores", "answer", "image_figures", "label_names", "spread_over_classes", "to_display"]

TOP_K = 3  # classes shown per answer
N_ROLLOUTS = 6  # test images drawn with their rollout maps (wrong ones first, then right ones)


class ClassScores:
    """Accuracy (and per-class accuracy when ``per_class``) accumulated over batches."""

    def __init__(self, names: Sequence[str], per_class: bool = False) -> None:
        import torch

        self.names, self.per_class = list(names), per_class
        self.counts = torch.zeros(len(self.names), len(self.names), dtype=torch.long)  # (true, predicted)

    def update(self, outputs: dict[str, Any], batch: dict[str, Any]) -> None:
        import torch

        c = len(self.names)
        pred = outputs["logits"].argmax(-1).cpu()
        true = batch["labels"].cpu()
        keep = true >= 0
        flat = true[keep] * c + pred[keep]
        self.counts += torch.bincount(flat, minlength=c * c).view(c, c)

    def compute(self) -> dict[str, float]:
        total = int(self.counts.sum())
        out = {"accuracy": float(self.counts.trace()) / total if total else float("nan")}
        if self.per_class:
            for k, name in enumerate(self.names):
                row = int(self.counts[k].sum())
                out[f"accuracy_{name}"] = float(self.counts[k, k]) / row if row else float("nan")
        return out


def label_names(model: Any) -> tuple[str, ...]:
    c = model.config
    return c.label_names or tuple(str(k) for k in range(c.n_labels))


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


def answer(predictor: Any, batch: dict[str, Any], options: dict[str, Any]) -> list[str]:
    """Top-k "name (probability)" per input; ``options["attention"]``: rollout PNG of input 0."""
    from gicho.plots.rollout import plot_rollout

    model = predictor.model
    names = label_names(model)
    probs = predictor(batch)["logits"].float().softmax(-1)  # (B, C)
    top = probs.topk(min(TOP_K, probs.shape[-1]), dim=-1)
    lines = [", ".join(f"{names[int(i)]} ({float(p):.3f})" for p, i in zip(ps, ix, strict=True))
             for ps, ix in zip(top.values, top.indices, strict=True)]
    if options.get("attention"):
        x = batch["pixel_values"][:1].to(next(model.parameters()).device)
        grid = model.rollout_maps(x)[0].cpu().numpy()  # (g, g)
        plot_rollout([to_display(x[0], predictor.info)], [grid], options["attention"], value_range=(0.0, 1.0),
                     titles=[f"predicted {lines[0].split(',')[0]}"])
    return lines


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


def image_figures(config: Any, predictor: Any, splits: Any, ctx: Any, scores: dict[str, float]) -> dict:
    """Confusion matrix and rollout maps of test images (wrong ones first) in ``ctx.plots_dir``."""
    import torch

    from gicho.plots.classification import plot_confusion_matrix
    from gicho.plots.rollout import plot_rollout

    model = predictor.model
    device = next(model.parameters()).device
    names = label_names(model)
    loader = torch.utils.data.DataLoader(splits.test, batch_size=256, collate_fn=splits.collate)
    pixels, labels, preds, confidence = [], [], [], []
    with torch.no_grad():
        for batch in loader:
            probs = model(batch["pixel_values"].to(device))["logits"].float().softmax(-1).cpu()
            pixels.append(batch["pixel_values"])
            labels.append(batch["labels"])
            confidence.append(probs.max(-1).values)
            preds.append(probs.argmax(-1))
    pixels, labels, preds, confidence = (torch.cat(t) for t in (pixels, labels, preds, confidence))
    c = len(names)
    matrix = torch.bincount(labels * c + preds, minlength=c * c).view(c, c)
    plot_confusion_matrix(matrix.numpy(), names, ctx.plots_dir / "confusion_matrix.png")
    wrong = spread_over_classes(torch.nonzero(preds != labels).flatten().tolist(), labels, N_ROLLOUTS // 2)
    right = spread_over_classes(torch.nonzero(preds == labels).flatten().tolist(), labels,
                                N_ROLLOUTS - len(wrong))
    chosen = wrong + right
    if chosen:
        maps = model.rollout_maps(pixels[chosen].to(device)).cpu().numpy()
        # three short lines: one long line per panel ran into its neighbours' titles
        titles = [f"{'ok' if preds[i] == labels[i] else 'WRONG'} ({float(confidence[i]):.2f})\n"
                  f"true {names[int(labels[i])]}\npred {names[int(preds[i])]}" for i in chosen]
        plot_rollout([to_display(pixels[i], predictor.info) for i in chosen], list(maps),
                     ctx.plots_dir / "attention_rollout.png", titles=titles, value_range=(0.0, 1.0))
    return {}
