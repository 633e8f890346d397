"""Is an input like what the classifier was trained on? A calibrated out-of-distribution p-value.

A softmax is confident far from its data: a digits ViT shown a blank image answers "0 (0.998)".
The softmax only says which side of the class boundaries an input falls on, not how far from
every class it lies. gicho measures two distances, each calibrated on held-out data:

* **features**: the vector the head reads (the "pre-logits" features). Training inputs give one
  mean per class and a covariance shared by the classes (Lee et al. 2018, "A simple unified
  framework for detecting out-of-distribution samples"), shrunk towards a multiple of the
  identity with weight ``D / (D + n)`` (more when there are few inputs per dimension) so that it
  inverts when n is small; the score is the squared Mahalanobis distance to the nearest mean;
* **image statistics** (image tasks): each channel's mean and standard deviation of the
  normalised pixels, one Gaussian over the training images. Measured on MNIST-5k, a blank image
  is *not* far in the features of a trained ViT (it lands among the 1s: p = 0.31): the network
  never saw one and maps it anywhere; but no digit has zero contrast.

Each distance becomes a conformal **p-value**: ``(1 + #{held-out scores >= score}) / (n + 1)``,
the share of up to :data:`MAX_ITEMS` held-out inputs at least as far out (for an input drawn like
them, P(p <= a) <= a). The answer's p-value is the smaller one times the number of distances
(Bonferroni: still P(p <= a) <= a), and ``gicho predict`` flags p < :data:`FLAG_BELOW` ("unlike
the training data"). The smallest p-value a run can give is ``2 / (n + 1)``: with fewer than
about 200 held-out inputs nothing can be flagged at 0.01, and the calibration says so by
construction rather than by guess.

The calibration is saved beside the weights as ``ood.safetensors`` (tensors only: no code, no
pickle) and read back by ``gicho.load``; a run made before it existed has none, and its answers
carry no p-value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["FLAG_BELOW", "MAX_ITEMS", "OOD_FILE", "GaussianDistance", "OODCalibration", "calibrate",
           "forward_with_features", "image_statistics"]

OOD_FILE = "ood.safetensors"
FLAG_BELOW = 0.01  # p-values below this are flagged: 1% of inputs like the held-out ones would be
MAX_ITEMS = 2000  # training (and held-out) inputs read for the calibration: a bounded extra pass
VIEWS = ("features", "image_statistics")


@dataclass
class GaussianDistance:
    """Means (K, D), a shared precision matrix (D, D), and the held-out scores (n,) sorted."""

    means: Tensor
    precision: Tensor
    reference: Tensor

    @classmethod
    def fit(cls, x: Tensor, labels: Tensor, n_classes: int) -> GaussianDistance:
        """One mean per class present in ``labels`` and the shared, shrunk covariance of ``x`` (n, D)."""
        x = x.double()
        d = x.shape[1]
        means = torch.zeros(n_classes, d, dtype=torch.float64)
        present = torch.zeros(n_classes, dtype=torch.bool)
        for c in range(n_classes):
            rows = x[labels == c]
            if len(rows):
                means[c], present[c] = rows.mean(0), True
        centred = x - means[labels]
        covariance = centred.T @ centred / max(1, len(x) - 1)
        weight = d / (d + len(x))  # shrink towards the identity more when there are few inputs per dimension
        target = torch.eye(d, dtype=torch.float64) * (covariance.trace() / d).clamp(min=1e-12)
        precision = torch.linalg.inv((1 - weight) * covariance + weight * target)
        return cls(means[present], precision, torch.empty(0, dtype=torch.float64))

    def scores(self, x: Tensor) -> Tensor:
        """Squared Mahalanobis distance (N,) of ``x`` (N, D) to the nearest mean."""
        z = x.double()[:, None, :] - self.means[None]  # (N, K, D)
        return torch.einsum("nkd,de,nke->nk", z, self.precision, z).min(dim=1).values

    def p_values(self, x: Tensor) -> Tensor:
        """(1 + #{held-out scores >= score}) / (n + 1) per input (N,) float64."""
        at_least = self.reference.numel() - torch.searchsorted(self.reference, self.scores(x), side="left")
        return (1.0 + at_least.double()) / (self.reference.numel() + 1.0)


@dataclass
class OODCalibration:
    """The distances of one model (``features``; ``image_statistics`` for image inputs)."""

    distances: dict[str, GaussianDistance]

    def p_values(self, features: Tensor, batch: dict[str, Any]) -> Tensor:
        """The combined p-value (N,) of a batch whose head read ``features`` (see the module)."""
        views = _views(features, batch)
        missing = sorted(set(self.distances) - set(views))
        if missing:
            raise ValueError(f"the calibration needs {missing} of the batch, which it lacks")
        parts = torch.stack([self.distances[name].p_values(views[name]) for name in self.distances])
        return (parts.min(dim=0).values * len(self.distances)).clamp(max=1.0)

    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save

        from gicho._io import atomic_write_bytes

        tensors = {f"{name}.{part}": getattr(distance, part).contiguous()
                   for name, distance in self.distances.items() for part in ("means", "precision", "reference")}
        path = Path(directory) / OOD_FILE
        atomic_write_bytes(path, save(tensors))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> OODCalibration | None:
        """The calibration saved in ``directory``, or None when it has none."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from gicho.weights import CheckpointError

        path = Path(directory) / OOD_FILE
        if not path.is_file():
            return None
        try:
            tensors = load_file(str(path))
            names = sorted({key.split(".")[0] for key in tensors})
            distances = {name: GaussianDistance(*(tensors[f"{name}.{part}"].double()
                                                  for part in ("means", "precision", "reference")))
                         for name in names}
        except (SafetensorError, KeyError, OSError) as exc:
            raise CheckpointError(f"{path} is damaged ({exc}); delete it to predict without p-values") from None
        for name, distance in distances.items():
            d = distance.means.shape[-1]
            if (name not in VIEWS or distance.means.ndim != 2 or distance.precision.shape != (d, d)
                    or distance.reference.ndim != 1):
                raise CheckpointError(f"{path}: {name!r} is not a distance gicho writes, or its shapes "
                                      f"{tuple(distance.means.shape)}, {tuple(distance.precision.shape)}, "
                                      f"{tuple(distance.reference.shape)} do not fit together")
        return cls(distances) if distances else None


def image_statistics(pixel_values: Tensor) -> Tensor:
    """Each channel's mean and standard deviation (N, 2C) of images (N, C, H, W)."""
    x = pixel_values.detach().float().cpu()
    return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


def _views(features: Tensor, batch: dict[str, Any]) -> dict[str, Tensor]:
    views = {"features": features}
    pixels = batch.get("pixel_values")
    if isinstance(pixels, Tensor) and pixels.ndim == 4:
        views["image_statistics"] = image_statistics(pixels)
    return views


def _head(model: Any) -> torch.nn.Module:
    """The layer that turns the features into logits (``head``, or BERT's ``classifier``; an
    ``nn.Linear``, or its int8 form)."""
    for name in ("head", "classifier"):
        module = getattr(model, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise ValueError(f"{type(model).__name__} has no linear head (head or classifier) whose input to score")


@torch.no_grad()
def forward_with_features(predictor: Any, batch: dict[str, Any]) -> tuple[dict[str, Any], Tensor]:
    """The model's outputs on ``batch`` and the features its head read (N, D), in one pass."""
    seen: list[Tensor] = []
    handle = _head(predictor.model).register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    try:
        outputs = predictor(batch)
    finally:
        handle.remove()
    if len(seen) != 1:  # a DeiT runs its distillation head too: that one is not `head`
        raise RuntimeError(f"the head ran {len(seen)} times in one forward pass; expected once")
    return outputs, seen[0].float().cpu()


def _view_data(predictor: Any, data: Any, collate: Any, batch_size: int) -> tuple[dict[str, Tensor], Tensor]:
    """The views (features, image statistics) of up to MAX_ITEMS items of ``data`` (evenly spaced),
    and their integer labels (n,)."""
    from torch.utils.data import DataLoader, Subset, default_collate

    n = len(data)
    if n > MAX_ITEMS:
        data = Subset(data, torch.linspace(0, n - 1, MAX_ITEMS).round().long().tolist())
    device = next(predictor.model.parameters()).device
    views: dict[str, list[Tensor]] = {}
    labels = []
    for batch in DataLoader(data, batch_size=batch_size, collate_fn=collate or default_collate):
        labels.append(batch.pop("labels").cpu())
        batch = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
        for name, value in _views(forward_with_features(predictor, batch)[1], batch).items():
            views.setdefault(name, []).append(value.double())
    return {name: torch.cat(parts) for name, parts in views.items()}, torch.cat(labels)


def calibrate(predictor: Any, train: Any, held_out: Any, collate: Any = None,
              batch_size: int = 64) -> OODCalibration:
    """Fit each distance on ``train``, keep the scores of ``held_out`` (see the module)."""
    train_views, labels = _view_data(predictor, train, collate, batch_size)
    if labels.ndim != 1 or labels.dtype.is_floating_point:
        raise ValueError("the out-of-distribution calibration needs integer class labels (N,)")
    held_views, _ = _view_data(predictor, held_out, collate, batch_size)
    n_classes = int(predictor.model.config.n_labels)
    distances = {}
    for name, x in train_views.items():
        # the classes shape the features; the image statistics are one cloud (a class says little there)
        by_class = labels if name == "features" else torch.zeros_like(labels)
        distance = GaussianDistance.fit(x, by_class, n_classes if name == "features" else 1)
        distance.reference = distance.scores(held_views[name]).sort().values
        distances[name] = distance
    return OODCalibration(distances)
