"""The loop's hooks: parameter groups, progress lines, SIGINT/SIGTERM, TensorBoard, field help."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
import signal
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from gicho.train import (
    ProgressReporter,
    TrainConfig,
    Trainer,
    TrainingInterrupted,
    default_param_groups,
    latest_checkpoint,
    no_decay_param_groups,
    warmup_cosine,
)


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_throughput(events: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "throughput"} for e in events]


# ---------------------------------------------------------------------------- param groups


class Named(nn.Module):
    """Parameter names as in BERT: embeddings, LayerNorm, a dense layer and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(5, 4)
        self.LayerNorm = nn.LayerNorm(4)
        self.dense = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def names_of(model: nn.Module, group: dict) -> list[str]:
    ids = {id(p) for p in group["params"]}
    return [n for n, p in model.named_parameters() if id(p) in ids]


def test_default_and_name_based_param_groups():
    model, config = Named(), TrainConfig(weight_decay=0.2)
    default = {g["name"]: names_of(model, g) for g in default_param_groups(model, config)}
    assert default == {"decay": ["embeddings.weight", "dense.weight", "head.weight"],
                       "no_decay": ["LayerNorm.weight", "LayerNorm.bias", "dense.bias", "head.bias"]}
    groups = no_decay_param_groups(model, config, lr_scale={"head": 10.0})
    summary = {g["name"]: (names_of(model, g), g["weight_decay"], g["lr_scale"]) for g in groups}
    assert summary == {
        "no_decay": (["embeddings.weight", "LayerNorm.weight", "LayerNorm.bias", "dense.bias"], 0.0, 1.0),
        "decay": (["dense.weight"], 0.2, 1.0),
        "decay@head": (["head.weight"], 0.2, 10.0),
        "no_decay@head": (["head.bias"], 0.0, 10.0),
    }


def test_fused_adamw_on_the_cpu_steps_as_the_per_tensor_loop():
    """The Trainer's optimizer is fused on the CPU; its steps equal the plain per-tensor AdamW's
    (with decayed and undecayed groups, a head at 10x the rate)."""
    from gicho.train.optim import build_optimizer

    config = TrainConfig(lr=1e-2, weight_decay=0.1)
    torch.manual_seed(0)
    models = [Named(), Named()]
    models[1].load_state_dict(models[0].state_dict())
    hook = lambda m, c: no_decay_param_groups(m, c, lr_scale={"head": 10.0})  # noqa: E731
    fused = build_optimizer(models[0], config, hook, torch.device("cpu"))
    assert fused.defaults["fused"] is True
    groups = no_decay_param_groups(models[1], config, lr_scale={"head": 10.0})
    plain = torch.optim.AdamW([{**g, "lr": config.lr * g["lr_scale"]} for g in groups], lr=config.lr,
                              foreach=False)
    x = torch.randint(0, 5, (8,))
    before = models[0].dense.weight.detach().clone()
    for _ in range(5):
        for model, optimizer in zip(models, (fused, plain), strict=True):
            optimizer.zero_grad()
            h = model.dense(model.LayerNorm(model.embeddings(x)))
            model.head(torch.tanh(h)).square().mean().backward()
            optimizer.step()
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)
    assert (models[0].dense.weight - before).abs().min() > 1e-4  # every weight moved


def test_param_groups_hook_scales_each_groups_rate(toy):
    def groups(model, config):
        return no_decay_param_groups(model, config, no_decay=("bias",), lr_scale={"net.4": 10.0})

    trainer = toy.make_trainer(max_steps=10, warmup_steps=3, lr=1e-3, min_lr_ratio=0.5, log_every=1,
                               weight_decay=0.3)
    trainer.param_groups = groups
    result = trainer.fit()
    final = warmup_cosine(10, warmup_steps=3, max_steps=10, min_lr_ratio=0.5)
    by_name = {g["name"]: g for g in trainer.optimizer_.param_groups}
    assert set(by_name) == {"decay", "no_decay", "decay@net.4", "no_decay@net.4"}
    for name, group in by_name.items():
        scale = 10.0 if name.endswith("@net.4") else 1.0
        assert group["initial_lr"] == pytest.approx(1e-3 * scale, rel=1e-12)
        assert group["lr"] == pytest.approx(1e-3 * scale * final, rel=1e-12)
        assert group["weight_decay"] == (0.3 if name.startswith("decay") else 0.0)
    logged = [e["lr"] for e in result.history if e["split"] == "train"]
    assert logged[:3] == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3], rel=1e-12)  # config.lr's schedule


