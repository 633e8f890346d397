"""The training loop: config validation, schedule, logging, evaluation, early stopping,
non-finite losses, checkpoints and exact resume (in process and after a real SIGKILL)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from gicho.train import (
    CheckpointError,
    NonFiniteLossError,
    TrainConfig,
    Trainer,
    best_checkpoint,
    evaluate_model,
    latest_checkpoint,
    load_model_weights,
    warmup_cosine,
)

HERE = Path(__file__).resolve().parent


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_throughput(events: list[dict]) -> list[dict]:
    # Throughput is wall-clock dependent; everything else must be reproducible.
    return [{k: v for k, v in e.items() if k != "throughput"} for e in events]


def assert_events_close(got: list[dict], expected: list[dict], atol: float) -> None:
    """Same events (steps, splits, keys) with numbers equal to ``atol``, throughput aside."""
    got, expected = without_throughput(got), without_throughput(expected)
    assert [(e["step"], e["split"], sorted(e)) for e in got] == [
        (e["step"], e["split"], sorted(e)) for e in expected]
    for a, b in zip(got, expected, strict=True):
        for key in a:
            if key not in ("step", "split"):
                assert a[key] == pytest.approx(b[key], rel=0, abs=atol), (a["step"], key)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


# ----------------------------------------------------------------------------- TrainConfig


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"max_steps": 0}, ValueError, r"`max_steps` must be a finite integer > 0; got 0"),
        ({"batch_size": 2.5}, TypeError, r"`batch_size` must be an integer; got 2.5"),
        ({"eval_batch_size": -1}, ValueError, r"`eval_batch_size` must be a finite integer > 0"),
        ({"lr": 0.0}, ValueError, r"`lr` must be a finite number > 0; got 0.0"),
        ({"lr": float("nan")}, ValueError, r"`lr` must be a finite number > 0; got nan"),
        ({"weight_decay": -0.1}, ValueError, r"`weight_decay` must be a finite number >= 0"),
        ({"warmup_steps": -1}, ValueError, r"`warmup_steps` must be a finite integer >= 0"),
        ({"min_lr_ratio": 1.5}, ValueError, r"`min_lr_ratio` must lie in \[0, 1\]; got 1.5"),
        ({"grad_clip": 0}, ValueError, r"`grad_clip` must be a finite number > 0; got 0"),
        ({"grad_accum_steps": 0}, ValueError, r"`grad_accum_steps` must be a finite integer > 0"),
        ({"eval_every": 0}, ValueError, r"`eval_every` must be a finite integer > 0"),
        ({"log_every": -5}, ValueError, r"`log_every` must be a finite integer > 0; got -5"),
        ({"keep_last": 0}, ValueError, r"`keep_last` must be a finite integer > 0; got 0"),
        ({"early_stopping_patience": -1}, ValueError, r"`early_stopping_patience` must be a finite"),
        ({"early_stopping_mode": "up"}, ValueError, r"`early_stopping_mode` must be one of 'max', 'min'; got 'up'"),
        ({"early_stopping_metric": ""}, ValueError, r"`early_stopping_metric` must be a metric name or None"),
        ({"early_stopping_patience": 2}, ValueError, r"`early_stopping_patience` is 2 but `early_stopping_metric` is None"),
        ({"early_stopping_metric": "eval_loss"}, ValueError, r"'eval_loss', a loss, but `early_stopping_mode` is 'max'"),
        ({"seed": -1}, ValueError, r"`seed` must be a finite integer >= 0; got -1"),
        ({"seed": 2**40}, ValueError, r"`seed` must be <= 4294967295"),
        ({"mixed_precision": "yes"}, TypeError, r"`mixed_precision` must be True or False; got 'yes'"),
        ({"progress": 1}, TypeError, r"`progress` must be True or False; got 1"),
        ({"device": "tpu"}, ValueError, r"`device` must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got 'tpu'"),
        ({"num_workers": -1}, ValueError, r"`num_workers` must be a finite integer >= 0"),
    ],
)
def test_config_rejects_bad_values(overrides, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**overrides)


def test_config_defaults_and_eval_batch_size():
    config = TrainConfig()
    assert config.effective_eval_batch_size == config.batch_size == 32
    assert TrainConfig(eval_batch_size=7).effective_eval_batch_size == 7
    TrainConfig(early_stopping_metric="eval_loss", early_stopping_mode="min", early_stopping_patience=3)


# --------------------------------------------------------------------------- the loop


def test_fit_logs_learns_and_checkpoints(toy, tmp_path):
    trainer = toy.make_trainer(tmp_path, max_steps=40, eval_every=10, log_every=5, lr=1e-2)
    result = trainer.fit()
    events = read_log(tmp_path)
    assert events == result.history
    train = [e for e in events if e["split"] == "train"]
    evals = [e for e in events if e["split"] == "eval"]
    assert [e["step"] for e in train] == list(range(5, 41, 5))
    assert [e["step"] for e in evals] == [10, 20, 30, 40]
    assert all(e["throughput"] > 0 and set(e) == {"step", "split", "loss", "lr", "throughput"}
               for e in train)
    assert set(evals[0]) == {"step", "split", "eval_loss", "accuracy"}
    # It learns: a linearly separable problem ends well below chance loss and above chance accuracy.
    assert train[-1]["loss"] < 0.5 * train[0]["loss"]
    assert result.final_metrics["accuracy"] > 0.8
    assert result.final_metrics == {k: v for k, v in evals[-1].items() if k not in ("step", "split")}
    # Best = lowest eval_loss by default; the two latest checkpoints and the best are kept.
    best_eval = min(evals, key=lambda e: e["eval_loss"])
    assert result.best_step == best_eval["step"]
    assert result.best_checkpoint == best_checkpoint(tmp_path)
    assert latest_checkpoint(tmp_path).name == "step-00000040"
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    assert kept == sorted({"step-00000030", "step-00000040", f"step-{result.best_step:08d}"})
    files = sorted(p.name for p in latest_checkpoint(tmp_path).iterdir())
    assert files == ["config.json", "model.safetensors", "optimizer.pt", "rng_state.pt",
                     "trainer_state.json"]
    assert json.loads((latest_checkpoint(tmp_path) / "config.json").read_text()) == {
        "d_in": 4, "d_hidden": 16, "n_classes": 2, "dropout": 0.0}
    # The saved weights are the model's final weights.
    for name, tensor in weights(latest_checkpoint(tmp_path)).items():
        assert torch.equal(tensor, trainer.model.state_dict()[name])


def test_schedule_warmup_then_cosine(toy):
    config = dict(max_steps=30, warmup_steps=5, lr=2e-3, min_lr_ratio=0.1, log_every=1, eval_every=30)
    result = toy.make_trainer(**config).fit()
    lrs = {e["step"]: e["lr"] for e in result.history if e["split"] == "train"}
    for step in range(1, 31):
        k = step - 1  # optimizer steps taken before this one
        if k < 5:
            expected = 2e-3 * (k + 1) / 5
        else:
            expected = 2e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (k - 5) / 25)))
        assert lrs[step] == pytest.approx(expected, rel=1e-12)
    assert warmup_cosine(30, warmup_steps=5, max_steps=30, min_lr_ratio=0.1) == pytest.approx(0.1)


def test_schedule_warmup_then_linear_decay(toy):
    """lr_schedule="linear": the rate the optimizer used at every step (logged, and the
    scheduler's own) falls on a straight line from the peak to lr * min_lr_ratio."""
    config = dict(max_steps=30, warmup_steps=5, lr=2e-3, min_lr_ratio=0.1, log_every=1, eval_every=30,
                  lr_schedule="linear")
    trainer = toy.make_trainer(**config)
    result = trainer.fit()
    lrs = {e["step"]: e["lr"] for e in result.history if e["split"] == "train"}
    for step in range(1, 31):
        k = step - 1
        expected = 2e-3 * ((k + 1) / 5 if k < 5 else 1 - 0.9 * (k - 5) / 25)
        assert lrs[step] == pytest.approx(expected, rel=1e-12)
    assert trainer.optimizer_.param_groups[0]["lr"] == pytest.approx(2e-3 * 0.1, rel=1e-12)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")


def test_weight_decay_skips_1d_parameters(toy):
    trainer = toy.make_trainer(max_steps=1, weight_decay=0.3)
    trainer.fit()
    groups = trainer.optimizer_.param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] == 0.3 for p in g["params"]}
    for name, param in trainer.model.named_parameters():
        assert (id(param) in decayed) == (param.ndim >= 2), name
    assert sum(len(g["params"]) for g in groups) == len(list(trainer.model.parameters()))


