"""Classification metrics: :func:`accuracy` (and the label checks it shares with the accumulator),
:func:`score_strings` (exact match and character accuracy of strings)."""

from __future__ import annotations

import datetime as _datetime
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from gicho._validation import (
    check_array,
    check_consistent_length,
    check_sample_weight,
)

__all__ = ["accuracy", "score_strings"]



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
    kind_t, kind_p = _label_kind(yt, "y_true"), _label_kind(yp, "y_pred")
    if kind_t is not None and kind_p is not None and kind_t != kind_p:
        # numpy compares a string with a number (or bytes with str) as unequal: accuracy 0.0,
        # silently. scikit-learn raises "Mix of label input types"; so do we.
        raise TypeError(
            f"`y_true` and `y_pred` hold labels of different kinds (mix of label input types): "
            f"{kind_t} labels ({yt.dtype}) in `y_true`, {kind_p} labels ({yp.dtype}) in `y_pred`; "
            "both must be of one kind (numbers, strings, bytes or datetimes)"
        )
    return yt, yp


_KINDS = {"b": "number", "i": "number", "u": "number", "f": "number", "c": "number",
          "U": "string", "S": "bytes", "M": "datetime", "m": "timedelta"}  # fmt: skip


def _label_kind(labels: np.ndarray, name: str) -> str | None:
    """What a label array holds: number, string, bytes, datetime or timedelta (None: empty).

    Object arrays (how pandas stores strings) are looked into, element by element.
    """
    if labels.dtype.kind != "O":
        return _KINDS.get(labels.dtype.kind, str(labels.dtype))
    kinds = set()
    for value in labels.tolist():
        if isinstance(value, (bool, int, float, complex, np.number, np.bool_)):
            kinds.add("number")
        elif isinstance(value, str):
            kinds.add("string")
        elif isinstance(value, bytes):
            kinds.add("bytes")
        elif isinstance(value, (np.datetime64, _datetime.date)):
            kinds.add("datetime")
        else:
            kinds.add(type(value).__name__)
    if len(kinds) > 1:
        raise TypeError(
            f"argument `{name}` mixes label types ({', '.join(sorted(kinds))}); all labels must be "
            "of one kind"
        )
    return kinds.pop() if kinds else None


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


def score_strings(predictions: Sequence[str], targets: Sequence[str]) -> dict[str, float]:
    """Exact-match and character accuracy of predicted strings against targets.

    Character accuracy compares position by position over each target's characters (a missing
    predicted character counts as wrong, extra ones are ignored).
    """
    if len(predictions) != len(targets) or not targets:
        raise ValueError(f"need as many predictions as targets (>= 1); got {len(predictions)} and {len(targets)}")
    pairs = [(p[i] if i < len(p) else "", c) for p, t in zip(predictions, targets, strict=True)
             for i, c in enumerate(t)]
    return {"exact_match": sum(p == t for p, t in zip(predictions, targets, strict=True)) / len(targets),
            "char_accuracy": sum(p == c for p, c in pairs) / len(pairs) if pairs else 1.0}
