"""Numerical kernels of PCA and whitening, for NumPy arrays and torch tensors alike.

Everything here is private; :mod:`gicho.decomposition` is the public face. A kernel takes the
data in its own backend (NumPy, or torch on the tensor's device) and returns a
:class:`Spectrum` in the same backend, so a CUDA tensor is decomposed on the GPU.

Conventions, shared by every solver so that they agree with each other and with
scikit-learn:

* variances use ``ddof = 1`` (divide by ``n - 1``), as scikit-learn's ``explained_variance_``;
* singular values are those of the centred data, ``s_i = sqrt((n - 1) * lambda_i)``;
* component signs follow scikit-learn's ``svd_flip(u_based_decision=False)``: in each
  component (a row of ``components``) the loading of largest absolute value is positive
  (the first one on ties). Components therefore match scikit-learn's exactly, not only up to
  sign, whenever the decomposition is unique.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gicho._validation import check_array, is_dask, is_torch, nonfinite_error
from gicho.moments import Moments, magnitude_bounds, ordinary_magnitudes, power_of_two_scale

__all__ = [
    "Spectrum",
    "check_input",
    "column_means",
    "covariance_moments",
    "covariance_spectrum",
    "eigh_descending",
    "extreme_scale",
    "flip_signs",
    "is_dask",
    "is_torch",
    "mean_and_covariance",
    "numerical_rank",
    "randomized_spectrum",
    "require_finite",
    "svd_spectrum",
    "unscaled_variances",
]

# Rows per block when centring torch data on the fly (bounds the extra device memory).
_TORCH_BLOCK_ROWS = 1 << 16


def check_input(X: Any, name: str, *, min_samples: int, finite: bool = True) -> Any:
    """A 2-D floating array: NumPy (float32 kept, float16 to float32, others to float64) or
    torch tensor (on its device; integers become float64, float16 / bfloat16 float32). ``finite=False``
    skips the NaN / inf scan, for callers that check a statistic instead (:func:`require_finite`).
    """
    X = check_array(X, name, ndim=2, dtype="float", min_samples=min_samples, finite=finite, keep_backend=True)
    return X.detach() if is_torch(X) else X


def extreme_scale(X: Any) -> float:
    """A power of two to divide NumPy ``X`` by before decomposing it (1.0: none needed).

    :func:`gicho.moments.power_of_two_scale` of X's largest magnitude: squares of 1e160 overflow
    float64 and squares of 1e-160 are subnormal (digits lost; "Eigenvalues did not converge",
    false "constant feature" diagnoses). NaN / inf give 1.0: the finiteness checks report them.
    """
    if is_torch(X) or X.size == 0:
        return 1.0
    with np.errstate(invalid="ignore"):
        return power_of_two_scale(np.max(np.abs(X)))


def covariance_moments(X: np.ndarray) -> tuple[np.ndarray, float, Moments]:
    """``(X / scale, scale, moments)``: one pass over NumPy ``X`` when its magnitudes are ordinary.

    The moments bound the largest magnitude (``sqrt(sum x^2 / n) <= max |x| <= sqrt(sum x^2)``),
    so :func:`extreme_scale` scans X only when they cannot prove it unnecessary (or overflow).
    """
    try:
        moments = Moments.from_arrays(X)
    except ValueError:  # NaN / inf, or squares beyond float64: rescaling may cure the latter
        if extreme_scale(X) == 1.0:
            raise
        moments = None
    if moments is not None:
        lo, hi = magnitude_bounds(moments)
        if ordinary_magnitudes(lo.max(), hi.max()):
            return X, 1.0, moments
    scale = extreme_scale(X)
    if scale == 1.0 and moments is not None:
        return X, 1.0, moments
    X = X / scale
    return X, scale, Moments.from_arrays(X)


def unscaled_variances(values: Any, scale: float, name: str, what: str) -> Any:
    """``values * scale**2`` (variances of the data), refusing what float64 cannot hold."""
    if scale == 1.0:
        return values
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        out = values * np.float64(scale) ** 2
        out = out * (_as_float(values) != 0) if not is_torch(out) else out.masked_fill(values == 0, 0.0)
    big = ~np.isfinite(_as_float(out))
    small = (_as_float(values) > 0) & (_as_float(out) < np.finfo(np.float64).tiny)
    if big.any() or small.any():
        side = "overflow" if big.any() else "fall below float64's normal range (2.2e-308)"
        raise ValueError(
            f"argument `{name}` has values of magnitude ~{scale:.0e}: its {what} {side}, so they "
            f"cannot be stored in float64; rescale the data (e.g. divide by {scale:.0e})"
        )
    return out


def _as_float(a: Any) -> np.ndarray:
    return a.detach().cpu().double().numpy() if is_torch(a) else np.asarray(a, dtype=np.float64)


def column_means(X: Any, name: str = "X") -> Any:
    """Column means of ``X`` (n, p), checked finite (which also proves ``X`` finite)."""
    if is_torch(X):
        mean = X.mean(0)
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # diagnosed by require_finite
            mean = X.mean(0)
    require_finite(mean, X, name)
    return mean


def require_finite(statistic: Any, X: Any, name: str) -> None:
    """Raise the NaN / inf error for ``X`` unless ``statistic``, computed from it, is finite.

    A NaN or infinity anywhere in ``X`` makes its column means non-finite, so checking the
    means (p numbers) replaces a full scan of ``X``; ``X`` is only scanned to word the error.
    """
    if is_torch(statistic):
        import torch

        if bool(torch.isfinite(statistic).all()):
            return
    elif np.isfinite(statistic).all():
        return
    raise nonfinite_error(name, X)


@dataclass
class Spectrum:
    """The principal axes of centred data, strongest first (arrays in the input's backend).

    Attributes
    ----------
    mean : (p,)
        Column means of the data.
    components : (r, p)
        Orthonormal principal axes as rows, signs fixed by :func:`flip_signs`.
    explained_variance : (r,)
        Variance along each axis, ``ddof = 1``.
    singular_values : (r,)
        ``sqrt((n - 1) * explained_variance)``.
    total_variance : float
        Sum of the variances of all features (``ddof = 1``); equals the sum of the full
        spectrum.
    n_samples : int
    from_covariance : bool
        Whether the axes come from the eigen-decomposition of the covariance (whose small
        variances are only accurate to about ``eps`` times the largest).
    complete : bool
        Whether ``r = min(n, p)`` (the full spectrum) or only the leading axes were computed.
    """

    mean: Any
    components: Any
    explained_variance: Any
    singular_values: Any
    total_variance: float
    n_samples: int
    complete: bool
    from_covariance: bool = False


# ---------------------------------------------------------------------------- helpers
def flip_signs(components: Any) -> Any:
    """Make the largest-magnitude loading of each row positive (scikit-learn's rule), in place.

    Parameters
    ----------
    components : ndarray or Tensor of shape (k, p)

    Returns
    -------
    The same array, rows multiplied by +1 or -1.
    """
    if components.shape[0] == 0:
        return components
    rows = np.arange(components.shape[0])
    if is_torch(components):
        import torch

        rows = torch.arange(components.shape[0], device=components.device)
        pivots = components[rows, torch.argmax(components.abs(), dim=1)]
        signs = torch.where(pivots < 0, -1.0, 1.0).to(components.dtype)
    else:
        pivots = components[rows, np.argmax(np.abs(components), axis=1)]
        signs = np.where(pivots < 0, -1.0, 1.0).astype(components.dtype)
    components *= signs[:, None]
    return components


def eigh_descending(C: Any) -> tuple[Any, Any]:
    """Eigen-decomposition of a symmetric matrix, largest eigenvalue first.

    Negative eigenvalues (round-off of a positive semi-definite matrix) are clipped to 0.

    Returns
    -------
    eigenvalues : (p,)
    eigenvectors_rows : (p, p)
        Eigenvectors as rows, signs fixed by :func:`flip_signs`.
    """
    if is_torch(C):
        import torch

        values, vectors = torch.linalg.eigh(C)
        values = torch.flip(values, dims=(0,)).clamp_min(0.0)
        rows = torch.flip(vectors, dims=(1,)).T.contiguous()
    else:
        values, vectors = np.linalg.eigh(C)
        values = np.maximum(values[::-1], 0.0)
        rows = np.ascontiguousarray(vectors[:, ::-1].T)
    return values, flip_signs(rows)


def numerical_rank(
    singular_values: Any, n_samples: int, n_features: int, *, from_covariance: bool = False
) -> int:
    """How many singular values of the centred data are numerically non-zero.

    From an SVD (NumPy's ``matrix_rank`` rule): ``s > max(s) * max(n, p) * eps``. From the
    eigenvalues of a covariance (``from_covariance``), which are only accurate to about
    ``eps * largest``, the same relative threshold applies to the variances ``s**2`` instead.
    """
    s = singular_values.detach().cpu().numpy() if is_torch(singular_values) else np.asarray(singular_values)
    relative = max(n_samples, n_features) * np.finfo(s.dtype).eps
    if from_covariance:
        variance = s * s
        return int((variance > variance.max(initial=0.0) * relative).sum())
    return int((s > s.max(initial=0.0) * relative).sum())


def _to_float(x: Any) -> float:
    return float(x.item()) if hasattr(x, "item") else float(x)


def _sqrt(x: Any) -> Any:
    return x.sqrt() if is_torch(x) else np.sqrt(x)


def centered_sum_of_squares(X: Any, mean: Any) -> Any:
    """Per-feature :math:`\\sum_i (x_{ij} - m_j)^2` computed block by block (no copy of X)."""
    block = _TORCH_BLOCK_ROWS if is_torch(X) else max(256, (1 << 20) // (8 * X.shape[1]))
    total = None
    for start in range(0, X.shape[0], block):
        D = X[start : start + block] - mean
        part = (D * D).sum(0)
        total = part if total is None else total + part
    return total


# ---------------------------------------------------------------------------- covariance
def mean_and_covariance(X: Any) -> tuple[Any, float, Any, Any]:
    """``(X / scale, scale, mean, C)``: the column means and sample covariance (``ddof = 1``)
    of ``X / scale`` (``scale`` a power of two, 1 unless the magnitudes are extreme).

    NumPy: one pass over X (:func:`covariance_moments`; float64 statistics, NaN / inf
    detected from them). torch: the means (which prove X finite), then blocks centred on them
    on the device, so the result is accurate and extra memory stays bounded, in X's dtype.
    """
    if not is_torch(X):
        X, scale, moments = covariance_moments(X)
        return X, scale, moments.mean_x_, moments.covariance(ddof=1)
    scale = extreme_scale(X)
    if scale != 1.0:
        X = X / scale
    mean = column_means(X)
    C = None
    for start in range(0, X.shape[0], _TORCH_BLOCK_ROWS):
        D = X[start : start + _TORCH_BLOCK_ROWS] - mean
        C = D.T @ D if C is None else C + D.T @ D
    return X, scale, mean, C / (X.shape[0] - 1)


def covariance_spectrum(C: Any, mean: Any, n_samples: int, total_variance: float | None = None) -> Spectrum:
    """The spectrum of PCA from a sample covariance matrix (``ddof = 1``) of ``n_samples`` rows.

    Only ``min(n_samples, p)`` axes are kept: centred data of ``n`` rows has at most that
    many non-zero singular values, the same count as the SVD solver returns.
    """
    values, rows = eigh_descending(C)
    r = min(n_samples, C.shape[0])
    values, rows = values[:r], rows[:r]
    total = _to_float(values.sum()) if total_variance is None else total_variance
    return Spectrum(
        mean=mean,
        components=rows,
        explained_variance=values,
        singular_values=_sqrt(values * (n_samples - 1)),
        total_variance=total,
        n_samples=n_samples,
        complete=True,
        from_covariance=True,
    )


# ---------------------------------------------------------------------------- SVD
def svd_spectrum(X: Any, mean: Any) -> Spectrum:
    """Exact PCA by the thin SVD of the centred data (LAPACK ``gesdd``, as scikit-learn's
    ``"full"`` solver). Costs a centred copy of ``X`` and O(n p min(n, p)) time."""
    n = X.shape[0]
    Xc = X - mean
    if is_torch(X):
        import torch

        _, s, vt = torch.linalg.svd(Xc, full_matrices=False)
    else:
        from scipy import linalg

        _, s, vt = linalg.svd(Xc, full_matrices=False, check_finite=False)
    variance = s * s / (n - 1)
    return Spectrum(
        mean=mean,
        components=flip_signs(vt),
        explained_variance=variance,
        singular_values=s,
        total_variance=_to_float(variance.sum()),
        n_samples=n,
        complete=True,
    )


# ---------------------------------------------------------------------------- randomized
def _orthonormal(A: Any) -> Any:
    """An orthonormal basis of the columns of A (thin QR)."""
    if is_torch(A):
        import torch

        return torch.linalg.qr(A, mode="reduced").Q
    return np.linalg.qr(A, mode="reduced")[0]


def _normalised(A: Any) -> Any:
    """A well-conditioned basis of the columns of A: the permuted L of A = P L U.

    Several times cheaper than QR on tall matrices and enough to keep power iterations from
    collapsing onto the leading direction (scikit-learn's "LU" normaliser).
    """
    if is_torch(A):
        import torch

        P, L, _ = torch.linalg.lu(A)
        return P @ L
    from scipy import linalg

    return linalg.lu(A, permute_l=True, check_finite=False)[0]


def randomized_spectrum(
    X: Any, mean: Any, n_components: int, *, n_oversamples: int, n_iter: int, random_state: int | None
) -> Spectrum:
    """Leading ``n_components`` axes by randomized SVD with power iterations.

    Halko, Martinsson & Tropp (2011), "Finding structure with randomness", Algorithms 4.3/4.4:
    sketch the range of the centred data with ``n_components + n_oversamples`` Gaussian
    probes, refine it with ``n_iter`` LU-normalised power iterations, orthonormalise once
    (QR) and take the exact SVD of the small projected matrix. The centring is implicit
    (``Xc @ B = X @ B - 1 (m @ B)``), so ``X`` is never copied. Error decays like ``(s_{l+1} / s_k) ** (2 n_iter + 1)``.
    """
    n, p = X.shape
    width = min(n_components + n_oversamples, n, p)
    if is_torch(X):
        import torch

        generator = torch.Generator(device=X.device)
        generator.manual_seed(0 if random_state is None else int(random_state))
        probes = torch.randn(p, width, generator=generator, device=X.device, dtype=X.dtype)
    else:
        rng = np.random.default_rng(random_state)
        probes = rng.standard_normal((p, width)).astype(X.dtype, copy=False)

    def right(B: Any) -> Any:  # Xc @ B, shape (n, width)
        return X @ B - mean @ B

    def left(Q: Any) -> Any:  # Xc^T @ Q, shape (p, width)
        return X.T @ Q - mean[:, None] * Q.sum(0)[None, :]

    Y = right(probes)
    for _ in range(n_iter):
        Y = right(_normalised(left(_normalised(Y))))
    Q = _orthonormal(Y)
    B = left(Q).T  # Q^T Xc, shape (width, p)
    if is_torch(X):
        import torch

        _, s, vt = torch.linalg.svd(B, full_matrices=False)
    else:
        from scipy import linalg

        _, s, vt = linalg.svd(B, full_matrices=False, check_finite=False)
    vt = vt[:n_components]
    # Rayleigh-Ritz on the data itself: with Xc V = U' S' W'^T (a thin SVD of n x k), the axes
    # V W' give projections U' S' exactly, so transform(X) has the variances
    # explained_variance_ claims (without this they differ by ~1e-4, as X V != U S when
    # the sketch misses a little of the range; scikit-learn returns U S from fit_transform)
    Z = right(vt.T if not is_torch(vt) else vt.T.contiguous())
    if is_torch(X):
        _, s, wt = torch.linalg.svd(Z, full_matrices=False)
    else:
        _, s, wt = linalg.svd(Z, full_matrices=False, check_finite=False)
    vt = wt @ vt
    total = _to_float(centered_sum_of_squares(X, mean).sum()) / (n - 1)
    return Spectrum(
        mean=mean,
        components=flip_signs(vt),
        explained_variance=s * s / (n - 1),
        singular_values=s,
        total_variance=total,
        n_samples=n,
        complete=False,
    )
