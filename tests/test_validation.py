"""The shared input checks: each names the argument, the bad value and what is allowed."""

from __future__ import annotations

import numpy as np
import pytest

from gicho._validation import (
    NotFittedError,
    check_array,
    check_choice,
    check_consistent_length,
    check_is_fitted,
    check_positive,
    check_probability,
    check_sample_weight,
)


def test_check_array_converts_and_keeps_values():
    out = check_array([[1, 2], [3, 4]], "X", ndim=2)
    assert out.dtype == np.float64 and out.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert check_array(np.float32([1.5]), "x", dtype="float").dtype == np.float32


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "message"),
    [
        ([1.0, np.nan, np.inf], {}, ValueError, r"argument `x` contains 1 NaN and 1 infinite value\(s\)"),
        ([], {}, ValueError, r"argument `x` is empty"),
        ([1.0, 2.0], {"ndim": 2}, ValueError, r"argument `x` must have 2 dimension\(s\); got 1 .*reshape"),
        ([1.0], {"min_samples": 2}, ValueError, r"argument `x` has 1 sample\(s\); at least 2"),
        (["a", "b"], {}, TypeError, r"argument `x` must be numeric"),
        (np.array([1 + 2j]), {}, TypeError, r"argument `x` is complex"),
        (np.array([1 + 2j]), {"dtype": "float"}, TypeError, r"argument `x` is complex"),
    ],
)
def test_check_array_errors(value, kwargs, error, message):
    with pytest.raises(error, match=message):
        check_array(value, "x", **kwargs)


def test_other_checks():
    assert check_consistent_length(X=np.zeros((3, 2)), y=np.zeros(3)) == 3
    with pytest.raises(ValueError, match=r"`X` has 3, `y` has 2"):
        check_consistent_length(X=np.zeros((3, 2)), y=np.zeros(2))
    assert check_sample_weight(None, 2).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match=r"1 negative value\(s\) \(smallest -1\)"):
        check_sample_weight([1.0, -1.0], 2)
    with pytest.raises(ValueError, match="all zeros"):
        check_sample_weight([0.0, 0.0], 2)
    with pytest.raises(ValueError, match="has 1 entries; expected 2"):
        check_sample_weight([1.0], 2)
    with pytest.raises(ValueError, match=r"argument `mode` must be one of 'a', 'b'; got 'c'"):
        check_choice("c", "mode", ("a", "b"))
    with pytest.raises(ValueError, match=r"argument `lr` must be a finite number > 0; got 0"):
        check_positive(0, "lr")
    with pytest.raises(TypeError, match=r"argument `n` must be an integer"):
        check_positive(1.5, "n", integer=True)
    with pytest.raises(ValueError, match=r"argument `p` must lie in \[0, 1\]; got 1.5"):
        check_probability(1.5, "p")

    class Model:
        pass

    with pytest.raises(NotFittedError, match="this Model is not fitted yet"):
        check_is_fitted(Model(), "coef_")
