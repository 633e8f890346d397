"""The task side of training: a :class:`gicho.train.TrainConfig` from a task's Config.

A task's Config repeats the Trainer fields it exposes on the command line (``max_steps``,
``batch_size``, ``lr``, ...) with defaults of its own, so each task keeps its own field order
and defaults; :func:`train_config_from` copies them across by name.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gicho.train import TrainConfig

__all__ = ["train_config_from"]


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
