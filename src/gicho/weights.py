"""Model weights on disk: safetensors read/write, strict loading with key maps, QKV fuse/split.

This module sits below both :mod:`gicho.models` (``from_pretrained`` / ``save_pretrained``)
and :mod:`gicho.train` (checkpoints), so neither has to import the other.

* :func:`save_model` writes ``model.safetensors`` (+ ``config.json``) atomically;
  :func:`save_model_files` writes a model's ``save_pretrained`` files (``model/``'s format,
  and the trainer's step directories'), or ``save_model``'s for a plain module.
* :func:`read_state_dict` reads a ``.safetensors`` file, or a legacy ``pytorch_model.bin``
  only through ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects.
* :func:`tensor_shapes` reads only a file's header, so that sizes in an untrusted
  ``config.json`` can be checked against the weights before any tensor is allocated
  (see :func:`check_shapes`, used with a model built on the ``meta`` device).
* :func:`load_state_dict_checked` loads a state dict strictly, optionally renaming its keys
  (a key map from a reference layout, e.g. Hugging Face BERT), and reports missing,
  unexpected and shape-mismatched tensors by name; :func:`load_saved_state` first passes
  them through the model class's ``import_state_dict`` hook (:func:`has_pretrained_hooks`).
* :func:`fuse_qkv` / :func:`split_qkv` convert between separate query/key/value projections
  (Hugging Face BERT and ViT) and the fused ``qkv`` of :class:`gicho.nn.MultiHeadSelfAttention`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from safetensors.torch import save_model as _st_save_model
from torch import nn

from gicho._io import TMP_PREFIX, atomic_write_text, not_regular_file, read_json

__all__ = [
    "CONFIG_NAME", "LEGACY_WEIGHTS_NAME", "WEIGHTS_NAME", "CheckpointError", "KeyMap",
    "check_finite", "check_shapes", "fuse_qkv", "has_pretrained_hooks", "load_model_weights",
    "load_saved_state", "load_state_dict_checked", "not_regular_file", "read_config",
    "read_state_dict", "save_model", "save_model_files", "split_qkv", "tensor_shapes",
    "unwrap_model",
]

WEIGHTS_NAME = "model.safetensors"
LEGACY_WEIGHTS_NAME = "pytorch_model.bin"
CONFIG_NAME = "config.json"
# A config.json is parsed, never executed; a larger one is not a model config.
MAX_CONFIG_BYTES = 1 << 20

# A key map renames the keys of a stored state dict to the model's own names; a key mapped
# to None is dropped (for example buffers a reference implementation stores and gicho
# recomputes, such as Hugging Face's ``position_ids``).
KeyMap = Callable[[str], "str | None"] | Mapping[str, "str | None"]


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not match the model it is loaded into."""


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


# PretrainedModel's directory hooks, looked up by name (gicho.models sits above this module):
# save_pretrained writes export_state_dict() under config_dict(); import_state_dict reads it.
_PRETRAINED_HOOKS = ("save_pretrained", "export_state_dict", "config_dict", "import_state_dict")


def has_pretrained_hooks(model: nn.Module) -> bool:
    """Whether ``model`` (unwrapped) has a ``config`` and the directory hooks of
    :class:`gicho.models._pretrained.PretrainedModel`."""
    model = unwrap_model(model)
    return getattr(model, "config", None) is not None and all(
        callable(getattr(type(model), name, None)) for name in _PRETRAINED_HOOKS)


# ------------------------------------------------------------------------------ writing


def config_json(model: nn.Module) -> str | None:
    """``model.config`` (a dataclass) as JSON text, or None when the model has no such config."""
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config) or isinstance(config, type):
        return None
    # a model family's own config.json (with its model_type) when it defines one
    to_dict = getattr(model, "config_dict", None)
    data = to_dict() if callable(to_dict) else dataclasses.asdict(config)
    try:
        return json.dumps(data, indent=2, sort_keys=True) + "\n"
    except TypeError as exc:
        raise TypeError(
            f"{type(model).__name__}.config ({type(config).__name__}) cannot be written as "
            f"JSON: {exc}; keep config fields to numbers, strings, booleans, lists and dicts"
        ) from None


