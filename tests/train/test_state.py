"""TrainState as one unit (keys checked by name, values validated), damaged checkpoints on
resume, and a full disk while writing a checkpoint or best.json."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gicho.train import CheckpointError, TrainState, latest_checkpoint
from gicho.train import checkpoint as ckpt


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_throughput(events: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "throughput"} for e in events]


def state_dict(**changes) -> dict:
    state = TrainState(step=20, epoch=2, position=3, bad_evals=1, world_size=1,
                       config={"grad_accum_steps": 1, "batch_size": 8},
                       rng=[{"python": [], "numpy": {}}]).to_dict()
    state.update(changes)
    return state


# ------------------------------------------------------------------------------ TrainState


def test_state_round_trips_as_one_unit():
    state = TrainState(step=7, epoch=1, position=2, pending_losses=[0.5, 0.25],
                       best={"step": 5, "metric": "eval_loss", "mode": "min", "value": 0.3,
                             "metrics": {"eval_loss": 0.3}},
                       config={"grad_accum_steps": 2}, rng=[{"python": [], "numpy": {}}])
    data = json.loads(json.dumps(state.to_dict()))
    assert data["format"] == 2
    assert TrainState.from_dict(data, "x.json") == state


@pytest.mark.parametrize(("changes", "match"), [
    ({"step": -5}, r"x\.json: field `step` must be an integer >= 0; got -5"),
    ({"position": -3}, r"x\.json: field `position` must be an integer in \[0, 20\]; got -3"),
    ({"epoch": 1e30}, r"x\.json: field `epoch` must be an integer in \[0, 20\]; got 1e\+30"),
    ({"epoch": 21}, r"field `epoch` must be an integer in \[0, 20\]; got 21"),
    ({"step": True}, r"field `step` must be an integer >= 0; got True"),
    ({"bad_evals": 99}, r"field `bad_evals` must be an integer in \[0, 20\]; got 99"),
    ({"stopped_early": "no"}, r"field `stopped_early` must be true or false; got 'no'"),
    ({"world_size": 0}, r"field `world_size` must be an integer >= 1; got 0"),
    ({"rng": []}, r"field `rng` must be a list of world_size=1 generator states"),
    ({"pending_losses": [float("nan")]}, r"field `pending_losses` must be a list of at most"),
    ({"best": {"step": 3}}, r"field `best` must be null or an object with keys step, metric"),
    ({"best": {"step": 30, "metric": None, "mode": None, "value": None, "metrics": {}}},
     r"field `best.step` must be an integer in \[0, 20\]; got 30"),
    ({"config": [1]}, r"field `config` must be a JSON object"),
    ({"format": 9}, r"field `format` must be 1 or 2; got 9"),
])
def test_state_values_are_validated(changes, match):
    with pytest.raises(CheckpointError, match=match):
        TrainState.from_dict(state_dict(**changes), "x.json")


def test_state_keys_are_checked_by_name():
    with pytest.raises(CheckpointError, match=r"x\.json has unused checkpoint values: extra, more"):
        TrainState.from_dict(state_dict(extra=1, more=2), "x.json")
    data = state_dict()
    del data["bad_evals"], data["position"]
    with pytest.raises(CheckpointError, match=r"x\.json lacks checkpoint values: position, bad_evals"):
        TrainState.from_dict(data, "x.json")
    with pytest.raises(CheckpointError, match=r"x\.json must hold a JSON object; got list"):
        TrainState.from_dict([1], "x.json")


def test_format_1_state_loads_without_pending_losses():
    data = state_dict(format=1)
    del data["pending_losses"]
    assert TrainState.from_dict(data, "x.json").pending_losses == []
    with pytest.raises(CheckpointError, match=r"lacks checkpoint values: pending_losses"):
        TrainState.from_dict({**data, "format": 2}, "x.json")


@pytest.mark.parametrize(("field", "value", "match"), [
    ("step", -5, r"field `step` must be an integer >= 0; got -5"),
    ("position", -3, r"field `position` must be an integer in \[0, 10\]; got -3"),
    ("epoch", 1e30, r"field `epoch` must be an integer in \[0, 10\]; got 1e\+30"),
    ("position", 9, r"field `position` must be <= 8 \(micro-batches per epoch\); got 9"),
])
def test_tampered_state_is_refused_naming_field_and_file(toy, tmp_path, field, value, match):
    """Findings row 65: a tampered trainer_state.json must not resume into a different run."""
    toy.make_trainer(tmp_path, max_steps=10, eval_every=10).fit()
    path = latest_checkpoint(tmp_path) / "trainer_state.json"
    state = json.loads(path.read_text())
    state[field] = value
    path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match=r"trainer state .*step-00000010/trainer_state\.json: " + match):
        toy.make_trainer(tmp_path, max_steps=20, eval_every=10).fit(resume=True)


# ---------------------------------------------------------------------- damaged checkpoints


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "truncated weights": lambda d: truncate(d / "model.safetensors"),
    "empty optimizer": lambda d: (d / "optimizer.pt").write_bytes(b""),
    "garbage state": lambda d: (d / "trainer_state.json").write_text("{garbage"),
    "missing generators": lambda d: (d / "rng_state.pt").unlink(),
    # reliability 2026-12-06 U12: a step that contradicts the directory would resume another run
    "step of another directory": lambda d: (d / "trainer_state.json").write_text(
        (d / "trainer_state.json").read_text().replace('"step": 20,', '"step": 25,', 1)),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_resume_falls_back_to_the_previous_intact_checkpoint(toy, tmp_path, damage):
    """Findings row 59: a damaged latest checkpoint is skipped with a warning naming both."""
    config = dict(max_steps=30, eval_every=10, log_every=5, dropout=0.2)
    reference = toy.make_trainer(tmp_path / "ref", **config)
    expected = reference.fit()
    crashed = toy.make_trainer(tmp_path / "run", **config)
    crashed.model.fail_at = 25
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.fit()
    damaged = tmp_path / "run" / "checkpoints" / "step-00000020"
    DAMAGE[damage](damaged)

    resumed = toy.make_trainer(tmp_path / "run", **config)
    with pytest.warns(UserWarning, match=r"checkpoint .*step-00000020 is damaged \(.*\); resuming "
                      r"from the previous intact checkpoint .*step-00000010 instead"):
        result = resumed.fit(resume=True)
    assert without_throughput(result.history) == without_throughput(expected.history)
    assert without_throughput(read_log(tmp_path / "run")) == without_throughput(expected.history)
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    # The damaged checkpoint was rewritten when the resumed run reached its step again.
    assert load_file(str(damaged / "model.safetensors")).keys() == reference.model.state_dict().keys()


def test_resume_without_intact_checkpoint_names_every_damage(toy, tmp_path):
    toy.make_trainer(tmp_path, max_steps=10, eval_every=5).fit()
    for step in (5, 10):
        (tmp_path / "checkpoints" / f"step-{step:08d}" / "optimizer.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match=r"no intact checkpoint in .*: step-00000010: optimizer "
                       r"state .*step-00000010/optimizer\.pt cannot be loaded safely.*; "
                       r"step-00000005: optimizer state .*cannot be loaded safely"):
        toy.make_trainer(tmp_path, max_steps=20).fit(resume=True)


def test_model_mismatch_is_not_mistaken_for_damage(toy, tmp_path):
    toy.make_trainer(tmp_path, max_steps=10, eval_every=5).fit()
    other = toy.make_trainer(tmp_path, max_steps=20)
    other.model = toy.ToyMLP(toy.ToyConfig(d_hidden=8))
    with pytest.raises(CheckpointError, match=r"does not match ToyMLP: .*shape mismatch"):
        other.fit(resume=True)


# -------------------------------------------------------------------------------- full disk


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_while_writing_a_checkpoint(toy, tmp_path, monkeypatch):
    """Findings row 58: one clear error naming the intact checkpoint, no temporary left."""
    config = dict(max_steps=20, eval_every=5, log_every=5)
    expected = toy.make_trainer(tmp_path / "ref", **config).fit()
    real = ckpt.save_tensors

    def fill_up_at_step_10(obj, path):
        if "step-00000010" in str(path):
            disk_full()
        real(obj, path)

    monkeypatch.setattr(ckpt, "save_tensors", fill_up_at_step_10)
    with pytest.raises(CheckpointError) as info:
        toy.make_trainer(tmp_path / "run", **config).fit()
    message = str(info.value)
    assert message == (f"disk full while writing checkpoint step-00000010 in {tmp_path / 'run' / 'checkpoints'}; "
                       f"the last intact checkpoint is {tmp_path / 'run' / 'checkpoints' / 'step-00000005'}. "
                       "Free some space and resume")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "best.json", "step-00000005"]
    monkeypatch.undo()  # space freed: the resumed run is exact
    result = toy.make_trainer(tmp_path / "run", **config).fit(resume=True)
    assert without_throughput(result.history) == without_throughput(expected.history)


def test_other_write_errors_are_named_too(toy, tmp_path, monkeypatch):
    def broken(obj, path):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(ckpt, "save_tensors", broken)
    with pytest.raises(CheckpointError, match=r"could not write checkpoint step-00000005 in .*checkpoints "
                       r"\(OSError: \[Errno 5\] Input/output error\); no intact checkpoint has been "
                       r"written yet"):
        toy.make_trainer(tmp_path, max_steps=10, eval_every=5).fit()
    assert not list((tmp_path / "checkpoints").iterdir())


def test_disk_full_while_writing_best_json(toy, tmp_path, monkeypatch):
    real = ckpt.write_best_record

    def full_disk_at_fsync(run_dir, record):
        with monkeypatch.context() as m:
            m.setattr(os, "fsync", disk_full)
            real(run_dir, record)

    monkeypatch.setattr(ckpt, "write_best_record", full_disk_at_fsync)
    root = tmp_path / "checkpoints"
    with pytest.raises(CheckpointError, match=r"^disk full while writing best\.json in .*checkpoints; "
                       r"the last intact checkpoint is .*step-00000005\. Free some space and resume$"):
        toy.make_trainer(tmp_path, max_steps=10, eval_every=5).fit()
    assert sorted(p.name for p in root.iterdir()) == ["step-00000005"]  # no .tmp-best.json-*


def test_write_error_recognises_wrapped_disk_full_messages():
    wrapped = RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                           "message: \"No space left on device\" })")
    error = ckpt.write_error(wrapped, "checkpoint step-00000001", "/x", None)
    assert str(error).startswith("disk full while writing checkpoint step-00000001 in /x; no intact")


# ------------------------------------------------------------- a collate function's own state


def _noisy_trainer(toy, run_dir, **config):
    return toy.make_trainer(run_dir, noise_seed=7, **config)


def test_resume_restores_the_collate_functions_generator(toy, tmp_path):
    """Reliability 2026-12-06 R4: the state of a collate function with its own generator is
    part of the checkpoint, so the resumed run sees the batches the interrupted one would have."""
    config = dict(max_steps=30, eval_every=10, log_every=5)
    expected = _noisy_trainer(toy, tmp_path / "ref", **config).fit()
    crashed = _noisy_trainer(toy, tmp_path / "run", **config)
    crashed.model.fail_at = 25
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.fit()
    saved = torch.load(tmp_path / "run" / "checkpoints" / "step-00000020" / "rng_state.pt", weights_only=True)
    assert torch.is_tensor(saved["collate"][0]["generator"])
    resumed = _noisy_trainer(toy, tmp_path / "run", **config).fit(resume=True)
    assert without_throughput(resumed.history) == without_throughput(expected.history)
    got, want = (load_file(d / "checkpoints" / "step-00000030" / "model.safetensors")
                 for d in (tmp_path / "run", tmp_path / "ref"))
    for name in want:
        assert torch.equal(got[name], want[name]), name


def test_a_checkpoint_without_collate_state_resumes_with_a_warning(toy, tmp_path):
    config = dict(max_steps=20, eval_every=10, log_every=5)
    crashed = _noisy_trainer(toy, tmp_path, **config)
    crashed.model.fail_at = 15
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.fit()
    path = tmp_path / "checkpoints" / "step-00000010" / "rng_state.pt"
    saved = torch.load(path, weights_only=True)
    del saved["collate"]  # as an older gicho wrote it
    torch.save(saved, path)
    with pytest.warns(UserWarning, match=r"rng_state\.pt holds no state of the collate function"):
        _noisy_trainer(toy, tmp_path, **config).fit(resume=True)


def test_a_run_shorter_than_its_warmup_is_warned_about(toy, tmp_path):
    """Newcomer 2026-12-06 #20: 60 steps with the default 60 warmup steps never decayed."""
    with pytest.warns(UserWarning, match=r"train\.warmup_steps=20 >= train\.max_steps=20: the learning rate "
                                         r"warms up for the whole run and never decays"):
        toy.make_trainer(tmp_path, max_steps=20, warmup_steps=20).fit()


def test_no_task_budget_ends_inside_its_warmup():
    from gicho.tasks import all_tasks
    from gicho.tasks.neural import NeuralTask

    for task in all_tasks():
        if not isinstance(task, NeuralTask):
            continue
        for overrides in ({}, task.tour, task.quick):
            train = task.make_config(overrides).train
            assert train.warmup_steps < train.max_steps, (task.name, overrides)
