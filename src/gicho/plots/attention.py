"""Attention maps: output tokens (rows) × input characters (columns), Hangul included.

Used by the ``dates`` task and its ``predict --attention``; any model that returns attention
weights over its input characters can draw them here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gicho.plots import pyplot, save_figure

__all__ = ["plot_attention"]

# Fonts with Hangul tried before matplotlib's default (any that is installed is used).
_CJK_FONTS = ("Noto Sans CJK KR", "Noto Sans KR", "NanumGothic", "Malgun Gothic", "AppleGothic")


def _register_bundled_hangul_font(font_manager: Any) -> None:
    """Make the NanumGothic font shipped by the ``koreanize-matplotlib`` package known to matplotlib.

    matplotlib's own fonts have no Hangul. The package is a dependency of gicho only for its
    font file: it is located, not imported, because importing it changes matplotlib's global
    font settings for the whole process.
    """
    import importlib.util

    spec = importlib.util.find_spec("koreanize_matplotlib")
    if spec is None or spec.origin is None:
        return  # not installed: Korean characters are labelled U+XXXX instead
    font = Path(spec.origin).parent / "fonts" / "NanumGothic.ttf"
    known = {f.fname for f in font_manager.fontManager.ttflist}
    if font.is_file() and str(font) not in known:
        font_manager.fontManager.addfont(str(font))


def _label(char: str, font_chars: set[int] | None) -> str:
    if char == " ":
        return "␣"
    if font_chars is not None and ord(char) not in font_chars:
        return f"U+{ord(char):04X}"  # the installed fonts cannot draw it
    return char


def plot_attention(source: str, output: str, weights: Any, path: str | Path, title: str | None = None) -> Path:
    """Draw an attention map: output characters (rows) × input characters (columns).

    Parameters
    ----------
    source : str
        The input string (S characters).
    output : str
        The decoded output without the end token; the map's last row is the end token.
    weights : array-like, shape (len(output) + 1, S) or (len(output), S)
        Attention weights of each output step.
    path : path
        The PNG to write (parent directories are created).

    Returns
    -------
    Path
    """
    import numpy as np
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    weights = np.asarray(weights, dtype=float)
    rows = [*output, "</s>"][: weights.shape[0]]
    if weights.ndim != 2 or weights.shape[1] != len(source) or len(rows) != weights.shape[0]:
        raise ValueError(f"weights of shape {weights.shape} do not match the input ({len(source)} chars) "
                         f"and the output ({len(output)} chars + end)")
    plt = pyplot()
    _register_bundled_hangul_font(font_manager)
    installed = {f.name for f in font_manager.fontManager.ttflist}
    families = [f for f in _CJK_FONTS if f in installed] + ["DejaVu Sans"]
    font_chars: set[int] = set()
    for family in families:
        try:
            font_chars |= set(FT2Font(font_manager.findfont(family)).get_charmap())
        except (OSError, RuntimeError):  # pragma: no cover - broken font file
            continue
    with plt.rc_context({"font.family": families}):
        fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(source) + 1.5), max(3.0, 0.35 * len(rows) + 1.2)))
        image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(source)), [_label(c, font_chars) for c in source],
                      rotation=0)
        ax.set_yticks(range(len(rows)), [_label(c, font_chars) if c != "</s>" else c for c in rows])
        ax.set_xlabel("input characters")
        ax.set_ylabel("output characters")
        shown = "".join(_label(c, font_chars) if c != " " else c for c in source)
        ax.set_title(title or f"{shown}  ->  {output}", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        return save_figure(fig, path, dpi=110)