def save_model(
    model: nn.Module,
    directory: str | os.PathLike,
    *,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model.safetensors`` (and ``config.json``) into ``directory``, atomically.

    Parameters
    ----------
    model : torch.nn.Module
        DDP and ``torch.compile`` wrappers are unwrapped first. Tied weights (tensors sharing
        storage) are stored once, as ``safetensors.torch.save_model`` does;
        :func:`load_model_weights` restores them.
    directory : path
        Created if missing.
    state_dict : mapping, optional
        Tensors to store instead of ``model.state_dict()`` (e.g. renamed to a reference
        layout); stored as given (shared tensors are copied).
    config : mapping, optional
        Written as ``config.json`` instead of ``model.config``.

    Returns
    -------
    Path
        The path of ``model.safetensors``. Each file is written under a temporary name and
        renamed, so a crash never leaves a torn file.
    """
    model = unwrap_model(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config_text = (
        json.dumps(dict(config), indent=2, sort_keys=True) + "\n" if config is not None
        else config_json(model)
    )
    path = directory / WEIGHTS_NAME
    tmp = directory / f"{TMP_PREFIX}{WEIGHTS_NAME}-{os.getpid()}"
    try:
        if state_dict is None:
            _st_save_model(model, str(tmp), metadata={"format": "pt"})
        else:
            tensors = {k: v.detach().contiguous().clone() for k, v in state_dict.items()}
            save_file(tensors, str(tmp), metadata={"format": "pt"})
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if config_text is not None:
        atomic_write_text(directory / CONFIG_NAME, config_text)
    return path


def save_model_files(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write ``model``'s files into ``directory`` and return the path of ``model.safetensors``.

    A model with :func:`has_pretrained_hooks` writes exactly what its ``save_pretrained``
    writes (``export_state_dict()`` under ``config_dict()``, plus a family's own files such as
    a ViT's ``preprocessor_config.json``); any other module, :func:`save_model`'s files.
    DDP and ``torch.compile`` wrappers are unwrapped first.
    """
    model = unwrap_model(model)
    if has_pretrained_hooks(model):
        model.save_pretrained(directory)
        return Path(directory) / WEIGHTS_NAME
    return save_model(model, directory)


# ------------------------------------------------------------------------------ reading


def weights_file(path: str | os.PathLike) -> Path:
    """The weights file of ``path``: itself, or a directory's ``model.safetensors`` (preferred)
    or ``pytorch_model.bin``.

    Raises
    ------
    CheckpointError
        When no weights file is there.
    """
    path = Path(path)
    if path.is_dir():
        for name in (WEIGHTS_NAME, LEGACY_WEIGHTS_NAME):
            if (path / name).is_file():
                return path / name
        for name in (WEIGHTS_NAME, LEGACY_WEIGHTS_NAME):
            if os.path.lexists(path / name):  # there, but a device, a FIFO or a dangling link
                raise CheckpointError(f"weights file {path / name} {not_regular_file(path / name)}")
        raise CheckpointError(f"weights file {path / WEIGHTS_NAME} is missing (and there is no "
                              f"{LEGACY_WEIGHTS_NAME} beside it)")
    if os.path.lexists(path) and not path.is_file():
        raise CheckpointError(f"weights file {path} {not_regular_file(path)}")
    if not path.is_file():
        raise CheckpointError(f"weights file {path} is missing")
    return path


def _is_safetensors(path: Path) -> bool:
    return path.suffix != ".bin"


def _load_bin(path: Path, *, mmap: bool) -> Any:
    """A legacy ``.bin`` through ``torch.load(weights_only=True)``: pickled objects are refused."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"weights file {path} cannot be loaded safely: {first}") from None


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a weights file (or of a directory's, see :func:`weights_file`), on the CPU.

    ``.bin`` files are read with ``torch.load(weights_only=True)`` only.

    Raises
    ------
    CheckpointError
        When the file is missing or unreadable, or holds anything but tensors.
    """
    path = weights_file(path)
    if _is_safetensors(path):
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"weights file {path} is not a readable safetensors file: {exc}") from None
    state = _load_bin(path, mmap=False)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"weights file {path} does not hold a flat dict of tensors")
    return state


