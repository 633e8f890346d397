"""Torch CPU threads while a task's hook runs (``config.num_threads``).

Task configs hold a :class:`gicho.train.TrainConfig` as their ``train`` part (nothing is copied
between configs by name); this module only keeps the thread setting every neural task shares.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["check_num_threads", "max_num_threads", "torch_threads", "with_config_threads"]

Hook = TypeVar("Hook", bound=Callable[..., Any])


# At least this many threads are always allowed, so that a config written on a big machine
# still loads on a small one; above it, MAX_THREADS_PER_CPU per CPU of this machine.
MIN_THREADS_CAP = 64
# More threads than this per CPU only slow a run down; far more make thread creation fail
# (OpenBLAS "pthread_create failed", then a crash).
MAX_THREADS_PER_CPU = 4


def max_num_threads() -> int:
    """The largest ``num_threads`` allowed here: ``max(64, 4 * os.cpu_count())``."""
    return max(MIN_THREADS_CAP, MAX_THREADS_PER_CPU * (os.cpu_count() or 1))


def check_num_threads(n: int) -> None:
    """Validate a task Config's ``num_threads`` field (call it from ``__post_init__``)."""
    if n < 0:
        raise ValueError(f"field `num_threads` must be >= 0 (0 = torch's default); got {n!r}")
    limit = max_num_threads()
    if n > limit:
        raise ValueError(f"field `num_threads` must be <= {limit} (the larger of {MIN_THREADS_CAP} and "
                         f"{MAX_THREADS_PER_CPU} per CPU, {os.cpu_count() or 1} here: more threads only "
                         f"slow a run down); got {n!r}")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (0: leave torch's setting), then restore it.

    Small models gain nothing from intra-op threads and lose much when the cores are shared
    (benchmarks/RESULTS.md, "Figures moved out of source comments"), so neural tasks default
    to one thread; ``--num-threads 0`` gives torch's default back.
    """
    check_num_threads(n)
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def with_config_threads(hook: Hook) -> Hook:
    """Wrap a task hook ``hook(config, ctx, ...)`` so it runs under ``config.num_threads``
    (torch's setting when the config has no such field)."""

    @functools.wraps(hook)
    def wrapped(config: Any, *args: Any, **kwargs: Any) -> Any:
        with torch_threads(getattr(config, "num_threads", 0)):
            return hook(config, *args, **kwargs)

    return wrapped  # type: ignore[return-value]
