"""Input handling of :class:`gicho.linear.LinearRegression`: validation and data preparation.

NumPy / pandas / torch inputs are checked here with the shared validators of
:mod:`gicho._validation` and scikit-learn's wording where its estimator checks expect it
("Reshape your data", "Complex data not supported", sparse input). NaN and infinity in X and
y are detected later, from the block statistics of :class:`gicho.moments.Moments`, which saves
a full pass over X; the error message is the same.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from gicho._validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    check_sample_weight,
    complex_error,
)
from gicho._validation import is_torch as _is_torch

__all__ = ["check_X", "check_fitted", "check_gram_memory", "check_xy", "sum_log", "tensor_dtype"]

# Least squares holds the float64 Gram matrix of [1, X, y] (side p + k + 1) several times:
# one per worker segment of the pass over X, its factorisation, the coefficients' covariance.
# A design whose Gram matrix needs more than this fraction of the machine's memory is refused
# before anything of that size is allocated.
GRAM_MEMORY_FRACTION = 0.25


def check_xy(X: Any, y: Any, sample_weight: Any) -> tuple[Any, Any, Any]:
    """``X`` (n, p), ``y`` (n,) or (n, k) as float arrays (or tensors) and weights (n,) or None."""
    if y is None:
        raise ValueError(
            "LinearRegression requires y to be passed, but the target y is None; "
            "pass y of shape (n,) or (n, k)"
        )
    if _is_torch(X) or _is_torch(y):
        return _check_xy_torch(X, y, sample_weight)
    # finite=False: NaN / inf are caught (with the same message) from the moments' block
    # statistics, which saves a full pass over X
    X = check_X(X, finite=False)
    y = check_array(real(y, "y"), "y", ndim=(1, 2), dtype="float", finite=False)
    n = check_consistent_length(X=X, y=y)
    check_gram_memory(X.shape[1], 1 if y.ndim == 1 else y.shape[1])
    # np.asarray first: array-likes that refuse __array_function__ (scikit-learn checks it)
    w = None if sample_weight is None else check_sample_weight(np.asarray(sample_weight), n)
    return X, y, w


def _check_xy_torch(X: Any, y: Any, sample_weight: Any) -> tuple[Any, Any, Any]:
    if not (_is_torch(X) and _is_torch(y)):
        raise TypeError("arguments `X` and `y` must both be torch tensors or both array-like")
    # float16 / bfloat16 become float32: their Gram products would overflow at 65504
    X = check_array(X, "X", ndim=2, dtype="float", keep_backend=True)
    y = check_array(y, "y", ndim=(1, 2), dtype="float", keep_backend=True)
    if y.dtype != X.dtype:
        y = y.to(X.dtype)
    n = check_consistent_length(X=X, y=y)
    check_gram_memory(X.shape[1], 1 if y.ndim == 1 else y.shape[1])
    w = None
    if sample_weight is not None:
        w = check_sample_weight(
            sample_weight.detach().cpu().numpy() if _is_torch(sample_weight) else sample_weight, n
        )
    return X, y, w


def memory_bytes() -> int | None:
    """This machine's memory in bytes (a container's cgroup limit when smaller); None if unknown."""
    try:
        total: int | None = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # not POSIX
        total = None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max": no limit
            total = int(text) if total is None else min(total, int(text))
        break
    return total


def check_gram_memory(n_features: int, n_targets: int = 1, subject: str | None = None) -> None:
    """Refuse a design whose Gram matrix would not fit in memory, before it is allocated.

    ``subject`` starts the message (default: "argument `X` has P columns"); the CLI names its
    file there.
    """
    side = n_features + n_targets + 1
    need = 8 * side * side
    memory = memory_bytes()
    if memory is None or need <= GRAM_MEMORY_FRACTION * memory:
        return
    subject = f"argument `X` has {n_features:,} columns" if subject is None else subject
    raise ValueError(
        f"{subject}: least squares needs the {side:,} x {side:,} Gram matrix of [1, X, y] "
        f"({_size(need)}, held several times), more than {GRAM_MEMORY_FRACTION:.0%} of this "
        f"machine's {_size(memory)} of memory; select fewer columns (gicho ols: --features) or "
        "reduce them first (e.g. PCA)"
    )


def _size(n_bytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n_bytes < 1024:
            return f"{n_bytes:,.0f} {unit}" if unit == "bytes" else f"{n_bytes:,.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:,.1f} TiB"


def check_fitted(est: Any) -> None:
    check_is_fitted(est, ("coef_", "_stats"))


def real(x: Any, name: str) -> Any:
    """Reject complex input up front (a float conversion would drop the imaginary part)."""
    if _is_torch(x) or x is None:
        return x
    if hasattr(x, "tocsr") or hasattr(x, "todense"):  # scipy.sparse, without importing it
        raise TypeError(
            f"argument `{name}` is a sparse matrix ({type(x).__name__}): sparse input is not "
            "supported; pass a dense array (x.toarray())"
        )
    if hasattr(x, "dtypes"):  # keep DataFrames for their names
        arr = x
    else:  # ragged or non-numeric input gets the validator's message, naming the argument
        arr = check_array(x, name, dtype=None, finite=False, allow_empty=True)
    kinds = [arr.dtype.kind] if hasattr(arr, "dtype") else [getattr(t, "kind", "O") for t in arr.dtypes]
    if "c" in kinds:
        raise complex_error(name, x)
    return arr


def check_X(X: Any, finite: bool = True) -> np.ndarray:
    """A 2-D float array with at least one row and one column (scikit-learn's wording)."""
    X = real(X, "X")
    shape = np.shape(X)
    if len(shape) == 1 or len(shape) == 0:
        raise ValueError(
            f"argument `X` must be 2-D; got {len(shape)}-D shape {shape}. Reshape your data with "
            "X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample"
        )
    if len(shape) == 2 and shape[0] > 0 and shape[1] == 0:
        raise ValueError(
            f"argument `X` has 0 feature(s) (shape={shape}) while a minimum of 1 is required."
        )
    return check_array(X, "X", ndim=2, dtype="float", finite=finite)


def tensor_dtype(X: Any) -> Any:
    return X.dtype if _is_torch(X) else None


def sum_log(w: np.ndarray | None, n: int) -> float:
    if w is None:
        return 0.0
    with np.errstate(divide="ignore"):
        return float(np.sum(np.log(w)))
