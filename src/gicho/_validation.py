"""Shared input checks for every public entry point.

Each check raises a ``ValueError`` (or ``TypeError``) whose message names the argument, the
bad value and what is allowed, so that a user never has to read a traceback to find out what
went wrong. Checks never use bare ``assert``: those vanish under ``python -O``.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "IGNORE_INDEX",
    "ComplexDataError",
    "NotFittedError",  # noqa: F822 (built on first use, see __getattr__)
    "as_numpy",
    "check_array",
    "check_choice",
    "check_consistent_length",
    "check_dropout",
    "check_feature_names",
    "check_is_fitted",
    "check_n_features",
    "check_positive",
    "check_probability",
    "check_sample_weight",
    "complex_error",
    "describe",
    "is_dask",
    "is_torch",
    "nonfinite_error",
]

# A label equal to this is not scored: no loss, no metric (PyTorch's cross-entropy default and
# Hugging Face's convention). Defined here, the lowest module every user imports (data collators,
# the losses of gicho.nn.losses, the streaming metrics); gicho.nn.losses re-exports it.
IGNORE_INDEX = -100


@functools.cache
def _not_fitted_error() -> type:
    # built on first use: importing scikit-learn costs ~1.5 s, and numerics must stay light
    from sklearn.exceptions import NotFittedError as SkNotFittedError

    class NotFittedError(SkNotFittedError):
        """Raised when a method needs a fitted estimator.

        A subclass of scikit-learn's ``NotFittedError`` (itself a ``ValueError`` and an
        ``AttributeError``), so ``except sklearn.exceptions.NotFittedError`` catches it for
        every gicho estimator.
        """

    NotFittedError.__module__ = __name__
    NotFittedError.__qualname__ = "NotFittedError"
    return NotFittedError


def __getattr__(name: str) -> Any:
    if name == "NotFittedError":  # PEP 562: `from gicho._validation import NotFittedError`
        return _not_fitted_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (never imports torch: a tensor implies it is loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def is_dask(x: Any) -> bool:
    """Whether ``x`` is a Dask collection (array, DataFrame, Series), without importing dask."""
    return type(x).__module__.split(".")[0] == "dask" and callable(getattr(x, "__dask_graph__", None))


def as_numpy(x: Any) -> np.ndarray:
    """``x`` as a host NumPy array (a torch tensor is detached and copied to the CPU)."""
    return x.detach().cpu().numpy() if is_torch(x) else np.asarray(x)


class ComplexDataError(TypeError, ValueError):
    """Complex input where only real numbers are allowed.

    A ``TypeError`` (the kind of the problem); also a ``ValueError`` so that scikit-learn's
    estimator checks, which expect "Complex data not supported" as a ValueError, pass.
    """


def complex_error(name: str, x: Any) -> ComplexDataError:
    """The one error for complex input (a float cast would silently drop the imaginary part)."""
    return ComplexDataError(
        f"argument `{name}` is complex ({describe(x)}): Complex data not supported; only real "
        "values are allowed"
    )


def nonfinite_error(name: str, x: Any) -> ValueError:
    """The one error for NaN / inf in ``x`` (NumPy or torch), counting them.

    When ``x`` itself is finite the non-finite value came from an overflow in a statistic
    computed from it (its sums or second moments): the message says so.
    """
    arr = as_numpy(x)
    inexact = np.issubdtype(arr.dtype, np.inexact)
    n_nan = int(np.isnan(arr).sum()) if inexact else 0
    n_inf = int(np.isinf(arr).sum()) if inexact else 0
    if n_nan == 0 and n_inf == 0:
        return ValueError(
            f"argument `{name}` has values so large that its sums or second moments overflow "
            "float64; rescale the data"
        )
    return ValueError(
        f"argument `{name}` contains {n_nan} NaN and {n_inf} infinite value(s); "
        "only finite values are allowed"
    )


def describe(value: Any, limit: int = 60) -> str:
    """A short, readable rendering of ``value`` for error messages."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    if is_torch(value):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if hasattr(value, "dtypes") and hasattr(value, "shape"):  # pandas
        return f"{type(value).__name__} of shape {value.shape}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ndim_error(name: str, got: int, shape: tuple[int, ...], allowed: tuple[int, ...]) -> ValueError:
    if got < 2 and allowed == (2,):  # scikit-learn's wording (its estimator checks look for it)
        return ValueError(
            f"argument `{name}` must have 2 dimension(s); got {got} (shape {shape}). Reshape your "
            f"data with {name}.reshape(-1, 1) for a single feature or {name}.reshape(1, -1) for "
            "a single sample"
        )
    return ValueError(
        f"argument `{name}` must have {' or '.join(map(str, allowed))} dimension(s); "
        f"got {got} (shape {shape})"
    )


