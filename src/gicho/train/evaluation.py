"""Evaluation: the Trainer's ``eval_loss`` plus a task's metrics, for any model and data set.

Usable without a Trainer, e.g. to re-evaluate a model reloaded from a checkpoint::

    load_model_weights(model, best_checkpoint(run_dir))
    metrics = evaluate_model(model, eval_data, task_metrics)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import default_collate

from gicho.train.data import batch_len, make_loader, to_device

__all__ = ["Metrics", "evaluate_model", "extract_loss"]

Metrics = Callable[[nn.Module, Iterable[dict[str, torch.Tensor]]], dict[str, float]]


def extract_loss(output: Any) -> torch.Tensor | None:
    """The scalar ``loss`` of a model output (dict item or attribute), or None when absent.

    Raises
    ------
    TypeError
        When ``loss`` is present but not a one-element tensor.
    """
    loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
    if loss is None:
        return None
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else ""
        raise TypeError(f"the model's `loss` must be a scalar tensor; got {type(loss).__name__}{shape}")
    return loss.reshape(())


def _as_metrics(values: Any) -> dict[str, float]:
    if not isinstance(values, Mapping):
        raise TypeError(f"the metrics callable must return a dict of floats; got {type(values).__name__}")
    out = {}
    for key, value in values.items():
        if key in ("step", "split"):
            raise ValueError(f"the metrics callable returned the reserved key {key!r}")
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {key!r} must be a number; got {type(value).__name__}") from None
    return out


def evaluate_model(
    model: nn.Module,
    data: Any,
    metrics: Metrics | None = None,
    *,
    batch_size: int = 32,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    device: torch.device | str | None = None,
    autocast_bf16: bool = False,
    num_workers: int = 0,
    seed: int = 0,
) -> dict[str, float]:
    """``eval_loss`` and ``metrics(model, batches)`` of ``model`` on ``data``.

    The model runs in eval mode under ``torch.no_grad()`` (its mode is restored afterwards).
    ``eval_loss`` is the mean of the batch losses weighted by batch size (absent when the model
    returns no loss, e.g. when the batches carry no labels); a metric named ``eval_loss`` from
    the callable is kept only then.

    Parameters
    ----------
    model : torch.nn.Module
    data : map-style Dataset
    metrics : callable or None
        ``metrics(model, batches) -> dict[str, float]``; ``batches`` iterates the data once,
        in order, already on ``device``.
    batch_size : int
    collate_fn : callable or None
        torch's default collate when None.
    device : torch.device, str or None
        Where batches go; None uses the device of the model's first parameter.
    autocast_bf16 : bool
        Run the forward passes (and the metrics callable) under bf16 autocast.
    num_workers, seed : int
        DataLoader workers and the seed of its private generator.

    Returns
    -------
    dict[str, float]
    """
    if device is None:
        device = next(model.parameters(), torch.empty(0)).device
    device = torch.device(device)
    loader = make_loader(data, collate_fn or default_collate, seed=seed, num_workers=num_workers,
                         pin_memory=device.type == "cuda", batch_size=batch_size)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_bf16)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            total = torch.zeros((), dtype=torch.float64, device=device)
            count = 0
            for raw in loader:
                batch = to_device(raw, device)
                with autocast:
                    loss = extract_loss(model(**batch))
                if loss is not None:
                    n = batch_len(batch)
                    total += loss.detach().double() * n
                    count += n
            out = {"eval_loss": (total / count).item()} if count else {}
            if metrics is not None:
                with autocast:
                    user = _as_metrics(metrics(model, (to_device(b, device) for b in loader)))
                out.update({k: v for k, v in user.items() if not (k == "eval_loss" and count)})
    finally:
        model.train(was_training)
    return out
