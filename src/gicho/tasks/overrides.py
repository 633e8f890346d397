"""Config dataclasses from the command line: ``--field value`` pairs with type checking.

Every field of a task's Config can be overridden as ``--field value`` (or ``--field=value``;
``--no-field`` / ``--field`` for booleans; dashes and underscores are interchangeable). Values
are converted to the field's declared type; an unknown field or a value of the wrong type
raises a ``ValueError`` that names the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["apply_overrides", "config_from_dict", "config_to_dict", "parse_cli_overrides"]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NONE = {"none", "null"}


def _field_types(config_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls) if f.init}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(name: str, value: Any, tp: Any) -> Any:
    """Convert ``value`` (often a string from the CLI) to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in _NONE):
            if len(non_none) < len(args):
                return None
        errors = []
        for candidate in non_none:
            try:
                return _convert(name, value, candidate)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if len(errors) == 1 else f"field `{name}`: cannot use {value!r}; expected {_type_name(tp)}")
    if origin is typing.Literal:
        for allowed in args:
            if value == allowed or (isinstance(value, str) and str(allowed) == value):
                return allowed
        raise ValueError(
            f"field `{name}` must be one of {', '.join(repr(a) for a in args)}; got {value!r}"
        )
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError(f"field `{name}` must be a boolean (true/false); got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(f"field `{name}` must be an integer; got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).replace("_", ""))
        except ValueError:
            raise ValueError(f"field `{name}` must be an integer; got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(f"field `{name}` must be a number; got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"field `{name}` must be a number; got {value!r}") from None
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"field `{name}` must be a string; got {value!r}")
        return value
    if origin in (tuple, list) and isinstance(value, str):
        items = [v for v in value.split(",") if v != ""]
        inner = args[0] if args else str
        converted = [_convert(name, v, inner) for v in items]
        return tuple(converted) if origin is tuple else converted
    if origin in (tuple, list) and isinstance(value, (list, tuple)):
        inner = args[0] if args else str
        converted = [_convert(name, v, inner) for v in value]
        return tuple(converted) if origin is tuple else converted
    return value


def apply_overrides(config: Any, overrides: Mapping[str, Any] | Sequence[str]) -> Any:
    """Return a copy of the dataclass ``config`` with ``overrides`` applied and re-validated.

    ``overrides`` is a mapping ``{field: value}`` or a CLI-style list such as
    ``["--lr", "0.01", "--pool=cls", "--no-compile"]``. Validation in the Config's
    ``__post_init__`` runs again on the result.
    """
    if not isinstance(overrides, Mapping):
        overrides = parse_cli_overrides(type(config), overrides)
    types_by_field = _field_types(type(config))
    changes: dict[str, Any] = {}
    for raw_name, value in overrides.items():
        name = raw_name.replace("-", "_")
        if name not in types_by_field:
            allowed = ", ".join(types_by_field) or "(none)"
            raise ValueError(f"unknown field `{raw_name}` for {type(config).__name__}; allowed: {allowed}")
        changes[name] = _convert(name, value, types_by_field[name])
    return dataclasses.replace(config, **changes)


def parse_cli_overrides(config_cls: type, args: Sequence[str]) -> dict[str, Any]:
    """Turn ``["--field", "value", "--flag", "--no-flag", "--f=v"]`` into ``{field: value}``."""
    types_by_field = _field_types(config_cls)
    allowed = ", ".join("--" + n.replace("_", "-") for n in types_by_field)
    result: dict[str, Any] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or token == "--":
            raise ValueError(f"unexpected argument {token!r}; config fields are given as --field value ({allowed})")
        key, has_value, inline = token[2:].partition("=")
        name = key.replace("-", "_")
        if name not in types_by_field and name.startswith("no_") and name[3:] in types_by_field:
            if types_by_field[name[3:]] is bool and not has_value:
                result[name[3:]] = False
                i += 1
                continue
        if name not in types_by_field:
            raise ValueError(f"unknown field `--{key}` for {config_cls.__name__}; allowed: {allowed}")
        if has_value:
            result[name] = inline
            i += 1
        elif types_by_field[name] is bool and (i + 1 >= len(args) or args[i + 1].startswith("--")):
            result[name] = True
            i += 1
        else:
            if i + 1 >= len(args):
                raise ValueError(f"field `--{key}` needs a value")
            result[name] = args[i + 1]
            i += 2
    return result


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a Config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)


def config_from_dict(config_cls: type, data: Mapping[str, Any]) -> Any:
    """Rebuild a Config from :func:`config_to_dict` output, checking every field's type.

    Fields missing from ``data`` keep their defaults (a config written by an older version
    still loads); unknown keys are an error, since they would be silently ignored otherwise.
    """
    return apply_overrides(config_cls(), dict(data))
