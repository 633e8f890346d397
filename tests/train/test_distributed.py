"""torchrun helpers, and a real 2-process DDP run on CPU (gloo) against one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gicho.train import distributed, latest_checkpoint
from gicho.train.distributed import init_distributed, resolve_device

HERE = Path(__file__).resolve().parent
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def no_torchrun_env(monkeypatch):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)


def test_single_process_defaults(no_torchrun_env):
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.local_rank) == (0, 1, 0)
    assert info.device == torch.device("cpu") and info.is_main and not info.is_distributed
    assert init_distributed("cpu") == info  # idempotent
    assert distributed.is_main_process() and not distributed.is_distributed()
    assert distributed.get_rank() == 0 and distributed.get_world_size() == 1
    distributed.barrier()
    payload = {"a": [1, 2]}
    assert distributed.broadcast_object(payload) is payload
    assert distributed.all_gather_object(payload) == [payload]
    t = torch.tensor([1.0, 3.0])
    assert torch.equal(distributed.all_reduce_mean(t), torch.tensor([1.0, 3.0]))
    distributed.cleanup()  # nothing to clean: must not fail


@pytest.mark.parametrize(("env", "match"), [
    ({"WORLD_SIZE": "two"}, r"environment variable WORLD_SIZE must be an integer; got 'two'"),
    ({"WORLD_SIZE": "0"}, r"WORLD_SIZE must be >= 1; got 0"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, r"RANK must lie in \[0, WORLD_SIZE=2\); got 2"),
    ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "-1"}, r"LOCAL_RANK must be >= 0; got -1"),
])
def test_bad_torchrun_environment(no_torchrun_env, monkeypatch, env, match):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=match):
        init_distributed("cpu")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match=r"`device` must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got 'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match=r"device='cuda:1' was asked for but CUDA is not available"):
            resolve_device("cuda:1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_processes_match_one_process(toy, tmp_path, no_torchrun_env):
    """2 ranks x 4 samples per micro-batch (2 micro-batches per step) against 1 process x 8:
    same global batches, so the same loss curve, evaluations and final weights."""
    steps = 16
    single = toy.make_trainer(tmp_path / "single", max_steps=steps, batch_size=8, grad_accum_steps=2,
                              eval_every=8, log_every=5, device="cpu").fit()
    info_dir = tmp_path / "info"
    info_dir.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}",
               str(HERE / "run_toy.py"), str(tmp_path / "ddp"), "--max-steps", str(steps),
               "--batch-size", "4", "--grad-accum", "2", "--eval-every", "8",
               "--info-dir", str(info_dir)]
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    done = subprocess.run(command, capture_output=True, text=True, timeout=110,
                          env={**env, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-4000:]

    ranks = [json.loads((info_dir / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank, record in enumerate(ranks):
        assert record == {"rank": rank, "world_size": 2, "local_rank": rank, "device": "cpu",
                          "is_main": rank == 0, "broadcast": "from rank 0"}

    got = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    expected = single.history
    # Rank 0 alone logs: one line per event, as in the single-process run.
    assert [(e["step"], e["split"]) for e in got] == [(e["step"], e["split"]) for e in expected]
    for a, b in zip(got, expected, strict=True):
        for key in set(a) - {"step", "split", "throughput"}:
            assert a[key] == pytest.approx(b[key], rel=0, abs=1e-5), (a["step"], key)
    ddp_weights = load_file(str(latest_checkpoint(tmp_path / "ddp") / "model.safetensors"))
    ref_weights = load_file(str(latest_checkpoint(tmp_path / "single") / "model.safetensors"))
    assert sorted(ddp_weights) == sorted(ref_weights)
    for name, tensor in ref_weights.items():
        torch.testing.assert_close(ddp_weights[name], tensor, rtol=0, atol=1e-5)
    # The checkpoint records the world it was written by, and rank 1's generator state too.
    state = json.loads((latest_checkpoint(tmp_path / "ddp") / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and len(state["rng"]) == 2


@pytest.mark.slow
def test_torchrun_token_loss_weights_ranks_by_items(toy, tmp_path, no_torchrun_env, monkeypatch):
    """A token-level loss with unequal labelled tokens on the two ranks: the step's gradient is
    the one-process gradient of the whole batch (all-reduced item count, DDP's averaging undone)."""
    expected_grads: list = []
    # Saved by monkeypatch first, so that undo() restores the real function after record_grads.
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", torch.nn.utils.clip_grad_norm_)
    toy.record_grads(expected_grads)
    single = toy.make_token_trainer(tmp_path / "single", max_steps=3, batch_size=8)
    single.fit()
    monkeypatch.undo()
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}",
               str(HERE / "run_toy.py"), str(tmp_path / "ddp"), "--tokens", "--max-steps", "3",
               "--batch-size", "4", "--grads-out", str(tmp_path / "grads.pt")]
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    done = subprocess.run(command, capture_output=True, text=True, timeout=110,
                          env={**env, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    got_grads = torch.load(tmp_path / "grads.pt", weights_only=True)
    assert len(got_grads) == len(expected_grads) == 3
    for step, (got, expected) in enumerate(zip(got_grads, expected_grads, strict=True)):
        for g, e in zip(got, expected, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6, msg=f"step {step + 1}")
    got = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [e["loss"] for e in got] == pytest.approx([e["loss"] for e in single.history_], abs=1e-6)
    ddp_weights = load_file(str(latest_checkpoint(tmp_path / "ddp") / "model.safetensors"))
    for name, tensor in single.model.state_dict().items():
        torch.testing.assert_close(ddp_weights[name], tensor, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_torchrun_signal_on_one_rank_stops_all_at_a_log_line(toy, tmp_path, no_torchrun_env):
    """SIGTERM reaches rank 1 alone during step 11: the ranks agree at the next log line (step
    15), write one checkpoint and stop; a resumed torchrun run ends like an uninterrupted one."""
    steps = 20
    single = toy.make_trainer(tmp_path / "single", max_steps=steps, batch_size=8, grad_accum_steps=2,
                              eval_every=8, log_every=5, device="cpu").fit()
    base = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
            "--master_addr=127.0.0.1"]
    args = [str(HERE / "run_toy.py"), str(tmp_path / "ddp"), "--max-steps", str(steps),
            "--batch-size", "4", "--grad-accum", "2", "--eval-every", "8"]
    env = {**{k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}, "OMP_NUM_THREADS": "1"}
    stopped = subprocess.run([*base, f"--master_port={free_port()}", *args, "--signal-at", "21",
                              "--signal-rank", "1"], capture_output=True, text=True, timeout=110, env=env)
    assert stopped.returncode != 0
    assert stopped.stderr.count("TrainingInterrupted: training interrupted by") == 2, stopped.stderr[-4000:]
    assert "by SIGTERM after step 15" in stopped.stderr and "by a signal after step 15" in stopped.stderr
    assert latest_checkpoint(tmp_path / "ddp").name == "step-00000015"
    done = subprocess.run([*base, f"--master_port={free_port()}", *args, "--resume"],
                          capture_output=True, text=True, timeout=110, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    got = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [(e["step"], e["split"]) for e in got] == [(e["step"], e["split"]) for e in single.history]
    for a, b in zip(got, single.history, strict=True):
        for key in set(a) - {"step", "split", "throughput"}:
            assert a[key] == pytest.approx(b[key], rel=0, abs=1e-5), (a["step"], key)


@pytest.mark.slow
def test_torchrun_resume_restores_every_ranks_collate_generator(tmp_path, no_torchrun_env):
    """Issue 19: resume is bit-exact under torchrun too, where each rank's collate function draws
    from its own generator (here seeded by rank, as MLM masks differ per rank)."""
    base = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
            "--master_addr=127.0.0.1"]
    env = {**{k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}, "OMP_NUM_THREADS": "1"}

    def launch(run_dir, *extra):
        args = [str(HERE / "run_toy.py"), str(run_dir), "--max-steps", "20", "--batch-size", "4",
                "--eval-every", "8", "--noisy", *extra]
        return subprocess.run([*base, f"--master_port={free_port()}", *args], capture_output=True,
                              text=True, timeout=110, env=env)

    reference = launch(tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr[-4000:]
    stopped = launch(tmp_path / "run", "--signal-at", "11", "--signal-rank", "1")
    assert stopped.returncode != 0 and latest_checkpoint(tmp_path / "run").name == "step-00000015"
    saved = torch.load(latest_checkpoint(tmp_path / "run") / "rng_state.pt", weights_only=True)
    states = [s["generator"] for s in saved["collate"]]
    assert len(states) == 2 and not torch.equal(states[0], states[1])  # one state per rank
    done = launch(tmp_path / "run", "--resume")
    assert done.returncode == 0, done.stderr[-4000:]
    logs = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
            for d in (tmp_path / "run", tmp_path / "ref")]
    strip = [[{k: v for k, v in e.items() if k != "throughput"} for e in log] for log in logs]
    assert strip[0] == strip[1]
    got, want = (load_file(str(latest_checkpoint(d) / "model.safetensors")) for d in (tmp_path / "run", tmp_path / "ref"))
    for name in want:
        assert torch.equal(got[name], want[name]), name
