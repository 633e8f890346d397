"""Deprecated alias of :mod:`gicho.dask` (renamed so it cannot be confused with ``gicho.train.distributed``).

``from gicho.distributed import dask_moments, fit_linear_regression`` keeps working and warns;
import :func:`gicho.dask.dask_moments`, or call ``LinearRegression().fit(dask_X, dask_y)``.
"""

from __future__ import annotations

import warnings
from typing import Any

from gicho.dask import dask_moments, is_dask_collection

__all__ = ["dask_moments", "fit_linear_regression", "is_dask_collection"]

warnings.warn(
    "gicho.distributed is deprecated: use gicho.dask (dask_moments) or LinearRegression().fit "
    "on Dask collections",
    DeprecationWarning,
    stacklevel=2,
)


def fit_linear_regression(X: Any, y: Any, sample_weight: Any = None, **params: Any) -> Any:
    """``LinearRegression(**params).fit(X, y, sample_weight=sample_weight)`` on Dask data."""
    from gicho.linear import LinearRegression

    return LinearRegression(**params).fit(X, y, sample_weight=sample_weight)
