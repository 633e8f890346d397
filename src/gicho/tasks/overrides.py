"""Config dataclasses from the command line: ``--part.field value`` with type checking.

A task's Config nests its parts (``model``, ``data``, ``train``), each a validated dataclass.
Every leaf field can be overridden as ``--part.field value`` (or ``--part.field=value``;
``--part.no-field`` / ``--no-part.field`` / ``--part.field`` for booleans; dashes and
underscores are interchangeable). Values are converted to the field's declared type, then
every dataclass on the path is rebuilt, so each part's ``__post_init__`` validates it again.
An unknown field or a value of the wrong type raises a ``ValueError`` that names the field,
the value and what is allowed (with a "did you mean" for near misses).

A field's one-line description is its ``metadata["help"]`` (see :func:`describe_fields`).

A field that moved keeps its old name as an alias (:data:`MOVED_FIELDS`): old commands
(``--num-threads 2``) and configs saved before the move (a top-level ``"num_threads"`` in a
run's ``config.json``) set the field where it now lives. So does a renamed model field
(:data:`gicho.models.LEGACY_CONFIG_FIELDS`: ``--model.n-classes`` sets ``model.n_labels``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from gicho.models import LEGACY_CONFIG_FIELDS

__all__ = [
    "MOVED_FIELDS",
    "FieldInfo",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "describe_fields",
    "parse_cli_overrides",
]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NONE = {"none", "null"}
# Integers beyond this are no sensible size, count or seed (and overflow C longs downstream).
_MAX_INT = 2**62
# Fields that moved, old name -> new dotted name; the old name is accepted wherever a config
# has the new field and no field of the old name.
MOVED_FIELDS = {"num_threads": "train.num_threads"}


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """One overridable leaf field: dotted name, type, current value and description."""

    name: str
    type: Any
    value: Any
    help: str

    @property
    def type_name(self) -> str:
        return _type_name(self.type)


def _hints(config_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls) if f.init}


def _is_config(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _docstring_help(cls: type) -> dict[str, str]:
    """The first sentence of each entry's description in a numpydoc ``Parameters`` (or
    ``Attributes``) section, joined across its lines; ``a, b : int`` entries give every listed
    name the same text (give each field its own entry for its own help). An entry with no
    indented description gives no help, never the next entry's header."""
    lines = (cls.__doc__ or "").splitlines()
    found: dict[str, str] = {}
    in_section = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped in ("Parameters", "Attributes") and i + 1 < len(lines) and lines[i + 1].strip().startswith("---"):
            in_section = True
            continue
        if not in_section or not stripped or stripped.startswith("---"):
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= 4 and ":" not in stripped and not stripped[0].isalpha():
            continue
        names, colon, _ = stripped.partition(" : ")
        if indent <= 4 and (colon or "," in names or names.isidentifier()):
            following = _first_sentence(lines[i + 1:], indent)
            for name in names.split(","):
                found.setdefault(name.strip(), following)
    return found


def _first_sentence(lines: Sequence[str], indent: int) -> str:
    """The first sentence of the description lines indented deeper than ``indent``."""
    paragraph = []
    for line in lines:
        if not line.strip() or len(line) - len(line.lstrip()) <= indent:  # a blank, or the next entry
            break
        paragraph.append(line.strip())
    text = " ".join(paragraph)
    end = re.search(r"(?<!e\.g)(?<!i\.e)\.(\s|$)", text)
    return text[:end.start() + 1] if end else text