def test_same_seed_same_run(toy):
    runs = [toy.make_trainer(dropout=0.3, max_steps=15, log_every=1) for _ in range(2)]
    histories = [without_throughput(t.fit().history) for t in runs]
    assert histories[0] == histories[1]
    other = toy.make_trainer(dropout=0.3, max_steps=15, log_every=1, seed=1).fit()
    assert without_throughput(other.history) != histories[0]


def test_grad_accumulation_matches_larger_batch(toy):
    big = toy.make_trainer(max_steps=12, batch_size=8, grad_clip=None, log_every=1)
    small = toy.make_trainer(max_steps=12, batch_size=4, grad_accum_steps=2, grad_clip=None, log_every=1)
    a, b = big.fit(), small.fit()
    assert [e["loss"] for e in a.history if e["split"] == "train"] == pytest.approx(
        [e["loss"] for e in b.history if e["split"] == "train"], abs=1e-6)
    for name, tensor in big.model.state_dict().items():
        torch.testing.assert_close(small.model.state_dict()[name], tensor, rtol=1e-5, atol=1e-6)


def test_grad_clip_bounds_the_update(toy):
    def movement(clip):
        trainer = toy.make_trainer(max_steps=3, grad_clip=clip, weight_decay=0.0)
        before = [p.detach().clone() for p in trainer.model.parameters()]
        trainer.fit()
        return max((p - b).abs().max().item() for p, b in zip(trainer.model.parameters(), before, strict=True))

    # AdamW normalises gradients, so only a clip that pushes them far below eps shows.
    assert movement(1e-12) < 0.01 * movement(None)


