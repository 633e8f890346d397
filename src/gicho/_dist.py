"""This process's place in a ``torchrun`` launch, read from the environment (torch-free).

``torchrun`` starts one process per device and tells each where it stands through the
variables ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. These readers answer before any process
group exists (a run directory is chosen, a file is written by rank 0 only) and without
importing torch; :mod:`gicho.train.distributed` joins the process group itself. Without
torchrun's variables this is rank 0 of a world of 1.
"""

from __future__ import annotations

import os

__all__ = ["env_int", "is_main_process", "local_rank", "rank", "world_size"]


def env_int(name: str, default: int) -> int:
    """The integer environment variable ``name`` (``default`` when unset or empty).

    Raises
    ------
    ValueError
        When it is set to something other than an integer, naming the variable.
    """
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer; got {raw!r}") from None


def rank() -> int:
    """Global rank of this process (``RANK``; 0 without torchrun)."""
    return env_int("RANK", 0)


def world_size() -> int:
    """Number of processes (``WORLD_SIZE``; 1 without torchrun)."""
    return env_int("WORLD_SIZE", 1)


def local_rank() -> int:
    """This process's index on its node (``LOCAL_RANK``; 0 without torchrun)."""
    return env_int("LOCAL_RANK", 0)


def is_main_process() -> bool:
    """Whether this is rank 0: the process that writes the run's files and prints."""
    return rank() == 0
