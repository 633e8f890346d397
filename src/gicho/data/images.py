"""Small image datasets with an embedded default (no download).

The default is scikit-learn's bundled *digits* set (UCI ML hand-written digits, 1,797 images
of 8x8 pixels with intensities 0..16, ten classes), which ships inside the scikit-learn wheel
and therefore never touches the network. Classical models use the flattened ``X``; patch- and
token-based models (ViT, transformers) use ``images``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DIGITS_MAX_INTENSITY", "ImageArrays", "RandomShift", "digits_pixel_values", "digits_split",
           "load_digits_arrays", "stratified_subset"]

# Digits pixels are integers in [0, DIGITS_MAX_INTENSITY]; `normalize=True` maps them to [0, 1].
DIGITS_MAX_INTENSITY = 16.0


@dataclass(frozen=True)
class ImageArrays:
    """Images, their flattened pixels and their labels.

    Attributes
    ----------
    images : ndarray of shape (n_samples, height, width), float64
    X : ndarray of shape (n_samples, height * width), float64
        ``images`` flattened row by row (a view of the same memory).
    y : ndarray of shape (n_samples,), int64
        Class labels ``0 .. n_classes - 1``.
    class_names : tuple of str
        Human-readable name of each label.
    """

    images: np.ndarray
    X: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def __iter__(self):  # allows `images, X, y, names = load_digits_arrays()`
        return iter((self.images, self.X, self.y, self.class_names))


def load_digits_arrays(*, normalize: bool = False) -> ImageArrays:
    """Load scikit-learn's bundled 8x8 digits images.

    Parameters
    ----------
    normalize : bool, default False
        Divide the intensities (integers 0..16) by 16 so that they lie in [0, 1].

    Returns
    -------
    ImageArrays
        ``images`` (1797, 8, 8), ``X`` (1797, 64), ``y`` (1797,) and ``class_names``
        ``("0", ..., "9")``.
    """
    from sklearn.datasets import load_digits  # bundled with the wheel: no network access

    bunch = load_digits()
    images = np.ascontiguousarray(bunch.images, dtype=np.float64)
    if normalize:
        images = images / DIGITS_MAX_INTENSITY
    X = images.reshape(images.shape[0], -1)
    y = np.asarray(bunch.target, dtype=np.int64)
    names = tuple(str(c) for c in bunch.target_names)
    return ImageArrays(images=images, X=X, y=y, class_names=names)



def digits_split(test_fraction: float = 0.2, seed: int = 0, *, normalize: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits images split into train and test sets, stratified by label.

    Returns ``images_train, images_test, y_train, y_test``: images float32 (N, 8, 8) in
    [0, 16] (or [0, 1] with ``normalize``), labels int64, from scikit-learn's
    ``train_test_split(..., test_size=test_fraction, random_state=seed, stratify=y)``.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(f"argument `test_fraction` must lie in (0, 1); got {test_fraction!r}")
    data = load_digits_arrays(normalize=normalize)
    images = data.images.astype(np.float32)
    return tuple(train_test_split(images, data.y, test_size=test_fraction, random_state=seed,
                                  stratify=data.y))


def digits_pixel_values(images: np.ndarray) -> np.ndarray:
    """Digits images (N, 8, 8) with intensities in [0, 16] → ViT inputs (N, 1, 8, 8) float32.

    Scaled to [0, 1] and normalised as ``(x - 0.5) / 0.5`` (Hugging Face ViT's image
    processor), so the values lie in [-1, 1].
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[1:] != (8, 8):
        raise ValueError(f"argument `images` must have shape (N, 8, 8); got {images.shape}")
    return ((images / DIGITS_MAX_INTENSITY - 0.5) / 0.5)[:, None]  # (N, 1, 8, 8)


class RandomShift:
    """A dataset wrapper that shifts ``pixel_values`` (C, H, W) by up to ``max_shift`` pixels.

    The image is padded with ``fill`` (the background) and cropped back at a random offset
    (torch's global generator), a translation augmentation for small images.
    """

    def __init__(self, base: Any, max_shift: int = 1, fill: float = -1.0) -> None:
        if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
            raise ValueError(f"argument `max_shift` must be an integer >= 0; got {max_shift!r}")
        self.base, self.max_shift, self.fill = base, max_shift, fill

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        item = dict(self.base[i])
        x, s = item["pixel_values"], self.max_shift
        if s:
            h, w = x.shape[-2:]
            padded = F.pad(x, (s, s, s, s), value=self.fill)  # (C, H + 2s, W + 2s)
            top, left = (int(v) for v in torch.randint(0, 2 * s + 1, (2,)))
            item["pixel_values"] = padded[..., top:top + h, left:left + w]  # (C, H, W)
        return item


def stratified_subset(labels: Any, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a stratified ``fraction`` of ``labels`` (N,) (all of them when 1).

    Raises ``ValueError`` (scikit-learn's) when a class has too few items to be split.
    """
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    if fraction >= 1:
        return index
    kept, _ = train_test_split(index, train_size=fraction, random_state=seed, stratify=labels)
    return np.sort(kept)