def test_evaluate_weights_loss_by_samples_and_runs_metrics_in_eval_mode(toy):
    seen = {}

    class Spy:
        def __init__(self):
            self.batches = []

        def update(self, outputs, batch):
            self.batches.append(batch)
            seen.update(training=trainer.model.training, grad=torch.is_grad_enabled())

        def compute(self):
            seen.update(n=len(self.batches), devices={b["x"].device.type for b in self.batches})
            return {"n_batches": len(self.batches), "score": torch.tensor(0.25)}

    trainer = toy.make_trainer(n_eval=30, eval_batch_size=8)
    trainer.metrics = Spy
    trainer.model.train()
    result = trainer.evaluate()
    assert trainer.model.training  # mode restored
    assert seen == {"training": False, "grad": False, "n": 4, "devices": {"cpu"}}
    data = trainer.eval_data
    with torch.no_grad():
        trainer.model.eval()
        per_sample = nn.functional.cross_entropy(trainer.model(x=data.x)["logits"], data.y,
                                                 reduction="none")
    assert result["eval_loss"] == pytest.approx(per_sample.mean().item(), rel=1e-6)
    assert result["n_batches"] == 4.0 and result["score"] == 0.25


class Count:
    """Counts the samples it sees (a streaming metric that needs no labels)."""

    def __init__(self):
        self.n = 0

    def update(self, outputs, batch):
        self.n += len(batch["x"])

    def compute(self):
        return {"n": self.n}


class Fixed:
    """A streaming metric whose ``compute`` returns a given value."""

    def __init__(self, value):
        self.value = value

    def update(self, outputs, batch):
        pass

    def compute(self):
        return self.value


class Unlabelled(torch.utils.data.Dataset):
    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return {"x": self.data[i]["x"]}


