"""Images from files: ``root/<class>/*.jpg`` folders, decoding and preprocessing without torchvision.

* :func:`read_image` decodes one file with Pillow (RGB or grey), after refusing an image whose
  header announces more than ``max_pixels`` pixels (a 50,000 × 50,000 "decompression bomb" is
  refused before a byte of pixels is decoded); truncated or crafted files raise
  :class:`ImageError` naming the path.
* :class:`ImageTransform` turns a decoded image into the model's ``pixel_values`` with torch
  ops: resize the shorter side to ``image_size / crop_pct`` (bilinear, antialiased), crop
  ``image_size`` (centre, or random for training), flip horizontally (training, p = 0.5),
  scale to [0, 1] and normalise ``(x - mean) / std`` per channel (0.5 / 0.5 as Hugging Face's
  ViT image processor by default).
* :class:`ImageFolder` lists ``root/<class>/**/<image>`` (classes = sub-folder names, sorted),
  decodes every file once up front and reports unreadable ones by path (``on_error="raise"``
  or ``"skip"``), and never reads outside ``root`` (symlinks resolving elsewhere and ``..`` are
  refused).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from gicho._validation import check_choice, check_positive

__all__ = ["IMAGE_SUFFIXES", "MAX_IMAGE_PIXELS", "ImageError", "ImageFolder", "ImageTransform", "read_image",
           "write_digits_folder"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_IMAGE_PIXELS = 50_000_000  # about 7,000 × 7,000; larger headers are refused before decoding
DEFAULT_CROP_PCT = 0.875  # resize to size / 0.875, then crop size (timm's and HF's evaluation crop)
_MODES = {3: "RGB", 1: "L"}


class ImageError(ValueError):
    """An image file that cannot be used: unreadable, truncated, too large, or outside its root."""


def read_image(path: str | os.PathLike, *, channels: int = 3, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode an image file into an array.

    Parameters
    ----------
    path : path
    channels : {3, 1}
        RGB or grey (Pillow's ``convert("RGB")`` / ``convert("L")``; alpha is dropped).
    max_pixels : int
        Refuse images whose header announces more pixels (checked before decoding).

    Returns
    -------
    ndarray, uint8, shape (H, W, channels)

    Raises
    ------
    ImageError
        Naming ``path``: not an image, truncated, too large.
    """
    from PIL import Image

    check_choice(channels, "channels", tuple(_MODES))
    try:
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(f"image {path} is {width}x{height} pixels, more than max_pixels="
                                 f"{max_pixels}; refusing to decode it")
            array = np.array(image.convert(_MODES[channels]))  # a writable copy
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own header check, at 2x its limit
        raise ImageError(f"image {path} is too large; refusing to decode it ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"image {path} cannot be decoded: {exc}") from None
    return array.reshape(array.shape[0], array.shape[1], channels)  # (H, W, C)


@dataclass(frozen=True)
class ImageTransform:
    """Decoded image (H, W, C) uint8 → ``pixel_values`` (C, S, S) float32; see the module docstring.

    Parameters
    ----------
    image_size : int
        S, the model's input size.
    train : bool
        Random crop and horizontal flip (torch's global generator) instead of the centre crop.
    mean, std : tuple of float
        Per-channel normalisation after scaling to [0, 1] (one value per channel).
    crop_pct : float in (0, 1]
        The shorter side is resized to ``round(S / crop_pct)`` before cropping.
    """

    image_size: int
    train: bool = False
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    crop_pct: float = DEFAULT_CROP_PCT

    def __post_init__(self) -> None:
        check_positive(self.image_size, "image_size", integer=True)
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"argument `crop_pct` must lie in (0, 1]; got {self.crop_pct!r}")
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError(f"mean {self.mean} and std {self.std} must have one value per channel, std > 0")

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        if image.ndim != 3 or image.shape[2] != len(self.mean):
            raise ValueError(f"image must have shape (H, W, {len(self.mean)}); got {image.shape} "
                             "(grey vs RGB: set the channels to match the model)")
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0  # (C, H, W)
        short = round(self.image_size / self.crop_pct)
        h, w = x.shape[1:]
        scale = short / min(h, w)
        size = (max(short, round(h * scale)), max(short, round(w * scale)))
        x = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False,
                          antialias=True)[0]  # (C, H', W'), shorter side = short
        s = self.image_size
        if self.train:
            top = int(torch.randint(0, size[0] - s + 1, ()))
            left = int(torch.randint(0, size[1] - s + 1, ()))
        else:
            top, left = (size[0] - s) // 2, (size[1] - s) // 2
        x = x[:, top:top + s, left:left + s]  # (C, S, S)
        if self.train and bool(torch.rand(()) < 0.5):
            x = x.flip(-1)
        mean = torch.tensor(self.mean)[:, None, None]
        std = torch.tensor(self.std)[:, None, None]
        return ((x.clamp(0, 1) - mean) / std).contiguous()


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


