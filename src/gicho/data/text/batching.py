"""Batching token sequences: padding to the batch's longest, length buckets, padding fraction.

Every batch is a dict of ``(B, T)`` int64 tensors in Hugging Face's convention:
``input_ids``, ``token_type_ids`` (segment ids) and ``attention_mask`` (1 = a real token,
0 = padding), plus ``labels`` when the items carry them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from gicho._validation import check_positive, describe
from gicho.data._seeded import derive_seed

__all__ = [
    "DEFAULT_BUCKET_MULTIPLIER",
    "LengthBucketSampler",
    "PadCollator",
    "derive_seed",
    "pad_batch",
    "padding_fraction",
]

DEFAULT_BUCKET_MULTIPLIER = 50  # a bucket holds this many batches' worth of items, sorted by length
def _as_long(value: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(value)
    if t.dim() == 1 and t.numel() == 0:
        return t.long()
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.dim() != 1:
        raise ValueError(f"item field `{name}` must be a 1-D integer sequence; got {describe(value)}")
    return t.long()


def pad_batch(items: Sequence[Mapping[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad items' ``input_ids`` (and ``token_type_ids``) to the longest in the batch.

    Parameters
    ----------
    items : sequence of dict
        Each with ``input_ids`` (L_i,) and optionally ``token_type_ids`` (L_i,) and
        ``labels``: a scalar (sequence classification) or (L_i,) (token labels, padded
        with -100).
    pad_id : int
        The id written at padded positions of ``input_ids`` (segment id 0 there).

    Returns
    -------
    dict
        ``input_ids``, ``token_type_ids``, ``attention_mask``: (B, T) int64, T = max L_i;
        ``labels``: (B,) or (B, T) int64 when the items have labels.
    """
    if len(items) == 0:
        raise ValueError("cannot collate an empty list of items")
    ids = [_as_long(it["input_ids"], "input_ids") for it in items]
    if any(len(t) == 0 for t in ids):
        raise ValueError("an item has no input_ids (length 0); every sequence needs at least one token")
    lengths = torch.tensor([len(t) for t in ids])
    pad = torch.nn.utils.rnn.pad_sequence
    batch = {"input_ids": pad(ids, batch_first=True, padding_value=pad_id)}  # (B, T)
    if any("token_type_ids" in it for it in items):
        types = [_as_long(it["token_type_ids"], "token_type_ids") if "token_type_ids" in it
                 else torch.zeros_like(t) for it, t in zip(items, ids, strict=True)]
        if any(len(a) != len(b) for a, b in zip(types, ids, strict=True)):
            raise ValueError("an item's token_type_ids and input_ids differ in length")
        batch["token_type_ids"] = pad(types, batch_first=True, padding_value=0)
    else:
        batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
    batch["attention_mask"] = (torch.arange(batch["input_ids"].shape[1])[None, :] < lengths[:, None]).long()
    if "labels" in items[0]:
        labels = [torch.as_tensor(it["labels"]).long() for it in items]
        if labels[0].dim() == 0:
            batch["labels"] = torch.stack(labels)  # (B,)
        else:
            batch["labels"] = pad(labels, batch_first=True, padding_value=-100)  # (B, T)
    return batch


@dataclass(frozen=True)
class PadCollator:
    """Picklable ``collate_fn`` for a ``DataLoader``: :func:`pad_batch` with a fixed ``pad_id``."""

    pad_id: int

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        return pad_batch(items, self.pad_id)


def padding_fraction(batch: Mapping[str, torch.Tensor]) -> float:
    """Share of a batch's positions that are padding: ``1 - attention_mask.mean()``."""
    mask = batch["attention_mask"]
    return float(1.0 - mask.float().mean()) if mask.numel() else 0.0


class LengthBucketSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of indices with similar lengths, so batches carry little padding.

    Each epoch the indices are shuffled, cut into buckets of ``batch_size *
    bucket_multiplier``, each bucket is sorted by length and cut into batches, and the batches
    are shuffled (as in fairseq/AllenNLP bucketing). Pass it as ``batch_sampler=``.

    Parameters
    ----------
    lengths : sequence of int
        The length of every item.
    batch_size : int
    seed : int, default=0
        Epoch ``e`` uses the generator seeded with ``(seed, e)``: reproducible, different
        every epoch (the epoch counts the iterations; :meth:`set_epoch` sets it).
    bucket_multiplier : int, default=50
    drop_last : bool, default=False
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0,
                 bucket_multiplier: int = DEFAULT_BUCKET_MULTIPLIER, drop_last: bool = False):
        check_positive(batch_size, "batch_size", integer=True)
        check_positive(bucket_multiplier, "bucket_multiplier", integer=True)
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        if self.lengths.numel() == 0:
            raise ValueError("argument `lengths` is empty; there is nothing to batch")
        derive_seed(seed, 0)  # checks that the seed is an int
        self.batch_size, self.seed = batch_size, seed
        self.bucket_multiplier, self.drop_last = bucket_multiplier, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        self.epoch += 1
        order = torch.randperm(len(self.lengths), generator=g)
        bucket = self.batch_size * self.bucket_multiplier
        batches = []
        for start in range(0, len(order), bucket):
            chunk = order[start:start + bucket]
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            for b in range(0, len(chunk), self.batch_size):
                batch = chunk[b:b + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch.tolist())
        for i in torch.randperm(len(batches), generator=g).tolist():
            yield batches[i]