def test_evaluate_model_reloaded_from_best_checkpoint(toy, tmp_path):
    trainer = toy.make_trainer(tmp_path, max_steps=20, eval_every=10)
    result = trainer.fit()
    model = toy.ToyMLP()
    load_model_weights(model, best_checkpoint(tmp_path))
    again = evaluate_model(model, trainer.eval_data, toy.accuracy, batch_size=5)
    assert again == pytest.approx(result.best_metrics, rel=1e-6)
    # Without labels there is no loss: only the task's metrics are reported.
    assert evaluate_model(model, Unlabelled(trainer.eval_data), Count) == {"n": 24.0}


def test_metrics_callable_must_return_numbers(toy):
    trainer = toy.make_trainer()
    trainer.metrics = lambda: Fixed({"accuracy": "high"})
    with pytest.raises(TypeError, match=r"metric 'accuracy' must be a number; got str"):
        trainer.evaluate()
    trainer.metrics = lambda: Fixed([0.5])
    with pytest.raises(TypeError, match=r"must return a dict of floats; got list"):
        trainer.evaluate()


class LossAttribute(nn.Module):
    """Returns an object with a ``.loss`` attribute (like transformers' ModelOutput)."""

    def __init__(self, with_loss: bool = True) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.with_loss = with_loss

    def forward(self, x, labels):
        logits = self.fc(x)

        class Output:
            loss = nn.functional.cross_entropy(logits, labels) if self.with_loss else None

        return Output()


def test_loss_attribute_and_missing_loss(toy):
    data = toy.ToyData(16, seed=0)
    config = TrainConfig(max_steps=3, batch_size=4, progress=False)
    assert Trainer(LossAttribute(), data, None, None, config).fit().step == 3
    with pytest.raises(TypeError, match=r"returned no `loss` \(batch keys: \['labels', 'x'\]\)"):
        Trainer(LossAttribute(with_loss=False), data, None, None, config).fit()


def test_batches_must_be_dicts(toy):
    pairs = [(torch.zeros(4), torch.tensor(0))] * 16
    with pytest.raises(TypeError, match=r"a batch must be a dict of tensors for model\(\*\*batch\); got list"):
        Trainer(toy.ToyMLP(), pairs, None, None, TrainConfig(max_steps=2, batch_size=4)).fit()


