"""gicho PCA vs a bare ``X.T @ X`` and scikit-learn PCA on the CPU: fit time and accuracy.

Run: ``.venv/bin/python benchmarks/cpu_pca.py [--n-samples 1000000] [--n-features 100]
[--n-components 10] [--rounds 9] [--dtype float64] [--threads N] [--others]``

Fits ``n_components`` principal components of one dense ``n_samples x n_features`` matrix
(correlated columns, means of order one standard deviation) and of the same matrix shifted 30
standard deviations (gicho then multiplies shifted copies of its blocks). Per dataset,
interleaved rounds of a bare ``X.T @ X`` on the same array (the floor for any method that
reads X once), gicho ``PCA(n_components)`` (``solver="auto"``: the covariance route on tall
data) and scikit-learn ``PCA(n_components, svd_solver="covariance_eigh")``; each ratio is the
median over rounds of the paired ratio of times in the same round (targets: gicho <= 1.2x the
floor, scikit-learn >= 1.25x gicho). BLAS threads are pinned (``--threads``, default: the
BLAS's current setting) for every contender. Accuracy of every fit is measured against the
eigen-decomposition of ``np.cov`` (two-pass): the largest relative error of the explained
variances and the largest absolute error of a component's loadings (compared up to sign).
``--others`` also times the randomized solvers and scikit-learn's full SVD once each.
Never run by the tests.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy
import sklearn
from _common import blas_threads, hardware_lines, paired_ratios
from sklearn.decomposition import PCA as SkPCA
from threadpoolctl import threadpool_limits

import gicho
from gicho.decomposition import PCA


def print_header(args: argparse.Namespace, threads: int) -> None:
    for line in hardware_lines():
        print(line)
    print(f"Python {platform.python_version()}, NumPy {np.__version__}, SciPy {scipy.__version__}, "
          f"scikit-learn {sklearn.__version__}, gicho {gicho.__version__}")
    print(f"input: {args.n_samples} x {args.n_features} {args.dtype} "
          f"({args.n_samples * args.n_features * np.dtype(args.dtype).itemsize / 2**20:.0f} MiB), "
          f"{args.n_components} components; {args.rounds} interleaved rounds; fit only; "
          f"BLAS threads pinned to {threads} for every contender")


def make_data(args: argparse.Namespace) -> np.ndarray:
    """Correlated data with a decaying spectrum and a non-zero mean (as real features have)."""
    rng = np.random.default_rng(args.seed)
    p = args.n_features
    basis, _ = np.linalg.qr(rng.normal(size=(p, p)))
    scales = 10.0 * 0.9 ** np.arange(p)  # distinct variances: a unique decomposition
    X = np.empty((args.n_samples, p), dtype=args.dtype)
    block = 100_000
    for start in range(0, args.n_samples, block):
        stop = min(start + block, args.n_samples)
        X[start:stop] = (rng.normal(size=(stop - start, p)) * scales) @ basis.T + rng.normal(size=p)
    return X


def reference(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k variances and axes from the two-pass covariance (``np.cov``) in float64."""
    values, vectors = np.linalg.eigh(np.cov(X, rowvar=False, dtype=np.float64))
    return values[::-1][:k], vectors[:, ::-1][:, :k].T


def accuracy(model: Any, ref: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    values, axes = ref
    variance = np.asarray(model.explained_variance_, dtype=np.float64)
    components = np.asarray(model.components_, dtype=np.float64)
    var_err = float(np.max(np.abs(variance - values) / values))
    signs = np.sign(np.sum(components * axes, axis=1))[:, None]  # compare up to sign
    return var_err, float(np.max(np.abs(components * signs - axes)))


def bench_dataset(label: str, X: np.ndarray, args: argparse.Namespace) -> None:
    k = args.n_components
    ref = reference(X, k)
    contenders: dict[str, Callable[[], Any]] = {
        "floor": lambda: X.T @ X,
        "gicho": lambda: PCA(k).fit(X),
        "sklearn": lambda: SkPCA(k, svd_solver="covariance_eigh").fit(X),
    }
    models = {"gicho": contenders["gicho"](), "sklearn": contenders["sklearn"]()}
    res = paired_ratios(contenders, args.rounds, base="floor")
    peer = paired_ratios({"gicho": contenders["gicho"], "sklearn": contenders["sklearn"]}, args.rounds, base="gicho")
    print(f"\n{label} (gicho solver {models['gicho'].solver_!r}; load {os.getloadavg()[0]:.1f})")
    print(f"  {'contender':<28}{'median (s)':>11}{'/ floor':>9}{'max rel err var':>17}{'max err comp':>14}")
    for name, title in (("floor", "bare X.T @ X"), ("gicho", "gicho PCA"), ("sklearn", "sklearn covariance_eigh")):
        errs = "" if name == "floor" else "{:>17.2e}{:>14.2e}".format(*accuracy(models[name], ref))
        print(f"  {title:<28}{res[name]['median']:>11.3f}{res[name]['ratio']:>9.2f}{errs}")
    g, s = res["gicho"], peer["sklearn"]
    print(f"  gicho / floor = {g['ratio']:.2f} [{g['ratio_lo']:.2f}-{g['ratio_hi']:.2f}] (target <= 1.2); "
          f"scikit-learn / gicho = {s['ratio']:.2f} [{s['ratio_lo']:.2f}-{s['ratio_hi']:.2f}] (target >= 1.25)")


def bench_others(X: np.ndarray, k: int) -> None:
    """The randomized solvers and the exact SVD: one timed fit each (5-100x slower)."""
    print("\nother solvers (one fit each):")
    for title, fit in (("gicho randomized", lambda: PCA(k, solver="randomized", random_state=0).fit(X)),
                       ("sklearn randomized", lambda: SkPCA(k, svd_solver="randomized", random_state=0).fit(X)),
                       ("sklearn full", lambda: SkPCA(k, svd_solver="full").fit(X))):  # fmt: skip
        start = time.perf_counter()
        fit()
        print(f"  {title:<22}{time.perf_counter() - start:8.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=100)
    parser.add_argument("--n-components", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: current)")
    parser.add_argument("--others", action="store_true", help="also time the randomized and full solvers once")
    args = parser.parse_args()
    threads = args.threads or blas_threads()
    print_header(args, threads)
    X = make_data(args)
    with threadpool_limits(limits=threads, user_api="blas"):
        bench_dataset("data as generated (means ~ 1 standard deviation)", X, args)
        shift = (30.0 * X[:1000].std(axis=0)).astype(X.dtype)
        X += shift
        bench_dataset("X + 30 standard deviations", X, args)
        X -= shift
        if args.others:
            bench_others(X, args.n_components)


if __name__ == "__main__":
    main()
