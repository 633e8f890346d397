"""Ordinary and weighted least squares: :class:`LinearRegression`.

* :mod:`gicho.linear._base`: the estimator (fit, streaming, Dask, predict, summary);
* :mod:`gicho.linear._solve`: the solvers (normal equations, QR, SVD, gradient descent);
* :mod:`gicho.linear._inference`: standard errors, tests and the printed summary;
* :mod:`gicho.linear._input`: input validation.
"""

from __future__ import annotations

from gicho.linear._base import COV_TYPES, SOLVERS, LinearRegression
from gicho.linear._solve import IllConditionedWarning, PrecisionWarning, RankDeficientWarning

__all__ = [
    "COV_TYPES",
    "SOLVERS",
    "IllConditionedWarning",
    "LinearRegression",
    "PrecisionWarning",
    "RankDeficientWarning",
]