def test_trainer_argument_errors(toy, tmp_path):
    data = toy.ToyData(8, seed=0)
    with pytest.raises(TypeError, match=r"`model` must be a torch.nn.Module; got str"):
        Trainer("model", data)
    with pytest.raises(TypeError, match=r"`config` must be a TrainConfig; got dict"):
        Trainer(toy.ToyMLP(), data, config={"max_steps": 3})
    with pytest.raises(ValueError, match=r"`train_data` is empty"):
        Trainer(toy.ToyMLP(), [])
    with pytest.raises(TypeError, match=r"`eval_data` must be a map-style Dataset"):
        Trainer(toy.ToyMLP(), data, eval_data=iter([1]))
    with pytest.raises(TypeError, match=r"`metrics` must be callable or None; got int"):
        Trainer(toy.ToyMLP(), data, metrics=3)
    with pytest.raises(ValueError, match=r"early_stopping_metric is 'accuracy' but `eval_data` is None"):
        Trainer(toy.ToyMLP(), data, config=TrainConfig(early_stopping_metric="accuracy"))
    with pytest.raises(ValueError, match=r"train_data has 8 samples, 8 per process: fewer than "
                       r"batch_size=32, so drop_last=True leaves no batch"):
        Trainer(toy.ToyMLP(), data, config=TrainConfig(max_steps=2, batch_size=32)).fit()
    assert Trainer(toy.ToyMLP(), data, config=TrainConfig(max_steps=2, batch_size=32,
                                                          drop_last=False, progress=False)).fit().step == 2
    with pytest.raises(ValueError, match=r"no eval_data was given to this Trainer"):
        Trainer(toy.ToyMLP(), data).evaluate()
    with pytest.raises(ValueError, match=r"fit\(resume=True\) needs a run_dir"):
        Trainer(toy.ToyMLP(), data).fit(resume=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_requested_without_cuda(toy):
    trainer = toy.make_trainer(device="cuda")
    with pytest.raises(RuntimeError, match=r"device='cuda' was asked for but CUDA is not available"):
        trainer.fit()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_autocast_and_fused_adamw(toy, tmp_path):
    trainer = toy.make_trainer(tmp_path, device="cuda", max_steps=10, eval_every=5)
    dtypes = []
    forward = trainer.model.forward

    def spy(**batch):
        out = forward(**batch)
        dtypes.append(out["logits"].dtype)
        return out

    trainer.model.forward = spy
    result = trainer.fit()
    assert trainer.device_.type == "cuda" and trainer.optimizer_.defaults["fused"] is True
    if torch.cuda.is_bf16_supported():
        assert torch.bfloat16 in dtypes
    assert math.isfinite(result.final_metrics["eval_loss"])
    resumed = toy.make_trainer(tmp_path, device="cuda", max_steps=15, eval_every=5)
    assert resumed.fit(resume=True).step == 15


def test_progress_bar_only_when_asked(toy, capsys):
    toy.make_trainer(max_steps=10, progress=True).fit()
    err = capsys.readouterr().err
    assert "train" in err and "10/10" in err and "loss=" in err and "lr=" in err
    toy.make_trainer(max_steps=10, progress=False).fit()
    assert capsys.readouterr().err == ""
    # progress=None and stderr is captured, not a terminal: plain lines, no bar.
    toy.make_trainer(max_steps=10, log_every=5, eval_every=10, progress=None).fit()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" |")[0] for line in lines] == [
        "step 5/10 (50%)", "step 10/10 (100%)", "eval step 10/10"]
    assert all("\r" not in line for line in lines)


def test_compile_wraps_the_training_model(toy, monkeypatch):
    calls = []

    class Compiled(nn.Module):
        def __init__(self, module):
            super().__init__()
            self._orig_mod = module

        def forward(self, **batch):
            calls.append(sorted(batch))
            return self._orig_mod(**batch)

    monkeypatch.setattr(torch, "compile", lambda module: Compiled(module))
    trainer = toy.make_trainer(max_steps=4, compile=True)
    trainer.fit()
    assert calls == [["labels", "x"]] * 4  # training steps only: evaluation uses the plain model


# ---------------------------------------------------------------- faults and early stopping


def test_non_finite_loss_names_step_and_kept_checkpoint(toy, tmp_path):
    trainer = toy.make_trainer(tmp_path, max_steps=20, eval_every=5, log_every=10)
    trainer.model.nan_at = 8
    with pytest.raises(NonFiniteLossError, match=r"training loss is nan at step 8; training stopped "
                       r"and the last good checkpoint is kept: .*step-00000005") as info:
        trainer.fit()
    assert info.value.step == 8 and info.value.checkpoint == tmp_path / "checkpoints" / "step-00000005"
    assert latest_checkpoint(tmp_path).name == "step-00000005"
    assert all(math.isfinite(t.float().sum()) for t in weights(latest_checkpoint(tmp_path)).values())

    early = toy.make_trainer(tmp_path / "early", max_steps=20, eval_every=5)
    early.model.nan_at = 2
    with pytest.raises(NonFiniteLossError, match=r"at step 2; .*no checkpoint had been written yet"):
        early.fit()
    nowhere = toy.make_trainer(max_steps=20)
    nowhere.model.nan_at = 1
    with pytest.raises(NonFiniteLossError, match=r"at step 1; .*nothing was saved \(no run_dir\)"):
        nowhere.fit()


def scripted_metric(values):
    """A metrics factory whose evaluations report ``values`` in turn: drives early stopping
    precisely."""
    remaining = list(values)
    return lambda: Fixed({"score": remaining.pop(0)})


