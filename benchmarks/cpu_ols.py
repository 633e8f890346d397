"""gicho LinearRegression vs scikit-learn and statsmodels on the CPU, and streaming from disk.

Run (the issue's sizes; ~9 GB of temporary disk for the streaming part)::

    .venv/bin/python benchmarks/cpu_ols.py
    .venv/bin/python benchmarks/cpu_ols.py --rows 100000 --cols 20 --stream-rows 2000000   # small

Part 1, in memory: ``--rows x --cols`` float64, y = X beta + 1 + noise, on zero-mean X and on
offset X (``X + --offset``, means 30 standard deviations out by default: gicho then multiplies
shifted copies of its blocks). Per dataset, interleaved rounds of a bare ``X.T @ X`` on the
same array (the floor for any method that reads X once) and gicho
``LinearRegression(solver="auto").fit`` (which computes every inference statistic: standard
errors, t, p, R², F, log-likelihood, AIC/BIC); the ratio printed is the median over rounds of
gicho's time over the floor's in the same round. scikit-learn's ``LinearRegression`` (and
statsmodels ``OLS`` on the zero-mean data) get fewer rounds, paired with gicho the same way.
BLAS threads are pinned (``--threads``, default: the BLAS's current setting) for every
contender; gicho runs that many worker threads with a one-thread BLAS each. The coefficients
must agree with scikit-learn's to 1e-9 relative before anything is timed.

Part 2, streaming: writes ``--stream-rows x --stream-cols`` float64 X and y as ``.npy`` files
into a temporary directory (after checking free disk). Timing: one fresh process runs
``--stream-rounds`` interleaved rounds of (a) ``fit_chunks`` over memory-mapped chunks and (b)
the in-memory fit of the whole memory-mapped array (the floor for the streamed fit), after one
warm-up of each, and prints the median of the paired ratios a / b. Memory: two more fresh
processes fit once each and report peak resident memory (``resource.getrusage``) and the
largest relative differences of coefficients and standard errors. BLAS threads are pinned to
``--threads`` in every process. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from _common import blas_threads, hardware_lines, paired_ratios
from threadpoolctl import threadpool_limits


def print_header(threads: int) -> None:
    import scipy
    import sklearn
    import statsmodels

    import gicho

    for line in hardware_lines():
        print(line)
    print(f"Python {platform.python_version()}, NumPy {np.__version__}, SciPy {scipy.__version__}, "
          f"scikit-learn {sklearn.__version__}, statsmodels {statsmodels.__version__}, gicho {gicho.__version__}")
    print(f"BLAS threads pinned to {threads} for every contender")


def _bench_dataset(label: str, X: np.ndarray, y: np.ndarray, args: argparse.Namespace) -> None:
    from sklearn.linear_model import LinearRegression as SkLinearRegression

    from gicho.linear import LinearRegression

    ours = LinearRegression().fit(X, y)
    ref = SkLinearRegression().fit(X, y)
    rel = np.max(np.abs(ours.coef_ - ref.coef_)) / np.max(np.abs(ref.coef_))
    if rel > 1e-9:
        raise SystemExit(f"{label}: gicho and scikit-learn disagree ({rel:.1e} > 1e-9); not timing")
    floor = paired_ratios({"floor": lambda: X.T @ X, "gicho": lambda: LinearRegression().fit(X, y)},
                          args.rounds, base="floor")  # fmt: skip
    peer = paired_ratios({"gicho": lambda: LinearRegression().fit(X, y),
                          "sklearn": lambda: SkLinearRegression().fit(X, y)}, args.peer_rounds, base="gicho")  # fmt: skip
    g, f, s = floor["gicho"], floor["floor"], peer["sklearn"]
    print(f"  {label}: solver {ours.solver_!r}, cond {ours.cond_:.3g}, coef vs scikit-learn {rel:.1e}; "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"    bare X.T @ X            {f['median']:7.3f} s   floor")
    print(f"    gicho LinearRegression  {g['median']:7.3f} s   {g['ratio']:.2f}x the floor "
          f"[{g['ratio_lo']:.2f}-{g['ratio_hi']:.2f}] (target <= 1.2; with all inference statistics)")
    print(f"    scikit-learn            {s['median']:7.3f} s   {s['ratio']:.1f}x gicho's time "
          f"[{s['ratio_lo']:.1f}-{s['ratio_hi']:.1f}]")


def bench_in_memory(args: argparse.Namespace) -> None:
    import statsmodels.api as sm

    from gicho.linear import LinearRegression

    n, p = args.rows, args.cols
    print(f"\n[in memory] X: {n} x {p} float64 ({n * p * 8 / 1e9:.2f} GB), y = X beta + 1 + noise; "
          f"{args.rounds} interleaved rounds (scikit-learn {args.peer_rounds}); ratios: median of paired ratios "
          "[min-max]")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, p))
    y = X @ rng.standard_normal(p) + 1.0 + rng.standard_normal(n)
    for label, offset in (("zero-mean X", 0.0), (f"X + {args.offset:g}", args.offset)):
        X += offset
        _bench_dataset(label, X, y, args)
        X -= offset
    if args.statsmodels_repeats > 0:
        exog = sm.add_constant(X)
        res = sm.OLS(y, exog).fit()
        ours = LinearRegression().fit(X, y)
        rel_sm = np.max(np.abs(res.params[1:] - ours.coef_)) / np.max(np.abs(ours.coef_))
        rel_bse = np.max(np.abs(res.bse - ours.bse_) / res.bse)
        sm_vs = paired_ratios({"gicho": lambda: LinearRegression().fit(X, y), "sm": lambda: sm.OLS(y, exog).fit()},
                              args.statsmodels_repeats, base="gicho")["sm"]  # fmt: skip
        print(f"  statsmodels OLS (pinv), zero-mean X: {sm_vs['median']:.3f} s, {sm_vs['ratio']:.0f}x gicho's time "
              f"(coef diff {rel_sm:.1e}, std err diff {rel_bse:.1e}; add_constant copy not timed)")


def _write_stream_files(directory: Path, n: int, p: int, noise: float, block: int = 250_000) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    beta = rng.standard_normal(p)
    X = np.lib.format.open_memmap(directory / "X.npy", mode="w+", dtype=np.float64, shape=(n, p))
    y = np.lib.format.open_memmap(directory / "y.npy", mode="w+", dtype=np.float64, shape=(n,))
    for start in range(0, n, block):
        stop = min(start + block, n)
        Xb = rng.standard_normal((stop - start, p)) + 3.0
        X[start:stop] = Xb
        y[start:stop] = Xb @ beta - 2.0 + noise * rng.standard_normal(stop - start)
        X.flush()
        y.flush()
    del X, y
    return directory / "X.npy", directory / "y.npy"


_CHILD = textwrap.dedent("""
    import json, os, resource, sys, time
    import numpy as np
    from threadpoolctl import threadpool_limits
    from gicho.data.tabular import iter_npy_chunks
    from gicho.linear import LinearRegression
    mode, x_path, y_path = sys.argv[1], sys.argv[2], sys.argv[3]
    chunk, threads, rounds = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    def stream():
        chunks = zip(iter_npy_chunks(x_path, chunk), iter_npy_chunks(y_path, chunk))
        return LinearRegression().fit_chunks(chunks)
    def whole():  # the whole array at once, as an in-memory fit sees it
        return LinearRegression().fit(np.load(x_path, mmap_mode="r"), np.load(y_path, mmap_mode="r"))
    def timed(fn):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with threadpool_limits(limits=threads, user_api="blas"):
        if mode == "paired":  # interleaved rounds after one warm-up of each
            stream(); whole()
            load = [os.getloadavg()[0]]
            times = {"stream": [], "whole": []}
            for r in range(rounds):
                for name in (("stream", "whole") if r % 2 == 0 else ("whole", "stream")):
                    times[name].append(timed(stream if name == "stream" else whole))
                load.append(os.getloadavg()[0])
            print(json.dumps({"times": times, "load": load}))
            sys.exit(0)
        start = time.perf_counter()
        model = stream() if mode == "stream" else whole()
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


