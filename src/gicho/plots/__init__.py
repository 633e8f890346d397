"""Every figure of gicho: learning curves here; least squares in :mod:`gicho.plots.ols`, PCA
in :mod:`gicho.plots.pca`, attention maps in :mod:`gicho.plots.attention`. Figures take
arrays, not models.

This module knows the run-directory layout (learning curves from ``metrics.jsonl``), plus the
plumbing every figure shares:
:func:`pyplot` selects matplotlib's Agg backend (figures render without a display) and
:func:`save_figure` writes a figure (creating its folder, through a temporary file and a
rename) and closes it.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from gicho.rundir import RunDir

__all__ = ["FIGURE_DPI", "learning_curves", "pyplot", "read_metrics_log", "save_figure"]

FIGURE_DPI = 120  # resolution of the PNGs that save_figure writes unless told otherwise


def pyplot() -> Any:
    """``matplotlib.pyplot``, with the Agg backend selected (figures render without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path | str, *, dpi: int = FIGURE_DPI) -> Path:
    """Lay ``fig`` out (tight), write it to ``path`` (creating its folder), close it.

    Returns ``path`` as a :class:`~pathlib.Path`; the format follows the suffix (``.png``).
    """
    import io

    from gicho._io import atomic_write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    finally:
        pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())  # a reader never sees half a PNG
    return path


def read_metrics_log(path: Path | str) -> list[dict]:
    """Parse ``metrics.jsonl``; a torn last line (a crash mid-write) is skipped, others raise."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start}); it is not a gicho metrics log") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, parse_int=_bounded_int)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}: line {number} is not valid JSON") from None
        except ValueError as exc:
            raise ValueError(f"{path}: line {number}: {exc}") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int) or isinstance(
                record.get("step"), bool) or not isinstance(record.get("split"), str):
            raise ValueError(f"{path}: line {number} is not a metrics record (a JSON object with an "
                             f"integer 'step' and a 'split'): {line[:80]!r}")
        records.append(record)
    return records


def _bounded_int(text: str) -> int:
    """An integer of a metrics log; hundreds of digits are no step or count (and overflow floats)."""
    if len(text.lstrip("-")) > 18:
        raise ValueError(f"the number {text[:20]}... has {len(text)} digits; not a step or count")
    return int(text)


def learning_curves(run_dir: Path | str) -> Path | None:
    """Draw loss and evaluation metrics against step; return the PNG path (None without a log)."""
    run_dir = Path(run_dir)
    records = read_metrics_log(RunDir(run_dir).metrics_log)
    if not records:
        return None
    series: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        split, step = record.get("split"), record.get("step")
        if split not in ("train", "eval") or step is None:
            continue
        for key, value in record.items():
            if key in ("step", "split") or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if math.isfinite(value):
                series[split][key].append((int(step), float(value)))
    losses = {f"{split} loss": points for split in ("train", "eval")
              for key, points in series[split].items() if key in ("loss", "eval_loss")}
    scores = {key: points for key, points in series["eval"].items() if key != "eval_loss"}
    if not losses and not scores:
        return None
    # fractions (accuracies, R²) and unbounded scores (perplexity) on one axis would flatten the
    # fractions to a line at 0: unbounded ones get a panel of their own
    unbounded = {k: pts for k, pts in scores.items() if any(abs(v) > 1.5 for _, v in pts)}
    panels = [p for p in ({k: v for k, v in scores.items() if k not in unbounded}, unbounded) if p]

    plt = pyplot()
    n_panels = 1 + len(panels)
    fig, axes = plt.subplots(1, n_panels, figsize=(5.5 * n_panels, 3.8), squeeze=False)
    ax = axes[0, 0]
    for label, points in losses.items():
        steps, values = zip(*points, strict=True)
        ax.plot(steps, values, label=label, marker="o" if len(points) < 30 else None, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if losses and min(v for pts in losses.values() for _, v in pts) > 0:
        ax.set_yscale("log")
    ax.set_title("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    for i, panel in enumerate(panels, start=1):
        ax = axes[0, i]
        for label, points in panel.items():
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, label=label, marker="o", markersize=3)
        ax.set_xlabel("step")
        ax.set_title("held-out metrics" if i == 1 else "held-out metrics (unbounded)")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    return save_figure(fig, RunDir(run_dir).plots / "learning_curves.png", dpi=110)
