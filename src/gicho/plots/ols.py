"""Figures of a least-squares fit: residuals against fitted values, observed against predicted.

Each function draws one PNG with matplotlib's Agg backend (no display needed) and returns its
path. Inputs are NumPy arrays; nothing here fits a model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gicho.plots import pyplot, save_figure

__all__ = ["ols_figures", "plot_observed_vs_predicted", "plot_residuals_vs_fitted"]


def _vectors(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(
            "arguments `y_true` and `y_pred` must be 1-D of the same length; got shapes "
            f"{y_true.shape} and {y_pred.shape}"
        )
    return y_true, y_pred


def plot_residuals_vs_fitted(
    y_true, y_pred, path: Path | str, *, title: str = "residuals vs fitted"
) -> Path:
    """Residuals ``y - y_hat`` against ``y_hat`` (n,), with the zero line and a running mean.

    A trend in the running mean shows a missed non-linearity; a funnel shows
    heteroscedasticity (then prefer the HC covariances).
    """
    y_true, y_pred = _vectors(y_true, y_pred)
    resid = y_true - y_pred
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.5))
    ax.scatter(y_pred, resid, s=10, alpha=0.6)
    ax.axhline(0.0, color="black", linewidth=1)
    if y_pred.size >= 10:  # running mean over ~10% of the points, in fitted-value order
        order = np.argsort(y_pred)
        width = max(5, y_pred.size // 10)
        kernel = np.ones(width) / width
        smooth = np.convolve(resid[order], kernel, mode="valid")
        centre = np.convolve(y_pred[order], kernel, mode="valid")
        ax.plot(centre, smooth, color="tab:red", label=f"running mean ({width} points)")
        ax.legend(loc="best")
    ax.set_xlabel("fitted value")
    ax.set_ylabel("residual")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_observed_vs_predicted(
    y_true, y_pred, path: Path | str, *, title: str = "observed vs predicted"
) -> Path:
    """Observed ``y`` against predicted ``y_hat`` (n,), with the identity line."""
    y_true, y_pred = _vectors(y_true, y_pred)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 5.0))
    ax.scatter(y_pred, y_true, s=10, alpha=0.6)
    lo = float(min(y_true.min(), y_pred.min()))
    hi = float(max(y_true.max(), y_pred.max()))
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=1, label="y = y_hat")
    ax.set_xlabel("predicted")
    ax.set_ylabel("observed")
    ax.set_title(title)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def ols_figures(y_true, y_pred, plots_dir: Path | str, *, label: str = "") -> dict[str, Path]:
    """Both figures into ``plots_dir``: ``residuals_vs_fitted.png``, ``observed_vs_predicted.png``.

    ``label`` (e.g. "held-out") goes into the titles.
    """
    plots_dir = Path(plots_dir)
    suffix = f" ({label})" if label else ""
    return {
        "residuals_vs_fitted": plot_residuals_vs_fitted(
            y_true, y_pred, plots_dir / "residuals_vs_fitted.png", title=f"residuals vs fitted{suffix}"
        ),
        "observed_vs_predicted": plot_observed_vs_predicted(
            y_true, y_pred, plots_dir / "observed_vs_predicted.png", title=f"observed vs predicted{suffix}"
        ),
    }