def _child(mode: str, x_path: Path, y_path: Path, args: argparse.Namespace, threads: int) -> dict:
    cmd = [sys.executable, "-c", _LAUNCHER, sys.executable, "-c", _CHILD, mode, str(x_path), str(y_path),
           str(args.chunk_rows), str(threads), str(args.stream_rounds)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def bench_streaming(args: argparse.Namespace, threads: int) -> None:
    n, p = args.stream_rows, args.stream_cols
    need = n * (p + 1) * 8
    root = Path(args.tmpdir or tempfile.gettempdir())
    free = shutil.disk_usage(root).free
    print(f"\n[streaming] X: {n} x {p} float64 ({n * p * 8 / 1e9:.2f} GB) + y (noise {args.stream_noise:g}) in .npy "
          f"files under {root} (free disk {free / 1e9:.0f} GB); chunks of {args.chunk_rows} rows")
    if free < need * 1.1:
        print(f"  skipped: needs {need / 1e9:.1f} GB of free disk")
        return
    directory = Path(tempfile.mkdtemp(prefix="gicho-ols-", dir=root))
    try:
        start = time.perf_counter()
        x_path, y_path = _write_stream_files(directory, n, p, args.stream_noise)
        print(f"  wrote the files in {time.perf_counter() - start:.0f} s")
        paired = _child("paired", x_path, y_path, args, threads)
        ts, tw = np.array(paired["times"]["stream"]), np.array(paired["times"]["whole"])
        ratios = ts / tw
        print(f"  {args.stream_rounds} interleaved rounds, BLAS threads {threads}, load (1 min) "
              + " -> ".join(f"{v:.1f}" for v in paired["load"]))
        print(f"  fit_chunks {np.median(ts):.2f} s, whole-array fit {np.median(tw):.2f} s: fit_chunks / whole "
              f"{np.median(ratios):.2f} [{ratios.min():.2f}-{ratios.max():.2f}] (median of paired ratios; target <= 2)")
        stream = _child("stream", x_path, y_path, args, threads)
        whole = _child("whole", x_path, y_path, args, threads)
        coef_s, coef_w = np.array(stream["coef"]), np.array(whole["coef"])
        rel = np.max(np.abs(coef_s - coef_w)) / np.max(np.abs(coef_w))
        rel_i = abs(stream["intercept"] - whole["intercept"]) / abs(whole["intercept"])
        rel_b = np.max(np.abs(np.array(stream["bse"]) - whole["bse"]) / np.array(whole["bse"]))
        print(f"  fit_chunks over memory-mapped chunks: {stream['seconds']:7.1f} s (one fresh run), peak RSS "
              f"{stream['peak_rss_mb']:7.0f} MB (getrusage; VmHWM {stream['vmhwm_mb']:.0f} MB; "
              f"after imports {stream['start_rss_mb']:.0f} MB)")
        print(f"  fit on the whole mapped array:        {whole['seconds']:7.1f} s (one fresh run), peak RSS "
              f"{whole['peak_rss_mb']:7.0f} MB (mapped file pages count as resident)")
        print(f"  streamed vs whole: coef max rel diff {rel:.1e}, intercept {rel_i:.1e}, std err {rel_b:.1e}")
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds against the floor")
    parser.add_argument("--peer-rounds", type=int, default=3, help="rounds against scikit-learn")
    parser.add_argument("--offset", type=float, default=30.0, help="the offset dataset is X + offset")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: current)")
    parser.add_argument("--statsmodels-repeats", type=int, default=1, help="0 skips statsmodels")
    parser.add_argument("--stream-rows", type=int, default=20_000_000, help="0 skips the streaming part")
    parser.add_argument("--stream-cols", type=int, default=50)
    parser.add_argument("--chunk-rows", type=int, default=65_536)
    parser.add_argument("--stream-noise", type=float, default=1.0,
                        help="noise of y in the streaming part (1e-3: R^2 = 1 - 3e-8, Cholesky QR per chunk)")
    parser.add_argument("--stream-rounds", type=int, default=5, help="interleaved rounds of the streaming part")
    parser.add_argument("--tmpdir", default=None, help="where the .npy files go (default: the temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the .npy files")
    parser.add_argument("--skip-memory", action="store_true", help="only the streaming part")
    args = parser.parse_args()
    threads = args.threads or blas_threads()
    print_header(threads)
    if not args.skip_memory:
        with threadpool_limits(limits=threads, user_api="blas"):
            bench_in_memory(args)
    if args.stream_rows > 0:
        bench_streaming(args, threads)


if __name__ == "__main__":
    main()
