"""What every collate function that draws its own random numbers shares (MLM masks, MixUp/CutMix).

Such a collate owns a ``torch.Generator`` rather than drawing from torch's global one, so that

* a training checkpoint saves its state (``state_dict`` / ``load_state_dict``; the Trainer calls
  them) and a resumed run draws what the interrupted one would have;
* each DataLoader worker, which holds a copy, re-seeds it once from ``(seed, worker seed)``
  (:func:`derive_seed`), so that workers do not repeat each other's draws.

This module imports torch only: the image and the text data code both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from gicho._validation import describe

__all__ = ["SeededCollate", "derive_seed"]

_SEED_MIX = 0x9E37_79B9_7F4A_7C15  # 2**64 / golden ratio: spreads (seed, stream) pairs apart
_SEED_MASK = (1 << 63) - 1  # torch seeds are non-negative int64


def derive_seed(seed: int, stream: int) -> int:
    """A seed for stream ``stream`` (epoch, worker) of a generator seeded ``seed``; same in every process."""
    for name, value in (("seed", seed), ("stream", stream)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"argument `{name}` must be an int; got {describe(value)}")
    return (seed * _SEED_MIX + stream) & _SEED_MASK


class SeededCollate:
    """Base of a collate function with its own generator: call :meth:`_seed_generator` in
    ``__init__``, draw from :meth:`_rng`."""

    seed: int

    def _seed_generator(self, seed: int) -> None:
        derive_seed(seed, 0)  # checks that the seed is an int
        self.seed = seed
        self._generator = torch.Generator().manual_seed(seed)
        self._worker_seed: int | None = None

    def _rng(self) -> torch.Generator:
        """The generator, re-seeded once per DataLoader worker (a worker's copy: its own stream)."""
        info = torch.utils.data.get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            self._generator.manual_seed(derive_seed(self.seed, info.seed))
        return self._generator

    def state_dict(self) -> dict[str, Any]:
        """The generator's state: a checkpoint saves it, so a resumed run draws the same numbers."""
        return {"generator": self._generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Raises
        ------
        ValueError
            When ``state`` is not such a mapping (a ``uint8`` generator-state tensor).
        """
        if not isinstance(state, Mapping) or set(state) != {"generator"}:
            raise ValueError(f"argument `state` must be a mapping with the key 'generator'; got "
                             f"{type(state).__name__} {sorted(state) if isinstance(state, Mapping) else ''}")
        value = state["generator"]
        expected = self._generator.get_state()
        if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8 or value.shape != expected.shape:
            raise ValueError(f"argument `state['generator']` must be a uint8 tensor of shape "
                             f"{tuple(expected.shape)} (a CPU generator's state); got {describe(value)}")
        self._generator.set_state(value.clone())
        self._worker_seed = None