class ImageFolder(Dataset):
    """Labelled images in ``root/<class name>/...`` (sub-folders searched; classes sorted).

    Parameters
    ----------
    root : path
        Each sub-folder is a class; files directly in ``root`` and hidden folders are ignored.
    image_size : int
    train : bool
        Training augmentation (random crop, flip) or the evaluation crop.
    channels : {3, 1}
        RGB or grey; every image is converted.
    on_error : {"raise", "skip"}
        What an unreadable file does at construction: raise :class:`ImageError` listing every
        bad path, or be skipped with a warning listing them (see ``skipped``).
    mean, std, crop_pct :
        See :class:`ImageTransform` (``mean`` / ``std`` default to 0.5 per channel).
    max_pixels : int
        See :func:`read_image`.

    Attributes
    ----------
    classes : list of str
    samples : list of (Path, int)
    skipped : list of (Path, str)
        Files left out and why.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        ``root`` is missing or not a folder.
    ValueError
        No class folders, a class with no readable image, or (``on_error="raise"``) bad files.
    """

    def __init__(self, root: str | os.PathLike, image_size: int, train: bool = False, *,
                 channels: int = 3, on_error: Literal["raise", "skip"] = "raise",
                 mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                 crop_pct: float = DEFAULT_CROP_PCT, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
        check_choice(on_error, "on_error", ("raise", "skip"))
        check_choice(channels, "channels", tuple(_MODES))
        given = Path(root)
        if not given.exists():
            raise FileNotFoundError(f"image folder root {given} does not exist")
        if not given.is_dir():
            raise NotADirectoryError(f"image folder root {given} is not a directory")
        self.root = given.resolve()
        self.channels, self.max_pixels = channels, max_pixels
        self.transform = ImageTransform(image_size, train, mean or (0.5,) * channels,
                                        std or (0.5,) * channels, crop_pct)
        class_dirs = sorted(p for p in self.root.iterdir()
                            if p.is_dir() and not p.name.startswith(".") and _inside(p, self.root))
        if not class_dirs:
            raise ValueError(f"image folder {given} has no class sub-folders; expected {given}/<class>/<image> "
                             f"(for example {given}/cat/1.jpg, {given}/dog/2.jpg)")
        self.classes = [p.name for p in class_dirs]
        self.samples: list[tuple[Path, int]] = []
        self.skipped: list[tuple[Path, str]] = []
        for label, folder in enumerate(class_dirs):
            found = bad = 0
            for path in self._files(folder):
                reason = self._check(path)
                if reason is None:
                    self.samples.append((path, label))
                    found += 1
                else:
                    self.skipped.append((path, reason))
                    bad += 1
            if found == 0 and not (on_error == "raise" and bad):  # else the bad files are reported
                raise ValueError(f"class folder {folder} has no readable images (suffixes: "
                                 f"{', '.join(IMAGE_SUFFIXES)})")
        if self.skipped:
            listing = "; ".join(f"{p}: {why}" for p, why in self.skipped[:10])
            more = f" (and {len(self.skipped) - 10} more)" if len(self.skipped) > 10 else ""
            if on_error == "raise":
                raise ImageError(f"{len(self.skipped)} unusable file(s) in {given}: {listing}{more}; "
                                 "pass on_error='skip' to leave them out")
            warnings.warn(f"skipped {len(self.skipped)} unusable file(s) in {given}: {listing}{more}",
                          stacklevel=2)

    def _files(self, folder: Path) -> list[Path]:
        out = []
        for dirpath, dirnames, filenames in os.walk(folder):  # symlinked folders are not followed
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out += [Path(dirpath) / f for f in sorted(filenames)
                    if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES]
        return out

    def _check(self, path: Path) -> str | None:
        if not _inside(path, self.root):
            return f"resolves outside the root ({path.resolve()})"
        try:
            read_image(path, channels=self.channels, max_pixels=self.max_pixels)
        except ImageError as exc:
            return str(exc)
        return None

    def with_train(self, train: bool) -> ImageFolder:
        """The same files with the training (or evaluation) transform; nothing is re-read."""
        other = copy.copy(self)
        other.transform = dataclasses.replace(self.transform, train=train)
        return other

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, label = self.samples[i]
        image = read_image(path, channels=self.channels, max_pixels=self.max_pixels)
        return {"pixel_values": self.transform(image), "labels": torch.tensor(label, dtype=torch.long)}


def write_digits_folder(directory: str | os.PathLike, classes: tuple[str, ...] = ("0", "1", "2"), *,
                        size: int = 32) -> Path:
    """Write scikit-learn's digits of ``classes`` as RGB PNG files ``directory/<digit>/<i>.png``.

    An image folder that needs no download (the ``vit`` task's default, and the tests'): each
    8x8 digit is upscaled to ``size`` px (nearest), light strokes on a dark background.
    """
    from PIL import Image

    from gicho.data.images import DIGITS_MAX_INTENSITY, load_digits_arrays

    data = load_digits_arrays()
    directory = Path(directory)
    for name in classes:
        (directory / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(data.images, data.y, strict=True)):
        if str(label) in classes:
            grey = (image / DIGITS_MAX_INTENSITY * 255).astype(np.uint8)  # (8, 8)
            Image.fromarray(grey).resize((size, size), Image.NEAREST).convert("RGB").save(
                directory / str(label) / f"{i}.png")
    return directory