def test_param_groups_are_checked(toy):
    model = toy.ToyMLP()
    first, rest = list(model.parameters())[:1], list(model.parameters())[1:]
    cases = [
        (lambda m, c: [{"params": first + rest}, {"params": first}], ValueError,
         r"parameter net\.0\.weight is in param_groups\(model, config\)\[0\] and \[1\]"),
        (lambda m, c: [{"params": rest}], ValueError,
         r"leaves trainable parameters out of every group: net\.0\.weight; put them in a group, "
         r"or set requires_grad=False"),
        (lambda m, c: [{"params": first + rest, "lr": 0.1}], ValueError,
         r"\[0\] has unknown key\(s\) lr \(set 'lr_scale', a multiple of config\.lr\)"),
        (lambda m, c: [{"params": first + rest, "lr_scale": -1}], ValueError,
         r"\[0\]\['lr_scale'\] must be a finite number >= 0 \(a multiple of config\.lr\); got -1"),
        (lambda m, c: {"params": first}, TypeError, r"must return a non-empty list of dicts"),
    ]
    for hook, error, match in cases:
        trainer = Trainer(model, toy.ToyData(16, 0), config=TrainConfig(max_steps=1, batch_size=4,
                                                                        progress=False))
        trainer.param_groups = hook
        with pytest.raises(error, match=match):
            trainer.fit()
    with pytest.raises(TypeError, match=r"`param_groups` must be callable or None; got str"):
        Trainer(model, toy.ToyData(16, 0), param_groups="bert")


# -------------------------------------------------------------------------------- progress


def test_plain_progress_lines_when_not_a_terminal(toy, capsys):
    toy.make_trainer(max_steps=20, log_every=5, eval_every=10, progress=None).fit()
    lines = capsys.readouterr().err.splitlines()
    step = r"step (\d+)/20 \(\d+%\) \| loss \d+\.\d{4} \| lr \d\.\d\de-\d\d \| items/s \d+ \| eta \d+:\d\d:\d\d"
    evaluation = r"eval step (\d+)/20 \| eval_loss \S+ \| accuracy \S+"
    kinds = [("train", int(m.group(1))) if (m := re.fullmatch(step, line)) else
             ("eval", int(m.group(1))) if (m := re.fullmatch(evaluation, line)) else line
             for line in lines]
    assert kinds == [("train", 5), ("train", 10), ("eval", 10), ("train", 15), ("train", 20),
                     ("eval", 20)]


def test_reporter_modes():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    def mode(progress, stream, is_main=True):
        return ProgressReporter.choose(progress, is_main=is_main, total=3, stream=stream).mode

    assert mode(None, Terminal()) == "bar" and mode(None, io.StringIO()) == "lines"
    assert mode(True, io.StringIO()) == "bar" and mode(False, Terminal()) == "none"
    assert mode(True, Terminal(), is_main=False) == "none"
    with pytest.raises(ValueError, match=r"`mode` must be 'bar', 'lines' or 'none'; got 'loud'"):
        ProgressReporter("loud", total=3)


# --------------------------------------------------------------------------------- signals


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_the_step_and_resume_continues_exactly(toy, tmp_path, signum):
    config = dict(max_steps=20, eval_every=10, log_every=5, dropout=0.2)
    reference = toy.make_trainer(tmp_path / "ref", **config)
    expected = reference.fit()
    trainer = toy.make_trainer(tmp_path / "run", **config)
    trainer.model.signal_at = [(13, signum)]  # during the forward pass of step 13
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    name = signal.Signals(signum).name
    with pytest.raises(TrainingInterrupted, match=rf"^training interrupted by {name} after step 13; "
                       r"checkpoint .*step-00000013 holds it; continue with fit\(resume=True\)$") as info:
        trainer.fit()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    assert isinstance(info.value, KeyboardInterrupt) and info.value.step == 13
    assert info.value.checkpoint == latest_checkpoint(tmp_path / "run") == (
        tmp_path / "run" / "checkpoints" / "step-00000013")
    assert info.value.signal_name == name
    assert [e["step"] for e in read_log(tmp_path / "run")][-1] == 10  # steps 11-13 await their line

    resumed = toy.make_trainer(tmp_path / "run", **config)
    result = resumed.fit(resume=True)
    assert without_throughput(result.history) == without_throughput(expected.history)
    assert without_throughput(read_log(tmp_path / "run")) == without_throughput(expected.history)
    for key, tensor in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], tensor), key


