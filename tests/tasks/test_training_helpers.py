"""The task-side training helpers: TrainConfig from a task Config, torch threads per hook."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gicho.tasks import RunContext, all_tasks, get
from gicho.tasks.diabetes_transformer import DiabetesTransformerTask
from gicho.train import TrainConfig
from gicho.train.config import check_num_threads, max_num_threads, torch_threads


def test_train_part_is_a_trainconfig_overridden_by_dotted_names():
    # the task Config holds a TrainConfig (nothing copied by name): a field renamed in
    # TrainConfig cannot silently stop reaching the Trainer
    config = get("digits-rows").make_config({"train.max_steps": 7, "train.lr": 0.5})
    assert isinstance(config.train, TrainConfig)
    assert (config.train.max_steps, config.train.lr) == (7, 0.5)
    with pytest.raises(ValueError, match=r"unknown field `max_steps`.*did you mean `train.max_steps`"):
        get("digits-rows").make_config({"max_steps": 7})


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(0):  # 0 leaves torch's setting alone
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match=r"argument `num_threads` must be >= 0 \(0 = torch's default\); got -1"):
        with torch_threads(-1):
            pass


class _Stop(Exception):
    pass


def test_hooks_run_under_the_configs_thread_count(tmp_path):
    seen = []

    class Recording(DiabetesTransformerTask):  # a neural task's hooks run inside its run, evaluate, predict
        def build_data(self, config, preprocessing=None):
            seen.append(torch.get_num_threads())
            raise _Stop

    before = torch.get_num_threads()
    config = get("diabetes-transformer").make_config({"train.num_threads": 1})
    with pytest.raises(_Stop):
        Recording().run(config, RunContext(run_dir=tmp_path))
    assert seen == [1] and torch.get_num_threads() == before


def test_predict_sets_the_threads_once(monkeypatch, tmp_path):
    import gicho.tasks.neural as neural
    import gicho.train.config

    task = get("diabetes-transformer")
    config = task.make_config({"train.num_threads": 1})
    predictor = neural.Predictor(task, config, task.build_model(config, task.build_data(config)).eval())
    entered = []

    def counting(n):
        entered.append(n)
        return torch_threads(n)

    monkeypatch.setattr(gicho.train.config, "torch_threads", counting)
    monkeypatch.setattr(neural, "load_predictor", lambda *args: predictor)
    answers = task.predict(config, RunContext(run_dir=tmp_path), [" ".join(["0.01"] * 10)], {})
    assert len(answers) == 1 and entered == [1]


def test_num_threads_is_one_field_of_the_train_part():
    # the tasks run on one thread by default; a TrainConfig of the library keeps torch's setting
    assert TrainConfig().num_threads == 0
    for task in all_tasks():  # gicho's own (a task registered by a user, e.g. tests' toy, may differ)
        if not task.config_cls.__module__.startswith("gicho."):
            continue
        fields = {f.name for f in dataclasses.fields(task.config_cls)}
        assert "num_threads" not in fields, task.name
        if "train" in fields:
            assert task.make_config().train.num_threads == 1, task.name
    with pytest.raises(ValueError, match=r"argument `num_threads` must be >= 0"):
        TrainConfig(num_threads=-1)
    with pytest.raises(TypeError, match=r"argument `num_threads` must be an integer"):
        TrainConfig(num_threads=1.5)


@pytest.mark.parametrize("overrides", [{"num_threads": 3}, ["--num-threads", "3"], ["--num-threads=3"],
                                       ["--train.num-threads", "3"], {"train": {"num_threads": 3}}])
def test_num_threads_keeps_its_old_top_level_name(overrides):
    config = get("digits-rows").make_config(overrides)
    assert config.train.num_threads == 3


@pytest.mark.parametrize("task", ["digits-rows", "diabetes-transformer", "dates"])
def test_negative_thread_count_is_rejected_by_each_neural_task(task):
    with pytest.raises(ValueError, match=r"field `train.num_threads` must be >= 0"):
        get(task).make_config({"train.num_threads": -2})


def test_thread_count_has_a_sane_upper_bound(monkeypatch):
    """O8: `--num-threads 100000` made OpenBLAS fail to create threads, then crashed (exit 139)."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert max_num_threads() == 64  # configs with up to 64 threads load on any machine
    check_num_threads(64)
    with pytest.raises(ValueError, match=r"field `train.num_threads` must be <= 64 \(the larger of 64 and 4 per CPU, "
                                         r"2 here: more threads only slow a run down\); got 100000"):
        get("digits-rows").make_config({"train.num_threads": 100000})
    monkeypatch.setattr("os.cpu_count", lambda: 32)
    assert max_num_threads() == 128
    check_num_threads(128)


@pytest.mark.parametrize("task_name", sorted(t.name for t in all_tasks() if "train" in
                                             {f.name for f in dataclasses.fields(t.config_cls)}))
def test_every_task_bounds_its_thread_count_before_the_run(task_name):
    """O8 for every task: the bound is checked when the config is made, before a run starts
    (dates checked only >= 0, so 100000 threads reached the run); the old name too."""
    for name in ("train.num_threads", "num_threads"):
        with pytest.raises(ValueError, match=r"field `train.num_threads` must be <= \d+ .*got 100000"):
            get(task_name).make_config({name: 100000})
