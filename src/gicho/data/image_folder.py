"""Images from files: ``root/<class>/*.jpg`` folders, decoding and preprocessing without torchvision.

* :func:`read_image` decodes one file with Pillow into 8-bit RGB or grey, after refusing an
  image whose header announces more than ``max_pixels`` pixels (a 50,000 × 50,000 "decompression
  bomb" is refused before a byte of pixels is decoded); truncated or crafted files raise
  :class:`ImageError` naming the path. The picture is the one a viewer shows: EXIF orientation
  applied, 16-bit and float pixels scaled (not clipped), transparency composited over white;
  see :func:`read_image` for the rule of each mode.
* :class:`ImageTransform` turns a decoded image into the model's ``pixel_values`` with torch
  ops: resize the shorter side to ``image_size / crop_pct`` (bilinear, antialiased), crop
  ``image_size`` (centre, or random for training), flip horizontally (training, p = 0.5),
  scale to [0, 1] and normalise ``(x - mean) / std`` per channel (0.5 / 0.5 as Hugging Face's
  ViT image processor by default); ``crop_pct=None`` resizes the whole image to ``image_size``
  squared instead (Hugging Face's ViT default, no crop). :meth:`ImageTransform.from_processor`
  builds it from a model's image processor (:class:`gicho.models.vit.ViTImageProcessor`, saved
  as Hugging Face's ``preprocessor_config.json``).
* :class:`ImageFolder` lists ``root/<class>/**/<image>`` (classes = sub-folder names, sorted),
  decodes every file once up front and reports unreadable ones by path (``on_error="raise"``
  or ``"skip"``), and never reads outside ``root``: a file, class folder or sub-folder that resolves
  elsewhere (a symlink, ``..``) is refused by name like an unreadable file.
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

__all__ = ["IMAGE_SUFFIXES", "MAX_IMAGE_PIXELS", "ImageError", "ImageFolder", "ImageTransform", "image_files",
           "image_to_array", "read_image", "write_digits_folder"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_IMAGE_PIXELS = 50_000_000  # about 7,000 × 7,000; larger headers are refused before decoding
DEFAULT_CROP_PCT = 0.875  # resize to size / 0.875, then crop size (timm's and HF's evaluation crop)
_MODES = {3: "RGB", 1: "L"}
ALPHA_BACKGROUND = (255, 255, 255)  # transparent pixels are composited over white, as transformers' convert_rgb
_EIGHT_BIT_MODES = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "HSV")  # Pillow converts these exactly
_ALPHA_MODES = ("LA", "PA", "RGBA", "RGBa", "La")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
_UINT16_MAX = 65535  # 16-bit pixels v become round(v / 257) = round(v * 255 / 65535)


class ImageError(ValueError):
    """An image file that cannot be used: unreadable, truncated, too large, or outside its root."""


def read_image(path: str | os.PathLike, *, channels: int = 3, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode an image file into an 8-bit array, as a viewer shows it.

    The EXIF orientation is applied first (``ImageOps.exif_transpose``, as transformers'
    ``load_image``: a phone photo comes out upright). Then each Pillow mode becomes 8 bits by
    one rule:

    * ``1``, ``L``, ``P``, ``RGB``, ``RGBX``, ``CMYK``, ``YCbCr``, ``HSV``: Pillow's own conversion
      to RGB or grey (``L = 0.299 R + 0.587 G + 0.114 B``; CMYK without a colour profile);
    * with transparency (``RGBA``, ``LA``, ``PA``, premultiplied ``RGBa`` / ``La``, or a palette
      or grey / RGB image with a transparent colour): composited over white
      (:data:`ALPHA_BACKGROUND`, as transformers' ``convert_rgb``), so that what is hidden under a
      transparent pixel never shows;
    * 16-bit grey (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``) and 32-bit integer ``I`` whose values
      lie in [0, 65535] (Pillow's mode for 16-bit PNG / TIFF files): ``round(v / 257)``, the full
      16-bit range onto 0..255 (Pillow's ``convert`` would clip every value above 255 to white).
      ``I`` values outside [0, 65535] have no defined scale and are refused;
    * 32-bit float ``F`` whose values all lie in [0, 1]: ``round(v * 255)``. Other ranges
      (0..255, HDR, negative) and NaN / infinity are ambiguous and refused, naming the range;
    * any other mode (``LAB``, ...) is refused by name.

    16-bit RGB(A) files are opened by Pillow as 8-bit ``RGB`` / ``RGBA`` (the high byte). A
    multi-frame file (GIF, TIFF) gives its first frame.

    Parameters
    ----------
    path : path
    channels : {3, 1}
        RGB, or grey (the luma of the RGB picture).
    max_pixels : int
        Refuse images whose header announces more pixels (checked before decoding).

    Returns
    -------
    ndarray, uint8, shape (H, W, channels)

    Raises
    ------
    ImageError
        Naming ``path``: not an image, truncated, too large, or a mode or value range that has
        no defined 8-bit picture (naming the mode and the range).
    """
    from PIL import Image, ImageOps

    check_choice(channels, "channels", tuple(_MODES))
    try:
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(f"image {path} is {width}x{height} pixels, more than max_pixels="
                                 f"{max_pixels}; refusing to decode it")
            upright = ImageOps.exif_transpose(image)  # a copy, turned as the EXIF tag says
            array = _to_8bit(upright, path, _MODES[channels])  # a writable copy
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own header check, at 2x its limit
        raise ImageError(f"image {path} is too large; refusing to decode it ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"image {path} cannot be decoded: {exc}") from None
    return array.reshape(array.shape[0], array.shape[1], channels)  # (H, W, C)


def image_files(folder: Path) -> list[Path]:
    """The image files (by suffix) in ``folder`` and its sub-folders, sorted; hidden files and
    folders skipped (what ``gicho predict --input DIR`` and ``gicho evaluate --data.root`` read)."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def image_to_array(image: Any, *, channels: int = 3, name: str = "image") -> np.ndarray:
    """A PIL image (already open, from Python) → (H, W, channels) uint8, by the rules of
    :func:`read_image` (EXIF orientation, then the 8-bit conversion); ``name`` says which input
    an error is about."""
    from PIL import ImageOps

    check_choice(channels, "channels", tuple(_MODES))
    try:
        upright = ImageOps.exif_transpose(image)
        array = _to_8bit(upright, name, _MODES[channels])
    except ImageError:
        raise
    except (OSError, ValueError) as exc:
        raise ImageError(f"{name} cannot be converted to an 8-bit image: {exc}") from None
    return array.reshape(array.shape[0], array.shape[1], channels)


def _to_8bit(image: Any, path: Any, mode: str) -> np.ndarray:
    """A decoded Pillow image → (H, W[, C]) uint8 in ``mode`` ("RGB" or "L"), by the rules of
    :func:`read_image`."""
    from PIL import Image

    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "I":
        values = np.asarray(image).astype(np.int64)  # (H, W); I;16B is big-endian, I is int32
        low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if low < 0 or high > _UINT16_MAX:
            raise ImageError(f"image {path} has 32-bit integer pixels (mode I) in [{low}, {high}], outside "
                             f"the 16-bit range [0, {_UINT16_MAX}] that gicho scales to 8 bits; save it "
                             "as 8- or 16-bit")
        image = Image.fromarray(((values + 128) // 257).astype(np.uint8), "L")  # round(v / 257)
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)  # (H, W)
        finite = np.isfinite(values).all()
        low, high = (float(np.nanmin(values)), float(np.nanmax(values))) if values.size else (0.0, 0.0)
        if not finite or low < 0 or high > 1:
            what = "NaN or infinite values" if not finite else f"values in [{low:g}, {high:g}]"
            raise ImageError(f"image {path} has float pixels (mode F) with {what}; gicho reads float "
                             "images only in [0, 1] (scaled by 255): other ranges are ambiguous; save it "
                             "as an 8- or 16-bit image, or scale it to [0, 1]")
        image = Image.fromarray(np.rint(values * 255).astype(np.uint8), "L")
    elif image.mode in _ALPHA_MODES or "transparency" in image.info:
        if image.mode == "La":  # Pillow converts premultiplied grey to RGBA only through LA
            image = image.convert("LA")
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        image = Image.alpha_composite(background, rgba)
    elif image.mode not in _EIGHT_BIT_MODES:
        readable = ", ".join((*_EIGHT_BIT_MODES, *_ALPHA_MODES, *_SIXTEEN_BIT_MODES, "I", "F"))
        raise ImageError(f"image {path} has Pillow mode {image.mode!r}, which gicho does not read; "
                         f"readable modes: {readable}")
    return np.array(image.convert(mode))


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
    crop_pct : float in (0, 1] or None
        The shorter side is resized to ``round(S / crop_pct)`` before cropping; None: the whole
        image is resized to S x S (the aspect ratio is not kept) and nothing is cropped.
    """

    image_size: int
    train: bool = False
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    crop_pct: float | None = DEFAULT_CROP_PCT

    @classmethod
    def from_processor(cls, processor: Any, train: bool = False) -> ImageTransform:
        """The transform of an image processor (:class:`gicho.models.vit.ViTImageProcessor`, or
        anything with its ``image_size``, ``image_mean``, ``image_std``, ``crop_pct`` and
        ``do_normalize``; it always resizes bilinearly and rescales by 1/255)."""
        channels = len(processor.image_mean)
        mean, std = ((processor.image_mean, processor.image_std) if processor.do_normalize
                     else ((0.0,) * channels, (1.0,) * channels))
        return cls(processor.image_size, train, tuple(mean), tuple(std), processor.crop_pct)

    def __post_init__(self) -> None:
        check_positive(self.image_size, "image_size", integer=True)
        if self.crop_pct is not None and not 0 < self.crop_pct <= 1:
            raise ValueError(f"argument `crop_pct` must lie in (0, 1] or be None (no crop); got {self.crop_pct!r}")
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError(f"mean {self.mean} and std {self.std} must have one value per channel, std > 0")

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        if image.ndim != 3 or image.shape[2] != len(self.mean):
            raise ValueError(f"image must have shape (H, W, {len(self.mean)}); got {image.shape} "
                             "(grey vs RGB: set the channels to match the model)")
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0  # (C, H, W)
        h, w = x.shape[1:]
        if self.crop_pct is None:  # the whole image to S x S
            size = (self.image_size, self.image_size)
        else:
            short = round(self.image_size / self.crop_pct)
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
        What an unusable file or folder does at construction: raise :class:`ImageError` listing
        every bad path, or be left out with a warning listing them (see ``skipped``). Unusable:
        a file that cannot be decoded, or a file, class folder or sub-folder that resolves
        outside ``root`` (a symlink to elsewhere: gicho never reads outside ``root``, so such a
        class is never silently dropped or silently read). Symlinked sub-folders that stay
        inside ``root`` are not followed (their files are reached by their real path).
    min_classes : int
        Refuse a folder with fewer usable class folders (a classifier passes 2), before any
        image is decoded.
    mean, std, crop_pct :
        See :class:`ImageTransform` (``mean`` / ``std`` default to 0.5 per channel).
    processor : image processor, optional
        A model's :class:`gicho.models.vit.ViTImageProcessor`: the transform is built from it
        (:meth:`ImageTransform.from_processor`) instead of ``mean``, ``std`` and ``crop_pct``;
        its image size and channels must be ``image_size`` and ``channels``.
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
                 crop_pct: float | None = DEFAULT_CROP_PCT, max_pixels: int = MAX_IMAGE_PIXELS,
                 min_classes: int = 1, processor: Any = None) -> None:
        check_choice(on_error, "on_error", ("raise", "skip"))
        check_positive(min_classes, "min_classes", integer=True)
        check_choice(channels, "channels", tuple(_MODES))
        given = Path(root)
        if not given.exists():
            raise FileNotFoundError(f"image folder root {given} does not exist")
        if not given.is_dir():
            raise NotADirectoryError(f"image folder root {given} is not a directory")
        self.root = given.resolve()
        self.channels, self.max_pixels = channels, max_pixels
        if processor is not None:
            if (processor.image_size, len(processor.image_mean)) != (image_size, channels):
                raise ValueError(f"argument `processor` gives {len(processor.image_mean)}-channel images of "
                                 f"{processor.image_size} px; image_size={image_size}, channels={channels}")
            self.transform = ImageTransform.from_processor(processor, train)
        else:
            self.transform = ImageTransform(image_size, train, mean or (0.5,) * channels,
                                            std or (0.5,) * channels, crop_pct)
        candidates = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not candidates:
            raise ValueError(f"image folder {given} has no class sub-folders; expected {given}/<class>/<image> "
                             f"(for example {given}/cat/1.jpg, {given}/dog/2.jpg)")
        self.skipped: list[tuple[Path, str]] = []
        outside = [p for p in candidates if not _inside(p, self.root)]
        if outside:  # refused or left out by name, before anything is decoded
            listing = "; ".join(f"{p}: resolves outside the root ({p.resolve()})" for p in outside)
            if on_error == "raise":
                raise ImageError(f"{len(outside)} class folder(s) of {given} resolve outside the root, which "
                                 f"gicho never reads: {listing}; move or copy them inside, or pass "
                                 "on_error='skip' to leave them out")
            warnings.warn(f"left out {len(outside)} class folder(s) of {given} that resolve outside the "
                          f"root: {listing}", stacklevel=2)
            self.skipped += [(p, f"class folder resolves outside the root ({p.resolve()})") for p in outside]
        class_dirs = [p for p in candidates if p not in outside]
        if len(class_dirs) < min_classes:
            names = ", ".join(repr(p.name) for p in class_dirs) or "none"
            raise ValueError(f"a classifier needs at least {min_classes} classes; {given} has only {names} "
                             f"(each sub-folder of {given} is a class)")
        self.classes = [p.name for p in class_dirs]
        self.samples: list[tuple[Path, int]] = []
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
        unusable = self.skipped[len(outside):]  # the class folders outside are reported above
        if unusable:
            listing = "; ".join(f"{p}: {why}" for p, why in unusable[:10])
            more = f" (and {len(unusable) - 10} more)" if len(unusable) > 10 else ""
            if on_error == "raise":
                raise ImageError(f"{len(unusable)} unusable file(s) in {given}: {listing}{more}; "
                                 "pass on_error='skip' to leave them out")
            warnings.warn(f"skipped {len(unusable)} unusable file(s) in {given}: {listing}{more}",
                          stacklevel=2)

    def _files(self, folder: Path) -> list[Path]:
        """Image files under ``folder``, and sub-folders that resolve outside the root."""
        out = []
        for dirpath, dirnames, filenames in os.walk(folder):  # symlinked folders are not followed
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out += [Path(dirpath) / d for d in dirnames  # reported as unusable by _check
                    if (Path(dirpath) / d).is_symlink() and not _inside(Path(dirpath) / d, self.root)]
            out += [Path(dirpath) / f for f in sorted(filenames)
                    if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES]
        return out

    def _check(self, path: Path) -> str | None:
        if not _inside(path, self.root):
            what = "folder resolves" if path.is_dir() else "resolves"
            return f"{what} outside the root ({path.resolve()})"
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
