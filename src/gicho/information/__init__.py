"""Entropy, cross-entropy and Kullback–Leibler divergence: discrete, Gaussian and continuous.

Discrete distributions lie along one axis (the last by default; ``scipy.stats.entropy``
uses axis 0) and are given in one of three forms, named by ``input``:

* ``"probs"``: probabilities, finite, >= 0, summing to 1 within ``SUM_TOLERANCE`` along the
  axis. Anything else raises a ``ValueError`` unless ``normalize=True``, which rescales each
  distribution by its sum (negative or NaN values still raise). Sums that are within the
  tolerance are rescaled as well, so the result is that of an exactly normalized input.
* ``"log_probs"``: natural-log probabilities; ``-inf`` (probability 0) is allowed, NaN and
  ``+inf`` are not. ``exp`` of each distribution must sum to 1 within ``SUM_TOLERANCE``
  unless ``normalize=True``.
* ``"logits"``: unnormalized log-probabilities, turned into a distribution by softmax;
  ``-inf`` is allowed (probability 0) as long as each distribution keeps one finite entry.

The two-argument functions accept one form for both or a pair, e.g.
``cross_entropy(labels, logits, input=("probs", "logits"))``.

Conventions: ``0 · log 0 = 0`` (outcomes with ``p = 0`` contribute nothing, whatever ``q``),
and ``KL(P || Q) = H(P, Q) = inf`` when some outcome has ``q = 0 < p``. ``base`` is the
logarithm's base: ``None`` (natural log, nats), 2 (bits), 10, or any positive number other
than 1.

Continuous distributions: :func:`kl_normal`, :func:`kl_mvn` (closed forms, by Cholesky
factors and triangular solves, never an explicit inverse), :func:`entropy_normal`, and
:func:`kl_divergence_continuous` (numerical integration with ``scipy.integrate.quad``).
"""

from __future__ import annotations

from gicho.information._continuous import (
    entropy_normal,
    kl_divergence_continuous,
    kl_mvn,
    kl_normal,
)
from gicho.information._discrete import (
    SUM_TOLERANCE,
    cross_entropy,
    entropy,
    kl_divergence,
)

__all__ = [
    "SUM_TOLERANCE",
    "cross_entropy",
    "entropy",
    "entropy_normal",
    "kl_divergence",
    "kl_divergence_continuous",
    "kl_mvn",
    "kl_normal",
]
