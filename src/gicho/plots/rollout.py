"""Images with an attention map over them (ViT attention rollout).

Figures take arrays, not models: the maps come from
:func:`gicho.models.vit.attention_rollout` (or any (g, g) grid of weights over the patches).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gicho.plots import pyplot, save_figure

__all__ = ["plot_rollout"]


def _as_display(image: Any, value_range: tuple[float, float] | None) -> tuple[np.ndarray, str | None]:
    """(H, W), (H, W, 1) or (H, W, 3) → an array in [0, 1] that imshow draws, and its colour map.

    ``value_range`` maps onto black..white; None stretches each image's own min..max (which
    hides how bright one image is beside another)."""
    image = np.asarray(image, dtype=float)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim in (2, 3) and (image.ndim == 2 or image.shape[-1] == 3):
        lo, hi = value_range if value_range is not None else (image.min(), image.max())
        shown = np.clip((image - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(image)
        return shown, "gray" if image.ndim == 2 else None
    raise ValueError(f"an image must have shape (H, W), (H, W, 1) or (H, W, 3); got {image.shape}")


def plot_rollout(images: Sequence[Any], maps: Sequence[Any], path: str | Path, *,
                 titles: Sequence[str] | None = None, alpha: float = 0.55,
                 value_range: tuple[float, float] | None = None) -> Path:
    """Each image beside itself overlaid with its attention map (upsampled to the image).

    Parameters
    ----------
    images : sequence of array, each (H, W) or (H, W, C)
    maps : sequence of array, each (g, g)
        Non-negative weights over the patch grid (attention rollout of [CLS]); each is scaled
        to [0, 1] for display, nearest-neighbour upsampled (one block per patch).
    path : path
        The PNG to write.
    titles : sequence of str, optional
        One per image (e.g. "true 3, predicted 8 (0.61)").
    value_range : (low, high), optional
        The pixel values drawn black and white, the same for every image (e.g. (0, 1)); None
        stretches each image to its own range.

    Returns
    -------
    Path
    """
    if len(images) != len(maps) or not images:
        raise ValueError(f"give as many maps as images (at least one); got {len(images)} images, {len(maps)} maps")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"titles has {len(titles)} entries for {len(images)} images")
    plt = pyplot()
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.9 * n + 0.4, 4.0), squeeze=False)
    for k, (image, weights) in enumerate(zip(images, maps, strict=True)):
        shown, cmap = _as_display(image, value_range)
        weights = np.asarray(weights, dtype=float)
        if weights.ndim != 2:
            raise ValueError(f"maps[{k}] must be a (g, g) grid; got shape {weights.shape}")
        h, w = shown.shape[:2]
        scaled = weights / weights.max() if weights.max() > 0 else weights
        extent = (-0.5, w - 0.5, h - 0.5, -0.5)  # the map covers the image exactly
        axes[0, k].imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0)
        axes[1, k].imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0)
        axes[1, k].imshow(scaled, cmap="inferno", alpha=alpha, extent=extent, interpolation="nearest",
                          vmin=0.0, vmax=1.0)
        if titles is not None:
            axes[0, k].set_title(titles[k], fontsize=8)
        for ax in axes[:, k]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("image", fontsize=8)
    axes[1, 0].set_ylabel("attention rollout", fontsize=8)
    return save_figure(fig, path, dpi=110)
