"""Property tests over the public numerical entry points, NumPy and torch, against the references.

Each property draws arrays with hypothesis and compares gicho with SciPy / scikit-learn (or
with gicho's other backend, or with an identity). ``make test`` runs the derandomized
``gicho`` profile (more than 5,000 generated cases over the whole suite, counting these);
``HYPOTHESIS_PROFILE=explore`` draws 500 fresh examples per property.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import scipy.stats
import sklearn.metrics
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gicho.information import cross_entropy, entropy, kl_divergence, kl_normal
from gicho.metrics import RegressionMetrics, accuracy, mae, mse, r2, rmse
from gicho.numerics import log_softmax, logsumexp, softmax

# Examples per property in the CI profile: cheap functions get many (see the module docstring).
MANY = settings(max_examples=450, deadline=None)

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
matrices = hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=7), elements=finite)
positive = st.floats(1e-6, 1e3, allow_nan=False)
distributions = hnp.arrays(np.float64, st.integers(1, 9), elements=st.floats(0, 1e3)).filter(lambda p: p.sum() > 0)


@MANY
@given(matrices, st.sampled_from([0, 1, -1, None]), st.floats(0.05, 20))
def test_softmax_family_matches_scipy_and_torch(x, axis, temperature):
    expected = scipy.special.softmax(x / temperature, axis=axis)
    # SciPy is given x / T already rounded: each scaled logit z carries an error of up to
    # |z|·eps, which exp turns into a relative error |z|·eps of the reference itself (for
    # x = [-897, -863], T = 0.0547: SciPy is 1.3e-12 off the 50-digit value, gicho 4.9e-14).
    reference_error = 4 * np.finfo(np.float64).eps * float(np.abs(x).max()) / temperature
    rtol = 1e-12 + reference_error
    np.testing.assert_allclose(softmax(x, axis=axis, temperature=temperature), expected, rtol=rtol, atol=1e-300)
    np.testing.assert_allclose(log_softmax(x, axis=axis, temperature=temperature),
                               scipy.special.log_softmax(x / temperature, axis=axis), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(logsumexp(x, axis=axis, temperature=temperature),
                               scipy.special.logsumexp(x / temperature, axis=axis),
                               rtol=1e-12, atol=1e-12)
    t = torch.from_numpy(x)
    dims = tuple(range(x.ndim)) if axis is None else axis
    np.testing.assert_allclose(softmax(t, axis=dims, temperature=temperature).numpy(), expected,
                               rtol=rtol, atol=1e-300)


@MANY
@given(distributions, st.sampled_from([None, 2.0, 10.0]))
def test_entropy_matches_scipy(p, base):
    np.testing.assert_allclose(entropy(p, base=base, normalize=True), scipy.stats.entropy(p, base=base),
                               rtol=1e-12, atol=1e-15)


@MANY
@given(st.integers(1, 8).flatmap(lambda n: st.tuples(
    hnp.arrays(np.float64, n, elements=st.floats(0, 1e3)),
    hnp.arrays(np.float64, n, elements=st.floats(1e-3, 1e3)))).filter(lambda pq: pq[0].sum() > 0))
def test_kl_and_cross_entropy_match_scipy(pq):
    p, q = pq
    kl = kl_divergence(p, q, normalize=True)
    np.testing.assert_allclose(kl, scipy.stats.entropy(p, q), rtol=1e-10, atol=1e-12)
    # cross-entropy = entropy + KL (Gibbs), each from its own implementation
    np.testing.assert_allclose(cross_entropy(p, q, normalize=True), entropy(p, normalize=True) + kl,
                               rtol=1e-10, atol=1e-12)
    assert kl >= -1e-15


@MANY
@given(finite, positive, finite, positive)
def test_kl_normal_closed_form_is_non_negative_and_zero_on_equal(mu1, s1, mu2, s2):
    value = kl_normal(mu1, s1, mu2, s2)
    expected = np.log(s2 / s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - 0.5
    np.testing.assert_allclose(value, expected, rtol=1e-9, atol=1e-9)
    assert value >= -1e-12 and kl_normal(mu1, s1, mu1, s1) == 0


regression_pairs = st.integers(2, 30).flatmap(lambda n: st.tuples(
    hnp.arrays(np.float64, n, elements=finite), hnp.arrays(np.float64, n, elements=finite)))


@MANY
@given(regression_pairs)
def test_regression_metrics_match_sklearn(pair):
    y, yhat = pair
    np.testing.assert_allclose(mae(y, yhat), sklearn.metrics.mean_absolute_error(y, yhat), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mse(y, yhat), sklearn.metrics.mean_squared_error(y, yhat), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rmse(y, yhat) ** 2, mse(y, yhat), rtol=1e-12, atol=1e-12)
    if np.ptp(y) > 1e-6 * (1 + np.abs(y).max()):  # for a constant y, scikit-learn's TSS is round-off
        np.testing.assert_allclose(r2(y, yhat), sklearn.metrics.r2_score(y, yhat), rtol=1e-9, atol=1e-9)


@MANY
@given(regression_pairs, st.integers(1, 5))
def test_streaming_regression_metrics_equal_the_batch(pair, n_chunks):
    y, yhat = pair
    stream = RegressionMetrics()
    for chunk in np.array_split(np.arange(len(y)), n_chunks):
        if len(chunk):
            stream.update(y[chunk], yhat[chunk])
    streamed = stream.compute()
    for name, fn in (("mae", mae), ("mse", mse), ("r2", r2)):
        np.testing.assert_allclose(streamed[name], fn(y, yhat), rtol=1e-9, atol=1e-9, err_msg=name)


@MANY
@given(st.lists(st.integers(0, 4), min_size=1, max_size=40).flatmap(
    lambda a: st.tuples(st.just(a), st.lists(st.integers(0, 4), min_size=len(a), max_size=len(a)))))
def test_accuracy_matches_sklearn(pair):
    y, yhat = pair
    assert accuracy(y, yhat) == pytest.approx(sklearn.metrics.accuracy_score(y, yhat), abs=1e-15)
