"""Config overrides from the CLI: conversion to the declared types and clear errors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import pytest

from gicho.tasks import apply_overrides, config_from_dict, config_to_dict


@dataclass
class ExampleConfig:
    lr: float = 1e-3
    max_steps: int = 10
    pool: Literal["mean", "cls"] = "mean"
    compile: bool = False
    grad_clip: float | None = 1.0
    name: str = "x"
    lengths: tuple[int, ...] = (16, 32)

    def __post_init__(self) -> None:
        if self.max_steps <= 0:
            raise ValueError(f"max_steps must be > 0; got {self.max_steps}")


def test_cli_style_overrides_are_converted_to_field_types():
    config = apply_overrides(
        ExampleConfig(),
        ["--lr", "0.1", "--max-steps=20", "--pool", "cls", "--compile", "--grad-clip", "none",
         "--lengths", "8,64"],
    )
    assert config == ExampleConfig(lr=0.1, max_steps=20, pool="cls", compile=True, grad_clip=None,
                                   lengths=(8, 64))


def test_boolean_flag_forms():
    assert apply_overrides(ExampleConfig(compile=True), ["--no-compile"]).compile is False
    assert apply_overrides(ExampleConfig(), ["--compile", "true"]).compile is True
    assert apply_overrides(ExampleConfig(), ["--compile=off"]).compile is False


def test_mapping_overrides_and_round_trip():
    config = apply_overrides(ExampleConfig(), {"lr": 2, "pool": "cls"})
    assert config.lr == 2.0 and isinstance(config.lr, float)
    assert config_from_dict(ExampleConfig, config_to_dict(config)) == config


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr", "fast"], r"field `lr` must be a number; got 'fast'"),
        (["--max-steps", "1.5"], r"field `max_steps` must be an integer; got '1.5'"),
        (["--pool", "max"], r"field `pool` must be one of 'mean', 'cls'; got 'max'"),
        (["--compile", "maybe"], r"field `compile` must be a boolean"),
        (["--unknown", "1"], r"unknown field `--unknown` for ExampleConfig; allowed: --lr, --max-steps"),
        # newcomer 2026-12-06 E15: the suggestion comes before the (long) list of fields
        (["--max-stpes", "1"], r"unknown field `--max-stpes` for ExampleConfig; did you mean `--max-steps`\?; "
                               r"allowed: --lr"),
        (["positional"], r"unexpected argument 'positional'"),
        (["--lr"], r"field `--lr` needs a value"),
    ],
)
def test_bad_overrides_name_field_value_and_allowed(args, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(ExampleConfig(), args)


def test_post_init_validation_runs_again_after_overrides():
    with pytest.raises(ValueError, match="max_steps must be > 0; got 0"):
        apply_overrides(ExampleConfig(), ["--max-steps", "0"])


def test_unknown_key_in_saved_config_is_an_error():
    with pytest.raises(ValueError, match="unknown field `dropout`"):
        config_from_dict(ExampleConfig, {"dropout": 0.1})


@dataclass
class _Part:
    """A part.

    Parameters
    ----------
    size : int
    depth : int
        Number of layers.
    rate : float
        Must lie in [0, 1), e.g. 0.1;
        never 1. A second sentence is left out.
    """

    size: int = 1
    depth: int = 2
    rate: float = 0.1

    def __post_init__(self) -> None:
        if not 0 <= self.rate < 1:
            raise ValueError(f"argument `rate` must lie in [0, 1); got {self.rate!r}")


@dataclass
class _Nested:
    part: _Part = field(default_factory=_Part)


def test_docstring_entry_without_description_gets_no_help_not_the_next_header():
    from gicho.tasks.overrides import describe_fields

    helps = {info.name: info.help for info in describe_fields(_Nested())}
    assert helps == {"part.size": "", "part.depth": "Number of layers.",
                     "part.rate": "Must lie in [0, 1), e.g. 0.1; never 1."}  # one sentence, over its lines


def test_a_parts_own_check_is_reported_under_the_dotted_field():
    with pytest.raises(ValueError, match=r"^field `part.rate` must lie in \[0, 1\); got 1.0$"):
        apply_overrides(_Nested(), ["--part.rate", "1.0"])


def _all_tasks():
    """gicho's own tasks (not one a test module registered, such as tests/toy_task.py)."""
    from gicho.tasks import all_tasks

    return [t for t in all_tasks() if t.config_cls.__module__.startswith("gicho.")]