def _check_shape(name: str, shape: tuple[int, ...], ndim: Any, allow_empty: bool, min_samples: int) -> None:
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if len(shape) not in allowed:
            raise _ndim_error(name, len(shape), shape, allowed)
    if ndim == 2 and len(shape) == 2 and shape[0] > 0 and shape[1] == 0 and not allow_empty:
        raise ValueError(
            f"argument `{name}` has 0 feature(s) (shape={shape}) while a minimum of 1 is required."
        )
    if math.prod(shape) == 0 and not allow_empty:
        raise ValueError(f"argument `{name}` is empty (shape {shape}); at least one value is required")
    if not allow_empty and len(shape) >= 1 and shape[0] < min_samples:
        raise ValueError(f"argument `{name}` has {shape[0]} sample(s); at least {min_samples} sample(s) are required")


def _pandas_numeric(x: Any) -> Any:
    """A pandas object with nullable extension dtypes (``Int64``, ``Float64``, ``boolean``) as a
    float64 array with NaN for missing values; anything else unchanged.

    ``np.asarray`` would give an object array (and pd.NA) for these, which no numeric code reads.
    """
    dtypes = getattr(x, "dtypes", None)
    if dtypes is None or not hasattr(x, "to_numpy"):
        return x
    dtypes = list(dtypes) if hasattr(dtypes, "__iter__") else [dtypes]
    extension = [d for d in dtypes if not isinstance(d, np.dtype)]
    if extension and all(getattr(d, "kind", "O") in "biuf" for d in dtypes):
        return x.to_numpy(dtype=np.float64, na_value=np.nan)
    return x


# float16 / bfloat16 tensors are promoted to this for any arithmetic (their range ends at 65504;
# torch.linalg has no half-precision kernels on the CPU)
_LOW_PRECISION_TORCH = ("float16", "bfloat16")


def _check_tensor(
    x: Any, name: str, *, ndim: Any, dtype: Any, allow_empty: bool, finite: bool, min_samples: int
) -> Any:
    import torch  # already imported: x is a tensor

    if x.is_complex():
        raise complex_error(name, x)
    if x.dtype == torch.bool:
        raise TypeError(f"argument `{name}` must have a real numeric dtype; got {x.dtype}")
    if dtype is not None:
        if not x.is_floating_point():
            x = x.to(torch.float64)
        elif str(x.dtype).removeprefix("torch.") in _LOW_PRECISION_TORCH:
            x = x.to(torch.float32)
        if dtype != "float":
            x = x.to(torch.float64)
    _check_shape(name, tuple(x.shape), ndim, allow_empty, min_samples)
    if finite and x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise nonfinite_error(name, x)
    return x


def check_array(
    x: Any,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    dtype: Any = np.float64,
    allow_empty: bool = False,
    finite: bool = True,
    min_samples: int = 1,
    keep_backend: bool = False,
) -> Any:
    """Convert ``x`` to an array and check it: the one array validator of gicho.

    Parameters
    ----------
    x : array-like
        The input (list, NumPy array, pandas object, torch tensor).
    name : str
        The argument's name, used in error messages.
    ndim : int or sequence of int, optional
        Allowed numbers of dimensions.
    dtype : numpy dtype, "float" or None
        Target dtype; ``None`` keeps the input's dtype. ``"float"`` keeps float32 / float64,
        promotes float16 (and torch bfloat16) to float32 and anything else to float64.
    allow_empty : bool
        Whether an array with zero elements is accepted.
    finite : bool
        Whether NaN and infinity are rejected.
    min_samples : int
        Minimum length of the first axis (ignored when ``allow_empty``).
    keep_backend : bool
        Return a torch tensor for a tensor (on its device; float64 for a numpy ``dtype``)
        instead of a host NumPy array.

    Returns
    -------
    numpy.ndarray, or a torch tensor when ``keep_backend`` and ``x`` is one

    Raises
    ------
    TypeError
        Non-numeric or complex (:class:`ComplexDataError`) input.
    ValueError
        Wrong number of dimensions, empty, too few samples, NaN or infinity.
    """
    if is_torch(x):
        if keep_backend:
            return _check_tensor(x, name, ndim=ndim, dtype=dtype, allow_empty=allow_empty,
                                 finite=finite, min_samples=min_samples)  # fmt: skip
        x = x.detach().cpu()
        x = (x.float() if str(x.dtype) == "torch.bfloat16" else x).numpy()

    def not_numeric(exc: Exception) -> TypeError:
        return TypeError(f"argument `{name}` must be numeric array-like; got {describe(x)} ({exc})")

    x = _pandas_numeric(x)
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged nested lists, for example
        raise not_numeric(exc) from None
    if np.iscomplexobj(arr):
        # Casting complex to float drops the imaginary part with only a warning.
        raise complex_error(name, arr)
    try:
        if dtype == "float":
            if arr.dtype == np.float16:
                arr = arr.astype(np.float32)
            elif not np.issubdtype(arr.dtype, np.floating):
                arr = arr.astype(np.float64)
        elif dtype is not None:
            arr = arr.astype(dtype, copy=False)
    except (TypeError, ValueError) as exc:
        raise not_numeric(exc) from None
    _check_shape(name, arr.shape, ndim, allow_empty, min_samples)
    if finite and np.issubdtype(arr.dtype, np.inexact) and not np.isfinite(arr).all():
        raise nonfinite_error(name, arr)
    return arr