@pytest.mark.parametrize(("mode", "values", "best"), [
    ("max", [0.5, 0.7, 0.6, 0.65, 0.9], 0.7),
    ("min", [0.5, 0.3, 0.4, 0.35, 0.1], 0.3),
])
def test_early_stopping_stops_and_keeps_best(toy, tmp_path, mode, values, best):
    trainer = toy.make_trainer(tmp_path, max_steps=50, eval_every=5, keep_last=1,
                               early_stopping_metric="score", early_stopping_mode=mode,
                               early_stopping_patience=2)
    trainer.metrics = scripted_metric(values)
    result = trainer.fit()
    assert result.stopped_early and result.step == 20  # evaluations 3 and 4 did not improve
    assert result.best_step == 10 and result.best_metrics["score"] == best
    assert result.best_checkpoint == best_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-00000010"
    record = json.loads((tmp_path / "checkpoints" / "best.json").read_text())
    assert record["checkpoint"] == "step-00000010" and record["value"] == best
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == [
        "step-00000010", "step-00000020"]
    # Resuming a run that stopped early does not train further.
    again = toy.make_trainer(tmp_path, max_steps=50, eval_every=5, keep_last=1,
                             early_stopping_metric="score", early_stopping_mode=mode,
                             early_stopping_patience=2)
    assert again.fit(resume=True).step == 20


def test_early_stopping_metric_must_exist(toy):
    trainer = toy.make_trainer(early_stopping_metric="f1")
    with pytest.raises(ValueError, match=r"early_stopping_metric 'f1' is not among the evaluation "
                       r"metrics: accuracy, eval_loss"):
        trainer.fit()


def test_without_eval_data_best_is_latest(toy, tmp_path):
    trainer = Trainer(toy.ToyMLP(), toy.ToyData(32, seed=0), None, None,
                      TrainConfig(max_steps=25, batch_size=8, eval_every=10, progress=False),
                      run_dir=tmp_path)
    result = trainer.fit()
    assert result.final_metrics == {} and result.best_metrics == {}
    assert result.best_checkpoint == best_checkpoint(tmp_path) == latest_checkpoint(tmp_path)
    assert latest_checkpoint(tmp_path).name == "step-00000025"
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == [
        "step-00000020", "step-00000025"]


# ------------------------------------------------------------------------------ resume


def test_resume_after_crash_matches_uninterrupted_run(toy, tmp_path):
    config = dict(max_steps=30, eval_every=10, log_every=5, dropout=0.2)
    reference = toy.make_trainer(tmp_path / "ref", **config)
    expected = reference.fit()

    crashed = toy.make_trainer(tmp_path / "run", **config)
    crashed.model.fail_at = 17  # a crash in the middle of the second interval
    with pytest.raises(RuntimeError, match="simulated crash on training call 17"):
        crashed.fit()
    assert read_log(tmp_path / "run")[-1]["step"] == 15  # logged past the checkpoint at 10
    stray = tmp_path / "run" / "checkpoints" / ".tmp-step-00000020-999"
    stray.mkdir()
    (stray / "model.safetensors").write_bytes(b"torn")

    resumed = toy.make_trainer(tmp_path / "run", model_seed=123, **config)  # other initial weights
    result = resumed.fit(resume=True)
    assert not stray.exists()
    assert without_throughput(read_log(tmp_path / "run")) == without_throughput(read_log(tmp_path / "ref"))
    assert without_throughput(result.history) == without_throughput(expected.history)
    assert result.final_metrics == expected.final_metrics
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name


