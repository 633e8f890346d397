"""Evaluation in one pass: the loss and every streaming metric from the same forward outputs.

A metric is a *streaming accumulator* (:class:`StreamingMetric`): the Trainer (or
:func:`evaluate_model`) builds a fresh one per evaluation from a factory, runs the model once
per batch, and hands the outputs and the batch to ``update``; ``compute`` gives the numbers at
the end. Ready accumulators live in :mod:`gicho.metrics` (re-exported by :mod:`gicho.train`).

Usable without a Trainer, e.g. to re-evaluate a model reloaded from a checkpoint::

    load_model_weights(model, best_checkpoint(run_dir))
    metrics = evaluate_model(model, eval_data, metrics=ClassificationAccuracy)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from torch.utils.data import default_collate

from gicho.train.data import batch_len, make_loader, to_device

__all__ = [
    "EvalForward",
    "MetricsFactory",
    "StreamingMetric",
    "evaluate_model",
    "extract_loss",
    "extract_n_items",
    "make_metrics",
]


@runtime_checkable
class StreamingMetric(Protocol):
    """What a metrics factory returns: a fresh accumulator for one evaluation pass.

    ``update`` is called once per batch, under ``torch.no_grad()`` with the model in eval mode,
    with the model's outputs for that batch (``model(**batch)``, or the Trainer's
    ``eval_forward``) and the batch itself (on the device). ``compute`` is called once at the
    end and returns named numbers; keep per-batch work on the device (no ``.item()``) so the
    evaluation does not synchronise with the host on every batch.
    """

    def update(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> None:
        """Add one batch."""

    def compute(self) -> dict[str, float]:
        """The metrics over every batch seen."""


MetricsFactory = Callable[[], StreamingMetric]
EvalForward = Callable[[nn.Module, dict[str, Any]], Any]


def _output_item(output: Any, name: str) -> Any:
    return output.get(name) if isinstance(output, Mapping) else getattr(output, name, None)


def extract_loss(output: Any) -> torch.Tensor | None:
    """The scalar ``loss`` of a model output (dict item or attribute), or None when absent.

    Raises
    ------
    TypeError
        When ``loss`` is present but not a one-element tensor.
    """
    loss = _output_item(output, "loss")
    if loss is None:
        return None
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else ""
        raise TypeError(f"the model's `loss` must be a scalar tensor; got {type(loss).__name__}{shape}")
    return loss.reshape(())


def extract_n_items(output: Any, batch: Mapping[str, Any]) -> int | torch.Tensor:
    """How many items the output's ``loss`` averages over: its ``n_items``, else the batch size.

    ``n_items`` counts, e.g., the non-ignored target tokens of a token-level loss; it may be an
    int or a one-element tensor (kept on the device: no synchronisation).

    Raises
    ------
    TypeError
        When ``n_items`` is neither an int nor a one-element tensor.
    ValueError
        When an int ``n_items`` is negative.
    """
    n = _output_item(output, "n_items")
    if n is None:
        return batch_len(batch)
    if isinstance(n, torch.Tensor) and n.numel() == 1 and not n.is_complex() and n.dtype != torch.bool:
        return n.reshape(())
    if not isinstance(n, int) or isinstance(n, bool):
        shape = f" of shape {tuple(n.shape)}" if isinstance(n, torch.Tensor) else ""
        raise TypeError("the model's `n_items` must be an int or a one-element tensor (the number of "
                        f"items its loss averages over); got {type(n).__name__}{shape}")
    if n < 0:
        raise ValueError(f"the model's `n_items` must be >= 0; got {n}")
    return n


def weighted_loss(loss: torch.Tensor, n: int | torch.Tensor) -> torch.Tensor:
    """``loss * n`` in the loss's precision, and 0 when ``n`` is 0: a batch with nothing to
    average gives a NaN mean loss that must poison neither the sum nor the gradients. The
    result stays in the autograd graph either way (its gradient is 0 when ``n`` is 0)."""
    if isinstance(n, int):
        return loss * n if n else loss.nan_to_num() * 0.0
    n = n.to(loss.dtype)
    return torch.where(n > 0, loss * n, torch.zeros_like(loss))


def make_metrics(metrics: MetricsFactory | Sequence[MetricsFactory] | None) -> list[StreamingMetric]:
    """Fresh accumulators from a factory, a sequence of factories, or None.

    Raises
    ------
    TypeError
        When a factory cannot be called without arguments or does not return a
        :class:`StreamingMetric` (naming the old ``metrics(model, batches)`` form).
    """
    if metrics is None:
        return []
    factories = list(metrics) if isinstance(metrics, Sequence) else [metrics]
    out = []
    for factory in factories:
        if not callable(factory):
            raise TypeError(f"argument `metrics` must be a factory (a callable returning a "
                            f"StreamingMetric) or a list of them; got {type(factory).__name__}")
        try:
            inspect.signature(factory).bind()
        except TypeError:
            raise TypeError(
                f"argument `metrics` must be a factory called with no arguments that returns a "
                f"fresh StreamingMetric (update(outputs, batch), compute()); {_name(factory)} needs "
                "arguments. The old metrics(model, batches) form is gone: it made every "
                "evaluation run the model twice; see gicho.train.StreamingMetric") from None
        except ValueError:
            pass  # no signature to inspect (some builtins): just call it
        metric = factory()
        if not (callable(getattr(metric, "update", None)) and callable(getattr(metric, "compute", None))):
            raise TypeError(f"argument `metrics`: {_name(factory)}() must return an object with "
                            f"update(outputs, batch) and compute(); got {type(metric).__name__}")
        out.append(metric)
    return out


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__name__


def _as_metrics(values: Any, metric: Any) -> dict[str, float]:
    where = f"{type(metric).__name__}.compute()"
    if not isinstance(values, Mapping):
        raise TypeError(f"{where} must return a dict of floats; got {type(values).__name__}")
    out = {}
    for key, value in values.items():
        if key in ("step", "split"):
            raise ValueError(f"{where} returned the reserved key {key!r}")
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {key!r} must be a number; got {type(value).__name__} "
                            f"(from {where})") from None
    return out


def default_forward(model: nn.Module, batch: dict[str, Any]) -> Any:
    """``model(**batch)``: the evaluation forward pass unless an ``eval_forward`` is given."""
    return model(**batch)


def evaluate_model(
    model: nn.Module,
    data: Any,
    metrics: MetricsFactory | Sequence[MetricsFactory] | None = None,
    *,
    eval_forward: EvalForward | None = None,
    batch_size: int = 32,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    device: torch.device | str | None = None,
    autocast_bf16: bool = False,
    num_workers: int = 0,
    seed: int = 0,
) -> dict[str, float]:
    """``eval_loss`` and the streaming metrics of ``model`` on ``data``, in one pass.

    The model runs once per batch, in eval mode under ``torch.no_grad()`` (its mode is restored
    afterwards); the loss and every metric are updated from the same outputs. ``eval_loss`` is
    the mean of the batch losses weighted by each output's ``n_items`` (the batch size when
    absent), so a token-level loss equals the loss over all tokens at once. It is absent when
    the model returns no loss (e.g. batches without labels); a metric named ``eval_loss`` is
    kept only then.

    Parameters
    ----------
    model : torch.nn.Module
    data : map-style Dataset
    metrics : factory, sequence of factories, or None
        Each factory returns a fresh :class:`StreamingMetric` (a class with default arguments,
        such as :class:`~gicho.metrics.ClassificationAccuracy`, is one).
    eval_forward : callable or None
        ``eval_forward(model, batch) -> outputs``; ``model(**batch)`` when None. Use it when a
        metric needs more than the plain forward gives, e.g. a seq2seq model's greedy
        decoding: ``lambda m, b: {**m(**b), "generated": m.generate(b["src"])}``.
    batch_size : int
    collate_fn : callable or None
        torch's default collate when None.
    device : torch.device, str or None
        Where batches go; None uses the device of the model's first parameter.
    autocast_bf16 : bool
        Run the forward passes under bf16 autocast.
    num_workers, seed : int
        DataLoader workers and the seed of its private generator.

    Returns
    -------
    dict[str, float]

    Raises
    ------
    ValueError
        When two metrics report the same name.
    """
    accumulators = make_metrics(metrics)
    forward = eval_forward if eval_forward is not None else default_forward
    if not callable(forward):
        raise TypeError(f"argument `eval_forward` must be callable or None; got {type(forward).__name__}")
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
            items = torch.zeros((), dtype=torch.float64, device=device)
            has_loss = False
            for raw in loader:
                batch = to_device(raw, device)
                with autocast:
                    outputs = forward(model, batch)
                loss = extract_loss(outputs)
                if loss is not None:
                    n = extract_n_items(outputs, batch)
                    total += weighted_loss(loss.detach().double(), n)
                    items += n
                    has_loss = True
                for metric in accumulators:
                    metric.update(outputs, batch)
            out = {"eval_loss": (total / items).item()} if has_loss else {}
            source: dict[str, str] = {}
            for metric in accumulators:
                for key, value in _as_metrics(metric.compute(), metric).items():
                    if key in source:
                        raise ValueError(f"metrics {source[key]} and {type(metric).__name__} both "
                                         f"report {key!r}; give them distinct names")
                    source[key] = type(metric).__name__
                    if not (key == "eval_loss" and has_loss):
                        out[key] = value
    finally:
        model.train(was_training)
    return out
