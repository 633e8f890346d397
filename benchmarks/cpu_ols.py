"""gicho LinearRegression vs scikit-learn and statsmodels on the CPU, and streaming from disk.

Run (the issue's sizes; ~9 GB of temporary disk for the streaming part)::

    .venv/bin/python benchmarks/cpu_ols.py
    .venv/bin/python benchmarks/cpu_ols.py --rows 100000 --cols 20 --stream-rows 2000000   # small

Part 1, in memory: ``--rows x --cols`` float64, y = X beta + noise. Times (best of
``--repeats``, one warm-up first) a bare ``X.T @ X`` (the floor for any method that reads X
once), gicho ``LinearRegression(solver="auto")`` (fit with its inference statistics),
scikit-learn ``LinearRegression`` and statsmodels ``OLS`` (fewer repeats: it is slow); checks
that the coefficients agree to 1e-9 relative before printing ratios. gicho takes an uncentred fast
path when every column's squared mean is at most its variance (zero-mean data, as here) and
centres each block otherwise; the second case is timed on ``X + 30`` (means 30 standard
deviations away; ``X + 3`` still takes the fast path).

Part 2, streaming: writes ``--stream-rows x --stream-cols`` float64 X and y as ``.npy`` files
into a temporary directory (after checking free disk), then in fresh processes fits
(a) from memory-mapped chunks with ``fit_chunks`` and (b) on the whole memory-mapped array at
once (the in-memory fit), and reports peak resident memory (``resource.getrusage``) of each
and the largest relative difference of the coefficients. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from _common import best_time, hardware_lines


def print_header() -> None:
    import scipy
    import sklearn
    import statsmodels

    import gicho

    for line in hardware_lines():
        print(line)
    print(f"Python {platform.python_version()}, NumPy {np.__version__}, SciPy {scipy.__version__}, "
          f"scikit-learn {sklearn.__version__}, statsmodels {statsmodels.__version__}, gicho {gicho.__version__}")


def bench_in_memory(args: argparse.Namespace) -> None:
    import statsmodels.api as sm
    from sklearn.linear_model import LinearRegression as SkLinearRegression

    from gicho.linear import LinearRegression

    n, p = args.rows, args.cols
    print(f"\n[in memory] X: {n} x {p} float64 ({n * p * 8 / 1e9:.2f} GB), y = X beta + 1 + noise; "
          f"best of {args.repeats}")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, p))
    y = X @ rng.standard_normal(p) + 1.0 + rng.standard_normal(n)

    ours = LinearRegression().fit(X, y)
    ref = SkLinearRegression().fit(X, y)
    rel = np.max(np.abs(ours.coef_ - ref.coef_)) / np.max(np.abs(ref.coef_))
    print(f"  coefficients: max relative difference gicho vs scikit-learn {rel:.1e}; gicho solver "
          f"{ours.solver_!r}, condition number {ours.cond_:.3g}")
    if rel > 1e-9:
        raise SystemExit("gicho and scikit-learn disagree beyond 1e-9; not timing")

    t_gram = best_time(lambda: X.T @ X, args.repeats)
    t_gicho = best_time(lambda: LinearRegression().fit(X, y), args.repeats)
    t_sklearn = best_time(lambda: SkLinearRegression().fit(X, y), args.repeats)
    print(f"  bare X.T @ X                {t_gram:8.3f} s")
    print(f"  gicho LinearRegression      {t_gicho:8.3f} s   ({t_gicho / t_gram:.2f}x X.T @ X; "
          "includes standard errors, R², F, AIC/BIC)")
    print(f"  scikit-learn LinearRegr.    {t_sklearn:8.3f} s   (gicho is {t_sklearn / t_gicho:.1f}x faster)")
    # Columns whose |mean| exceeds ~10 standard deviations take gicho's centring path (each
    # block copied and centred before its Gram product): show that cost too, on X + 30.
    X += 30.0
    rel_c = np.max(np.abs(LinearRegression().fit(X, y).coef_ - ref.coef_)) / np.max(np.abs(ref.coef_))
    t_centred = best_time(lambda: LinearRegression().fit(X, y), args.repeats)
    t_sk_centred = best_time(lambda: SkLinearRegression().fit(X, y), max(1, args.repeats // 2))
    print(f"  same on X + 30 (centring path): gicho {t_centred:.3f} s ({t_centred / t_gram:.2f}x X.T @ X), "
          f"scikit-learn {t_sk_centred:.3f} s ({t_sk_centred / t_centred:.1f}x); coef diff {rel_c:.1e}")
    X -= 30.0
    if args.statsmodels_repeats > 0:
        exog = sm.add_constant(X)
        res = sm.OLS(y, exog).fit()
        rel_sm = np.max(np.abs(res.params[1:] - ours.coef_)) / np.max(np.abs(ours.coef_))
        rel_bse = np.max(np.abs(res.bse - ours.bse_) / res.bse)
        t_sm = best_time(lambda: sm.OLS(y, exog).fit(), args.statsmodels_repeats)
        print(f"  statsmodels OLS (pinv)      {t_sm:8.3f} s   (gicho is {t_sm / t_gicho:.1f}x faster; "
              f"coef diff {rel_sm:.1e}, std err diff {rel_bse:.1e}; add_constant copy not timed)")


def _write_stream_files(directory: Path, n: int, p: int, block: int = 250_000) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    beta = rng.standard_normal(p)
    X = np.lib.format.open_memmap(directory / "X.npy", mode="w+", dtype=np.float64, shape=(n, p))
    y = np.lib.format.open_memmap(directory / "y.npy", mode="w+", dtype=np.float64, shape=(n,))
    for start in range(0, n, block):
        stop = min(start + block, n)
        Xb = rng.standard_normal((stop - start, p)) + 3.0
        X[start:stop] = Xb
        y[start:stop] = Xb @ beta - 2.0 + rng.standard_normal(stop - start)
        X.flush()
        y.flush()
    del X, y
    return directory / "X.npy", directory / "y.npy"


_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np
    from gicho.data.tabular import iter_npy_chunks
    from gicho.linear import LinearRegression
    mode, x_path, y_path, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if mode == "stream":
        chunks = zip(iter_npy_chunks(x_path, chunk), iter_npy_chunks(y_path, chunk))
        model = LinearRegression().fit_chunks(chunks)
    else:  # the whole array at once, as an in-memory fit sees it
        model = LinearRegression().fit(np.load(x_path, mmap_mode="r"), np.load(y_path, mmap_mode="r"))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    try:  # cross-check: the kernel's high-water mark of this address space
        hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        hwm = float("nan")
    print(json.dumps({"coef": model.coef_.tolist(), "intercept": model.intercept_,
                      "bse": model.bse_.tolist(), "seconds": seconds, "vmhwm_mb": hwm,
                      "peak_rss_mb": peak / 1024, "start_rss_mb": start_rss / 1024}))
""")


