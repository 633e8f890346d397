"""``save_pretrained`` / ``from_pretrained`` for every model family, in Hugging Face's layout.

A pretrained directory holds ``config.json`` (the model's Config dataclass plus its
``model_type``) and ``model.safetensors``. Loading never trusts the config's sizes: the number
of layers is first compared with the layers the weights file's header holds (so a config that
claims 10^6 layers fails before anything is built), then the model is built on the ``meta``
device (no memory), its tensor shapes are checked against the header, and only then is it built
for real, loaded strictly, and its weights checked for NaN and infinite values.

A family whose head has no counterpart in ``transformers`` (a mean-pooled classifier) writes
``hidden_act`` as :func:`hf_refusing_act`: ``transformers`` then refuses the directory with that
text as its error (no silently different model), and gicho reads it back as GELU.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from gicho.models._legacy import LEGACY_CONFIG_FIELDS
from gicho.weights import (
    CheckpointError,
    KeyMap,
    check_finite,
    check_shapes,
    load_state_dict_checked,
    read_config,
    read_state_dict,
    save_model,
    tensor_shapes,
    weights_file,
)

__all__ = ["LEGACY_CONFIG_FIELDS", "HeadConfig", "PretrainedModel", "config_from_dict", "hf_refusing_act",
           "is_hf_refusing_act"]

MODEL_TYPE_KEY = "model_type"
# A stored tensor name of one layer of a stack (group 1: the layer's index), in gicho's
# (``backbone.encoder.layers.3.``), Hugging Face's (``encoder.layer.3.``) and timm's
# (``blocks.3.``) layouts.
LAYER_PATTERN = r"(?:^|\.)(?:layers?|blocks)\.(\d+)\."
_HF_REFUSAL = "gelu; gicho "  # how a refusing hidden_act begins (see hf_refusing_act)
# model_type → class of every family defined so far (built-in or a user's), filled by
# PretrainedModel.__init_subclass__; gicho.models.model_class looks here first.
REGISTERED: dict[str, type] = {}


class HeadConfig:
    """What every family's Config shares (a mixin of the dataclasses): the head's label vocabulary,
    the dropout bounds, and named presets.

    A Config declares ``n_labels`` (classes, or regression targets) and ``label_names`` (that many
    names, Hugging Face's ``id2label``), calls :meth:`check_head` in ``__post_init__`` and lists
    its sizes in ``presets`` (name → field values).
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def check_head(self, *, n_labels_may_be_none: bool = False) -> None:
        """Check ``n_labels`` (from ``label_names`` when None), ``label_names`` and every field
        whose name ends in ``dropout`` (one bound for all families: [0, 1)).

        Raises
        ------
        ValueError
            Naming the field, its value and what is allowed.
        """
        from gicho._validation import check_dropout, check_positive

        names = getattr(self, "label_names", None)
        if self.n_labels is None and names is not None:
            self.n_labels = len(names)
        if self.n_labels is None:
            if not n_labels_may_be_none:
                raise ValueError("argument `n_labels` is None; set the number of classes (or targets)")
        else:
            check_positive(self.n_labels, "n_labels", integer=True)
        if names is not None:
            self.label_names = tuple(str(name) for name in names)
            if len(self.label_names) != self.n_labels:
                raise ValueError(f"argument `label_names` has {len(self.label_names)} names; "
                                 f"n_labels={self.n_labels}")
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name.endswith("dropout") and value is not None:
                check_dropout(value, f.name)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> Any:
        """The config of a named size (see ``presets``), with ``overrides`` of any field."""
        from gicho._validation import check_choice

        check_choice(name, "preset", tuple(cls.presets))
        return cls(**{**cls.presets[name], **overrides})


def config_from_dict(config_cls: type, data: dict[str, Any], source: str = "config") -> Any:
    """Build ``config_cls`` from a parsed ``config.json``; unknown keys and bad values raise.

    Raises
    ------
    CheckpointError
        Naming ``source`` and the offending field.
    """
    fields = {f.name for f in dataclasses.fields(config_cls) if f.init}
    values = {LEGACY_CONFIG_FIELDS.get(k, k) if k not in fields else k: v
              for k, v in data.items() if k != MODEL_TYPE_KEY}
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


def hf_refusing_act(architecture: str, what: str, *, encoder_ok: bool = True) -> str:
    """The ``hidden_act`` that a checkpoint ``transformers`` must not load writes instead of
    ``"gelu"``: ``transformers`` looks it up among its activations and raises ``KeyError`` with
    this text, which says why; gicho reads it as GELU (:func:`is_hf_refusing_act`).

    ``what`` names the gicho feature that ``transformers``' ``architecture`` lacks, e.g.
    ``"mean pooling (classifier_pooling='mean')"``. ``encoder_ok``: whether the encoder alone
    (without the head) is one ``transformers`` computes, which the text then says how to load.
    """
    how = " (for the encoder alone in transformers, pass hidden_act='gelu')" if encoder_ok else ""
    return (f"{_HF_REFUSAL}{what}: transformers' {architecture} would compute something else, so it "
            f"refuses this directory; load it with gicho.models.from_pretrained{how}")


def is_hf_refusing_act(value: Any) -> bool:
    """Whether a ``config.json``'s ``hidden_act`` was written by :func:`hf_refusing_act` (GELU)."""
    return isinstance(value, str) and value.startswith(_HF_REFUSAL)


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
    # other model_types this family reads and writes (ViT: "deit", a ViT with a distillation token)
    model_type_aliases: ClassVar[tuple[str, ...]] = ()
    # config field → pattern of the stored names of one of its layers (group 1: the index):
    # from_pretrained compares the field with the layers the weights file holds before building
    # anything (a family without an ``n_layers`` field overrides it, e.g. Seq2Seq's RNN depths)
    layer_patterns: ClassVar[dict[str, str]] = {"n_layers": LAYER_PATTERN}
    # config field → its key in the config.json this family reads, where they differ (messages)
    json_keys: ClassVar[dict[str, str]] = {}
    # A family's shared base (BertPreTrainedModel, ViTPretrained) sets this: Hugging Face
    # architecture name → head class. Its from_pretrained builds the class that config.json's
    # `architectures` names (default_head when it names none), as Hugging Face's Auto classes.
    heads: ClassVar[dict[str, type]] = {}
    # the inference precision (gicho.models.precision): anything but "fp32" refuses training and
    # save_pretrained (the float32 weights are gone; save the model before converting it)
    precision: str = "fp32"
    # the precisions this family can be converted to (BERT and ViT add "bf16" and "int8")
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)

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
        """Stored tensors → this model's names and layout (hook; default: gicho's names of
        earlier versions renamed, :data:`gicho.models._hf.LEGACY_RENAMES`).

        :meth:`from_pretrained` calls it twice: on ``meta`` tensors shaped as the file's header
        (to check shapes before allocating anything), then on the real tensors; so an override
        uses only shape-level operations (rename, ``torch.cat``, drop), never values.
        """
        from gicho.models._hf import upgrade_names

        return upgrade_names(state)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (atomically each),
        then the family's extra files (:meth:`save_extras`). Returns the directory.
        """
        if self.precision != "fp32":
            raise RuntimeError(f"this {type(self).__name__} runs in precision {self.precision!r}, which keeps no "
                               "float32 weights to save: save the float32 model (load it with precision='fp32')")
        directory = Path(directory)
        self.check_extras()
        save_model(self, directory, state_dict=self.export_state_dict(), config=self.config_dict())
        self.save_extras(directory)
        return directory

    def train(self, mode: bool = True) -> PretrainedModel:
        """``nn.Module.train``; refused (``RuntimeError``) when the model runs in a reduced precision."""
        if mode and self.precision != "fp32":
            raise RuntimeError(f"this {type(self).__name__} runs in precision {self.precision!r}, for inference "
                               "only: train the float32 model (precision='fp32') and convert it afterwards")
        return super().train(mode)

    # ------------------------------------------------------------------ hooks with no default work
    def check_extras(self) -> None:
        """Raise ``ValueError`` before anything is written when the extras do not fit the model."""

    def save_extras(self, directory: Path) -> None:
        """Files the family keeps beside the weights (ViT: ``preprocessor_config.json``)."""

    def load_extras(self, directory: Path) -> None:
        """Read what :meth:`save_extras` wrote (called by :meth:`from_pretrained` on a directory)."""

    @classmethod
    def default_head(cls, path: Path) -> type:
        """The head class to build when ``config.json`` names no architecture (the shared base)."""
        return cls

    @classmethod
    def head_class(cls, path: Path) -> type:
        """The head class a family's shared base (a class with ``heads``) builds for ``path``:
        the one ``config.json``'s ``architectures`` names, else :meth:`default_head`.

        Raises
        ------
        CheckpointError
            ``architectures`` is not a list of names, or names a head this family lacks.
        """
        architectures = read_config(path).get("architectures")
        if not architectures:
            return cls.default_head(path)
        if not isinstance(architectures, list) or not isinstance(architectures[0], str):
            raise CheckpointError(f"{path}/config.json: 'architectures' must be a list of class names; "
                                  f"got {architectures!r}")
        if architectures[0] not in cls.heads:
            raise CheckpointError(f"{path}/config.json: architecture {architectures[0]!r} is not "
                                  f"available in gicho; allowed: {', '.join(cls.heads)}")
        return cls.heads[architectures[0]]

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, key_map: KeyMap | None = None,
                        config: Any = None, precision: str = "fp32") -> PretrainedModel:
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
        precision : {"fp32", "bf16", "int8"}
            CPU inference precision of a Transformer family (BERT, ViT):
            :func:`gicho.models.precision.to_precision`. A converted model refuses training and
            ``save_pretrained``.

        Raises
        ------
        CheckpointError
            When the config is invalid, its ``model_type`` belongs to another family, or the
            weights do not match it (checked before any tensor is allocated).
        """
        from gicho.models.precision import check_precision, to_precision

        check_precision(precision)  # before reading anything
        path = Path(path)
        if "heads" in cls.__dict__:  # a family's shared base: build the head the files name
            head = cls.head_class(path) if config is None else cls.default_head(path)
            return head.from_pretrained(path, key_map=key_map, config=config, precision=precision)
        if config is None:
            data = read_config(path)
            found = data.get(MODEL_TYPE_KEY, cls.model_type)
            if found != cls.model_type and found not in cls.model_type_aliases:
                raise CheckpointError(f"{path} holds a {found!r} model, not a {cls.model_type!r} "
                                      f"({cls.__name__}); load it with gicho.models.from_pretrained")
            config = cls.config_from_json(data, f"model config {path / 'config.json'}")
            config_source = f"model config {path / 'config.json'}"
        else:
            config_source = f"the config given for {path}"
        file = weights_file(path)
        skeleton, shapes, source = cls._checked_skeleton(config, file, config_source, key_map=key_map)
        check_shapes(skeleton, shapes, key_map=key_map, source=source)
        model = cls(config)
        state = cls.import_state_dict(read_state_dict(file), config)
        check_finite(state, f"weights file {file}")
        load_state_dict_checked(model, state, key_map=key_map, source=source)
        if path.is_dir():
            model.load_extras(path)
        return to_precision(model.eval(), precision)

    @classmethod
    def _checked_skeleton(cls, config: Any, file: Path, config_source: str, *, key_map: KeyMap | None = None,
                          whole: bool = True) -> tuple[nn.Module, dict[str, tuple[int, ...]], str]:
        """The model built on ``meta`` once its depth and stored shapes are checked against
        ``file``'s header; with the header's shapes under this model's names, and how messages
        name the weights. ``whole=False`` (some parts only are loaded, under a new head): the
        other parts may differ, so stored tensors are compared only after conversion.

        Raises
        ------
        CheckpointError
            A depth (``n_layers``, ...) other than the file's, before building anything; a stored
            tensor whose shape differs from the one this model saves under that name (naming
            both shapes), before any conversion (such as fusing query/key/value).
        """
        stored = tensor_shapes(file)
        names = list(stored)
        if key_map is not None:  # count the layers under this model's names
            rename = key_map if callable(key_map) else (lambda name: key_map.get(name, name))
            names = [new for name in stored if (new := rename(name)) is not None]
        cls._check_depth(config, names, config_source, file)
        with torch.device("meta"):
            skeleton = cls(config)
            header = {name: torch.empty(shape) for name, shape in stored.items()}
        source = f"weights file {file}"
        if whole and key_map is None:
            cls._check_stored_shapes(skeleton, stored, source)
        try:
            converted = cls.import_state_dict(header, config)
        except (ValueError, RuntimeError) as exc:  # a converter's complaint, e.g. q/k/v shapes
            raise CheckpointError(f"{source}: {exc}") from None
        shapes = {name: tuple(t.shape) for name, t in converted.items()}
        if set(shapes) != set(header):
            source += f" (tensor names converted to {cls.__name__}'s)"
        return skeleton, shapes, source

    @classmethod
    def _check_depth(cls, config: Any, names: list[str], config_source: str, file: Path) -> None:
        """Compare each field of :attr:`layer_patterns` with the layers of the stored ``names``."""
        for field, pattern in cls.layer_patterns.items():
            claimed = getattr(config, field, None)
            if not isinstance(claimed, int) or isinstance(claimed, bool):
                continue
            regex = re.compile(pattern)
            indices = {int(m.group(1)) for name in names if (m := regex.search(name))}
            held = max(indices) + 1 if indices else 0
            if claimed != held:
                key = f" ({cls.json_keys[field]} in a Hugging Face config.json)" if field in cls.json_keys else ""
                raise CheckpointError(f"{config_source}: {field}={claimed}{key}, but weights file {file} holds "
                                      f"{held} layer(s); the config and the weights do not belong together")

    @classmethod
    def _check_stored_shapes(cls, skeleton: nn.Module, stored: dict[str, tuple[int, ...]],
                             source: str) -> None:
        """Each stored tensor named as this model saves one must have the shape it saves.

        Catches a mis-shaped tensor by its stored name before a conversion (fusing query, key
        and value, say) hides it. The Hugging Face prefix (``bert.``, ``vit.``) is ignored on
        both sides, so an encoder under another head is checked too.
        """
        exported = skeleton.export_state_dict()
        if exported is None:  # stored under this model's own names: check_shapes names them
            return
        prefix = f"{cls.model_type}."
        expected = {name.removeprefix(prefix): tuple(t.shape) for name, t in exported.items()}
        mismatched = [f"{name} has shape {tuple(shape)} in the file, {expected[key]} in the model"
                      for name, shape in stored.items()
                      if (key := name.removeprefix(prefix)) in expected and tuple(shape) != expected[key]]
        if mismatched:
            raise CheckpointError(f"{source} does not match {cls.__name__}: shape mismatch: "
                                  + "; ".join(mismatched[:8]))

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
        skeleton, shapes, _ = cls._checked_skeleton(config, file, source, whole=False)

        def part_of(tensors: dict[str, Any], part: str) -> dict[str, Any]:
            return {k[len(part) + 1:]: v for k, v in tensors.items() if k.startswith(part + ".")}

        chosen = [*parts, *(p for p in optional if part_of(shapes, p))]
        for part in chosen:
            check_shapes(getattr(skeleton, part), part_of(shapes, part), source=f"weights file {file} ({part})")
        model = cls(config)
        state = cls.import_state_dict(read_state_dict(file), config)
        for part in chosen:
            check_finite(part_of(state, part), f"weights file {file} ({part})")
            load_state_dict_checked(getattr(model, part), part_of(state, part),
                                    source=f"weights file {file} ({part})")
        return model
