"""Config overrides from the CLI: conversion to the declared types and clear errors."""

from __future__ import annotations

from dataclasses import dataclass
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
