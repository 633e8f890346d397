"""The task side of training: a :class:`gicho.train.TrainConfig` from a task's Config.

A task's Config repeats the Trainer fields it exposes on the command line (``max_steps``,
``batch_size``, ``lr``, ...) with defaults of its own, so each task keeps its own field order
and defaults; :func:`train_config_from` copies them across by name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from gicho.train import TrainConfig

__all__ = ["check_num_threads", "torch_threads", "train_config_from", "with_config_threads"]

Hook = TypeVar("Hook", bound=Callable[..., Any])


def train_config_from(config: Any, **overrides: Any) -> TrainConfig:
    """A :class:`~gicho.train.TrainConfig` from the fields of ``config`` that it shares.

    Parameters
    ----------
    config : dataclass instance
        A task's Config; every field whose name is a ``TrainConfig`` field is copied.
    **overrides
        ``TrainConfig`` fields set after the copy (they win over ``config``'s values).

    Returns
    -------
    TrainConfig
        Validated by its ``__post_init__``; an override that is not a ``TrainConfig`` field
        raises ``TypeError``.
    """
    from gicho.train import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name in names}
    return TrainConfig(**{**shared, **overrides})


def check_num_threads(n: int) -> None:
    """Validate a task Config's ``num_threads`` field (call it from ``__post_init__``)."""
    if n < 0:
        raise ValueError(f"field `num_threads` must be >= 0 (0 = torch's default); got {n!r}")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (0: leave torch's setting), then restore it.

    Small models gain nothing from intra-op threads and lose much when the cores are shared
    (measured 5-30x slower with 2 threads on a loaded 2-core machine), so neural tasks default
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
    """Wrap a task hook ``hook(config, ctx, ...)`` so it runs under ``config.num_threads``."""

    @functools.wraps(hook)
    def wrapped(config: Any, *args: Any, **kwargs: Any) -> Any:
        with torch_threads(config.num_threads):
            return hook(config, *args, **kwargs)

    return wrapped  # type: ignore[return-value]
