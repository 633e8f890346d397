"""What every benchmark shares: timing (best of N; paired interleaved ratios) and a header.

The benchmarks run as scripts (``python benchmarks/cpu_ols.py``), so this module is imported
as ``_common`` from the script's own directory.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    """Best wall-clock time of ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def paired_ratios(contenders: dict[str, Callable[[], Any]], rounds: int, base: str) -> dict[str, dict[str, float]]:
    """Interleaved rounds (one call of each contender per round, after one warm-up call each).

    Returns, per contender, its median time and the median over rounds of its time divided by
    ``base``'s time in the same round: a load spike slows both sides of a pair alike, so the
    paired ratio is steadier on a shared machine than a ratio of separate best times.
    """
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    out = {}
    for name, ts in times.items():
        ratios = [t / b for t, b in zip(ts, times[base], strict=True)]
        out[name] = {"median": statistics.median(ts), "ratio": statistics.median(ratios),
                     "ratio_lo": min(ratios), "ratio_hi": max(ratios)}  # fmt: skip
    return out


def blas_threads() -> int:
    """Threads of the BLAS libraries now (the largest, when several are loaded)."""
    from threadpoolctl import threadpool_info

    return max((p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"), default=1)


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def hardware_lines() -> list[str]:
    """CPU, core count, load and the BLAS libraries in use (threadpoolctl), one per line."""
    from threadpoolctl import threadpool_info

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    lines = [f"CPU: {cpu_name()}; {os.cpu_count()} logical cores; load average {load} (1, 5, 15 min)"]
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            lines.append(
                f"BLAS: {pool['internal_api']} {pool.get('version')} ({pool['num_threads']} threads, "
                f"{pool.get('architecture')}) from {Path(pool['filepath']).name}"
            )
    return lines
