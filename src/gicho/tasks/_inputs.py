"""What ``Predictor.predict`` accepts: native Python inputs, checked and turned into plain arrays.

A trained model is called from Python with what its data naturally is (scikit-learn's and Hugging
Face's habit), never with the command line's strings:

* rows of numbers: a NumPy array or a torch tensor (N, n_features) (or (N, *shape)), or a list of
  rows (:func:`number_rows`);
* texts: a list of strings; pairs: a list of ``(text_a, text_b)`` tuples (:func:`texts`,
  :func:`text_pairs`);
* images: a list of PIL images, image paths, or arrays (H, W) / (H, W, C), or one array
  (N, H, W[, C]) (:func:`image_arrays`).

Every helper raises one ``ValueError`` that says what the task accepts (``accepts``, the task's
``input_kind``) and which input is wrong. A bare string, path or image (not in a list) is refused
rather than guessed at: a string is iterable by character, and "one input" reads differently in
every library.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["as_numbers", "check_container", "image_arrays", "is_file", "is_pil_image", "number_rows", "text_pairs", "texts"]


def is_pil_image(value: Any) -> bool:
    image_module = __import__("sys").modules.get("PIL.Image")
    return image_module is not None and isinstance(value, image_module.Image)


def _kind(value: Any) -> str:
    if is_pil_image(value):
        return "PIL image"
    if isinstance(value, np.ndarray):
        return f"NumPy array of shape {value.shape}"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    return type(value).__name__


def check_container(inputs: Any, accepts: str) -> None:
    """Refuse what is not a batch of inputs: a bare string, path, bytes, image or mapping; nothing."""
    if isinstance(inputs, (str, bytes, os.PathLike)) or is_pil_image(inputs) or isinstance(inputs, dict):
        raise ValueError(f"argument `inputs` is one {_kind(inputs)}, not a batch; pass a list (or array) of "
                         f"inputs, e.g. [x]. This task accepts {accepts}")
    if not hasattr(inputs, "__len__") or not hasattr(inputs, "__getitem__"):
        raise ValueError(f"argument `inputs` must be a list or an array of inputs; got {_kind(inputs)}. "
                         f"This task accepts {accepts}")
    if len(inputs) == 0:
        raise ValueError(f"argument `inputs` is empty; give at least one input ({accepts})")


def as_numbers(value: Any) -> np.ndarray | None:
    """A torch tensor or an array-like of numbers as a NumPy array; None when it holds no numbers."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged rows
        return None
    return array if array.dtype.kind in "biuf" else None