def check_feature_names(estimator: Any, X: Any, reset: bool) -> None:
    """Record (``reset``) or compare ``feature_names_in_`` from a DataFrame's string columns.

    scikit-learn's rules: set on fit from a DataFrame with all-string column names, removed
    on a fit without them, and a later call with different names (or with names after a
    fit without them) is refused or warned about as scikit-learn does. torch tensors and
    Dask collections carry no names and are skipped (a fit on them forgets old names).
    """
    if is_torch(X) or is_dask(X):
        if reset and hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
        return
    from sklearn.utils.validation import _check_feature_names

    _check_feature_names(estimator, X, reset=reset)


def check_n_features(estimator: Any, X: Any, reset: bool) -> None:
    """Record (``reset``) or compare ``n_features_in_`` with X's columns (scikit-learn's wording)."""
    p = int(X.shape[1])
    if reset:
        estimator.n_features_in_ = p
    elif p != estimator.n_features_in_:
        raise ValueError(
            f"argument `X`: X has {p} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input"
        )


def check_consistent_length(**arrays: Any) -> int:
    """Check that all given arrays have the same first-axis length; return it.

    Call as ``check_consistent_length(X=X, y=y)`` so the message can name them.
    """
    lengths = {name: len(a) for name, a in arrays.items() if a is not None}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"`{k}` has {v}" for k, v in lengths.items())
        raise ValueError(f"inconsistent numbers of samples: {detail}")
    return next(iter(lengths.values())) if lengths else 0


def check_sample_weight(sample_weight: Any, n_samples: int, name: str = "sample_weight") -> np.ndarray:
    """Return weights as a float64 vector of length ``n_samples`` (ones when ``None``).

    Negative weights and an all-zero weight vector are rejected.
    """
    if sample_weight is None:
        return np.ones(n_samples, dtype=np.float64)
    w = check_array(sample_weight, name, ndim=1)
    if w.shape[0] != n_samples:
        raise ValueError(f"argument `{name}` has {w.shape[0]} entries; expected {n_samples} (one per sample)")
    if (w < 0).any():
        raise ValueError(
            f"argument `{name}` contains {int((w < 0).sum())} negative value(s) "
            f"(smallest {w.min():g}); weights must be >= 0"
        )
    if not (w > 0).any():
        raise ValueError(f"argument `{name}` is all zeros; at least one weight must be positive")
    return w


def check_choice(value: Any, name: str, allowed: Iterable[Any], *, ignore_case: bool = False) -> Any:
    """Check that ``value`` is one of ``allowed``; return it (the allowed spelling).

    ``ignore_case`` matches strings case-insensitively. A ``name`` that starts with ``--``
    is a command-line option and is named as such ("--robust must be one of ...").
    """
    allowed = tuple(allowed)
    if ignore_case and isinstance(value, str):
        for choice in allowed:
            if isinstance(choice, str) and choice.lower() == value.lower():
                return choice
    if value not in allowed:
        what = name if name.startswith("--") else f"argument `{name}`"
        raise ValueError(f"{what} must be one of {', '.join(repr(a) for a in allowed)}; got {describe(value)}")
    return value


def check_positive(value: Any, name: str, *, strict: bool = True, integer: bool = False) -> Any:
    """Check that a scalar is a (strictly) positive number, optionally an integer."""
    kind = "integer" if integer else "number"
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if isinstance(value, bool) or not ok_type:
        raise TypeError(f"argument `{name}` must be {'an' if integer else 'a'} {kind}; got {describe(value)}")
    if not np.isfinite(value) or (value <= 0 if strict else value < 0):
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"argument `{name}` must be a finite {kind} {bound}; got {value!r}")
    return value


def check_probability(value: Any, name: str, *, closed: bool = True) -> float:
    """Check that a scalar lies in [0, 1] (or (0, 1) when ``closed`` is False)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"argument `{name}` must be a number in [0, 1]; got {describe(value)}")
    ok = 0 <= value <= 1 if closed else 0 < value < 1
    if not ok:
        interval = "[0, 1]" if closed else "(0, 1)"
        raise ValueError(f"argument `{name}` must lie in {interval}; got {value!r}")
    return float(value)


def check_dropout(value: Any, name: str) -> float:
    """Check a dropout probability: a number in [0, 1) (1 would drop every activation).

    The one bound of every model family's dropout fields (ViT, BERT, the encoder classifier,
    seq2seq), so that ``dropout=1.0`` is refused alike everywhere.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"argument `{name}` must be a number in [0, 1); got {describe(value)}")
    if not 0 <= value < 1:  # also refuses NaN
        raise ValueError(f"argument `{name}` must lie in [0, 1); got {value!r}")
    return float(value)


def check_is_fitted(estimator: Any, attributes: str | Sequence[str]) -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has all fitted ``attributes``."""
    attributes = (attributes,) if isinstance(attributes, str) else tuple(attributes)
    if not all(hasattr(estimator, a) for a in attributes):
        raise _not_fitted_error()(
            f"this {type(estimator).__name__} is not fitted yet; call `fit` before using it"
        )
