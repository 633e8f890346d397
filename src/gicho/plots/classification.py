"""Classification figures: the confusion matrix. Figures take arrays, not models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gicho.plots import pyplot, save_figure

__all__ = ["plot_confusion_matrix"]


def plot_confusion_matrix(matrix: Any, labels: Sequence[str], path: str | Path, *,
                          title: str = "confusion matrix (test)") -> Path:
    """Counts of (true class, predicted class), rows = true, with the counts written in.

    Parameters
    ----------
    matrix : array of int, shape (C, C)
    labels : sequence of str, C names
    path : path
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(labels):
        raise ValueError(f"matrix must be (C, C) with C = len(labels) = {len(labels)}; got {matrix.shape}")
    plt = pyplot()
    c = len(labels)
    fig, ax = plt.subplots(figsize=(0.45 * c + 2.5, 0.45 * c + 2.0))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(c), labels, rotation=90 if max(map(len, labels)) > 3 else 0)
    ax.set_yticks(range(c), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(c):
        for j in range(c):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] > threshold else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return save_figure(fig, path, dpi=110)
