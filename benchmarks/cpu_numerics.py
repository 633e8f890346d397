"""gicho vs SciPy on the CPU: softmax family, information measures (and metrics, when present).

Run: ``.venv/bin/python benchmarks/cpu_numerics.py [--rows 10000] [--cols 1000] [--repeats 7]``

Each figure is the best of ``--repeats`` timings of one call on the same 10⁷-element float64
input (10⁴ distributions of 10³ outcomes along the last axis, by default); the ratio is
``scipy_time / gicho_time`` (> 1: gicho is faster). Never run by the tests.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy
import scipy.special
import scipy.stats
from _common import best_time, hardware_lines

import gicho
from gicho import information, numerics


def report(name: str, gicho_fn: Callable[[], Any], scipy_fn: Callable[[], Any], repeats: int) -> None:
    """Time both, check that they agree, print one row."""
    got, want = gicho_fn(), scipy_fn()
    scale = np.max(np.abs(want[np.isfinite(want)]), initial=1.0)
    if not np.allclose(got, want, rtol=1e-12, atol=1e-12 * scale, equal_nan=True):
        raise SystemExit(f"{name}: gicho and SciPy disagree; not timing")
    t_gicho, t_scipy = best_time(gicho_fn, repeats), best_time(scipy_fn, repeats)
    print(f"  {name:<14} gicho {t_gicho * 1e3:8.2f} ms   scipy {t_scipy * 1e3:8.2f} ms   "
          f"ratio {t_scipy / t_gicho:5.2f}")


def print_header(args: argparse.Namespace) -> None:
    for line in hardware_lines():
        print(line)
    print(f"Python {platform.python_version()}, NumPy {np.__version__}, SciPy {scipy.__version__}, "
          f"gicho {gicho.__version__}")
    print(f"input: {args.rows} x {args.cols} float64 ({args.rows * args.cols:.0e} elements), "
          f"reduced along the last axis; best of {args.repeats}; ratio = scipy_time / gicho_time")


def _inputs(args: argparse.Namespace, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=3.0, size=(args.rows, args.cols))


def bench_softmax_family(args: argparse.Namespace) -> None:
    print("softmax family (gicho.numerics vs scipy.special)")
    x = _inputs(args, 0)
    report("softmax", lambda: numerics.softmax(x, axis=-1), lambda: scipy.special.softmax(x, axis=-1),
           args.repeats)
    report("log_softmax", lambda: numerics.log_softmax(x, axis=-1),
           lambda: scipy.special.log_softmax(x, axis=-1), args.repeats)
    report("logsumexp", lambda: numerics.logsumexp(x, axis=-1),
           lambda: scipy.special.logsumexp(x, axis=-1), args.repeats)


def bench_information(args: argparse.Namespace) -> None:
    print("information (gicho.information vs scipy.stats.entropy; inputs are probabilities)")
    p = scipy.special.softmax(_inputs(args, 1), axis=-1)
    q = scipy.special.softmax(_inputs(args, 2), axis=-1)
    report("entropy", lambda: information.entropy(p), lambda: scipy.stats.entropy(p, axis=-1),
           args.repeats)
    report("kl_divergence", lambda: information.kl_divergence(p, q),
           lambda: scipy.stats.entropy(p, q, axis=-1), args.repeats)


def bench_metrics(args: argparse.Namespace) -> None:
    """gicho.metrics vs sklearn.metrics on 10^7 values (1-D) and 10^6 x 10 (multi-output).

    Sizes are fixed by the issue (not by --rows/--cols); unweighted and weighted rows; each
    pair is checked to agree to 1e-12 (relative) before it is timed.
    """
    from functools import partial

    import sklearn
    import sklearn.metrics as skm

    from gicho import metrics

    pairs = {
        "mae": (metrics.mae, skm.mean_absolute_error),
        "mse": (metrics.mse, skm.mean_squared_error),
        "rmse": (metrics.rmse, skm.root_mean_squared_error),
        "r2": (metrics.r2, skm.r2_score),
    }
    print(f"metrics (gicho.metrics vs scikit-learn {sklearn.__version__}; float64; best of "
          f"{args.repeats}; ratio = sklearn_time / gicho_time)")
    rng = np.random.default_rng(3)
    for shape in ((10_000_000,), (1_000_000, 10)):
        y_true = rng.normal(size=shape)
        y_pred = y_true + rng.normal(scale=0.5, size=shape)
        weights = rng.uniform(0.0, 2.0, size=shape[0])
        for label, w in (("", None), (" weighted", weights)):
            print(f"  y of shape {shape}{label}")
            for name, (ours, theirs) in pairs.items():
                got = ours(y_true, y_pred, sample_weight=w)
                want = theirs(y_true, y_pred, sample_weight=w)
                if not np.isclose(got, want, rtol=1e-12, atol=0.0):
                    raise SystemExit(f"{name}: gicho {got!r} and sklearn {want!r} disagree; not timing")
                t_gicho = best_time(partial(ours, y_true, y_pred, sample_weight=w), args.repeats)
                t_sk = best_time(partial(theirs, y_true, y_pred, sample_weight=w), args.repeats)
                print(f"  {name:<14} gicho {t_gicho * 1e3:8.2f} ms   sklearn {t_sk * 1e3:8.2f} ms   "
                      f"ratio {t_sk / t_gicho:5.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--cols", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print_header(args)
    bench_softmax_family(args)
    bench_information(args)
    bench_metrics = globals().get("bench_metrics")  # added by the metrics benchmark
    if bench_metrics is not None:
        bench_metrics(args)


if __name__ == "__main__":
    main(sys.argv[1:])
