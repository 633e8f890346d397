"""Figures for text models: the tokens a masked-language model proposes for a [MASK]."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gicho.plots import pyplot, save_figure

__all__ = ["plot_top_tokens"]


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
