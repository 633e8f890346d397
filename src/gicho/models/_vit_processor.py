"""A ViT's input preprocessing, saved as Hugging Face's ``preprocessor_config.json``.

:class:`ViTImageProcessor` holds what turns a decoded 8-bit image into the model's
``pixel_values``: resize (bilinear), crop, scale to [0, 1] and normalise per channel. ``save``
writes it in the format ``transformers.AutoImageProcessor`` reads (``image_processor_type:
"ViTImageProcessor"``), so that ``transformers.pipeline("image-classification", model=dir)``
preprocesses images as gicho does; :func:`gicho.data.image_folder.ImageTransform.from_processor`
applies it in gicho.

How gicho's evaluation transform is written for ``transformers`` (5.x): resize the shorter side
to ``round(image_size / crop_pct)`` and crop the centre ``image_size`` square is
``size = {"shortest_edge": round(image_size / crop_pct)}``, ``do_center_crop = true``,
``crop_size = {"height": image_size, "width": image_size}``; ``crop_pct`` is written too (timm's
name; ``transformers`` keeps it unused). ``crop_pct = None`` is Hugging Face's own ViT default,
``size = {"height": image_size, "width": image_size}`` without a crop: the whole image squeezed
to the square (the aspect ratio is not kept). Both are read back.

Where the two agree and where they differ (``tests/models/test_vit.py`` checks both):

* an RGB image of ``image_size`` x ``image_size`` pixels with ``crop_pct = 1.0``: no resampling
  on either side (Pillow and torch both return the pixels unchanged), so ``pixel_values`` are
  equal to float32 rounding and the pipeline's probabilities match gicho's to 1e-5;
* any other size or ``crop_pct``: the resize differs. ``transformers`` resizes with Pillow on
  8-bit pixels and rounds the result back to 8 bits (a pixel may be one level, 1/255, off:
  about 0.008 after normalisation with std 0.5); gicho resizes in float32 with torch's
  antialiased bilinear filter. For a non-square image ``transformers`` also truncates the longer
  side (``int``) where gicho rounds it, which can shift the crop by one pixel. Measured on a
  small random ViT: probabilities within 1.3e-3 (square images, crop_pct 1.0 or 0.875) and
  7.4e-3 (non-square, crop_pct 0.875), the same labels; the tests assert 0.01 on square images.
* ``transformers``' pipeline converts every image to RGB: a grey model (``in_channels = 1``,
  the ``digits-vit`` task) loads in ``transformers`` but its pipeline does not feed it.
* ``transformers`` 4.x's ``ViTImageProcessor`` has no centre crop and refuses
  ``shortest_edge``: a directory with ``crop_pct`` set needs ``transformers`` 5.

A model directory written before this file existed holds gicho's ``preprocessing.json``
(``mean``, ``std``, ``crop_pct``; the image size is the model's): :meth:`ViTImageProcessor.load`
reads it when ``preprocessor_config.json`` is absent.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from gicho.weights import CheckpointError

__all__ = ["BILINEAR", "DEFAULT_CROP_PCT", "LEGACY_PREPROCESSING_FILE", "PROCESSOR_FILE", "RESCALE_FACTOR",
           "ViTImageProcessor"]

PROCESSOR_FILE = "preprocessor_config.json"  # Hugging Face's image processor file
LEGACY_PREPROCESSING_FILE = "preprocessing.json"  # gicho's earlier file: mean, std, crop_pct
PROCESSOR_TYPE = "ViTImageProcessor"
BILINEAR = 2  # PIL.Image.Resampling.BILINEAR, Hugging Face's `resample` code; gicho's only filter
RESCALE_FACTOR = 1 / 255  # 8-bit pixels → [0, 1]
DEFAULT_CROP_PCT = 0.875  # resize to size / 0.875, then crop size (timm's evaluation crop)
HF_MEAN = HF_STD = 0.5  # Hugging Face's ViT default per channel
MAX_PROCESSOR_BYTES = 1 << 16  # a preprocessor_config.json is a few hundred bytes


@dataclass(frozen=True)
class ViTImageProcessor:
    """How 8-bit images become a ViT's ``pixel_values`` (Hugging Face's ``ViTImageProcessor`` keys).

    Parameters
    ----------
    image_size : int
        S: the side of the square ``pixel_values`` (the model's ``image_size``).
    image_mean, image_std : tuple of float
        Per-channel normalisation ``(x - mean) / std`` after scaling to [0, 1]; one value per
        channel (3 for RGB, 1 for grey), ``std > 0``.
    crop_pct : float in (0, 1] or None
        Resize the shorter side to ``round(S / crop_pct)``, then crop the centre S x S (timm's
        and gicho's evaluation transform); None: resize the whole image to S x S, no crop
        (Hugging Face's ViT default).
    resample : int
        Pillow's filter code; gicho applies bilinear (2) only.
    do_resize, do_rescale, do_normalize : bool
        Hugging Face's switches; gicho always resizes and rescales (``rescale_factor`` = 1/255);
        ``do_normalize=False`` leaves the [0, 1] values as they are.
    rescale_factor : float
        1/255.

    Raises
    ------
    ValueError
        A value gicho cannot apply, named with what is allowed.
    """

    FILE: ClassVar[str] = PROCESSOR_FILE
    LEGACY_FILE: ClassVar[str] = LEGACY_PREPROCESSING_FILE

    image_size: int
    image_mean: tuple[float, ...] = (HF_MEAN,) * 3
    image_std: tuple[float, ...] = (HF_STD,) * 3
    crop_pct: float | None = DEFAULT_CROP_PCT
    resample: int = BILINEAR
    do_resize: bool = True
    do_rescale: bool = True
    rescale_factor: float = RESCALE_FACTOR
    do_normalize: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 1:
            raise ValueError(f"argument `image_size` must be a positive integer; got {self.image_size!r}")
        object.__setattr__(self, "image_mean", tuple(float(v) for v in self.image_mean))
        object.__setattr__(self, "image_std", tuple(float(v) for v in self.image_std))
        if (len(self.image_mean) != len(self.image_std) or not self.image_mean
                or not all(s > 0 and math.isfinite(s) for s in self.image_std)
                or not all(math.isfinite(m) for m in self.image_mean)):
            raise ValueError(f"arguments `image_mean` {self.image_mean} and `image_std` {self.image_std} must "
                             "have one finite value per channel, std > 0")
        if self.crop_pct is not None and not 0 < self.crop_pct <= 1:
            raise ValueError(f"argument `crop_pct` must lie in (0, 1] or be None (no crop); got {self.crop_pct!r}")
        if self.resample != BILINEAR:
            raise ValueError(f"argument `resample` must be {BILINEAR} (bilinear, the only filter gicho applies); "
                             f"got {self.resample!r}")
        if self.do_resize is not True or self.do_rescale is not True:
            raise ValueError(f"do_resize={self.do_resize!r}, do_rescale={self.do_rescale!r}: gicho always "
                             "resizes to image_size and rescales 8-bit pixels to [0, 1]; both must be true")
        if not math.isclose(self.rescale_factor, RESCALE_FACTOR, rel_tol=1e-9):
            raise ValueError(f"argument `rescale_factor` must be 1/255 (8-bit pixels); got {self.rescale_factor!r}")
        if not isinstance(self.do_normalize, bool):
            raise ValueError(f"argument `do_normalize` must be true or false; got {self.do_normalize!r}")

    @classmethod
    def for_model(cls, image_size: int, channels: int, crop_pct: float | None = DEFAULT_CROP_PCT
                  ) -> ViTImageProcessor:
        """Hugging Face's normalisation (0.5 / 0.5 per channel) for ``channels`` channels."""
        return cls(image_size, (HF_MEAN,) * channels, (HF_STD,) * channels, crop_pct)

    @property
    def channels(self) -> int:
        return len(self.image_mean)

    def check_fits(self, image_size: int, channels: int, what: str, error: type[Exception] = ValueError) -> None:
        """Raise ``error`` unless this processor gives ``channels``-channel images of ``image_size`` px."""
        if (self.image_size, self.channels) != (image_size, channels):
            raise error(f"{what} gives {self.channels}-channel images of {self.image_size} px; the model takes "
                        f"{channels}-channel images of {image_size} px")

    @property
    def resize_to(self) -> int | None:
        """The shorter side before the crop, ``round(S / crop_pct)``; None without a crop."""
        return None if self.crop_pct is None else round(self.image_size / self.crop_pct)

    # ------------------------------------------------------------------ Hugging Face's format
    def to_dict(self) -> dict[str, Any]:
        """``preprocessor_config.json``'s content, as ``transformers`` 5 reads it."""
        s = self.image_size
        if self.crop_pct is None:
            geometry = {"size": {"height": s, "width": s}, "do_center_crop": False}
        else:
            geometry = {"size": {"shortest_edge": self.resize_to}, "do_center_crop": True,
                        "crop_size": {"height": s, "width": s}, "crop_pct": self.crop_pct}
        return {"image_processor_type": PROCESSOR_TYPE, "do_resize": self.do_resize, **geometry,
                "resample": self.resample, "do_rescale": self.do_rescale, "rescale_factor": self.rescale_factor,
                "do_normalize": self.do_normalize, "image_mean": list(self.image_mean),
                "image_std": list(self.image_std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "image processor",
                  channels: int | None = None) -> ViTImageProcessor:
        """Parse a ``preprocessor_config.json`` (gicho's or Hugging Face's ViT form).

        ``channels`` expands a single ``image_mean`` / ``image_std`` number to every channel.

        Raises
        ------
        CheckpointError
            Naming ``source``: a geometry gicho does not apply (a non-square size, a crop after a
            squeeze, no resize), or an invalid value.
        """
        if not isinstance(data, dict):
            raise CheckpointError(f"{source} must hold a JSON object; got {type(data).__name__}")
        size = data.get("size")
        crop = data.get("crop_size") if data.get("do_center_crop") else None
        if isinstance(size, (int, float)) and not isinstance(size, bool):
            size = {"height": size, "width": size}  # transformers' oldest form: one number
        if not isinstance(size, dict) or (crop is not None and not isinstance(crop, dict)):
            raise CheckpointError(f"{source}: size={size!r}, crop_size={crop!r} are not dicts")
        try:
            if "shortest_edge" in size and crop is not None and crop.get("height") == crop.get("width"):
                image_size, short = int(crop["height"]), int(size["shortest_edge"])
                given = data.get("crop_pct")
                crop_pct = given if given is not None and round(image_size / given) == short else image_size / short
            elif size.get("height") == size.get("width") is not None and crop is None:
                image_size, crop_pct = int(size["height"]), None
            else:
                raise CheckpointError(f"{source}: size={size!r} with do_center_crop={data.get('do_center_crop')!r}, "
                                      f"crop_size={crop!r}: gicho's ViT transform resizes to a square, or resizes "
                                      "the shorter side and crops a centre square")
            values = {k: data[k] for k in ("resample", "do_resize", "do_rescale", "rescale_factor",
                                           "do_normalize") if k in data}
            mean_std = {}
            for key, default in (("image_mean", HF_MEAN), ("image_std", HF_STD)):
                value = data.get(key, default)
                if isinstance(value, (int, float)):
                    if channels is None:
                        raise CheckpointError(f"{source}: {key}={value!r} is one number; the channel count "
                                              "is unknown here")
                    value = [value] * channels
                mean_std[key] = tuple(value)
            return cls(image_size, crop_pct=crop_pct, **mean_std, **values)
        except (TypeError, ValueError, KeyError, ZeroDivisionError) as exc:
            raise CheckpointError(f"{source} is not an image processor gicho can apply: {exc}") from None

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``directory/preprocessor_config.json`` (atomically); returns its path."""
        from gicho._io import atomic_write_text

        path = Path(directory) / PROCESSOR_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike, *, image_size: int | None = None,
             channels: int | None = None) -> ViTImageProcessor | None:
        """The processor saved in ``directory``, or None when it holds none.

        ``preprocessor_config.json`` first; else gicho's earlier ``preprocessing.json`` (mean,
        std, crop_pct), whose image size is ``image_size`` or, when not given, the one of
        ``directory/config.json``.

        Raises
        ------
        CheckpointError
            An unreadable or inapplicable file, or a ``preprocessing.json`` whose image size is
            unknown (no ``image_size`` and no ``config.json`` beside it).
        """
        from gicho._io import read_json

        directory = Path(directory)
        path = directory / PROCESSOR_FILE
        if path.exists() or path.is_symlink():
            data = read_json(path, "image processor", error=CheckpointError, max_bytes=MAX_PROCESSOR_BYTES)
            return cls.from_dict(data, f"image processor {path}", channels)
        legacy = directory / LEGACY_PREPROCESSING_FILE
        if not (legacy.exists() or legacy.is_symlink()):
            return None
        data = read_json(legacy, "preprocessing file", error=CheckpointError, max_bytes=MAX_PROCESSOR_BYTES)
        if image_size is None:
            from gicho.weights import CONFIG_NAME, read_config

            if not (directory / CONFIG_NAME).is_file():
                raise CheckpointError(f"{legacy} does not name its image size and {directory} has no "
                                      f"{CONFIG_NAME}; pass image_size")
            image_size = read_config(directory).get("image_size", 224)
        try:
            return cls(image_size, tuple(data["mean"]), tuple(data["std"]), float(data["crop_pct"]))
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"preprocessing file {legacy} is not valid: {exc!r}") from None
