"""Input checks of :meth:`gicho.moments.Moments.update`: NumPy and torch chunks, and their shapes.

Non-finite X and y are not checked here (that would be a full extra pass over X): they are
caught from the block statistics (:mod:`gicho.moments._blocks`). Weights are checked here.
"""

from __future__ import annotations

from typing import Any

from gicho._validation import check_array, check_consistent_length, is_torch, nonfinite_error

__all__ = ["check_numpy", "check_shapes", "check_torch"]


def check_numpy(X: Any, y: Any, sample_weight: Any) -> tuple[Any, Any, Any]:
    """``X`` (n, p), ``y`` (n,) or (n, k) and weights (n,) as NumPy arrays, in their own dtypes."""
    # dtype=None: no float64 copy of a float32 or memory-mapped X; the block loop casts.
    # finite=False: non-finite input is caught from the (tiny) block statistics instead
    # of a full extra pass over X; see :func:`gicho.moments._blocks.centred_block`.
    X = check_array(X, "X", ndim=2, dtype=None, allow_empty=True, finite=False)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"argument `X` must have a real numeric dtype; got {X.dtype}")
    if y is not None:
        y = check_array(y, "y", ndim=(1, 2), dtype=None, allow_empty=True, finite=False)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"argument `y` must have a real numeric dtype; got {y.dtype}")
        check_consistent_length(X=X, y=y)
    w = None
    if sample_weight is not None:
        w = check_array(sample_weight, "sample_weight", ndim=1, allow_empty=True)
        check_consistent_length(X=X, sample_weight=w)
        if (w < 0).any():
            raise ValueError(
                f"argument `sample_weight` contains {int((w < 0).sum())} negative value(s) "
                f"(smallest {w.min():g}); weights must be >= 0"
            )
    return X, y, w


def check_torch(moments: Any, X: Any, y: Any, sample_weight: Any) -> tuple[Any, Any, Any]:
    """The same as tensors on the device of ``moments`` (else of X or y); weights in float64."""
    import torch

    device = moments.mean_x_.device if moments.is_torch else (X.device if is_torch(X) else y.device)

    def as_tensor(v: Any, name: str, ndims: tuple[int, ...]) -> Any:
        if not is_torch(v):
            v = torch.as_tensor(check_array(v, name, dtype=None, allow_empty=True, finite=False))
        # float16 / bfloat16 become float32 (their Gram products overflow at 65504)
        v = check_array(v, name, ndim=ndims, dtype="float", allow_empty=True, finite=False, keep_backend=True)
        return v.to(device)

    X = as_tensor(X, "X", (2,))
    if y is not None:
        y = as_tensor(y, "y", (1, 2))
        check_consistent_length(X=X, y=y)
    w = None
    if sample_weight is not None:
        w = as_tensor(sample_weight, "sample_weight", (1,)).to(torch.float64)
        check_consistent_length(X=X, sample_weight=w)
        if not bool(torch.isfinite(w).all()):
            raise nonfinite_error("sample_weight", w)
        if bool((w < 0).any()):
            raise ValueError(
                f"argument `sample_weight` contains {int((w < 0).sum())} negative value(s) "
                f"(smallest {float(w.min()):g}); weights must be >= 0"
            )
    if moments.mean_x_ is not None and not moments.is_torch:
        raise TypeError(
            "these Moments hold NumPy state; pass NumPy arrays (or start a new Moments for tensors)"
        )
    return X, y, w


def check_shapes(moments: Any, X: Any, y: Any) -> None:
    """The chunk has the features and targets (or no targets) of the earlier updates."""
    if moments.mean_x_ is not None and X.shape[1] != moments.mean_x_.shape[0]:
        raise ValueError(
            f"argument `X` has {X.shape[1]} feature(s); these moments were built with "
            f"{moments.mean_x_.shape[0]}"
        )
    if moments.mean_x_ is not None and (y is None) != (moments.mean_y_ is None):
        raise ValueError(
            "argument `y` must be given on every update or on none; "
            f"got y={'None' if y is None else 'an array'} after updates "
            f"{'without' if moments.mean_y_ is None else 'with'} y"
        )
    if y is not None and moments.mean_y_ is not None:
        k = 1 if y.ndim == 1 else y.shape[1]
        if k != moments.mean_y_.shape[0]:
            raise ValueError(
                f"argument `y` has {k} target(s); these moments were built with {moments.mean_y_.shape[0]}"
            )
