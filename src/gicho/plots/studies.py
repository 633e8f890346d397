"""The studies' figures (:mod:`gicho.studies`): each takes the study's rows (one dict per run)
and the labels to print, never a study, task or model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gicho.plots import pyplot, save_figure

__all__ = ["plot_arms_by_size", "plot_data_size_study", "plot_pooling_study", "plot_pretraining_study"]

Rows = Sequence[Mapping[str, Any]]


def plot_pooling_study(rows: Rows, path: str | Path, chance: float | None = None) -> Path:
    """Held-out accuracy vs sequence length (log scale), one line per pooling mode.

    ``rows`` hold ``length, pool, accuracy``; with several seeds the line is their mean and the
    points are the individual runs. ``chance``: a dotted horizontal line.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for pool in dict.fromkeys(r["pool"] for r in rows):
        mine = [r for r in rows if r["pool"] == pool]
        lengths = sorted({r["length"] for r in mine})
        means = [sum(r["accuracy"] for r in mine if r["length"] == n) / sum(1 for r in mine if r["length"] == n)
                 for n in lengths]
        (line,) = ax.plot(lengths, means, marker="o", label=f"{pool} pooling")
        ax.scatter([r["length"] for r in mine], [r["accuracy"] for r in mine], color=line.get_color(),
                   s=10, alpha=0.5)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title("Evidence in one token among many: mean vs [CLS] pooling")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return save_figure(fig, path, dpi=120)


def plot_data_size_study(rows: Rows, path: str | Path) -> Path:
    """Held-out accuracy vs training images (log scale), a line per model (mean over seeds,
    points = seeds), one panel per augmentation setting (PCA + logistic regression in each).

    ``rows`` hold ``model, n_train, max_shift, accuracy, params``.
    """
    shifts = sorted({r["max_shift"] for r in rows if r["model"] != "pca-logreg"}) or [0]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(shifts), figsize=(5.2 * len(shifts), 3.8), squeeze=False, sharey=True)
    for ax, shift in zip(axes[0], shifts, strict=True):
        for model in dict.fromkeys(r["model"] for r in rows):
            mine = [r for r in rows if r["model"] == model and (model == "pca-logreg" or r["max_shift"] == shift)]
            sizes = sorted({r["n_train"] for r in mine})
            means = [sum(r["accuracy"] for r in mine if r["n_train"] == n)
                     / sum(1 for r in mine if r["n_train"] == n) for n in sizes]
            params = mine[0]["params"]
            (line,) = ax.plot(sizes, means, marker="o", label=f"{model} ({params / 1000:.0f}k params)")
            ax.scatter([r["n_train"] for r in mine], [r["accuracy"] for r in mine], color=line.get_color(),
                       s=10, alpha=0.5)
        ax.set_xscale("log")
        ax.set_xlabel("training images")
        ax.set_title(f"digits, shift augmentation ±{shift} px" if shift else "digits, no augmentation")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    axes[0, 0].set_ylabel("held-out accuracy")
    return save_figure(fig, path, dpi=120)


def plot_arms_by_size(rows: Rows, summary: Rows, path: str | Path, *, labels: Mapping[str, str], size_key: str,
                      xlabel: str, title: str, baseline: tuple[str, float] | None = None,
                      ylim: tuple[float, float] | None = (0, 1.02)) -> Path:
    """Test accuracy vs training-set size (log scale): one line per arm (mean ± std over seeds,
    points = seeds), and an optional horizontal ``baseline`` ``(legend, accuracy)``.

    ``rows`` hold ``arm``, ``size_key`` and ``accuracy`` (one per run); ``summary`` holds ``arm``,
    ``size_key``, ``mean``, ``std`` (one per arm and size, in the order to draw); ``labels`` maps
    an arm to its legend entry; ``ylim`` None lets the data decide.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for arm in dict.fromkeys(s["arm"] for s in summary):
        mine = [s for s in summary if s["arm"] == arm]
        bars = ax.errorbar([s[size_key] for s in mine], [s["mean"] for s in mine], yerr=[s["std"] for s in mine],
                           marker="o", capsize=3, label=labels[arm])
        ax.scatter([r[size_key] for r in rows if r["arm"] == arm], [r["accuracy"] for r in rows if r["arm"] == arm],
                   color=bars.lines[0].get_color(), s=10, alpha=0.5)
    if baseline is not None:
        ax.axhline(baseline[1], color="grey", linestyle=":", label=baseline[0])
    ax.set_xscale("log")
    sizes = sorted({r[size_key] for r in rows})
    ax.set_xticks(sizes, [str(n) for n in sizes])  # the sizes measured, not powers of ten
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return save_figure(fig, path, dpi=120)


def plot_pretraining_study(rows: Rows, summary: Rows, path: str | Path, *, labels: Mapping[str, str],
                           task: str = "fine-tuning task") -> Path:
    """Test accuracy vs labelled examples (log scale): one line per arm (mean ± std over seeds,
    points = seeds), the majority-class baseline as a horizontal line.

    ``rows`` hold ``arm, n_labels, accuracy, majority_accuracy`` (one per run); ``summary`` holds
    ``arm, n_labels, mean, std`` (one per arm and size, in the order to draw); ``labels`` maps an
    arm to its legend entry; ``task`` names the fine-tuning task in the title.
    """
    return plot_arms_by_size(rows, summary, path, labels=labels, size_key="n_labels",
                             xlabel="labelled training examples", title=f"{task}\nfine-tuned from each starting point",
                             baseline=("majority class", rows[0]["majority_accuracy"]))