def describe_fields(config: Any, prefix: str = "") -> list[FieldInfo]:
    """Every leaf field of ``config`` (recursing into nested dataclass parts), in order.

    A field's description is its ``metadata["help"]``, else the first sentence of its entry
    in the numpydoc docstring of the Config's class or, for an inherited field, of a base class.
    """
    out: list[FieldInfo] = []
    hints = _hints(type(config))
    documented: dict[str, str] = {}
    for klass in type(config).__mro__:  # a Config extended by a subclass keeps its fields' help
        for name, text in _docstring_help(klass).items():
            documented.setdefault(name, text)
    for f in dataclasses.fields(config):
        if not f.init:
            continue
        value = getattr(config, f.name)
        name = prefix + f.name
        if _is_config(value):
            out += describe_fields(value, name + ".")
        else:
            text = f.metadata.get("help") or documented.get(f.name, "")
            out.append(FieldInfo(name, hints[f.name], value, str(text)))
    return out


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "{" + ",".join(str(a) for a in typing.get_args(tp)) + "}"
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        args = typing.get_args(tp)
        return f"{origin.__name__} of {_type_name(args[0])}" if args else origin.__name__
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
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            try:
                value = int(str(value).replace("_", ""))
            except ValueError:
                raise ValueError(f"field `{name}` must be an integer; got {value!r}") from None
        if abs(value) > _MAX_INT:
            raise ValueError(f"field `{name}` must be an integer of magnitude <= 2**62; got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(f"field `{name}` must be a number; got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"field `{name}` must be a number; got {value!r}") from None
        if math.isinf(number) and not (isinstance(value, str) and "inf" in value.lower()):
            raise ValueError(f"field `{name}` is too large for a float; got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"field `{name}` must be a string; got {value!r}")
        return value
    if origin in (tuple, list) and isinstance(value, (str, list, tuple)):
        items = [v for v in value.split(",") if v != ""] if isinstance(value, str) else value
        inner = args[0] if args else str
        converted = [_convert(name, v, inner) for v in items]
        return tuple(converted) if origin is tuple else converted
    return value


def _unknown(name: str, config: Any, cli: bool = False) -> ValueError:
    allowed = [info.name for info in describe_fields(config)]
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    # a flat name that exists in one part (`--lr` for `--train.lr`) is the commonest slip
    nested = [a for a in allowed if a.rsplit(".", 1)[-1] == name]

    def show(n: str) -> str:
        return "--" + n.replace("_", "-") if cli else n

    # the hint comes first: the list of allowed fields is long and a terminal line may be cut
    hint = f"; did you mean `{show((nested or close)[0])}`?" if nested or close else ""
    return ValueError(f"unknown field `{show(name)}` for {type(config).__name__}{hint}; allowed: "
                      f"{', '.join(show(a) for a in allowed) or '(none)'}")


def _normalise(raw: str) -> str:
    return raw.replace("-", "_")


def _moved(name: str, config: Any, fields: Any = None) -> str | None:
    """The new name of the moved field ``name`` when ``config`` has it, else None."""
    new = MOVED_FIELDS.get(name)
    *path, leaf = name.split(".")
    if new is None and leaf in LEGACY_CONFIG_FIELDS:  # a model field renamed (n_classes → n_labels)
        new = ".".join([*path, LEGACY_CONFIG_FIELDS[leaf]])
    if new is None:
        return None
    names = fields if fields is not None else {info.name for info in describe_fields(config)}
    return new if new in names else None


def apply_overrides(config: Any, overrides: Mapping[str, Any] | Sequence[str]) -> Any:
    """Return a copy of the dataclass ``config`` with ``overrides`` applied and re-validated.

    ``overrides`` is a mapping ``{"train.lr": 0.01, "model": {"pool": "cls"}}`` (dotted
    names or nested mappings) or a CLI-style list such as
    ``["--train.lr", "0.01", "--model.pool=cls", "--train.no-compile"]``. Every dataclass on
    the path is rebuilt, so the ``__post_init__`` validation of each part runs again.
    """
    if not isinstance(overrides, Mapping):
        overrides = parse_cli_overrides(config, overrides)
    grouped: dict[str, Any] = {}
    hints = _hints(type(config))
    for raw_name, value in overrides.items():
        name = _normalise(str(raw_name))
        if name.partition(".")[0] not in hints:
            name = _moved(name, config) or name
        head, dot, rest = name.partition(".")
        if head not in hints:
            raise _unknown(name, config)
        part = getattr(config, head)
        if dot or (_is_config(part) and isinstance(value, Mapping)):
            if not _is_config(part):
                raise _unknown(name, config)
            sub = grouped.setdefault(head, {})
            if dot:
                sub[rest] = value
            else:
                sub.update(value)
        elif _is_config(part):
            raise ValueError(f"`{name}` is a group of fields, not one; set its fields, e.g. "
                             f"`{name}.{dataclasses.fields(part)[0].name}`")
        else:
            grouped[head] = _convert(name, value, hints[head])
    changes = {}
    for head, value in grouped.items():
        if isinstance(value, dict) and _is_config(getattr(config, head)):
            try:
                changes[head] = apply_overrides(getattr(config, head), value)
            except ValueError as exc:
                raise ValueError(_prefix_field(str(exc), head, getattr(config, head))) from None
        else:
            changes[head] = value
    return dataclasses.replace(config, **changes)


def _prefix_field(message: str, head: str, part: Any) -> str:
    """Name a nested field by its full dotted path in an error message.

    ``field `x``` becomes ``field `head.x```; so does a part's own check naming one of its
    fields as an argument (``argument `dropout` must lie in [0, 1)`` → ``field `model.dropout`
    must lie in [0, 1)``), so a command-line error names the option the user typed.
    """
    if "field `" in message:
        return message.replace("field `", f"field `{head}.", 1)
    match = re.search(r"argument `(\w+)`", message)
    if match and match.group(1) in {f.name for f in dataclasses.fields(part)}:
        return message[:match.start()] + f"field `{head}.{match.group(1)}`" + message[match.end():]
    return message


def parse_cli_overrides(config: Any, args: Sequence[str]) -> dict[str, Any]:
    """Turn ``["--part.field", "value", "--part.flag", "--part.no-flag", "--f=v"]`` into a dict.

    ``config`` is a Config instance (or class, for flat configs with defaults for every field).
    """
    if isinstance(config, type):
        config = config()
    fields = {info.name: info for info in describe_fields(config)}
    usage = ", ".join("--" + n.replace("_", "-") for n in fields)
    result: dict[str, Any] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or token == "--":
            raise ValueError(f"unexpected argument {token!r}; config fields are given as --field value ({usage})")
        key, has_value, inline = token[2:].partition("=")
        name = _normalise(key)
        if name not in fields:
            name = _moved(name, config, fields) or name
        negated = _negated(name)
        if name not in fields and negated in fields and fields[negated].type is bool and not has_value:
            result[negated] = False
            i += 1
            continue
        if name not in fields:
            raise _unknown(name, config, cli=True)
        if has_value:
            result[name] = inline
            i += 1
        elif fields[name].type is bool and (i + 1 >= len(args) or args[i + 1].startswith("--")):
            result[name] = True
            i += 1
        else:
            if i + 1 >= len(args):
                raise ValueError(f"field `--{key}` needs a value")
            result[name] = args[i + 1]
            i += 2
    return result


def _negated(name: str) -> str:
    """``no_x`` / ``part.no_x`` / ``no_part.x`` → the field the negation refers to."""
    if name.startswith("no_"):
        return name[3:]
    head, dot, leaf = name.rpartition(".")
    return f"{head}.{leaf[3:]}" if dot and leaf.startswith("no_") else ""


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready nested dict of a Config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)


def config_from_dict(config_cls: type, data: Mapping[str, Any]) -> Any:
    """Rebuild a Config from :func:`config_to_dict` output, checking every field's type.

    Fields missing from ``data`` keep their defaults (a config written by an older version
    still loads); unknown keys are an error, since they would be silently ignored otherwise.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a {config_cls.__name__} must be a JSON object; got {type(data).__name__}")
    return apply_overrides(config_cls(), dict(data))
