"""Classification metrics: :func:`accuracy` and the label checks it shares with the accumulator."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from gicho._validation import (
    check_array,
    check_consistent_length,
    check_sample_weight,
)

__all__ = ["accuracy"]



def _check_labels(y: Any, name: str, allow_empty: bool = False) -> np.ndarray:
    labels = check_array(y, name, dtype=None, allow_empty=allow_empty)
    if labels.ndim != 1:
        hint = (
            "; for scores or probabilities of shape (n_samples, n_classes) pass "
            "y_pred.argmax(axis=1)"
            if labels.ndim == 2
            else ""
        )
        raise ValueError(
            f"argument `{name}` must be a 1-D array of class labels; got shape {labels.shape}{hint}"
        )
    return labels


def _check_label_pair(
    y_true: ArrayLike, y_pred: ArrayLike, allow_empty: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    yt = _check_labels(y_true, "y_true", allow_empty)
    yp = _check_labels(y_pred, "y_pred", allow_empty)
    check_consistent_length(y_true=yt, y_pred=yp)
    kinds = {a.dtype.kind for a in (yt, yp)}
    if kinds & set("biufc") and kinds & set("US"):  # numpy would compare them as all-unequal, silently
        raise TypeError(
            f"`y_true` ({yt.dtype}) and `y_pred` ({yp.dtype}) hold labels of different kinds; "
            "both must be numbers or both strings"
        )
    return yt, yp


def accuracy(y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: ArrayLike | None = None) -> float:
    """Fraction of (weighted) samples whose predicted label equals the true one.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Class labels of any comparable dtype (ints, strings, ...); both numbers or both
        strings. Scores or probabilities are not accepted: pass ``scores.argmax(axis=1)``.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weights, not all zero.

    Returns
    -------
    float
        In [0, 1]; equals scikit-learn's ``accuracy_score`` for 1-D labels.
    """
    yt, yp = _check_label_pair(y_true, y_pred)
    correct = yt == yp
    if sample_weight is None:
        return int(np.count_nonzero(correct)) / correct.shape[0]
    w = check_sample_weight(sample_weight, correct.shape[0])
    return float(np.dot(w, correct.astype(np.float64)) / w.sum())
