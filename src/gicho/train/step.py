"""One optimizer step with gradient accumulation, and the losses kept between log lines.

A step's gradient is that of one big batch holding all its micro-batches on all ranks: each
micro-batch's loss is weighted by the items it averages over (a model output's ``n_items``,
the batch size when absent), and the summed gradient is divided by the items of every rank.
The per-step losses stay on the device until a ``"train"`` log line, where they are reduced,
checked finite and averaged: one device synchronisation per log line, not per step.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gicho.train.config import TrainConfig
from gicho.train.data import batch_len
from gicho.train.distributed import all_reduce_sum
from gicho.train.evaluation import extract_loss, extract_n_items, weighted_loss
from gicho.train.result import non_finite_error

__all__ = ["Interval", "flush", "interval_losses", "train_step"]


class Interval:
    """Per-step losses, items, samples and time since the last ``"train"`` log line."""

    def __init__(self, pending: Sequence[float] = ()) -> None:
        self.reset()
        self.pending = list(pending)  # losses restored from an interrupt checkpoint

    def reset(self) -> None:
        self.pending: list[float] = []
        self.loss_sums: list[torch.Tensor] = []  # this rank's Σ loss·n per step
        self.items: list[torch.Tensor] = []  # all ranks' Σ n per step
        self.samples = 0
        self.start = time.perf_counter()


def train_step(model: nn.Module, wrapped: nn.Module, stream: Iterator[dict[str, Any]],
               interval: Interval, *, config: TrainConfig, optimizer: torch.optim.Optimizer,
               scheduler: Any, ddp: nn.parallel.DistributedDataParallel | None, world_size: int,
               device: torch.device, autocast: Callable[[], Any]) -> None:
    """One optimizer step; its gradient is that of the mean loss over all its items.

    ``wrapped`` (DDP and/or ``torch.compile`` around ``model``) runs the forward passes; the
    gradients are rescaled, clipped and applied on ``model``'s parameters.
    """
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    items = torch.zeros((), dtype=torch.float64, device=device)
    for micro in range(config.grad_accum_steps):
        batch = next(stream)
        interval.samples += batch_len(batch)
        # Gradients are all-reduced only on the last micro-batch of the step.
        last = micro == config.grad_accum_steps - 1
        sync = ddp.no_sync() if ddp is not None and not last else contextlib.nullcontext()
        with sync:
            with autocast():
                output = wrapped(**batch)
            loss = extract_loss(output)
            if loss is None:
                raise TypeError(f"model(**batch) returned no `loss` (batch keys: {sorted(batch)}); "
                                "training batches must carry labels")
            n = extract_n_items(output, batch)
            weighted = weighted_loss(loss.float(), n)  # the loss summed over the items
            weighted.backward()
        loss_sum += weighted.detach().double()
        items += n
    # Σ items over every rank; DDP averaged the gradients over the ranks, hence world_size.
    items = all_reduce_sum(items)
    scale = (world_size / items.clamp_min(1)).float()
    for param in model.parameters():
        if param.grad is not None:
            param.grad.mul_(scale.to(param.grad.dtype))
    if config.grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    interval.loss_sums.append(loss_sum)
    interval.items.append(items)


def interval_losses(interval: Interval, step: int, *, last_checkpoint: Path | None,
                    run_dir: Path | None) -> tuple[list[float], float]:
    """Every step's loss since the last log line (checked finite) and the items seen.

    ``step`` is the last step taken; ``last_checkpoint`` and ``run_dir`` go into the message
    of the :class:`~gicho.train.NonFiniteLossError` raised for a NaN or infinite loss.
    """
    values, counts = list(interval.pending), [math.inf] * len(interval.pending)
    if interval.loss_sums:
        # Losses stay on the device until here: one synchronisation per log line, not per step.
        sums = all_reduce_sum(torch.stack(interval.loss_sums))
        step_items = torch.stack(interval.items)
        values += (sums / step_items).tolist()
        counts += step_items.tolist()
    first = step - len(values) + 1
    for offset, (value, count) in enumerate(zip(values, counts, strict=True)):
        if count == 0:
            raise ValueError(f"step {first + offset} had no item to average its loss over: "
                             "every micro-batch reported n_items=0 (are all its labels -100?)")
        if not math.isfinite(value):
            raise non_finite_error(first + offset, value, last_checkpoint, run_dir)
    return values, sum(c for c in counts if math.isfinite(c))


def flush(interval: Interval, step: int, lr: float, *, world_size: int,
          last_checkpoint: Path | None, run_dir: Path | None) -> tuple[dict[str, Any], float]:
    """One ``"train"`` event for the steps since the last one, and the items per second."""
    values, items = interval_losses(interval, step, last_checkpoint=last_checkpoint, run_dir=run_dir)
    elapsed = time.perf_counter() - interval.start
    samples = interval.samples * world_size
    event = {"step": step, "split": "train", "loss": sum(values) / len(values), "lr": lr,
             "throughput": samples / elapsed if elapsed > 0 else 0.0}
    interval.reset()
    return event, items / elapsed if elapsed > 0 else 0.0
