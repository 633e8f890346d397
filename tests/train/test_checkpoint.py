"""Checkpoint I/O: safetensors round trips (tied weights), atomic writes, safe loading, errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

from gicho.train import (
    CheckpointError,
    best_checkpoint,
    latest_checkpoint,
    load_model_weights,
    save_model,
)
from gicho.train.checkpoint import (
    load_tensors,
    prune_checkpoints,
    save_tensors,
    write_best_record,
    write_checkpoint_dir,
)
from gicho.weights import unwrap_model


@dataclass
class TiedConfig:
    vocab_size: int = 11
    d_model: int = 6
    name: str = "tied"


class TiedLM(nn.Module):
    """Embedding and output projection share one weight (as in BERT's MLM head)."""

    def __init__(self, config: TiedConfig | None = None) -> None:
        super().__init__()
        self.config = config or TiedConfig()
        self.embed = nn.Embedding(self.config.vocab_size, self.config.d_model)
        self.norm = nn.LayerNorm(self.config.d_model)
        self.lm_head = nn.Linear(self.config.d_model, self.config.vocab_size)
        self.lm_head.weight = self.embed.weight


class Plain(nn.Module):
    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.fc = nn.Linear(width, 2)


def test_tied_weights_round_trip_once_and_stay_tied(tmp_path):
    torch.manual_seed(0)
    source = TiedLM()
    path = save_model(source, tmp_path)
    assert path == tmp_path / "model.safetensors"
    with safe_open(str(path), framework="pt") as fh:
        keys = set(fh.keys())
    # The shared tensor is stored once, under one of its two names.
    assert len(keys & {"embed.weight", "lm_head.weight"}) == 1
    torch.manual_seed(1)
    target = TiedLM()
    load_model_weights(target, tmp_path)  # a directory is accepted
    for name, tensor in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[name], tensor, rtol=0, atol=0)
    assert target.lm_head.weight.data_ptr() == target.embed.weight.data_ptr()
    assert not list(tmp_path.glob(".tmp-*"))  # no temporary file left behind


def test_config_json_written_for_dataclass_config_only(tmp_path):
    save_model(TiedLM(TiedConfig(vocab_size=7)), tmp_path / "a")
    assert json.loads((tmp_path / "a" / "config.json").read_text()) == {
        "vocab_size": 7, "d_model": 6, "name": "tied"}
    save_model(Plain(), tmp_path / "b")
    assert not (tmp_path / "b" / "config.json").exists()


def test_config_that_is_not_json_raises(tmp_path):
    @dataclass
    class BadConfig:
        where: object

    model = Plain()
    model.config = BadConfig(where=object())
    with pytest.raises(TypeError, match=r"Plain.config \(BadConfig\) cannot be written as JSON"):
        save_model(model, tmp_path)


