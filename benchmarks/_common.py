"""What every benchmark shares: best-of-N timing and a header naming the hardware.

The benchmarks run as scripts (``python benchmarks/cpu_ols.py``), so this module is imported
as ``_common`` from the script's own directory.
"""

from __future__ import annotations

import os
import platform
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

    lines = [f"CPU: {cpu_name()}; {os.cpu_count()} logical cores; load average {os.getloadavg()[0]:.1f}"]
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            lines.append(
                f"BLAS: {pool['internal_api']} {pool.get('version')} ({pool['num_threads']} threads, "
                f"{pool.get('architecture')}) from {Path(pool['filepath']).name}"
            )
    return lines
