"""gicho.information: parity with SciPy, conventions, closed forms, properties, errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gicho.information import (
    SUM_TOLERANCE,
    cross_entropy,
    entropy,
    entropy_normal,
    kl_divergence,
    kl_divergence_continuous,
    kl_mvn,
    kl_normal,
)

RTOL = 1e-12


def _random_distributions(shape, seed=0, zeros=False):
    rng = np.random.default_rng(seed)
    p = rng.random(shape)
    if zeros:
        p[rng.random(shape) < 0.2] = 0.0
        p[..., 0] += 0.1  # keep every distribution non-empty
    return p / p.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("base", [None, 2, 10, 3.7])
@pytest.mark.parametrize("zeros", [False, True])
def test_matches_scipy_stats_entropy(base, zeros):
    p = _random_distributions((30, 9), seed=1, zeros=zeros)
    q = _random_distributions((30, 9), seed=2)
    np.testing.assert_allclose(entropy(p, base=base), scipy.stats.entropy(p, base=base, axis=1), rtol=RTOL)
    np.testing.assert_allclose(
        kl_divergence(p, q, base=base), scipy.stats.entropy(p, q, base=base, axis=1), rtol=RTOL
    )
    # the other axis, as SciPy's default
    np.testing.assert_allclose(
        kl_divergence(p.T, q.T, axis=0, normalize=True, base=base),
        scipy.stats.entropy(p.T, q.T, base=base), rtol=RTOL,
    )


@pytest.mark.parametrize("base", [None, 2])
def test_cross_entropy_is_entropy_plus_kl(base):
    p = _random_distributions((20, 6), seed=3, zeros=True)
    q = _random_distributions((20, 6), seed=4)
    h_pq = cross_entropy(p, q, base=base)
    manual = -np.sum(scipy.special.xlogy(p, q), axis=1) / (1.0 if base is None else math.log(base))
    np.testing.assert_allclose(h_pq, manual, rtol=RTOL)
    np.testing.assert_allclose(h_pq, entropy(p, base=base) + kl_divergence(p, q, base=base), rtol=RTOL)


def test_broadcasts_one_distribution_against_many():
    p = _random_distributions((5, 4), seed=5)
    q = _random_distributions((4,), seed=6)
    np.testing.assert_allclose(kl_divergence(p, q), [kl_divergence(row, q) for row in p], rtol=RTOL)


def test_accepts_cpu_tensors():
    p = torch.tensor([0.25, 0.75], dtype=torch.float64)
    assert entropy(p) == pytest.approx(scipy.stats.entropy([0.25, 0.75]), rel=RTOL)


# ---------------------------------------------------------------------------- conventions


def test_zero_log_zero_is_zero_and_kl_is_inf_where_q_vanishes():
    assert entropy([1.0, 0.0]) == 0.0
    assert entropy([0.5, 0.5, 0.0], base=2) == pytest.approx(1.0, rel=RTOL)
    # p = 0 where q = 0: contributes nothing
    assert kl_divergence([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == 0.0
    assert cross_entropy([1.0, 0.0], [1.0, 0.0]) == 0.0
    # q = 0 < p: infinite
    assert kl_divergence([0.5, 0.5], [1.0, 0.0]) == np.inf
    assert cross_entropy([0.5, 0.5], [1.0, 0.0]) == np.inf
    assert kl_divergence([0.0, 1.0], [0.5, 0.5]) == pytest.approx(math.log(2), rel=RTOL)


def test_kl_is_not_symmetric():
    p, q = [0.5, 0.5], [0.9, 0.1]
    assert kl_divergence(p, q) == pytest.approx(math.log(5 / 3), rel=RTOL)  # ½·log(25/9)
    assert kl_divergence(q, p) == pytest.approx(0.9 * math.log(1.8) + 0.1 * math.log(0.2), rel=RTOL)
    assert kl_divergence(p, q) - kl_divergence(q, p) > 0.14


def test_logits_and_log_probs_give_the_probability_results():
    p = _random_distributions((10, 5), seed=7, zeros=True)
    q = _random_distributions((10, 5), seed=8)
    with np.errstate(divide="ignore"):
        log_p, log_q = np.log(p), np.log(q)
    shift = np.random.default_rng(9).normal(size=(10, 1)) * 50  # logits: any offset per row
    np.testing.assert_allclose(entropy(log_p + shift, input="logits"), entropy(p), rtol=1e-11)
    np.testing.assert_allclose(entropy(log_p, input="log_probs"), entropy(p), rtol=1e-11)
    want = kl_divergence(p, q)
    np.testing.assert_allclose(kl_divergence(log_p, log_q + shift, input=("log_probs", "logits")), want, rtol=1e-11)
    np.testing.assert_allclose(kl_divergence(p, log_q, input=("probs", "log_probs")), want, rtol=1e-11)
    np.testing.assert_allclose(
        cross_entropy(p, log_q + shift, input=("probs", "logits")), cross_entropy(p, q), rtol=1e-11
    )
    assert kl_divergence([0.0, -np.inf], [0.0, 0.0], input="logits") == pytest.approx(math.log(2), rel=RTOL)
    assert kl_divergence([0.0, 0.0], [0.0, -np.inf], input="logits") == np.inf


def test_normalize_rescales_counts():
    counts = np.array([[1.0, 3.0, 0.0], [2.0, 2.0, 4.0]])
    probs = counts / counts.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(entropy(counts, normalize=True), entropy(probs), rtol=RTOL)
    np.testing.assert_allclose(
        kl_divergence(counts, counts[::-1] + 1, normalize=True),
        scipy.stats.entropy(counts, counts[::-1] + 1, axis=1), rtol=RTOL,
    )
    np.testing.assert_allclose(
        entropy(np.log(counts[1]) + 7, input="log_probs", normalize=True), entropy(probs[1]), rtol=1e-11
    )


def test_sums_within_the_tolerance_are_accepted_and_rescaled():
    p = np.array([0.5, 0.5 + SUM_TOLERANCE / 2])
    assert kl_divergence(p, p[::-1]) >= 0.0
    np.testing.assert_allclose(entropy(p), scipy.stats.entropy(p), rtol=RTOL)


# -------------------------------------------------------------------------------- continuous


def test_kl_normal_closed_form_and_integral():
    mu1, s1, mu2, s2 = 0.3, 1.2, -0.5, 2.0
    want = math.log(s2 / s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - 0.5
    assert kl_normal(mu1, s1, mu2, s2) == pytest.approx(want, rel=RTOL)
    p, q = scipy.stats.norm(mu1, s1), scipy.stats.norm(mu2, s2)
    integral = kl_divergence_continuous(p.pdf, q.pdf, (-np.inf, np.inf))
    assert integral == pytest.approx(want, abs=1e-6)
    assert kl_normal(mu1, s1, mu2, s2, base=2) == pytest.approx(want / math.log(2), rel=RTOL)
    assert kl_normal(1.0, 2.0, 1.0, 2.0) == 0.0
    np.testing.assert_allclose(kl_normal([0.0, 1.0], 1.0, 0.0, [1.0, 2.0]),
                               [0.0, kl_normal(1.0, 1.0, 0.0, 2.0)], rtol=RTOL)


def test_kl_continuous_with_log_densities_survives_tail_underflow():
    """q narrower than p: q's density underflows to 0 in p's tails; log-densities do not."""
    p, q = scipy.stats.norm(0.0, 3.0), scipy.stats.norm(0.5, 1.0)
    got = kl_divergence_continuous(p.logpdf, q.logpdf, (-np.inf, np.inf), log=True)
    assert got == pytest.approx(kl_normal(0.0, 3.0, 0.5, 1.0), abs=1e-6)
    with pytest.raises(ValueError, match=r"`q_pdf` is 0 at x = .* pass log-densities with log=True"):
        kl_divergence_continuous(p.pdf, q.pdf, (-np.inf, np.inf))


def test_kl_continuous_is_inf_outside_q_support_and_uses_base():
    wide, narrow = scipy.stats.uniform(0, 2), scipy.stats.uniform(0, 1)
    assert kl_divergence_continuous(wide.logpdf, narrow.logpdf, (0, 2), log=True) == np.inf
    got = kl_divergence_continuous(narrow.pdf, wide.pdf, (0, 1), base=2)
    assert got == pytest.approx(1.0, abs=1e-9)  # log2(1 / 0.5)


def test_kl_mvn_matches_the_textbook_formula():
    rng = np.random.default_rng(10)
    a, b = rng.normal(size=(2, 4, 4))
    cov1, cov2 = a @ a.T + np.eye(4), b @ b.T + 0.5 * np.eye(4)
    m1, m2 = rng.normal(size=(2, 4))
    inv2 = np.linalg.inv(cov2)  # fine in a test: the reference formula as written
    want = 0.5 * (np.trace(inv2 @ cov1) + (m2 - m1) @ inv2 @ (m2 - m1) - 4
                  + np.log(np.linalg.det(cov2) / np.linalg.det(cov1)))
    assert kl_mvn(m1, cov1, m2, cov2) == pytest.approx(want, rel=1e-10)
    assert kl_mvn(m1, cov1, m1, cov1) == 0.0
    assert kl_mvn([0.3], [[1.44]], [-0.5], [[4.0]]) == pytest.approx(kl_normal(0.3, 1.2, -0.5, 2.0), rel=1e-12)
    # independent coordinates: the sum of the univariate divergences
    d1, d2 = np.array([1.0, 4.0]), np.array([2.0, 0.5])
    want = kl_normal(0.0, 1.0, 1.0, math.sqrt(2.0)) + kl_normal(1.0, 2.0, 0.0, math.sqrt(0.5))
    assert kl_mvn([0.0, 1.0], np.diag(d1), [1.0, 0.0], np.diag(d2)) == pytest.approx(want, rel=1e-12)


def test_entropy_normal_matches_scipy():
    np.testing.assert_allclose(entropy_normal([0.5, 1.0, 7.0]), scipy.stats.norm(0, [0.5, 1.0, 7.0]).entropy(),
                               rtol=RTOL)
    assert entropy_normal(1.0, base=2) == pytest.approx(scipy.stats.norm().entropy() / math.log(2), rel=RTOL)


# ------------------------------------------------------------------------------ properties

distribution_pairs = st.integers(1, 10).flatmap(
    lambda n: st.tuples(*[hnp.arrays(np.float64, n, elements=st.floats(0, 1e3)) for _ in range(2)])
).filter(lambda pq: pq[0].sum() > 0 and pq[1].sum() > 0)


@settings(max_examples=100, deadline=None)
@given(distribution_pairs)
def test_information_inequalities(pq):
    p, q = (a / a.sum() for a in pq)
    h_p, h_pq, kl = entropy(p), cross_entropy(p, q), kl_divergence(p, q)
    assert kl >= 0.0
    assert kl_divergence(p, p) == 0.0
    assert h_pq >= h_p - 1e-12
    assert -1e-15 <= h_p <= math.log(p.size) + 1e-12
    if np.isfinite(kl):
        assert kl == pytest.approx(h_pq - h_p, abs=1e-9)
    else:
        assert h_pq == np.inf


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("p", "match"),
    [([0.5, np.nan, 0.5], r"`p` contains 1 NaN and 0 infinite value\(s\); probabilities must be finite"),
     ([0.5, np.inf], r"`p` contains 0 NaN and 1 infinite value\(s\)"),
     ([1.2, -0.2], r"`p` contains 1 negative value\(s\) \(smallest -0.2\); probabilities must be >= 0"),
     ([0.5, 0.4], r"`p` must sum to 1 along axis -1 \(within 1e-06\); found a sum of 0.9 .*normalize=True"),
     ([], r"`p` is empty"),
     (np.zeros((3, 0)), r"`p` is empty"),
     (0.5, r"`p` must have at least 1 dimension")],
)
def test_invalid_probabilities(p, match):
    with pytest.raises(ValueError, match=match):
        entropy(p)


def test_invalid_second_argument_is_named():
    with pytest.raises(ValueError, match=r"`q` must sum to 1 .* found a sum of 2 \(1 of 2 distribution"):
        kl_divergence([[0.5, 0.5], [0.5, 0.5]], [[0.5, 0.5], [1.0, 1.0]])
    with pytest.raises(ValueError, match=r"`q` contains 1 NaN"):
        cross_entropy([0.5, 0.5], [np.nan, 1.0])


def test_normalize_cannot_rescale_an_all_zero_row():
    with pytest.raises(ValueError, match=r"`p` has 1 distribution\(s\) summing to 0 .*cannot rescale"):
        entropy([[0.0, 0.0], [1.0, 1.0]], normalize=True)
    with pytest.raises(ValueError, match=r"negative"):
        entropy([2.0, -1.0], normalize=True)


def test_invalid_log_forms():
    with pytest.raises(ValueError, match=r"`p` contains 1 NaN and 0 \+inf value\(s\); logits must be finite or -inf"):
        entropy([0.0, np.nan], input="logits")
    with pytest.raises(ValueError, match=r"`q` contains 0 NaN and 1 \+inf value\(s\); log_probs"):
        kl_divergence([0.0, -np.inf], [np.inf, 0.0], input="log_probs")
    with pytest.raises(ValueError, match=r"`p` has 1 distribution\(s\) whose logits are all -inf"):
        entropy([-np.inf, -np.inf], input="logits")
    with pytest.raises(ValueError, match=r"`p` must satisfy sum\(exp\(log_probs\)\) = 1 .*normalize=True"):
        entropy(np.log([0.5, 0.6]), input="log_probs")


@pytest.mark.parametrize(
    ("p", "q", "match"),
    [([0.5, 0.5], [0.2, 0.3, 0.5], r"shapes do not broadcast: `p` has shape \(2,\) and `q` has shape \(3,\)"),
     ([[0.5, 0.5]], [1.0], r"same number of outcomes along axis -1: `p` has 2, `q` has 1")],
)
def test_mismatched_shapes(p, q, match):
    for fn in (kl_divergence, cross_entropy):
        with pytest.raises(ValueError, match=match):
            fn(p, q)


@pytest.mark.parametrize(
    ("base", "error", "match"),
    [(0, ValueError, r"`base` must be a finite number > 0; got 0"),
     (-2.0, ValueError, r"`base` must be a finite number > 0"),
     (np.inf, ValueError, r"`base` must be a finite number > 0"),
     (1, ValueError, r"`base` must not be 1"),
     ("two", TypeError, r"`base` must be a number")],
)
def test_bad_base(base, error, match):
    for call in (lambda: entropy([0.5, 0.5], base=base), lambda: kl_normal(0, 1, 0, 1, base=base),
                 lambda: kl_divergence([0.5, 0.5], [0.5, 0.5], base=base)):
        with pytest.raises(error, match=match):
            call()


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [("probabilities", ValueError, r"`input` must be one of 'probs', 'logits', 'log_probs'; got 'probabilities'"),
     (("probs",), ValueError, r"`input` must be one of .* or a pair of them"),
     (("probs", 2), TypeError, r"`input` must be a string or a pair of strings")],
)
def test_bad_input_flag(value, error, match):
    with pytest.raises(error, match=match):
        kl_divergence([0.5, 0.5], [0.5, 0.5], input=value)


def test_bad_axis():
    with pytest.raises(ValueError, match=r"`axis` = 2 is out of range for inputs with 2 dimension"):
        entropy([[0.5, 0.5]], axis=2)
    with pytest.raises(TypeError, match=r"`axis` must be an int"):
        entropy([[0.5, 0.5]], axis=(0, 1))


def test_bad_gaussian_parameters():
    with pytest.raises(ValueError, match=r"`sigma2` must be > 0 \(a standard deviation\); got smallest value 0"):
        kl_normal(0.0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"`mu1` contains 1 NaN"):
        kl_normal(np.nan, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"shapes do not broadcast"):
        kl_normal([0.0, 1.0], [1.0, 1.0, 1.0], 0.0, 1.0)
    with pytest.raises(ValueError, match=r"`sigma` must be > 0"):
        entropy_normal(-1.0)


def test_bad_covariances():
    eye = np.eye(2)
    with pytest.raises(ValueError, match=r"`cov2` is not positive definite \(Cholesky factorization failed"):
        kl_mvn([0.0, 0.0], eye, [0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match=r"`cov1` is not positive definite"):
        kl_mvn([0.0, 0.0], np.ones((2, 2)), [0.0, 0.0], eye)  # singular
    with pytest.raises(ValueError, match=r"`cov1` is not symmetric \(largest \|cov - cov.T\| = 0.5\)"):
        kl_mvn([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]], [0.0, 0.0], eye)
    with pytest.raises(ValueError, match=r"`cov2` must have shape \(2, 2\) to match the mean; got \(3, 3\)"):
        kl_mvn([0.0, 0.0], eye, [0.0, 0.0], np.eye(3))
    with pytest.raises(ValueError, match=r"`mean1` and `mean2` must have the same length; got 2 and 3"):
        kl_mvn([0.0, 0.0], eye, [0.0, 0.0, 0.0], eye)
    with pytest.raises(ValueError, match=r"`cov1` contains 1 NaN"):
        kl_mvn([0.0, 0.0], [[np.nan, 0.0], [0.0, 1.0]], [0.0, 0.0], eye)


def test_bad_continuous_arguments():
    pdf = scipy.stats.norm().pdf
    with pytest.raises(ValueError, match=r"`support` = \(1.0, 0.0\) must satisfy a < b"):
        kl_divergence_continuous(pdf, pdf, (1.0, 0.0))
    with pytest.raises(ValueError, match=r"`support` must be a pair of numbers"):
        kl_divergence_continuous(pdf, pdf, (0.0,))
    with pytest.raises(TypeError, match=r"`q_pdf` must be callable"):
        kl_divergence_continuous(pdf, 3.0, (0.0, 1.0))
    with pytest.raises(ValueError, match=r"`p_pdf` returned -1.0 at x = .*; expected a density"):
        kl_divergence_continuous(lambda x: -1.0, pdf, (0.0, 1.0))
    with pytest.raises(ValueError, match=r"`q_pdf` returned nan"):
        kl_divergence_continuous(pdf, lambda x: math.nan, (0.0, 1.0))


@pytest.mark.parametrize("scale", [1e-300, 1.0, 1e300, 1e306])
def test_normalize_is_exact_for_unnormalised_inputs_of_any_magnitude(scale):
    p = np.array([1.0, 3.0, 0.0, 4.0]) * scale
    q = np.array([2.0, 1.0, 1.0, 4.0]) * scale
    assert entropy(p, normalize=True) == pytest.approx(scipy.stats.entropy(p / p.sum()), rel=1e-12)
    assert kl_divergence(p, q, normalize=True) == pytest.approx(
        scipy.stats.entropy(p / p.sum(), q / q.sum()), rel=1e-12
    )
    p_n, q_n = p / p.sum(), q / q.sum()
    assert cross_entropy(p, q, normalize=True) == pytest.approx(-np.sum(p_n * np.log(q_n)), rel=1e-12)


def test_normalize_with_tiny_p_against_huge_q():
    got = kl_divergence([1e-30, 1.0], [1e300, 1e300], normalize=True)
    assert got == pytest.approx(scipy.stats.entropy([1e-30, 1.0], [1e300, 1e300]), rel=1e-12)


# ---------------------------------------------------------------------------- findings 2026-11-30
@pytest.mark.parametrize(
    ("p", "q"),
    [((50.0, 1.0), (0.0, 1.0)), ((100.0, 5.0), (0.0, 10.0)), ((50.0, 0.01), (50.0, 1.0)),
     ((-3e4, 2.0), (-3e4 + 5.0, 3.0)), ((1e6, 1e3), (1e6, 2e3))],
)
def test_kl_continuous_finds_mass_away_from_the_origin(p, q):
    """Findings row 19: N(50,1)||N(0,1) gave 5.9e-97 (true 1250); quad missed the mass."""
    got = kl_divergence_continuous(scipy.stats.norm(*p).logpdf, scipy.stats.norm(*q).logpdf,
                                   (-np.inf, np.inf), log=True)  # fmt: skip
    assert got == pytest.approx(kl_normal(p[0], p[1], q[0], q[1]), rel=1e-9)


def test_kl_continuous_heavy_tails_and_half_lines():
    # Cauchy(0, 1) || Cauchy(1, 1): log(((g1 + g2)^2 + d^2) / (4 g1 g2)) = log(5 / 4)
    got = kl_divergence_continuous(scipy.stats.cauchy(0, 1).logpdf, scipy.stats.cauchy(1, 1).logpdf,
                                   (-np.inf, np.inf), log=True)  # fmt: skip
    assert got == pytest.approx(math.log(5 / 4), rel=1e-9)
    # Exp(1) || Exp(rate 1/2): log(2) + 1/2 - 1
    got = kl_divergence_continuous(scipy.stats.expon().logpdf, scipy.stats.expon(scale=2).logpdf,
                                   (0, np.inf), log=True)  # fmt: skip
    assert got == pytest.approx(math.log(2) - 0.5, rel=1e-9)


def test_kl_continuous_refuses_what_it_cannot_integrate():
    # Cauchy || Normal is infinite: the tail integral diverges, and quad says so
    with pytest.raises(ValueError, match=r"did not reach the requested accuracy"):
        kl_divergence_continuous(scipy.stats.cauchy().logpdf, scipy.stats.norm().logpdf,
                                 (-np.inf, np.inf), log=True)  # fmt: skip
    # a density whose every grid value underflows: no silent 0
    with pytest.raises(ValueError, match=r"`p_pdf` is 0 at every point of a search grid"):
        kl_divergence_continuous(scipy.stats.norm(50, 1e-3).pdf, scipy.stats.norm(50, 1).pdf, (-np.inf, np.inf))

    # two far-apart modes: the mass check catches the missed one
    def mixture(x):
        a, b = scipy.stats.norm(-1000, 1).logpdf(x), scipy.stats.norm(1000, 1).logpdf(x)
        return np.logaddexp(a, b) - math.log(2)

    with pytest.raises(ValueError, match=r"`p_pdf` integrates to 0\.5 over the support"):
        kl_divergence_continuous(mixture, scipy.stats.norm(0, 1000).logpdf, (-np.inf, np.inf), log=True)


def test_kl_continuous_density_returning_a_non_number_is_named():
    """Findings row 21: numpy's 'only 0-dimensional arrays...' without the argument's name."""
    pdf = scipy.stats.norm().pdf
    with pytest.raises(TypeError, match=r"`p_pdf` must return one number .* got array of shape \(2,\)"):
        kl_divergence_continuous(lambda x: np.array([1.0, 2.0]), pdf, (0.0, 1.0))
    with pytest.raises(TypeError, match=r"`q_pdf` must return one number .* got 'a'"):
        kl_divergence_continuous(pdf, lambda x: "a", (0.0, 1.0))


def test_gaussian_kl_overflow_is_inf_without_warnings():
    """Findings row 17: inf was right, but RuntimeWarnings (overflow in subtract / matmul) leaked."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kl_normal(1e308, 1.0, -1e308, 1.0) == np.inf
        assert kl_mvn([0.0, 0.0], 1e308 * np.eye(2), [0.0, 0.0], 1e-308 * np.eye(2)) == np.inf
        assert kl_mvn([1e308, 0.0], np.eye(2), [-1e308, 0.0], np.eye(2)) == np.inf
