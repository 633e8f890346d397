"""Torch CPU threads while a task's hook runs (``config.train.num_threads``).

Task configs hold a :class:`gicho.train.TrainConfig` as their ``train`` part (nothing is copied
between configs by name); the thread count is one of its fields, checked there
(:func:`gicho.train.config.check_num_threads`). This module only sets it around a hook.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from gicho.train.config import check_num_threads

__all__ = ["config_threads", "torch_threads", "with_config_threads"]

Hook = TypeVar("Hook", bound=Callable[..., Any])


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (0: leave torch's setting), then restore it.

    Small models gain nothing from intra-op threads and lose much when the cores are shared
    (benchmarks/RESULTS.md, "Figures moved out of source comments"), so neural tasks default
    to one thread; ``--train.num-threads 0`` gives torch's default back.
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


def config_threads(config: Any) -> int:
    """``config.train.num_threads``; 0 (torch's setting) when the config has no such field."""
    return getattr(getattr(config, "train", None), "num_threads", 0)


def with_config_threads(hook: Hook) -> Hook:
    """Wrap a task hook ``hook(config, ctx, ...)`` so it runs under ``config.train.num_threads``
    (torch's setting when the config has no such field)."""

    @functools.wraps(hook)
    def wrapped(config: Any, *args: Any, **kwargs: Any) -> Any:
        with torch_threads(config_threads(config)):
            return hook(config, *args, **kwargs)

    return wrapped  # type: ignore[return-value]
