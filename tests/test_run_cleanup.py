"""N-RUN / E34: a run that fails before it saves anything leaves no directory behind; one that
saved something (a checkpoint, a logged step, its results) is kept, whatever failed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gicho.runs import run_task
from gicho.tasks import Task


@dataclass
class _Config:
    n: int = 1


def _task(write) -> Task:
    """A task whose run writes with ``write(run_dir)``, then fails."""

    def run(config, ctx):
        (ctx.run_dir / "plots").mkdir()
        write(ctx.run_dir)
        raise ValueError("the data is bad")

    return Task(name="failing", model="-", data="-", metrics=("m",), config_cls=_Config, run=run)


def _nothing(run_dir: Path) -> None:
    (run_dir / "metrics.jsonl").touch()  # opened by the Trainer, no step logged yet


def _checkpoint(run_dir: Path) -> None:
    (run_dir / "checkpoints" / "step-00000010").mkdir(parents=True)
    (run_dir / "checkpoints" / "step-00000010" / "model.safetensors").write_bytes(b"weights")


def _logged_step(run_dir: Path) -> None:
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 1.0}\n')


def test_a_run_that_saved_nothing_is_removed_with_the_parents_it_made(tmp_path):
    root = tmp_path / "a" / "runs"
    with pytest.raises(ValueError, match="the data is bad"):
        run_task(_task(_nothing), _Config(), root=root, report=False)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_run_that_saved_nothing_is_removed(tmp_path):
    def interrupted(run_dir):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_task(_task(interrupted), _Config(), root=tmp_path, report=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("write", [_checkpoint, _logged_step])
def test_a_run_that_saved_something_is_kept(tmp_path, write):
    with pytest.raises(ValueError, match="the data is bad"):
        run_task(_task(write), _Config(), root=tmp_path, report=False)
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "config.json").is_file()


def test_a_directory_that_existed_before_is_never_removed(tmp_path):
    given = tmp_path / "given"
    given.mkdir()
    with pytest.raises(ValueError):
        run_task(_task(_nothing), _Config(), run_dir=given, report=False)
    assert given.is_dir()
    # a named directory that did not exist is the run's own, as a new one is
    with pytest.raises(ValueError):
        run_task(_task(_nothing), _Config(), run_dir=tmp_path / "new" / "run", report=False)
    assert not (tmp_path / "new").exists()
