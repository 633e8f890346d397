"""The optimizer hook: parameter groups with their own weight decay and learning-rate scale.

A ``param_groups`` callable ``(model, config) -> list[dict]`` returns torch parameter groups.
Each dict holds ``"params"`` and may set ``"weight_decay"`` and ``"lr_scale"`` (a multiple of
``config.lr``; the schedule then scales each group's own base rate). The Trainer builds AdamW
over them. :func:`default_param_groups` is the rule used when no hook is given (as in nanoGPT:
no decay on 1-D tensors); :func:`no_decay_param_groups` excludes parameters by name (as in
BERT: biases, LayerNorm and embeddings) and can give a head its own rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from gicho.train.config import TrainConfig

__all__ = [
    "ParamGroups",
    "build_optimizer",
    "build_scheduler",
    "default_param_groups",
    "no_decay_param_groups",
]

ParamGroups = Callable[[nn.Module, "TrainConfig"], list[dict[str, Any]]]

_GROUP_KEYS = {"params", "weight_decay", "lr_scale", "name"}


def _trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def default_param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """``config.weight_decay`` on parameters of 2 or more dimensions; none on biases and
    normalisation weights (1-D).

    Returns
    -------
    list of dict
        Up to two groups, ``"decay"`` and ``"no_decay"``, leaving out empty ones.
    """
    params = _trainable(model)
    groups = [{"name": "decay", "params": [p for _, p in params if p.ndim >= 2],
               "weight_decay": config.weight_decay},
              {"name": "no_decay", "params": [p for _, p in params if p.ndim < 2], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def no_decay_param_groups(
    model: nn.Module,
    config: TrainConfig,
    no_decay: Iterable[str] = ("bias", "norm", "LayerNorm", "embeddings"),
    lr_scale: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Groups by parameter name: no weight decay where the name contains a ``no_decay`` part,
    and a learning-rate multiple for names under a ``lr_scale`` prefix.

    Use it as ``Trainer(..., param_groups=no_decay_param_groups)`` or, with arguments,
    ``param_groups=lambda m, c: no_decay_param_groups(m, c, lr_scale={"head": 10.0})``.

    Parameters
    ----------
    model : torch.nn.Module
    config : TrainConfig
        Gives ``weight_decay`` for the decayed groups.
    no_decay : iterable of str
        Substrings (case-sensitive) of the dotted parameter names that are not decayed.
    lr_scale : mapping of str to float, optional
        Name prefix (``"head"`` matches ``head.weight`` and ``head.out.bias``) → multiple of
        ``config.lr``. The longest matching prefix wins; other parameters get 1.

    Returns
    -------
    list of dict
        One group per (decay, scale) pair present, named e.g. ``"decay"`` or
        ``"no_decay@head"``.
    """
    no_decay = tuple(no_decay)
    if not all(isinstance(part, str) and part for part in no_decay):
        raise TypeError(f"argument `no_decay` must hold non-empty strings; got {no_decay!r}")
    scales = dict(lr_scale or {})
    for prefix, scale in scales.items():
        _check_scale(scale, f"lr_scale[{prefix!r}]")
    groups: dict[tuple[bool, str], dict[str, Any]] = {}
    for name, param in _trainable(model):
        decay = not any(part in name for part in no_decay)
        matches = [p for p in scales if name == p or name.startswith(p + ".")]
        prefix = max(matches, key=len) if matches else ""
        key = (decay, prefix)
        if key not in groups:
            label = ("decay" if decay else "no_decay") + (f"@{prefix}" if prefix else "")
            groups[key] = {"name": label, "params": [],
                           "weight_decay": config.weight_decay if decay else 0.0,
                           "lr_scale": scales.get(prefix, 1.0)}
        groups[key]["params"].append(param)
    return list(groups.values())


def _check_scale(scale: Any, name: str) -> None:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) \
            or scale < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (a multiple of config.lr); got {scale!r}")


def _check_groups(groups: Any, model: nn.Module) -> list[dict[str, Any]]:
    where = "param_groups(model, config)"
    if not isinstance(groups, (list, tuple)) or not groups:
        raise TypeError(f"{where} must return a non-empty list of dicts; got {groups!r:.80}")
    names = {id(p): n for n, p in model.named_parameters()}
    seen: dict[int, int] = {}
    out = []
    for i, group in enumerate(groups):
        if not isinstance(group, Mapping) or "params" not in group:
            raise TypeError(f"{where}[{i}] must be a dict with 'params'; got {type(group).__name__}")
        unknown = sorted(set(group) - _GROUP_KEYS)
        if unknown:
            hint = " (set 'lr_scale', a multiple of config.lr)" if "lr" in unknown else ""
            raise ValueError(f"{where}[{i}] has unknown key(s) {', '.join(unknown)}{hint}; allowed: "
                             f"{', '.join(sorted(_GROUP_KEYS))}")
        params = list(group["params"])
        for p in params:
            if not isinstance(p, nn.Parameter) or id(p) not in names:
                raise TypeError(f"{where}[{i}]['params'] must hold parameters of the model; got "
                                f"{type(p).__name__}")
            if id(p) in seen:
                raise ValueError(f"parameter {names[id(p)]} is in {where}[{seen[id(p)]}] and "
                                 f"[{i}]; each parameter belongs to one group")
            seen[id(p)] = i
        scale = group.get("lr_scale", 1.0)
        _check_scale(scale, f"{where}[{i}]['lr_scale']")
        decay = group.get("weight_decay", 0.0)
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not decay >= 0:
            raise ValueError(f"{where}[{i}]['weight_decay'] must be a number >= 0; got {decay!r}")
        out.append({**group, "params": params, "lr_scale": float(scale), "weight_decay": float(decay)})
    left_out = [n for n, p in _trainable(model) if id(p) not in seen]
    if left_out:
        shown = ", ".join(left_out[:8]) + (f" and {len(left_out) - 8} more" if len(left_out) > 8 else "")
        raise ValueError(f"{where} leaves trainable parameters out of every group: {shown}; put "
                         "them in a group, or set requires_grad=False to freeze them")
    return out


def build_optimizer(model: nn.Module, config: TrainConfig, param_groups: ParamGroups | None,
                    device: torch.device) -> torch.optim.AdamW:
    """AdamW (fused: one kernel for all tensors, on the CPU and CUDA) over
    ``param_groups(model, config)`` (:func:`default_param_groups` when None); each group's
    ``lr`` is ``config.lr * lr_scale``.

    Raises
    ------
    ValueError
        When the model has no trainable parameter, or the groups are malformed: unknown keys,
        a parameter in two groups, a trainable parameter in none, a negative scale or decay.
    """
    if not _trainable(model):
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    hook = param_groups if param_groups is not None else default_param_groups
    groups = _check_groups(hook(model, config), model)
    for group in groups:
        group["lr"] = config.lr * group["lr_scale"]
    # The fused kernel updates every tensor in one pass (the same arithmetic as the per-tensor
    # loop; tested); torch has it for CPU and CUDA tensors.
    kwargs = {"fused": True} if device.type in ("cpu", "cuda") else {}
    return torch.optim.AdamW(groups, lr=config.lr, **kwargs)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Warmup then ``config.lr_schedule`` decay (:func:`~gicho.train.config.lr_factor`) of each
    group's own base rate (``config.lr * lr_scale``)."""
    from gicho.train.config import lr_factor

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(step, warmup_steps=config.warmup_steps, max_steps=config.max_steps,
                               min_lr_ratio=config.min_lr_ratio, schedule=config.lr_schedule),
    )