def test_resume_errors(toy, tmp_path):
    with pytest.raises(CheckpointError, match=r"has no checkpoint"):
        toy.make_trainer(tmp_path / "empty").fit(resume=True)
    toy.make_trainer(tmp_path, max_steps=10, eval_every=5).fit()
    # Only the latest checkpoint, so that a damaged one has no intact one to fall back to.
    shutil.rmtree(tmp_path / "checkpoints" / "step-00000005")
    with pytest.raises(FileExistsError, match=r"already has checkpoints; call fit\(resume=True\)"):
        toy.make_trainer(tmp_path, max_steps=10, eval_every=5).fit()
    with pytest.raises(CheckpointError, match=r"cannot resume .*step-00000010 exactly: batch_size=8 "
                       r"in the checkpoint but 4 now"):
        toy.make_trainer(tmp_path, max_steps=20, batch_size=4).fit(resume=True)
    latest = latest_checkpoint(tmp_path)
    (latest / "optimizer.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"optimizer state .*step-00000010/optimizer\.pt cannot "
                       r"be loaded safely"):
        toy.make_trainer(tmp_path, max_steps=20).fit(resume=True)
    (latest / "trainer_state.json").unlink()
    with pytest.raises(CheckpointError, match=r"trainer state .*trainer_state\.json is missing"):
        toy.make_trainer(tmp_path, max_steps=20).fit(resume=True)


def test_resume_after_sigkill_matches_uninterrupted_run(toy, tmp_path):
    """A real kill: a subprocess blocks mid-run (after the step-20 checkpoint) and is SIGKILLed;
    a second subprocess resumes; the loss curve equals an uninterrupted run's."""
    config = dict(max_steps=60, eval_every=10, log_every=5, dropout=0.2, device="cpu")
    expected = toy.make_trainer(tmp_path / "ref", **config).fit()

    script = [sys.executable, str(HERE / "run_toy.py"), str(tmp_path / "run"), "--max-steps", "60",
              "--dropout", "0.2"]
    marker = tmp_path / "blocked"
    proc = subprocess.Popen([*script, "--block-at", "27", "--marker", str(marker)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 100
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"training script ended early:\n{proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("training script did not reach step 27")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert latest_checkpoint(tmp_path / "run").name == "step-00000020"
    assert read_log(tmp_path / "run")[-1]["step"] == 25  # lines past the checkpoint, to be dropped

    done = subprocess.run([*script, "--resume"], capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    got = read_log(tmp_path / "run")
    steps = [e["step"] for e in got if e["split"] == "train"]
    assert steps == sorted(set(steps)) == list(range(5, 61, 5))  # no duplicated lines
    assert_events_close(got, expected.history, atol=1e-6)
    ref_weights = weights(tmp_path / "ref" / "checkpoints" / "step-00000060")
    for name, tensor in weights(latest_checkpoint(tmp_path / "run")).items():
        torch.testing.assert_close(tensor, ref_weights[name], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [("max_steps", 10**12, "1000000000"), ("eval_every", 10**10, "1000000000"),
     ("log_every", 10**10, "1000000000"), ("warmup_steps", 10**10, "1000000000"),
     ("batch_size", 2**30, "16777216"), ("eval_batch_size", 2**30, "16777216"),
     ("grad_accum_steps", 2**20, "65536"), ("num_workers", 100_000, "1024")],
)
def test_train_config_refuses_absurd_sizes(field, value, limit):
    """O8 and its kin: `--train.max-steps 10^12` used to start a run of 10^12 steps."""
    with pytest.raises(ValueError, match=rf"argument `{field}` must be <= {limit} \(.+\); got {value}"):
        TrainConfig(**{field: value})
    TrainConfig(**{field: int(limit)})  # the bound itself is allowed


def test_resume_drops_metrics_lines_that_are_not_utf8(tmp_path):
    """Old row 63 / U16: a metrics.jsonl with non-UTF-8 bytes made --resume a UnicodeDecodeError."""
    from gicho.train.logs import MetricsLog

    path = tmp_path / "metrics.jsonl"
    good = [{"step": 1, "split": "train", "loss": 1.0}, {"step": 2, "split": "train", "loss": 0.5}]
    path.write_bytes(json.dumps(good[0]).encode() + b"\n\xff\xfe{\"step\": 2}\n"
                     + json.dumps(good[1]).encode() + b"\n" + b'{"step": 3, "split": "train"}\n')
    log = MetricsLog(path)
    with pytest.warns(UserWarning, match=r"metrics.jsonl: 1 line\(s\) are not UTF-8 text \(line 2\); "
                                         "the resumed run drops them"):
        kept = log.start(resume_step=2)
    log.close()
    assert kept == good
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == good