class CompiledLike(nn.Module):
    """Holds the model as ``_orig_mod``, as ``torch.compile``'s OptimizedModule does (building
    a real one would import the whole compiler stack, seconds of test time)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._orig_mod = model


def test_unwrap_compiled_model_saves_plain_names(tmp_path):
    model = Plain()
    compiled = CompiledLike(model)
    assert unwrap_model(compiled) is model
    assert sorted(compiled.state_dict()) == ["_orig_mod.fc.bias", "_orig_mod.fc.weight"]
    save_model(compiled, tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as fh:
        assert sorted(fh.keys()) == ["fc.bias", "fc.weight"]


def test_load_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"model\.safetensors is missing"):
        load_model_weights(Plain(), tmp_path)


def test_load_corrupt_file(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
    with pytest.raises(CheckpointError, match=r"model\.safetensors is not a readable safetensors"):
        load_model_weights(Plain(), tmp_path / "model.safetensors")


def test_load_wrong_keys(tmp_path):
    save_model(TiedLM(), tmp_path)
    with pytest.raises(CheckpointError, match=r"does not match Plain: missing tensors: fc\.bias, "
                       r"fc\.weight; unexpected tensors: .*embed\.weight"):
        load_model_weights(Plain(), tmp_path)


def test_load_wrong_shapes(tmp_path):
    save_model(Plain(width=3), tmp_path)
    with pytest.raises(CheckpointError, match=r"shape mismatch: fc\.weight has shape \(2, 3\) in the "
                       r"file, \(2, 5\) in the model"):
        load_model_weights(Plain(width=5), tmp_path)


def test_failed_load_leaves_model_untouched(tmp_path):
    save_model(Plain(width=3), tmp_path)
    model = Plain(width=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError):
        load_model_weights(model, tmp_path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name])


def _make_step(run_dir: Path, step: int) -> Path:
    path = run_dir / "checkpoints" / f"step-{step:08d}"
    path.mkdir(parents=True)
    return path


def test_latest_checkpoint_ignores_stray_tmp(tmp_path):
    with pytest.raises(CheckpointError, match=f"run directory {tmp_path} has no checkpoint"):
        latest_checkpoint(tmp_path)
    _make_step(tmp_path, 10)
    twenty = _make_step(tmp_path, 20)
    (tmp_path / "checkpoints" / ".tmp-step-00000030-1234").mkdir()  # a crash mid-write
    assert latest_checkpoint(tmp_path) == twenty


def test_best_checkpoint_record(tmp_path):
    with pytest.raises(CheckpointError, match=r"has no best-checkpoint record \(checkpoints/best\.json"):
        best_checkpoint(tmp_path)
    ten = _make_step(tmp_path, 10)
    write_best_record(tmp_path, {"checkpoint": "step-00000010", "step": 10})
    assert best_checkpoint(tmp_path) == ten
    write_best_record(tmp_path, {"checkpoint": "step-00000090", "step": 90})
    with pytest.raises(CheckpointError, match=r"names step-00000090, which is missing"):
        best_checkpoint(tmp_path)
    (tmp_path / "checkpoints" / "best.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"best\.json is not readable JSON"):
        best_checkpoint(tmp_path)
    write_best_record(tmp_path, {"step": 10})
    with pytest.raises(CheckpointError, match=r"has no valid 'checkpoint' entry"):
        best_checkpoint(tmp_path)


def test_checkpoint_dir_is_atomic(tmp_path):
    root = tmp_path / "checkpoints"

    def good(directory: Path) -> None:
        (directory / "a.txt").write_text("complete")

    def crash(directory: Path) -> None:
        (directory / "a.txt").write_text("torn")
        raise OSError("disk full")

    final = write_checkpoint_dir(root, 5, good)
    assert final == root / "step-00000005"
    with pytest.raises(OSError, match="disk full"):
        write_checkpoint_dir(root, 5, crash)
    # The complete checkpoint survives and no partial directory is left.
    assert (final / "a.txt").read_text() == "complete"
    assert sorted(p.name for p in root.iterdir()) == ["step-00000005"]
    with pytest.raises(OSError, match="disk full"):
        write_checkpoint_dir(root, 6, crash)
    assert sorted(p.name for p in root.iterdir()) == ["step-00000005"]


def test_prune_keeps_last_and_best(tmp_path):
    dirs = [_make_step(tmp_path, s) for s in (10, 20, 30, 40, 50)]
    removed = prune_checkpoints(tmp_path, keep_last=2, keep=dirs[0])
    assert sorted(removed) == dirs[1:3]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step-00000010", "step-00000040", "step-00000050"]


class Evil:
    """Unpickling this would create a file: a stand-in for arbitrary code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_tensor_state_is_loaded_with_weights_only(tmp_path):
    good = tmp_path / "good.pt"
    save_tensors({"step": torch.tensor(3), "lrs": [0.1, 0.2], "nested": {"a": None}}, good)
    loaded = load_tensors(good, "optimizer state")
    assert loaded["lrs"] == [0.1, 0.2] and int(loaded["step"]) == 3
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"state": Evil(marker)}, evil)
    with pytest.raises(CheckpointError, match=r"optimizer state .*evil\.pt cannot be loaded safely"):
        load_tensors(evil, "optimizer state")
    assert not marker.exists()
    (tmp_path / "torn.pt").write_bytes(good.read_bytes()[:20])
    with pytest.raises(CheckpointError, match=r"torn\.pt cannot be loaded safely"):
        load_tensors(tmp_path / "torn.pt", "optimizer state")
    with pytest.raises(CheckpointError, match=r"missing\.pt is missing"):
        load_tensors(tmp_path / "missing.pt", "optimizer state")