# Linux carries the parent's peak RSS into a forked-and-exec'd child's ru_maxrss (the forked
# address space has the parent's high-water mark at exec). A tiny launcher process in between
# gives the measured child a fresh, small high-water mark.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def _child(mode: str, x_path: Path, y_path: Path, chunk: int) -> dict:
    cmd = [sys.executable, "-c", _LAUNCHER, sys.executable, "-c", _CHILD, mode, str(x_path), str(y_path), str(chunk)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def bench_streaming(args: argparse.Namespace) -> None:
    n, p = args.stream_rows, args.stream_cols
    need = n * (p + 1) * 8
    root = Path(args.tmpdir or tempfile.gettempdir())
    free = shutil.disk_usage(root).free
    print(f"\n[streaming] X: {n} x {p} float64 ({n * p * 8 / 1e9:.2f} GB) + y in .npy files under {root} "
          f"(free disk {free / 1e9:.0f} GB); chunks of {args.chunk_rows} rows")
    if free < need * 1.1:
        print(f"  skipped: needs {need / 1e9:.1f} GB of free disk")
        return
    directory = Path(tempfile.mkdtemp(prefix="gicho-ols-", dir=root))
    try:
        start = time.perf_counter()
        x_path, y_path = _write_stream_files(directory, n, p)
        print(f"  wrote the files in {time.perf_counter() - start:.0f} s")
        stream = _child("stream", x_path, y_path, args.chunk_rows)
        whole = _child("whole", x_path, y_path, args.chunk_rows)
        coef_s, coef_w = np.array(stream["coef"]), np.array(whole["coef"])
        rel = np.max(np.abs(coef_s - coef_w)) / np.max(np.abs(coef_w))
        rel_i = abs(stream["intercept"] - whole["intercept"]) / abs(whole["intercept"])
        rel_b = np.max(np.abs(np.array(stream["bse"]) - whole["bse"]) / np.array(whole["bse"]))
        print(f"  fit_chunks over memory-mapped chunks: {stream['seconds']:7.1f} s, peak RSS "
              f"{stream['peak_rss_mb']:7.0f} MB (getrusage; VmHWM {stream['vmhwm_mb']:.0f} MB; "
              f"after imports {stream['start_rss_mb']:.0f} MB)")
        print(f"  fit on the whole mapped array:        {whole['seconds']:7.1f} s, peak RSS "
              f"{whole['peak_rss_mb']:7.0f} MB (mapped file pages count as resident)")
        print(f"  streamed vs whole: coef max rel diff {rel:.1e}, intercept {rel_i:.1e}, std err {rel_b:.1e}")
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--statsmodels-repeats", type=int, default=1, help="0 skips statsmodels")
    parser.add_argument("--stream-rows", type=int, default=20_000_000, help="0 skips the streaming part")
    parser.add_argument("--stream-cols", type=int, default=50)
    parser.add_argument("--chunk-rows", type=int, default=65_536)
    parser.add_argument("--tmpdir", default=None, help="where the .npy files go (default: the temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the .npy files")
    parser.add_argument("--skip-memory", action="store_true", help="only the streaming part")
    args = parser.parse_args()
    print_header()
    if not args.skip_memory:
        bench_in_memory(args)
    if args.stream_rows > 0:
        bench_streaming(args)


if __name__ == "__main__":
    main()
