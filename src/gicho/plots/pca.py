"""Figures of PCA and whitening: component scatter, explained variance, covariance heatmaps.

Each function draws one PNG with matplotlib's Agg backend (no display needed) and returns
its path. Inputs are NumPy arrays; nothing here fits a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gicho.plots import pyplot, save_figure

__all__ = ["plot_component_scatter", "plot_explained_variance", "plot_whitening_covariance"]

# more distinct labels than this are drawn as a continuous colour scale, not as classes
_MAX_CLASSES = 20
# axes with more features than this keep numeric ticks (names would overlap)
_MAX_TICK_LABELS = 30


def plot_component_scatter(
    Z: np.ndarray,
    labels: np.ndarray | None,
    path: Path | str,
    *,
    class_names: Sequence[str] | None = None,
    title: str = "first two principal components",
    label_name: str = "label",
) -> Path:
    """Scatter of the first two columns of ``Z`` (n_samples, >= 2), coloured by ``labels``.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_components), n_components >= 2
    labels : ndarray of shape (n_samples,) or None
        Class labels (one colour each), or values of a continuous variable (more than 20
        distinct: a colour scale); None draws a single colour.
    path : path of the PNG to write.
    class_names : names of the classes, indexed by label.
    label_name : what the labels are (the legend's or colour bar's title), e.g. a column name.
    """
    Z = np.asarray(Z)
    if Z.ndim != 2 or Z.shape[1] < 2:
        raise ValueError(f"argument `Z` must have shape (n, >= 2) to draw two components; got {Z.shape}")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    if labels is None:
        ax.scatter(Z[:, 0], Z[:, 1], s=6, alpha=0.6)
    elif np.unique(labels).size > _MAX_CLASSES:  # a continuous target: a colour scale
        points = ax.scatter(Z[:, 0], Z[:, 1], s=6, alpha=0.8, c=np.asarray(labels, dtype=np.float64), cmap="viridis")
        fig.colorbar(points, ax=ax, label=label_name)
    else:
        labels = np.asarray(labels)
        cmap = plt.get_cmap("tab10" if np.unique(labels).size <= 10 else "tab20")
        for i, label in enumerate(np.unique(labels)):
            name = class_names[int(label)] if class_names is not None else f"{label:g}" if isinstance(label, float) else str(label)
            mask = labels == label
            ax.scatter(Z[mask, 0], Z[mask, 1], s=6, alpha=0.7, color=cmap(i % cmap.N), label=name)
        ax.legend(markerscale=2.5, fontsize=8, loc="best", ncol=2, title=label_name)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_explained_variance(
    ratio: np.ndarray, path: Path | str, *, n_kept: int | None = None
) -> Path:
    """Per-component and cumulative explained-variance ratio against the component index.

    Parameters
    ----------
    ratio : ndarray of shape (n_components,)
        ``explained_variance_ratio_`` of a PCA fitted with all components.
    path : path of the PNG to write.
    n_kept : int, optional
        Draw a vertical line after this many components.
    """
    ratio = np.asarray(ratio, dtype=np.float64)
    index = np.arange(1, ratio.shape[0] + 1)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    ax.bar(index, ratio, color="tab:blue", alpha=0.5, label="per component")
    ax.step(index, np.cumsum(ratio), where="mid", color="tab:red", label="cumulative")
    if n_kept is not None:
        ax.axvline(n_kept + 0.5, color="black", linestyle="--", linewidth=1,
                   label=f"{n_kept} kept ({np.cumsum(ratio)[n_kept - 1]:.1%})")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("component")
    ax.set_ylabel("explained variance ratio")
    ax.set_title("explained variance")
    ax.legend(loc="center right")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_whitening_covariance(
    before: np.ndarray,
    after: np.ndarray,
    path: Path | str,
    *,
    after_title: str = "after whitening",
    feature_names: Sequence[str] | None = None,
) -> Path:
    """Two heatmaps side by side: the covariance (or correlation) before and after whitening.

    Each panel has its own colour scale, symmetric around 0 (red positive, blue negative), so
    the identity after whitening reads as a clean diagonal. ``feature_names`` label the axes
    of the "before" panel (when there are at most ``_MAX_TICK_LABELS`` of them).
    """
    # np.cov of a single variable is 0-d: draw it as the 1 x 1 matrix it is
    before, after = np.atleast_2d(before), np.atleast_2d(after)
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.4))
    from matplotlib.ticker import MaxNLocator

    panels = ((axes[0], before, "covariance before", "feature"),
              (axes[1], after, after_title, "output dimension"))
    for ax, matrix, title, axis_label in panels:
        bound = float(np.abs(matrix).max()) or 1.0
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
        ax.set_title(f"{title} ({matrix.shape[0]}x{matrix.shape[1]})")
        ax.set_xlabel(axis_label)
        ax.set_ylabel(axis_label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # indices, not 2.5
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if feature_names is not None and len(feature_names) == before.shape[0] <= _MAX_TICK_LABELS:
        ticks = np.arange(before.shape[0])
        axes[0].set_xticks(ticks, labels=list(feature_names), rotation=90, fontsize=7)
        axes[0].set_yticks(ticks, labels=list(feature_names), fontsize=7)
    return save_figure(fig, path)
