"""The NeuralTask seam: what a subclass must declare, and the clear errors when it does not."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gicho.runs import run_task
from gicho.tasks import RunContext, Task
from gicho.tasks.neural import NeuralTask
from gicho.train import TrainConfig


@dataclass
class _Part:
    n: int = 1


@dataclass
class _Config:
    model: _Part = field(default_factory=_Part)
    data: _Part = field(default_factory=_Part)
    train: TrainConfig = field(default_factory=TrainConfig)


class _Declared(NeuralTask):
    name, config_cls, model_type = "declared", _Config, "vit"
    model, data, metrics = "-", "-", ("accuracy",)


def test_a_subclass_must_declare_what_it_is():
    class Nameless(NeuralTask):
        config_cls, model_type, model, data, metrics = _Config, "vit", "-", "-", ("accuracy",)

    with pytest.raises(TypeError, match=r"Nameless must set the class attribute\(s\) name"):
        Nameless()

    @dataclass
    class Flat:
        lr: float = 0.1

    class FlatConfig(_Declared):
        config_cls = Flat

    with pytest.raises(TypeError, match=r"task 'declared': config_cls must have the parts model, data and train; "
                                        r"got fields \['lr'\]"):
        FlatConfig()

    class NoMetrics(_Declared):
        metrics = ()

    with pytest.raises(ValueError, match=r"task 'declared': at least one metric is required"):
        NoMetrics()

    class Chooses(_Declared):
        select = "first"

    with pytest.raises(ValueError, match=r"select must be 'last' or 'best'; got 'first'"):
        Chooses()


def test_saved_files_must_be_readable_back():
    class WritesOnly(_Declared):
        def save_extras(self, directory, info):
            (directory / "vocab.txt").write_text("a")

    with pytest.raises(TypeError, match=r"WritesOnly defines save_extras but not load_extras"):
        WritesOnly()


def test_a_missing_hook_is_named_when_the_runner_calls_it(tmp_path):
    task = _Declared()
    assert task.describe(task.make_config()) == ("-", "-")  # hooks with a default need nothing
    with pytest.raises(NotImplementedError, match=r"_Declared must define build_data\(config, preprocessing=None\)"):
        task.run(task.make_config(), RunContext(run_dir=tmp_path))


def test_a_task_of_functions_says_which_steps_it_lacks(tmp_path):
    task = Task(name="fit-only", model="-", data="-", metrics=("m",), config_cls=_Part,
                run=lambda config, ctx: {"m": 1.0})
    outcome = run_task(task, task.make_config(), run_dir=tmp_path / "run", report=False)
    assert outcome.metrics == {"m": 1.0} and task.predict_options == ()
    with pytest.raises(ValueError, match=r"task 'fit-only' has no evaluate step; its metrics are in results.json"):
        task.evaluate(task.make_config(), RunContext(run_dir=outcome.run_dir))
    with pytest.raises(ValueError, match=r"task 'fit-only' does not support predict"):
        task.predict(task.make_config(), RunContext(run_dir=outcome.run_dir), ["x"], {})
    with pytest.raises(TypeError, match=r"task 'bad': config_cls must be a dataclass"):
        Task(name="bad", model="-", data="-", metrics=("m",), config_cls=dict, run=lambda c, x: {})
