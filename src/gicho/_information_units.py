"""Units of information: the logarithm's ``base`` (nats, bits, ...) shared by gicho.information.

``base=None`` is the natural log (nats), 2 gives bits, 10 hartleys; any positive number other
than 1 is accepted. Results are computed in nats and divided by ``log(base)`` at the end.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gicho._validation import check_positive

__all__ = ["finish", "log_of_base"]


def log_of_base(base: float | None) -> float:
    """``log(base)``, the divisor that turns nats into the requested unit."""
    if base is None:
        return 1.0
    check_positive(base, "base")
    if base == 1:
        raise ValueError("argument `base` must not be 1 (log 1 = 0); use None (e), 2 or 10")
    return math.log(base)


def finish(value: np.ndarray, log_base: float) -> Any:
    """``value`` (nats) divided by ``log_base``; a 0-d array becomes a NumPy scalar."""
    if log_base != 1.0:
        value = value / log_base
    return value[()] if np.ndim(value) == 0 else value
