"""``save_pretrained`` / ``from_pretrained`` for every model family, in Hugging Face's layout.

A pretrained directory holds ``config.json`` (the model's Config dataclass plus its
``model_type``) and ``model.safetensors``. Loading never trusts the config's sizes: the model
is first built on the ``meta`` device (no memory), its tensor shapes are checked against the
weights file's header, and only then is it built for real and loaded strictly.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from gicho.weights import (
    CheckpointError,
    KeyMap,
    check_shapes,
    load_state_dict_checked,
    read_config,
    read_state_dict,
    save_model,
    tensor_shapes,
    weights_file,
)

__all__ = ["PretrainedModel", "config_from_dict"]

MODEL_TYPE_KEY = "model_type"
# model_type → class of every family defined so far (built-in or a user's), filled by
# PretrainedModel.__init_subclass__; gicho.models.model_class looks here first.
REGISTERED: dict[str, type] = {}


def config_from_dict(config_cls: type, data: dict[str, Any], source: str = "config") -> Any:
    """Build ``config_cls`` from a parsed ``config.json``; unknown keys and bad values raise.

    Raises
    ------
    CheckpointError
        Naming ``source`` and the offending field.
    """
    fields = {f.name for f in dataclasses.fields(config_cls) if f.init}
    values = {k: v for k, v in data.items() if k != MODEL_TYPE_KEY}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise CheckpointError(f"{source} has unknown field(s) {unknown} for {config_cls.__name__}")
    for name, value in values.items():  # JSON lists come back for tuple fields
        if isinstance(value, list):
            values[name] = tuple(value)
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source} is not a valid {config_cls.__name__}: {exc}") from None


class PretrainedModel(nn.Module):
    """Base of gicho's model families: a ``config`` dataclass and a directory format.

    Subclasses set ``config_class`` and ``model_type`` and build themselves from
    ``__init__(config)``. A family whose reference checkpoints use other tensor names
    (Hugging Face BERT, timm ViT) passes a ``key_map`` to :meth:`from_pretrained`, or, when a
    rename is not enough (separate query/key/value weights fused into one ``qkv``), overrides
    the hooks: :meth:`config_from_json` (parse a foreign ``config.json``),
    :meth:`import_state_dict` (stored tensors → this model's) and :meth:`export_state_dict`
    (this model's tensors → the stored layout that :meth:`save_pretrained` writes).
    """

    config_class: ClassVar[type]
    model_type: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "model_type" in cls.__dict__:  # a concrete family (not an abstract shared base)
            REGISTERED[cls.model_type] = cls

    def config_dict(self) -> dict[str, Any]:
        """``config.json``'s content: the config's fields and ``model_type``."""
        data = dataclasses.asdict(self.config)
        return {**data, MODEL_TYPE_KEY: self.model_type}

    def export_state_dict(self) -> dict[str, torch.Tensor] | None:
        """The tensors :meth:`save_pretrained` writes; None (the default) means this model's
        own ``state_dict`` (tied weights stored once)."""
        return None

    @classmethod
    def config_from_json(cls, data: dict[str, Any], source: str) -> Any:
        """The config of a parsed ``config.json`` (hook; default: this family's own fields).

        Raises
        ------
        CheckpointError
            Naming ``source`` and the offending field.
        """
        return config_from_dict(cls.config_class, data, source)

    @classmethod
    def import_state_dict(cls, state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
        """Stored tensors → this model's names and layout (hook; default: unchanged).

        :meth:`from_pretrained` calls it twice: on ``meta`` tensors shaped as the file's header
        (to check shapes before allocating anything), then on the real tensors; so an override
        uses only shape-level operations (rename, ``torch.cat``, drop), never values.
        """
        return state

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (atomically each).

        Returns the directory.
        """
        directory = Path(directory)
        save_model(self, directory, state_dict=self.export_state_dict(), config=self.config_dict())
        return directory

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, key_map: KeyMap | None = None,
                        config: Any = None) -> PretrainedModel:
        """A model built from ``path/config.json`` with the weights of ``path``, in eval mode.

        Parameters
        ----------
        path : path
            A directory with ``config.json`` and ``model.safetensors`` (or a legacy
            ``pytorch_model.bin``, read with ``weights_only=True``).
        key_map : mapping or callable, optional
            Stored tensor name → this model's name (see :func:`gicho.weights.load_state_dict_checked`).
        config : Config, optional
            Use this config instead of reading ``config.json``.

        Raises
        ------
        CheckpointError
            When the config is invalid, its ``model_type`` belongs to another family, or the
            weights do not match it (checked before any tensor is allocated).
        """
        path = Path(path)
        if config is None:
            data = read_config(path)
            found = data.get(MODEL_TYPE_KEY, cls.model_type)
            if found != cls.model_type:
                raise CheckpointError(f"{path} holds a {found!r} model, not a {cls.model_type!r} "
                                      f"({cls.__name__}); load it with gicho.models.from_pretrained")
            config = cls.config_from_json(data, f"model config {path / 'config.json'}")
        file = weights_file(path)
        with torch.device("meta"):
            skeleton = cls(config)
            header = {name: torch.empty(shape) for name, shape in tensor_shapes(file).items()}
        shapes = {name: tuple(t.shape) for name, t in cls.import_state_dict(header, config).items()}
        source = f"weights file {file}"
        if set(shapes) != set(header):
            source += f" (tensor names converted to {cls.__name__}'s)"
        check_shapes(skeleton, shapes, key_map=key_map, source=source)
        model = cls(config)
        state = cls.import_state_dict(read_state_dict(file), config)
        load_state_dict_checked(model, state, key_map=key_map, source=source)
        return model.eval()

    @classmethod
    def from_pretrained_parts(cls, path: str | os.PathLike, parts: Sequence[str], *,
                              optional: Sequence[str] = (), **overrides: Any) -> PretrainedModel:
        """A new model whose submodules ``parts`` (and those of ``optional`` that the checkpoint
        holds) are loaded from ``path``, the rest freshly initialised: a pretrained encoder under
        a new head. The config is ``path``'s with ``overrides`` (e.g. ``n_labels=3``); the model
        is returned in training mode.

        Raises
        ------
        CheckpointError
            As :meth:`from_pretrained`, for the loaded parts (shapes checked before allocating).
        ValueError
            An override that is not a config field or not a valid value.
        """
        path = Path(path)
        source = f"model config {path / 'config.json'}"
        config = cls.config_from_json(read_config(path), source)
        try:
            config = dataclasses.replace(config, **overrides)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid override of {source}: {exc}") from None
        file = weights_file(path)
        with torch.device("meta"):
            skeleton = cls(config)
            header = {name: torch.empty(shape) for name, shape in tensor_shapes(file).items()}
        shapes = {name: tuple(t.shape) for name, t in cls.import_state_dict(header, config).items()}

        def part_of(tensors: dict[str, Any], part: str) -> dict[str, Any]:
            return {k[len(part) + 1:]: v for k, v in tensors.items() if k.startswith(part + ".")}

        chosen = [*parts, *(p for p in optional if part_of(shapes, p))]
        for part in chosen:
            check_shapes(getattr(skeleton, part), part_of(shapes, part), source=f"weights file {file} ({part})")
        model = cls(config)
        state = cls.import_state_dict(read_state_dict(file), config)
        for part in chosen:
            load_state_dict_checked(getattr(model, part), part_of(state, part),
                                    source=f"weights file {file} ({part})")
        return model