def test_second_ctrl_c_stops_at_once(toy, tmp_path):
    trainer = toy.make_trainer(tmp_path, max_steps=20, eval_every=5)
    trainer.model.signal_at = [(7, signal.SIGINT), (7, signal.SIGINT)]
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match=r"second SIGINT: stopping immediately") as info:
        trainer.fit()
    assert not isinstance(info.value, TrainingInterrupted)
    assert latest_checkpoint(tmp_path).name == "step-00000005"  # no checkpoint for step 7
    assert signal.getsignal(signal.SIGINT) is handler


def test_signal_without_run_dir(toy):
    trainer = toy.make_trainer(max_steps=20, eval_every=5)
    trainer.model.signal_at = [(3, signal.SIGTERM)]
    with pytest.raises(TrainingInterrupted, match=r"by SIGTERM after step 3; nothing was saved") as info:
        trainer.fit()
    assert info.value.checkpoint is None and trainer.state_.step == 3


def test_signal_at_an_evaluation_step_keeps_its_checkpoint(toy, tmp_path):
    trainer = toy.make_trainer(tmp_path, max_steps=20, eval_every=5, log_every=5)
    trainer.model.signal_at = [(10, signal.SIGINT)]
    with pytest.raises(TrainingInterrupted, match=r"after step 10; checkpoint .*step-00000010"):
        trainer.fit()
    state = json.loads((tmp_path / "checkpoints" / "step-00000010" / "trainer_state.json").read_text())
    assert state["pending_losses"] == [] and state["step"] == 10


# ------------------------------------------------------------------------------ TensorBoard


def test_tensorboard_events_beside_metrics_jsonl(toy, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = toy.make_trainer(tmp_path, max_steps=10, eval_every=5, log_every=5,
                              log_to="tensorboard").fit()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/lr", "train/throughput", "eval/eval_loss",
            "eval/accuracy"} <= set(events.Tags()["scalars"])
    for split, key in (("train", "loss"), ("eval", "accuracy")):
        logged = [(e["step"], e[key]) for e in result.history if e["split"] == split]
        scalars = [(s.step, s.value) for s in events.Scalars(f"{split}/{key}")]
        assert [s for s, _ in scalars] == [s for s, _ in logged] == [5, 10]
        assert [v for _, v in scalars] == pytest.approx([v for _, v in logged], rel=1e-6)


def test_tensorboard_errors(toy, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"`log_to` must be one of 'none', 'tensorboard'; got 'wandb'"):
        TrainConfig(log_to="wandb")
    with pytest.raises(ValueError, match=r"config\.log_to is 'tensorboard' but `run_dir` is None"):
        toy.make_trainer(log_to="tensorboard")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    with pytest.raises(ImportError, match=r"needs the tensorboard package, which is not installed; "
                       r"install gicho's extra: pip install 'gicho\[tensorboard\]'"):
        toy.make_trainer(tmp_path, max_steps=2, log_to="tensorboard")


# ------------------------------------------------------------------------------ field help


def test_every_config_field_has_one_line_help():
    for f in dataclasses.fields(TrainConfig):
        text = f.metadata.get("help")
        assert isinstance(text, str) and text and "\n" not in text and len(text) <= 140, f.name
    assert [f.name for f in dataclasses.fields(TrainConfig)][:3] == ["max_steps", "batch_size",
                                                                     "eval_batch_size"]
    assert math.isclose(TrainConfig().lr, 1e-3) and TrainConfig().log_to == "none"
