"""Reading ``gicho predict`` inputs: strings of numbers, checked before any model runs."""

from __future__ import annotations

import math

__all__ = ["parse_numbers"]


def parse_numbers(text: str, n: int, what: str, *, low: float | None = None,
                  high: float | None = None) -> list[float]:
    """``n`` finite numbers separated by commas or spaces, each in ``[low, high]`` when given.

    Raises
    ------
    ValueError
        Naming the input and what is wrong (count, a non-number, NaN/inf, out of range).
    """
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"input {text!r} must be {n} numbers ({what}), separated by commas or spaces") from None
    if len(values) != n:
        raise ValueError(f"input {text!r} has {len(values)} numbers; expected {n} ({what})")
    bad = [parts[i] for i, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        raise ValueError(f"input {text[:60]!r} holds non-finite values {bad[:3]}; expected {what}")
    outside = [parts[i] for i, v in enumerate(values)
               if (low is not None and v < low) or (high is not None and v > high)]
    if outside:
        raise ValueError(f"input {text[:60]!r} holds values {outside[:3]} outside [{low}, {high}] ({what})")
    return values
