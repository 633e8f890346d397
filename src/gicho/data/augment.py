"""Training-data augmentation for image classifiers: per-image ops, MixUp / CutMix, named presets.

Two levels, both for training data only (evaluation and test data are never augmented):

* per image, on a dataset item's ``pixel_values`` (C, H, W) float tensor, drawn from torch's
  global generator (whose state a training checkpoint saves): :class:`RandomShift` (pad by
  ``s`` pixels with a fill value, crop back at a random offset; defined in
  :mod:`gicho.data.images`, re-exported here) and :class:`RandomFlip` (horizontal, p = 0.5;
  not for digits, whose mirror images are other shapes). Each wraps a map-style dataset;
* per batch, :class:`MixBatch`, a collate function that wraps the base one and mixes the
  collated batch: MixUp (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization"),
  ``x = λ·x_i + (1 - λ)·x_j``, or CutMix (Yun et al. 2019, "CutMix"), a box of ``x_j`` pasted
  into ``x_i`` with λ the share of ``x_i`` left, λ ~ Beta(α, α). ``labels`` become soft targets
  (B, n_classes) float32, ``λ·onehot(y_i) + (1 - λ)·onehot(y_j)``, which
  :func:`gicho.nn.losses.classification_loss` accepts. It draws from its own generator, whose
  state (``state_dict`` / ``load_state_dict``) the Trainer saves in every checkpoint, so an
  interrupted run resumes with the mixes it would have drawn (as the MLM collator's masks).

Presets (an :class:`Augmentation` each), by the kind of images:

=================  =======================================================================
``FOLDER_PRESETS`` photos in an image folder (task ``vit``): ``none``; ``flip-crop`` (the
                   folder's random crop of the resized image and horizontal flip: the
                   default); ``strong`` (flip-crop + MixUp / CutMix)
``DIGIT_PRESETS``  hand-written 28 px digits (MNIST): ``none``; ``shift`` (pad by 2 px and
                   crop back); ``strong`` (shift + MixUp / CutMix); never flipped
=================  =======================================================================

How a task wires it (``data.augment`` a preset name)::

    augmentation = get_preset(config.data.augment, FOLDER_PRESETS)  # ValueError names the allowed
    folder = folder.with_train(augmentation.crop_flip)   # the loader's own crop / flip, if any
    train, train_collate = augment_training(train, augmentation, n_classes=len(classes),
                                            seed=config.train.seed, collate=collate, fill=-1.0)
    return Splits(train, valid, test, collate=collate, train_collate=train_collate, ...)

``Splits.train_collate`` builds the training batches only; evaluation uses ``Splits.collate``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from gicho.data._seeded import SeededCollate
from gicho.data.images import RandomShift

__all__ = ["CUTMIX_ALPHA", "CUTMIX_PROB", "DIGIT_PRESETS", "DIGIT_SHIFT", "FOLDER_PRESETS", "MIXUP_ALPHA",
           "Augmentation", "MixBatch", "RandomFlip", "RandomShift", "augment_training", "get_preset"]

# timm's and DeiT's recipe (Touvron et al. 2021): MixUp α 0.8, CutMix α 1.0, each on half the batches
MIXUP_ALPHA = 0.8
CUTMIX_ALPHA = 1.0
CUTMIX_PROB = 0.5
FLIP_PROB = 0.5
DIGIT_SHIFT = 2  # pixels: the classic ±2 px translation of 28 px MNIST digits (an 8 px digit wants 1)


@dataclass(frozen=True)
class Augmentation:
    """What a preset does to training data.

    Parameters
    ----------
    crop_flip : bool
        The data source's own random crop and flip (an :class:`~gicho.data.image_folder.ImageFolder`
        in training mode: a random ``image_size`` crop of the resized image, flipped with p = 0.5);
        the task applies it (``folder.with_train(crop_flip)``), :func:`augment_training` does not.
    shift : int
        :class:`RandomShift` by up to ``shift`` pixels (0: none).
    flip : bool
        :class:`RandomFlip` on ``pixel_values``.
    mix : bool
        :class:`MixBatch` on the training batches (soft targets).
    mixup_alpha, cutmix_alpha, cutmix_prob : float
        :class:`MixBatch`'s parameters.
    """

    crop_flip: bool = False
    shift: int = 0
    flip: bool = False
    mix: bool = False
    mixup_alpha: float = MIXUP_ALPHA
    cutmix_alpha: float = CUTMIX_ALPHA
    cutmix_prob: float = CUTMIX_PROB


FOLDER_PRESETS: dict[str, Augmentation] = {
    "none": Augmentation(),
    "flip-crop": Augmentation(crop_flip=True),
    "strong": Augmentation(crop_flip=True, mix=True),
}
DIGIT_PRESETS: dict[str, Augmentation] = {
    "none": Augmentation(),
    "shift": Augmentation(shift=DIGIT_SHIFT),
    "strong": Augmentation(shift=DIGIT_SHIFT, mix=True),
}


def get_preset(name: str, presets: Mapping[str, Augmentation], field: str = "data.augment") -> Augmentation:
    """The preset ``name`` of ``presets``; a ValueError naming ``field`` and the allowed names."""
    if name not in presets:
        raise ValueError(f"field `{field}` must be one of {', '.join(repr(k) for k in presets)}; got {name!r}")
    return presets[name]


def augment_training(train: Any, augmentation: Augmentation, *, n_classes: int, seed: int,
                     collate: Callable[[list[Any]], dict[str, Any]] | None = None,
                     fill: float = 0.0) -> tuple[Any, Callable[[list[Any]], dict[str, Any]] | None]:
    """Wrap a training dataset and its collate function as ``augmentation`` says.

    Parameters
    ----------
    train : map-style dataset of ``{"pixel_values": (C, H, W) float, "labels": int}`` items
    augmentation : Augmentation
        Its ``crop_flip`` is the data source's own and is not applied here.
    n_classes : int
        The classes of the soft targets (``mix``).
    seed : int
        Seeds :class:`MixBatch`'s generator (the run's ``train.seed``).
    collate : callable or None
        The base collate function (None: torch's ``default_collate``).
    fill : float
        The padding value of :class:`RandomShift`: the background, in ``pixel_values`` units.

    Returns
    -------
    train, train_collate
        The wrapped dataset, and the collate function of the training batches (``collate``
        itself when nothing is mixed).
    """
    if augmentation.shift:
        train = RandomShift(train, augmentation.shift, fill)
    if augmentation.flip:
        train = RandomFlip(train)
    if augmentation.mix:
        collate = MixBatch(collate, n_classes, mixup_alpha=augmentation.mixup_alpha,
                           cutmix_alpha=augmentation.cutmix_alpha, cutmix_prob=augmentation.cutmix_prob, seed=seed)
    return train, collate


class RandomFlip:
    """A dataset wrapper that flips ``pixel_values`` (C, H, W) left-right with probability ``p``
    (torch's global generator)."""

    def __init__(self, base: Any, p: float = FLIP_PROB) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"argument `p` must lie in [0, 1]; got {p!r}")
        self.base, self.p = base, p

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = dict(self.base[i])
        if bool(torch.rand(()) < self.p):
            item["pixel_values"] = item["pixel_values"].flip(-1)  # (C, H, W), W reversed
        return item


class MixBatch(SeededCollate):
    """A collate function: the base one, then MixUp or CutMix of the batch, with soft targets.

    Parameters
    ----------
    collate : callable or None
        Items → a batch with ``pixel_values`` (B, C, H, W) float and ``labels`` (B,) class
        indices (None: torch's ``default_collate``).
    n_classes : int
        C of the soft targets.
    mixup_alpha, cutmix_alpha : float >= 0
        α of λ ~ Beta(α, α) for each; 0 turns that one off (not both).
    cutmix_prob : float in [0, 1]
        Probability that a batch is CutMixed rather than MixUped (when both are on).
    seed : int
        Seeds the wrapper's own generator; in ``DataLoader`` workers it is re-seeded from
        ``(seed, worker seed)`` so that workers draw different mixes.

    Each call pairs every image with another of the batch (a random permutation) and returns
    the batch with ``pixel_values`` mixed and ``labels`` (B, n_classes) float32 rows summing to 1.
    """

    def __init__(self, collate: Callable[[list[Any]], dict[str, Any]] | None, n_classes: int, *,
                 mixup_alpha: float = MIXUP_ALPHA, cutmix_alpha: float = CUTMIX_ALPHA,
                 cutmix_prob: float = CUTMIX_PROB, seed: int = 0) -> None:
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"argument `n_classes` must be an integer >= 2; got {n_classes!r}")
        for name, alpha in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
            if not (np.isfinite(alpha) and alpha >= 0):
                raise ValueError(f"argument `{name}` must be a finite number >= 0; got {alpha!r}")
        if mixup_alpha == 0 and cutmix_alpha == 0:
            raise ValueError("arguments `mixup_alpha` and `cutmix_alpha` are both 0: nothing would be mixed")
        if not 0 <= cutmix_prob <= 1:
            raise ValueError(f"argument `cutmix_prob` must lie in [0, 1]; got {cutmix_prob!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"argument `seed` must be an integer; got {seed!r}")
        self.collate = collate if collate is not None else default_collate
        self.n_classes = n_classes
        self.mixup_alpha, self.cutmix_alpha, self.cutmix_prob = float(mixup_alpha), float(cutmix_alpha), cutmix_prob
        self._seed_generator(seed)

    def _beta(self, alpha: float, g: torch.Generator) -> float:
        """λ ~ Beta(α, α), drawn through this wrapper's generator (torch's Beta takes none)."""
        seed = int(torch.randint(0, 2**62, (), generator=g))
        return float(np.random.default_rng(seed).beta(alpha, alpha))

    def __call__(self, items: Sequence[Any]) -> dict[str, Any]:
        batch = dict(self.collate(list(items)))
        x, y = batch["pixel_values"], batch["labels"]  # (B, C, H, W), (B,)
        if y.ndim != 1 or y.dtype.is_floating_point or bool(((y < 0) | (y >= self.n_classes)).any()):
            raise ValueError(f"MixBatch needs labels of class indices in [0, {self.n_classes}), shape (B,); "
                             f"got {y.dtype} of shape {tuple(y.shape)}")
        g = self._rng()
        cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or float(torch.rand((), generator=g))
                                            < self.cutmix_prob)
        lam = self._beta(self.cutmix_alpha if cutmix else self.mixup_alpha, g)
        partner = torch.randperm(x.shape[0], generator=g)  # (B,): whom each image is mixed with
        if cutmix:
            x, lam = _paste_box(x, partner, lam, g)
        else:
            x = lam * x + (1 - lam) * x[partner]
        onehot = torch.nn.functional.one_hot(y.long(), self.n_classes).float()  # (B, C)
        batch["pixel_values"] = x
        batch["labels"] = lam * onehot + (1 - lam) * onehot[partner]  # (B, C), rows sum to 1
        return batch


def _paste_box(x: torch.Tensor, partner: torch.Tensor, lam: float, g: torch.Generator) -> tuple[torch.Tensor, float]:
    """CutMix: paste a box of ``x[partner]`` covering about ``1 - lam`` of each image; returns the
    images and λ corrected to the share of pixels kept (the box is clipped at the borders)."""
    h, w = x.shape[-2:]
    cut = float(np.sqrt(1 - lam))  # the box's side as a fraction of the image's
    bh, bw = int(h * cut), int(w * cut)
    cy, cx = (int(v) for v in (torch.randint(0, h, (), generator=g), torch.randint(0, w, (), generator=g)))
    top, bottom = max(cy - bh // 2, 0), min(cy + bh // 2, h)
    left, right = max(cx - bw // 2, 0), min(cx + bw // 2, w)
    x = x.clone()
    x[..., top:bottom, left:right] = x[partner][..., top:bottom, left:right]
    return x, 1 - (bottom - top) * (right - left) / (h * w)