def tensor_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Name → shape of every tensor of a weights file, without reading the tensors.

    Safetensors headers are read alone; a ``.bin`` file is memory-mapped (``mmap=True``), so
    no tensor is copied into memory either.
    """
    path = weights_file(path)
    if _is_safetensors(path):
        try:
            with safe_open(str(path), framework="pt") as fh:
                return {name: tuple(fh.get_slice(name).get_shape()) for name in fh.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"weights file {path} is not a readable safetensors file: {exc}") from None
    state = _load_bin(path, mmap=True)  # mapped: no tensor is copied into memory
    if not isinstance(state, dict):
        raise CheckpointError(f"weights file {path} does not hold a dict of tensors")
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a ``config.json`` (a file, or a directory holding one) as a JSON object.

    Raises
    ------
    CheckpointError
        When it is missing, too large (over 1 MiB), not JSON, or not an object.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_NAME
    if not path.exists():
        nested = sorted(str(c.parent) for c in path.parent.glob(f"*/{CONFIG_NAME}"))
        hint = f"; the model may be in {' or '.join(nested[:3])}" if nested else ""
        raise CheckpointError(f"model config {path} is missing{hint}")
    data = read_json(path, "model config", max_bytes=MAX_CONFIG_BYTES, error=CheckpointError)
    if not isinstance(data, dict):
        raise CheckpointError(f"model config {path} must hold a JSON object; got {type(data).__name__}")
    return data


# ------------------------------------------------------------------------------ checking


def _rename(key_map: KeyMap | None) -> Callable[[str], str | None]:
    if key_map is None:
        return lambda name: name
    if callable(key_map):
        return key_map
    return lambda name: key_map.get(name, name)


def _alias_groups(state: Mapping[str, torch.Tensor]) -> list[list[str]]:
    """Names of a state dict grouped by the tensor they refer to (tied weights share one)."""
    groups: dict[Any, list[str]] = {}
    for name, tensor in state.items():
        if tensor.device.type == "meta" or tensor.untyped_storage().data_ptr() == 0:
            # meta tensors have no storage: tied parameters are recognised by identity
            key: Any = ("meta", id(tensor)) if tensor.device.type == "meta" else ("unique", name)
        else:
            key = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(),
                   tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
        groups.setdefault(key, []).append(name)
    return list(groups.values())


def _model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    # keep_vars keeps Parameter objects, so tied meta parameters compare by identity
    return model.state_dict(keep_vars=True)


def _list_names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(sorted(names)[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _match(model: nn.Module, shapes: Mapping[str, tuple[int, ...]], key_map: KeyMap | None,
           source: str) -> dict[str, str]:
    """Model name → stored name, or raise :class:`CheckpointError` listing every problem."""
    rename = _rename(key_map)
    stored: dict[str, str] = {}
    duplicates = []
    for name in shapes:
        target = rename(name)
        if target is None:
            continue
        if target in stored:
            duplicates.append(f"{stored[target]} and {name} both map to {target}")
        stored[target] = name
    expected = _model_state(model)
    chosen: dict[str, str] = {}
    missing: list[str] = []
    for group in _alias_groups(expected):
        present = [name for name in group if name in stored]  # a tied group needs one copy
        if not present:
            missing.extend(group)
            continue
        for name in group:
            chosen[name] = stored[present[0]]
    unexpected = [stored[name] for name in stored if name not in expected]
    problems = []
    if duplicates:
        problems.append("key map collision: " + "; ".join(duplicates[:4]))
    if missing:
        problems.append(f"missing tensors: {_list_names(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors: {_list_names(unexpected)}")
    mismatched = [
        f"{chosen[name]} has shape {tuple(shapes[chosen[name]])} in the file, "
        f"{tuple(tensor.shape)} in the model ({name})"
        for name, tensor in expected.items()
        if name in chosen and tuple(shapes[chosen[name]]) != tuple(tensor.shape)
    ]
    if mismatched:
        problems.append("shape mismatch: " + "; ".join(mismatched[:8]))
    if problems:
        raise CheckpointError(f"{source} does not match {type(model).__name__}: " + "; ".join(problems))
    return chosen


def check_shapes(model: nn.Module, shapes: Mapping[str, tuple[int, ...]], *,
                 key_map: KeyMap | None = None, source: str = "the weights") -> None:
    """Check stored tensor ``shapes`` (see :func:`tensor_shapes`) against ``model``'s tensors.

    Works on a model built on the ``meta`` device, so an absurd ``config.json`` (a width of
    10^9, say) is refused before any memory is allocated.

    Raises
    ------
    CheckpointError
        Naming every missing, unexpected and shape-mismatched tensor.
    """
    _match(unwrap_model(model), shapes, key_map, source)


def load_state_dict_checked(model: nn.Module, state: Mapping[str, torch.Tensor], *,
                            key_map: KeyMap | None = None, source: str = "the state dict") -> nn.Module:
    """Load ``state`` into ``model`` strictly, after renaming its keys with ``key_map``.

    Parameters
    ----------
    model : torch.nn.Module
        Tensors are copied onto the device and dtype of the model's own; tied parameters need
        one stored copy under any of their names.
    state : mapping of str to Tensor
    key_map : mapping or callable, optional
        Stored name → model name (None drops the tensor). Names not in a mapping are kept.
    source : str
        How messages name the weights (a file path, say).

    Raises
    ------
    CheckpointError
        Naming every missing, unexpected and shape-mismatched tensor; the model is untouched.
    """
    model = unwrap_model(model)
    chosen = _match(model, {k: tuple(v.shape) for k, v in state.items()}, key_map, source)
    model.load_state_dict({name: state[stored] for name, stored in chosen.items()}, strict=True)
    return model


def check_finite(state: Mapping[str, torch.Tensor], source: str = "the weights") -> None:
    """Refuse weights that hold NaN or infinite values (a diverged training, a damaged file).

    Raises
    ------
    CheckpointError
        Naming ``source`` and each floating-point tensor with non-finite values (how many).
    """
    bad = []
    for name, tensor in state.items():
        if tensor.is_floating_point() and tensor.device.type != "meta":
            n_bad = tensor.numel() - int(torch.isfinite(tensor).sum())
            if n_bad:
                bad.append(f"{name} ({n_bad} of {tensor.numel()} values)")
    if bad:
        raise CheckpointError(f"{source} holds NaN or infinite values in {_list_names(bad, 4)}; "
                              "the weights are damaged (a diverged training or a corrupted file)")


def load_saved_state(model: nn.Module, state: Mapping[str, torch.Tensor], *,
                     source: str = "the state dict") -> nn.Module:
    """Load tensors that :func:`save_model_files` wrote into ``model`` (unwrapped), strictly.

    A model with :func:`has_pretrained_hooks` first passes them through its class's
    ``import_state_dict(state, model.config)`` (its exported names, its own and any others the
    family reads) and refuses NaN and infinite values, as ``from_pretrained`` does; then
    :func:`load_state_dict_checked`.

    Raises
    ------
    CheckpointError
        Naming ``source`` and each problem (a tensor the importer refuses, non-finite values,
        missing, unexpected and mis-shaped tensors); the model is then untouched.
    """
    model = unwrap_model(model)
    if has_pretrained_hooks(model):
        try:
            converted = type(model).import_state_dict(dict(state), model.config)
        except (ValueError, RuntimeError) as exc:  # a converter's complaint, e.g. q/k/v shapes
            raise CheckpointError(f"{source}: {exc}") from None
        check_finite(converted, source)
        if set(converted) != set(state):
            source += f" (tensor names converted to {type(model).__name__}'s)"
        state = converted
    return load_state_dict_checked(model, state, source=source)


def load_model_weights(model: nn.Module, path: str | os.PathLike, *,
                       key_map: KeyMap | None = None) -> nn.Module:
    """Load a weights file (or a checkpoint directory's) into ``model`` in place.

    Without ``key_map`` through :func:`load_saved_state` (``save_pretrained``'s layout, as in
    ``model/`` and step directories); with it, stored names are renamed by ``key_map`` alone.
    Names and shapes are checked first; ``.bin`` files are read with
    ``torch.load(weights_only=True)`` only.

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    CheckpointError
        When the file is missing or unreadable, or does not match the model.
    """
    file = weights_file(path)
    if key_map is None:
        return load_saved_state(model, read_state_dict(file), source=f"weights file {file}")
    return load_state_dict_checked(model, read_state_dict(file), key_map=key_map,
                                   source=f"weights file {file}")


# ------------------------------------------------------------------------------ QKV layout


def fuse_qkv(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Stack separate query/key/value projection weights (D, D) or biases (D,) into the fused
    ``qkv`` layout of :class:`gicho.nn.MultiHeadSelfAttention`: rows ``[0, D)`` queries,
    ``[D, 2D)`` keys, ``[2D, 3D)`` values → (3D, D) or (3D,).
    """
    if not (query.shape == key.shape == value.shape):
        raise ValueError("query, key and value must have the same shape; got "
                         f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
    return torch.cat([query, key, value], dim=0)


def split_qkv(qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`fuse_qkv`: a fused (3D, D) weight or (3D,) bias → (query, key, value)."""
    if qkv.ndim not in (1, 2) or qkv.shape[0] % 3 != 0:
        raise ValueError(f"a fused qkv tensor has 3*D rows; got shape {tuple(qkv.shape)}")
    query, key, value = qkv.chunk(3, dim=0)
    return query, key, value