@pytest.mark.parametrize("task", _all_tasks(), ids=lambda t: t.name)
def test_every_task_field_has_its_own_help(task):
    """Newcomer #40: --help showed `in_channels : int` for patch-size and one text for three fields."""
    from gicho.tasks.overrides import describe_fields

    infos = describe_fields(task.config_cls())
    seen: dict[str, str] = {}
    for info in infos:
        assert info.help.strip(), f"{task.name}: --{info.name} has no help"
        assert info.help not in seen, f"{task.name}: --{info.name} repeats the help of --{seen.get(info.help)}"
        seen[info.help] = info.name
        assert not re.match(r"^\w+(\s*,\s*\w+)*\s*:", info.help), f"{task.name}: --{info.name}: {info.help!r}"
        part, _, leaf = info.name.rpartition(".")
        siblings = {i.name.rpartition(".")[2] for i in infos if i.name.rpartition(".")[0] == part} - {leaf}
        header = re.match(r"^(\w+)\s*[,:]", info.help.strip())  # `in_channels : int`, `n_heads, ...`
        assert not (header and header.group(1) in siblings), (
            f"{task.name}: --{info.name} begins with another field's name: {info.help!r}")


def test_a_config_saved_before_num_threads_moved_still_loads(tmp_path):
    """`num_threads` was a top-level field of every neural task's config; it is now
    `train.num_threads`. A run's config.json written before the move, and old commands
    (`--num-threads 2`), still set it."""
    import json

    from gicho.tasks import get

    task = get("digits-rows")
    saved = config_to_dict(task.make_config())
    del saved["train"]["num_threads"]
    saved["num_threads"] = 2  # the old layout
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"task": task.name, "config": saved}))
    config = config_from_dict(task.config_cls, json.loads(path.read_text())["config"])
    assert config.train.num_threads == 2
    assert config == task.make_config({"train.num_threads": 2})
    assert task.make_config(["--num-threads", "2"]) == config
    # an old config without the field at all gets the task's default, one thread
    del saved["num_threads"]
    assert config_from_dict(task.config_cls, saved).train.num_threads == 1
    with pytest.raises(ValueError, match=r"field `train.num_threads` must be >= 0"):
        config_from_dict(task.config_cls, {**saved, "num_threads": -1})
    # a config without a train part has no alias: the old name stays unknown there
    with pytest.raises(ValueError, match=r"unknown field `num_threads`"):
        apply_overrides(ExampleConfig(), {"num_threads": 1})


def test_renamed_model_fields_still_read_from_old_configs_and_options():
    """Every model family says n_labels since issue 20; a run's config.json or a command written
    before (n_outputs for the encoder classifier, n_classes for ViT) still sets it."""
    from gicho.tasks import get
    from gicho.tasks.overrides import config_from_dict, config_to_dict

    rows = get("digits-rows")
    saved = config_to_dict(rows.make_config([]))
    saved["model"]["n_outputs"] = saved["model"].pop("n_labels")
    assert config_from_dict(rows.config_cls, saved).model.n_labels == 10
    assert get("vit").make_config(["--model.n-classes", "3"]).model.n_labels == 3
    assert apply_overrides(get("digits-vit").make_config([]), {"model.n_classes": 10}).model.n_labels == 10
    with pytest.raises(ValueError, match=r"unknown field `model.n_outputz`"):
        config_from_dict(rows.config_cls, {"model": {"n_outputz": 3}})
