"""Information of continuous distributions: Gaussian closed forms and numerical integration.

:func:`kl_normal`, :func:`kl_mvn` (closed forms, by Cholesky factors and triangular solves,
never an explicit inverse), :func:`entropy_normal`, and :func:`kl_divergence_continuous`
(numerical integration with ``scipy.integrate.quad``). Import them from
:mod:`gicho.information`, which re-exports them; ``base`` is as there.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.integrate
import scipy.linalg

from gicho._validation import check_array, describe
from gicho.information._discrete import finish, log_of_base

__all__ = ["entropy_normal", "kl_divergence_continuous", "kl_mvn", "kl_normal"]

# Relative asymmetry tolerated in a covariance matrix (Cholesky reads one triangle only).
_SYMMETRY_RTOL = 1e-8


def kl_normal(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, *, base: float | None = None) -> Any:
    """KL divergence between univariate normals, ``KL(N(mu1, sigma1²) || N(mu2, sigma2²))``.

    ``log(sigma2 / sigma1) + (sigma1² + (mu1 - mu2)²) / (2 sigma2²) - 1/2``, evaluated as
    ``(d² + expm1(2t) - 2t) / 2`` with ``t = log(sigma1 / sigma2)``, ``d = (mu1 - mu2) / sigma2``.

    Parameters
    ----------
    mu1, sigma1, mu2, sigma2 : float or array-like, broadcastable
        Means and standard deviations (not variances); ``sigma > 0``.
    base : float, optional
        As in :func:`gicho.information.entropy`.

    Returns
    -------
    numpy.float64 or numpy.ndarray of the broadcast shape

    Raises
    ------
    ValueError
        NaN or infinite values, empty arrays, ``sigma <= 0``, shapes that do not broadcast,
        a bad ``base``.
    """
    log_base = log_of_base(base)
    m1, s1, m2, s2 = _gaussian_params(mu1=mu1, sigma1=sigma1, mu2=mu2, sigma2=sigma2)
    with np.errstate(over="ignore"):  # a KL beyond float64 is +inf, without a warning
        t = np.log(s1) - np.log(s2)
        d = (m1 - m2) / s2
        return finish(0.5 * (d * d + np.expm1(2 * t) - 2 * t), log_base)


def entropy_normal(sigma: Any, *, base: float | None = None) -> Any:
    """Differential entropy of ``N(mu, sigma²)``: ``log(sigma) + (1 + log(2π)) / 2``.

    Raises ``ValueError`` for ``sigma <= 0``, NaN, infinity or an empty array, or a bad ``base``.
    """
    log_base = log_of_base(base)
    (s,) = _gaussian_params(sigma=sigma)
    return finish(np.log(s) + 0.5 * (1.0 + math.log(2 * math.pi)), log_base)


def _gaussian_params(**params: Any) -> list[np.ndarray]:
    arrays = {k: check_array(v, k, allow_empty=False) for k, v in params.items()}
    for k, a in arrays.items():
        if k.startswith("sigma") and (a <= 0).any():
            raise ValueError(
                f"argument `{k}` must be > 0 (a standard deviation); got smallest value {a.min():g}"
            )
    try:
        return list(np.broadcast_arrays(*arrays.values()))
    except ValueError:
        detail = ", ".join(f"`{k}` {a.shape}" for k, a in arrays.items())
        raise ValueError(f"shapes do not broadcast: {detail}") from None


def kl_mvn(mean1: Any, cov1: Any, mean2: Any, cov2: Any, *, base: float | None = None) -> np.float64:
    """KL divergence between multivariate normals, ``KL(N(mean1, cov1) || N(mean2, cov2))``.

    ``(tr(S2⁻¹ S1) + (m2 - m1)ᵀ S2⁻¹ (m2 - m1) - k + log(det S2 / det S1)) / 2``, computed
    from the Cholesky factors ``S = L Lᵀ``: ``tr(S2⁻¹ S1) = ||L2⁻¹ L1||²_F``, the quadratic
    form is ``||L2⁻¹ (m2 - m1)||²`` and ``log det S = 2 sum log diag L`` (triangular solves;
    no inverse is formed).

    Parameters
    ----------
    mean1, mean2 : array-like, shape (k,)
    cov1, cov2 : array-like, shape (k, k)
        Symmetric positive-definite covariance matrices.
    base : float, optional
        As in :func:`gicho.information.entropy`.

    Raises
    ------
    ValueError
        Wrong shapes, NaN or infinite values, a covariance that is not symmetric or not
        positive definite, a bad ``base``.
    """
    log_base = log_of_base(base)
    m1 = check_array(mean1, "mean1", ndim=1)
    m2 = check_array(mean2, "mean2", ndim=1)
    k = m1.shape[0]
    if m2.shape != (k,):
        raise ValueError(f"arguments `mean1` and `mean2` must have the same length; got {k} and {m2.shape[0]}")
    l1 = _cholesky(cov1, "cov1", k)
    l2 = _cholesky(cov2, "cov2", k)
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float64: +inf, without a warning
        a = scipy.linalg.solve_triangular(l2, l1, lower=True, check_finite=False)  # L2⁻¹ L1
        z = scipy.linalg.solve_triangular(l2, m2 - m1, lower=True, check_finite=False)
        log_det_ratio = 2.0 * (np.log(np.diag(l2)).sum() - np.log(np.diag(l1)).sum())
        kl = 0.5 * (np.sum(a * a) + z @ z - k + log_det_ratio)
    if np.isnan(kl):  # only from inf - inf after an overflow: each term is >= 0 or finite
        kl = np.inf
    return finish(np.float64(max(kl, 0.0)), log_base)


def _cholesky(cov: Any, name: str, k: int) -> np.ndarray:
    """Lower Cholesky factor of a (k, k) symmetric positive-definite matrix."""
    c = check_array(cov, name, ndim=2)
    if c.shape != (k, k):
        raise ValueError(f"argument `{name}` must have shape ({k}, {k}) to match the mean; got {c.shape}")
    asymmetry = np.abs(c - c.T).max()
    if asymmetry > _SYMMETRY_RTOL * np.abs(c).max():
        raise ValueError(
            f"argument `{name}` is not symmetric (largest |cov - cov.T| = {asymmetry:g}); "
            "a covariance matrix must be symmetric positive definite"
        )
    try:
        return scipy.linalg.cholesky(c, lower=True, check_finite=False)
    except np.linalg.LinAlgError as exc:
        raise ValueError(
            f"argument `{name}` is not positive definite (Cholesky factorization failed: {exc}); "
            "a covariance matrix must be symmetric positive definite"
        ) from None


def kl_divergence_continuous(
    p_pdf: Callable[[float], float],
    q_pdf: Callable[[float], float],
    support: tuple[float, float],
    *,
    base: float | None = None,
    log: bool = False,
    epsabs: float = 1e-12,
    epsrel: float = 1e-10,
    limit: int = 200,
) -> float:
    """``KL(P || Q) = ∫ p(x) log(p(x) / q(x)) dx`` over ``support`` by ``scipy.integrate.quad``.

    Parameters
    ----------
    p_pdf, q_pdf : callable float -> float
        Densities of ``P`` and ``Q`` (for example ``scipy.stats.norm(0, 1).pdf``), or their
        logs when ``log=True``.
    support : (float, float)
        Integration bounds ``a < b``; either may be infinite.
    base : float, optional
        As in :func:`gicho.information.entropy`.
    log : bool
        The callables return log-densities. Prefer this on unbounded supports. With
        log-densities, ``log q(x) == -inf`` where ``p(x) > 0`` is a true zero and the result is
        ``inf``; with densities, ``q(x) == 0 < p(x)`` may be a tail that underflowed (for
        example ``norm(0, 1).pdf(40) == 0``), so it raises instead of guessing.
    epsabs, epsrel, limit
        Passed to ``scipy.integrate.quad``.

    Returns
    -------
    float
        ``inf`` if (``log=True``) ``log q = -inf`` at a point where ``p > 0``.

    Raises
    ------
    TypeError
        A density that is not callable.
    ValueError
        A bad ``support`` or ``base``; a density returning NaN or (``log=False``) a negative
        value; (``log=False``) ``q_pdf(x) == 0 < p_pdf(x)`` at an evaluated point.
    """
    log_base = log_of_base(base)
    for name, f in (("p_pdf", p_pdf), ("q_pdf", q_pdf)):
        if not callable(f):
            raise TypeError(f"argument `{name}` must be callable (a density); got {describe(f)}")
    try:
        lo, hi = (float(v) for v in support)
    except (TypeError, ValueError):
        raise ValueError(f"argument `support` must be a pair of numbers (a, b); got {describe(support)}") from None
    if not lo < hi:
        raise ValueError(f"argument `support` = {support!r} must satisfy a < b")

    q_vanishes_at: list[float] = []  # points where q = 0 < p

    def density(f: Callable[[float], float], name: str, x: float) -> float:
        raw = f(x)
        try:
            v = float(raw)
        except (TypeError, ValueError):
            raise TypeError(
                f"argument `{name}` must return one number (the density at x); got "
                f"{describe(raw)} at x = {x!r}"
            ) from None
        if math.isnan(v) or (not log and v < 0):
            raise ValueError(f"argument `{name}` returned {v!r} at x = {x!r}; expected a density")
        return v

    def log_p(x: float) -> float:
        v = density(p_pdf, "p_pdf", x)
        if log:
            return v
        return math.log(v) if v > 0 else -math.inf

    def integrand(x: float) -> float:
        p, q = density(p_pdf, "p_pdf", x), density(q_pdf, "q_pdf", x)
        if log:
            log_p, log_q = p, q
            p = math.exp(log_p)
        elif p > 0:
            log_p, log_q = math.log(p), (math.log(q) if q > 0 else -math.inf)
        if p == 0:
            return 0.0  # 0 · log 0 = 0
        if log_q == -math.inf:
            q_vanishes_at.append(x)
            return 0.0
        return p * (log_p - log_q)

    def p_mass(x: float) -> float:
        return math.exp(log_p(x))

    def log_p_array(x: np.ndarray) -> Any:
        v = p_pdf(x)
        return v if log else np.log(np.asarray(v, dtype=np.float64))

    with np.errstate(all="ignore"):  # huge x in the search grid overflow inside the densities
        pieces = _mass_pieces(log_p, lo, hi, log_p_array)
    with np.errstate(all="ignore"):
        value = _integrate(integrand, pieces, epsabs, epsrel, limit, "KL(P || Q)")
    if q_vanishes_at:
        if log:
            return math.inf
        x = q_vanishes_at[0]
        raise ValueError(
            f"argument `q_pdf` is 0 at x = {x!r} where `p_pdf` is {float(p_pdf(x))!r} > 0: KL is infinite "
            "if Q truly has no density there, finite if the density underflowed; pass "
            "log-densities with log=True to tell the two apart"
        )
    # the integral of p itself, over the same pieces: a check that its mass was found
    with np.errstate(all="ignore"):
        mass = _integrate(p_mass, pieces, epsabs, max(epsrel, _MASS_RTOL / 10), limit, "the mass of P")
    if abs(mass - 1.0) > _MASS_RTOL:
        raise ValueError(
            f"argument `p_pdf` integrates to {mass:.9g} over the support {support!r}, not 1: part "
            "of its mass was not found (several far-apart modes?) or it is not a normalised "
            "density on this support; narrow the support around the mass or normalise p"
        )
    return max(value, 0.0) / log_base


# The integral of p over the pieces must be 1 within this: otherwise mass was missed.
_MASS_RTOL = 1e-6
# log p this far (nats) below its maximum bounds the core piece: e^-60 ~ 1e-26 of the peak.
_TAIL_DROP = 60.0
# successive pieces between the peak's scale and that point grow by this factor
_PIECE_GROWTH = 8.0
_MAX_PIECES = 64
# Where to look for p's mass on an unbounded support: |x| from 1e-4 to 1e8 in steps of
# 10^(1/32) (7.5 %), then up to 1e300 in steps of 10^(1/4).
_GRID = np.concatenate([np.logspace(-4, 8, 12 * 32 + 1), np.logspace(8.25, 300, 4 * 292 - 0)])


def _search_grid(lo: float, hi: float) -> np.ndarray:
    if math.isfinite(lo) and math.isfinite(hi):
        return np.linspace(lo, hi, 2049)[1:-1] if hi > lo else np.array([lo])
    if math.isfinite(lo):
        return lo + np.concatenate([[0.0], _GRID])[1:]
    if math.isfinite(hi):
        return hi - _GRID[::-1]
    return np.concatenate([-_GRID[::-1], [0.0], _GRID])


def _vectorised(f: Callable[[np.ndarray], Any], grid: np.ndarray) -> np.ndarray | None:
    """``f(grid)`` when ``f`` takes arrays (scipy's densities do) and gives valid values, else None."""
    try:
        out = np.asarray(f(grid), dtype=np.float64)
    except Exception:  # a scalar-only density: evaluate point by point instead
        return None
    if out.shape != grid.shape or np.isnan(out).any():
        return None  # point by point: the scalar path words the error for a bad value
    return out


def _mass_pieces(
    log_p: Callable[[float], float], lo: float, hi: float, log_p_array: Callable[[np.ndarray], Any] | None = None
) -> list[tuple[float, float, float | None]]:
    """Split ``[lo, hi]`` around the mass of p: ``[(a, b, break point or None), ...]``.

    ``quad`` on an infinite range samples a few dozen points of a transformed variable; a
    density that lives far from the origin (N(50, 1)) or is narrow (N(50, 0.01)) falls
    between them and the integral comes out 0. So first find the mode of p (a grid over the
    support, then a bounded 1-D search), then the points on either side where log p has
    dropped by ``_TAIL_DROP``; the core between them and the two tails are integrated apart.
    """
    from scipy.optimize import minimize_scalar

    grid = _search_grid(lo, hi)
    values = _vectorised(log_p_array, grid) if log_p_array is not None else None
    if values is None:
        values = np.array([log_p(float(x)) for x in grid])
    if not np.isfinite(values).any() or np.nanmax(values) == -math.inf:
        raise ValueError(
            "argument `p_pdf` is 0 at every point of a search grid over the support, so its "
            "mass cannot be located; pass log-densities with log=True (they do not underflow) "
            "or a support that hugs the mass"
        )
    best = int(np.argmax(values))
    a = float(grid[best - 1]) if best > 0 else lo
    b = float(grid[best + 1]) if best + 1 < grid.size else hi
    mode, top = float(grid[best]), float(values[best])
    if math.isfinite(a) and math.isfinite(b) and a < b:
        found = minimize_scalar(lambda x: -log_p(x), bounds=(a, b), method="bounded",
                                options={"xatol": 1e-12 * max(1.0, abs(mode))})  # fmt: skip
        if np.isfinite(found.fun) and -found.fun > top:
            mode, top = float(found.x), float(-found.fun)

    def reach(direction: float, bound: float, drop: float) -> float:
        """Distance from the mode to where log p has dropped by ``drop`` (inf: not before bound)."""
        step = 1e-6 * max(1.0, abs(mode))
        inner = 0.0
        while True:
            x = mode + direction * step
            if (direction > 0 and x >= bound) or (direction < 0 and x <= bound) or not math.isfinite(x):
                return math.inf
            if log_p(x) <= top - drop:
                break
            inner, step = step, step * 4
        for _ in range(80):  # bisect for the point where the drop is reached
            mid = 0.5 * (inner + step)
            if log_p(mode + direction * mid) <= top - drop:
                step = mid
            else:
                inner = mid
        return step

    cuts = {lo, hi, mode}
    for direction, bound in ((-1.0, lo), (1.0, hi)):
        # pieces grow geometrically from the scale of the peak (where log p drops by 1) to
        # where it has dropped by _TAIL_DROP, so quad sees the peak and heavy tails alike
        scale, far = reach(direction, bound, 1.0), reach(direction, bound, _TAIL_DROP)
        if not math.isfinite(scale):
            continue
        distance = scale
        while distance < far and len(cuts) < _MAX_PIECES:
            cuts.add(mode + direction * distance)
            distance *= _PIECE_GROWTH
        if math.isfinite(far):
            cuts.add(mode + direction * far)
    points = sorted(c for c in cuts if lo <= c <= hi)
    return [(a, b, None) for a, b in itertools.pairwise(points) if a < b]


def _integrate(
    f: Callable[[float], float], pieces: list[tuple[float, float, float | None]],
    epsabs: float, epsrel: float, limit: int, what: str,
) -> float:
    """Sum of ``quad`` over the pieces; raises when quad reports failure or misses the tolerance."""
    total, error = 0.0, 0.0
    for a, b, point in pieces:
        kwargs = {"points": [point]} if point is not None and math.isfinite(a) and math.isfinite(b) else {}
        out = scipy.integrate.quad(f, a, b, epsabs=epsabs, epsrel=epsrel, limit=limit, full_output=1, **kwargs)
        value, err = out[0], out[1]
        if len(out) > 3:  # quad's own message: it could not reach the tolerance on this piece
            raise ValueError(
                f"{what}: numerical integration over [{a:.6g}, {b:.6g}] did not reach the requested "
                f"accuracy (epsabs={epsabs:g}, epsrel={epsrel:g}; estimate {value:.6g} ± {err:.2g}): "
                f"{out[3].splitlines()[0].strip()} Raise `limit`, loosen the tolerances, or split "
                "the support at the density's singularities"
            )
        total += value
        error += err
    if error > len(pieces) * max(epsabs, epsrel * abs(total)):
        raise ValueError(
            f"{what}: numerical integration error estimate {error:.2g} exceeds the requested "
            f"accuracy (epsabs={epsabs:g}, epsrel={epsrel:g}) for the value {total:.6g}"
        )
    return total