def number_rows(inputs: Any, n_features: int, accepts: str, *, low: float | None = None,
                high: float | None = None, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``inputs`` as float32 (N, n_features): an array (N, n_features) or (N, *shape), or a list of
    rows, every value finite and within [low, high] when given."""
    array = as_numbers(inputs)
    if array is None:
        raise ValueError(f"argument `inputs` must hold numbers; got {_kind(inputs)} of {type(inputs[0]).__name__}"
                         f". This task accepts {accepts}")
    shapes = [(n_features,)] + ([tuple(shape)] if shape is not None and tuple(shape) != (n_features,) else [])
    if array.ndim == 1 and array.shape[0] == n_features:
        raise ValueError(f"argument `inputs` is one row of {n_features} values (shape {array.shape}); pass a batch "
                         f"of shape (1, {n_features}), e.g. x.reshape(1, -1). This task accepts {accepts}")
    if shape is not None and array.ndim == len(shape) and tuple(array.shape) == tuple(shape):
        raise ValueError(f"argument `inputs` is one input of shape {array.shape}; pass a batch of shape "
                         f"{(1, *shape)}, e.g. x[None]. This task accepts {accepts}")
    if array.ndim < 2 or tuple(array.shape[1:]) not in shapes:
        allowed = " or ".join(str(("N", *s)).replace("'", "") for s in shapes)
        raise ValueError(f"argument `inputs` has shape {array.shape}; expected {allowed}. This task accepts {accepts}")
    rows = array.reshape(array.shape[0], n_features).astype(np.float64)
    bad = ~np.isfinite(rows)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise ValueError(f"input {i} holds non-finite values (NaN or infinity); this task accepts {accepts}")
    for limit, outside in ((low, rows < (low if low is not None else -math.inf)),
                           (high, rows > (high if high is not None else math.inf))):
        if limit is not None and outside.any():
            i, j = (int(v) for v in np.argwhere(outside)[0])
            raise ValueError(f"input {i} holds the value {rows[i, j]:g} outside [{low:g}, {high:g}]; this task "
                             f"accepts {accepts}")
    return rows.astype(np.float32)


def texts(inputs: Any, accepts: str) -> list[str]:
    """``inputs`` as a list of strings (a NumPy array of strings is fine)."""
    items = list(inputs.tolist() if isinstance(inputs, np.ndarray) else inputs)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ValueError(f"input {i} is a {_kind(item)}, not a string; this task accepts {accepts}")
    return items


def text_pairs(inputs: Any, accepts: str) -> list[tuple[str, str | None]]:
    """``inputs`` as (text, second text or None): strings, or (str, str) tuples / lists."""
    items = list(inputs.tolist() if isinstance(inputs, np.ndarray) else inputs)
    out: list[tuple[str, str | None]] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            out.append((item, None))
        elif (isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, str) for t in item)):
            out.append((item[0], item[1]))
        else:
            raise ValueError(f"input {i} is a {_kind(item)}; this task accepts {accepts}")
    return out


def image_arrays(inputs: Any, channels: int, accepts: str) -> list[np.ndarray]:
    """Each input as a decoded 8-bit image (H, W, channels), as :func:`gicho.data.image_folder.read_image`
    reads a file.

    An input is an image path (str or ``Path``), a PIL image (converted by the same rules as a
    file), or an array (H, W) or (H, W, C) with C in {1, 3}: uint8 in 0..255, or floats in [0, 1]
    (scaled by 255, as ``read_image`` reads a float image). A single array (N, H, W[, C]) is N images.
    """
    from gicho.data.image_folder import image_to_array, read_image

    if isinstance(inputs, np.ndarray) or (hasattr(inputs, "detach") and hasattr(inputs, "cpu")):
        array = as_numbers(inputs)
        if array is None or array.ndim not in (3, 4):
            raise ValueError(f"argument `inputs` as one array must have shape (N, H, W) or (N, H, W, C); got "
                             f"{_kind(inputs)}. This task accepts {accepts}")
        items: Sequence[Any] = list(array)
    else:
        items = list(inputs)
    out = []
    for i, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            path = Path(item)
            if not is_file(path):
                raise ValueError(f"input {i}: image file {str(item)[:200]!r} not found; this task accepts {accepts}")
            out.append(read_image(path, channels=channels))
        elif is_pil_image(item):
            out.append(image_to_array(item, channels=channels, name=f"input {i}"))
        else:
            array = as_numbers(item)
            if array is None or array.ndim == 0:
                raise ValueError(f"input {i} is a {_kind(item)}; this task accepts {accepts}")
            out.append(_pixel_array(array, channels, i, accepts))
    return out


def _pixel_array(array: np.ndarray, channels: int, i: int, accepts: str) -> np.ndarray:
    """(H, W) or (H, W, C) uint8 (or floats in [0, 1]) → (H, W, channels) uint8."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(f"input {i} has shape {array.shape}; an image array is (H, W) or (H, W, C) with C 1 or 3. "
                         f"This task accepts {accepts}")
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype.kind == "f":
        finite = bool(np.isfinite(array).all())
        if not finite or array.min() < 0 or array.max() > 1:
            what = "NaN or infinite values" if not finite else f"values in [{array.min():g}, {array.max():g}]"
            raise ValueError(f"input {i} is a float image with {what}; float images are read in [0, 1] (uint8 "
                             "images in 0..255)")
        pixels = np.rint(array * 255).astype(np.uint8)
    else:
        raise ValueError(f"input {i} is an image array of dtype {array.dtype}; use uint8 (0..255) or floats in "
                         "[0, 1]")
    if pixels.shape[2] == channels:
        return pixels
    if channels == 3:  # grey shown as RGB
        return np.repeat(pixels, 3, axis=2)
    from PIL import Image

    # Pillow's own RGB → L (its integer rounding), so that an array and the same picture as a file agree
    return np.asarray(Image.fromarray(np.ascontiguousarray(pixels), "RGB").convert("L"))[:, :, None]


def is_file(path: Path) -> bool:
    """Whether ``path`` is a file; hundreds of pixel values are too long a name to ask the system about."""
    try:
        return path.is_file()
    except OSError:  # "File name too long"
        return False
