"""Figures for text models: the tokens a masked-language model proposes for a [MASK], and a
classifier's most confident errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gicho.plots import pyplot, save_figure

__all__ = ["plot_text_errors", "plot_top_tokens"]


def plot_top_tokens(tokens: Sequence[str], probabilities: Sequence[float], sentence: str,
                    path: str | Path) -> Path:
    """A horizontal bar chart of the top tokens for a [MASK] and their probabilities.

    Parameters
    ----------
    tokens : sequence of str
        Best first.
    probabilities : sequence of float, same length, in [0, 1]
    sentence : str
        The sentence with its [MASK] (the title).
    path : path
        The PNG to write.
    """
    if len(tokens) != len(probabilities) or not tokens:
        raise ValueError(f"need as many probabilities as tokens (>= 1); got {len(probabilities)} and {len(tokens)}")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(tokens) + 1.2))
    ax.barh(range(len(tokens))[::-1], probabilities, color="#4c72b0")
    ax.set_yticks(range(len(tokens))[::-1], list(tokens))
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    ax.set_title(sentence, fontsize=9)
    for y, p in zip(range(len(tokens))[::-1], probabilities, strict=True):
        ax.text(min(p + 0.01, 0.9), y, f"{p:.2f}", va="center", fontsize=8)
    return save_figure(fig, path)


def plot_text_errors(texts: Sequence[str], truths: Sequence[str], predictions: Sequence[str],
                     confidences: Sequence[float], path: str | Path, *, title: str = "most confident errors (test)",
                     width: int = 100, max_lines: int = 3) -> Path:
    """A table of misclassified texts: the text (wrapped, at most ``max_lines`` lines), its true
    class, the predicted one and the model's confidence in it, one row each, in the given order.

    Parameters
    ----------
    texts, truths, predictions : sequences of str, one per row
    confidences : sequence of float in [0, 1], one per row
    path : path
        The PNG to write.
    """
    import textwrap

    n = len(texts)
    if not n == len(truths) == len(predictions) == len(confidences):
        raise ValueError(f"need one truth, prediction and confidence per text; got {n} texts, {len(truths)} "
                         f"truths, {len(predictions)} predictions, {len(confidences)} confidences")
    plt = pyplot()
    cells = [textwrap.wrap(t.replace("\n", " "), width, max_lines=max_lines, placeholder=" ...") or [""]
             for t in texts]
    heights = [len(c) for c in cells]
    fig, ax = plt.subplots(figsize=(11, 0.6 + 0.2 * (sum(heights) + n) if n else 1.2))
    ax.axis("off")
    ax.set_title(title, fontsize=10, loc="left")
    if not n:
        ax.text(0, 0.5, "no errors", fontsize=9, transform=ax.transAxes)
        return save_figure(fig, path)
    total = sum(heights) + n
    y = 1.0
    header = (0.0, 0.74, 0.84, 0.94)
    for x, name in zip(header, ("text", "true", "predicted", "conf."), strict=True):
        ax.text(x, y, name, fontsize=8, fontweight="bold", va="top", transform=ax.transAxes)
    y -= 1 / total
    for lines, truth, pred, conf in zip(cells, truths, predictions, confidences, strict=True):
        ax.text(0.0, y, "\n".join(lines), fontsize=7, va="top", family="monospace", transform=ax.transAxes)
        for x, value in zip(header[1:], (truth, pred, f"{float(conf):.3f}"), strict=True):
            ax.text(x, y, value, fontsize=8, va="top", transform=ax.transAxes)
        y -= (len(lines) + 1) / total
    return save_figure(fig, path)
