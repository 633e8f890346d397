"""Seeded, resumable, rank-sharded micro-batches.

Epoch ``e`` is the permutation that ``DistributedSampler`` draws from ``seed + e`` (in a
single process too, as a world of one); rank ``r`` takes every ``world_size``-th index of it
starting at ``r`` and cuts its share into micro-batches. :class:`MicroBatches` counts the
micro-batches consumed (``epoch``, ``position``), which is all a checkpoint needs to resume the
stream exactly, without reading the skipped samples.

Because the ranks interleave, global micro-batch ``k`` of a ``world_size``-process run holds
the same samples as micro-batch ``k`` of one process with ``batch_size * world_size``
(when the dataset size is a multiple of the global batch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

__all__ = ["MicroBatches", "batch_len", "make_loader", "to_device"]


def to_device(batch: Any, device: torch.device) -> dict[str, Any]:
    """Move the tensors of a dict batch to ``device`` (other values pass through)."""
    if not isinstance(batch, Mapping):
        raise TypeError(f"a batch must be a dict of tensors for model(**batch); got "
                        f"{type(batch).__name__}: return dicts from the dataset or pass collate_fn")
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}


def batch_len(batch: Mapping[str, Any]) -> int:
    """Number of samples in a batch: the leading size of its first non-scalar tensor."""
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return int(value.shape[0])
    return 1


def make_loader(data: Any, collate_fn: Callable[[list[Any]], Any], *, seed: int,
                num_workers: int = 0, pin_memory: bool = False, **kwargs: Any) -> DataLoader:
    """A DataLoader with its own generator seeded by ``seed``.

    Without a generator, every new DataLoader iterator draws its worker seed from torch's global
    generator, whose state is part of a checkpoint; an iterator created on resume would then
    shift the dropout masks of every following step.
    """
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(data, collate_fn=collate_fn, num_workers=num_workers,
                      pin_memory=pin_memory, generator=generator, **kwargs)


class MicroBatches:
    """Endless stream of training micro-batches over epochs, resumable from (epoch, position).

    Parameters
    ----------
    dataset : map-style Dataset
    collate_fn : callable
    batch_size : int
        Micro-batch size per rank.
    seed : int
        Base seed of the epoch permutations.
    drop_last : bool
        Drop each epoch's incomplete last micro-batch (and the tail that does not divide
        evenly among ranks; otherwise ``DistributedSampler`` pads by repeating samples).
    world_size, rank : int
        This process's share of each epoch.
    device : torch.device
        Where batches are moved.
    num_workers : int
        DataLoader workers.

    Attributes
    ----------
    epoch : int
        Epoch of the next micro-batch.
    position : int
        Micro-batches of ``epoch`` consumed so far.
    """

    def __init__(self, dataset: Any, collate_fn: Callable[[list[Any]], Any], *, batch_size: int,
                 seed: int, drop_last: bool, world_size: int, rank: int, device: torch.device,
                 num_workers: int = 0) -> None:
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.world_size = world_size
        self.rank = rank
        self.device = device
        self.num_workers = num_workers
        self.epoch = 0
        self.position = 0

    def _sampler(self, shuffle: bool = True) -> DistributedSampler:
        return DistributedSampler(self.dataset, num_replicas=self.world_size, rank=self.rank,
                                  shuffle=shuffle, seed=self.seed, drop_last=self.drop_last)

    def check_nonempty(self) -> None:
        """Raise ValueError when an epoch would hold no micro-batch for this rank."""
        per_rank = len(self._sampler(shuffle=False))
        if per_rank < (self.batch_size if self.drop_last else 1):
            raise ValueError(
                f"train_data has {len(self.dataset)} samples, {per_rank} per process: fewer than "
                f"batch_size={self.batch_size}, so drop_last=True leaves no batch; lower "
                "batch_size or set drop_last=False"
            )

    @property
    def batches_per_epoch(self) -> int:
        """Micro-batches in each epoch on this rank (the same for every epoch)."""
        per_rank = len(self._sampler(shuffle=False))
        full, rest = divmod(per_rank, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """Dataset indices of each micro-batch of ``epoch`` on this rank."""
        sampler = self._sampler()
        sampler.set_epoch(epoch)
        indices = list(sampler)
        size = self.batch_size
        batches = [indices[i:i + size] for i in range(0, len(indices), size)]
        if self.drop_last and batches and len(batches[-1]) < size:
            batches.pop()
        return batches

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            remaining = self.epoch_batches(self.epoch)[self.position:]
            if remaining:
                loader = make_loader(self.dataset, self.collate_fn, seed=self.seed + self.epoch,
                                     num_workers=self.num_workers,
                                     pin_memory=self.device.type == "cuda", batch_sampler=remaining)
                for batch in loader:
                    self.position += 1
                    yield to_device(batch, self.device)
            self.epoch += 1
            self.position = 0
