"""The run directory's one owner (gicho.rundir.RunDir), the one JSON reader (gicho._io.read_json)
and the process's place in a torchrun launch (gicho._dist): issue 20, P4."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gicho import _dist
from gicho._io import read_json
from gicho.rundir import CONFIG_FILE, RESULTS_FILE, RunDir


def test_rundir_names_every_file_of_a_run(tmp_path):
    run = RunDir(tmp_path)
    assert run == RunDir(str(tmp_path)) and isinstance(RunDir(str(tmp_path)).root, Path)
    names = {
        "config": "config.json", "results": "results.json", "metrics_log": "metrics.jsonl",
        "checkpoints": "checkpoints", "model": "model", "preprocessing": "preprocessing",
        "plots": "plots", "report": "report.html", "tensorboard": "tensorboard",
    }  # fmt: skip
    for attribute, name in names.items():
        assert getattr(run, attribute) == tmp_path / name
    assert (CONFIG_FILE, RESULTS_FILE) == ("config.json", "results.json")
    with pytest.raises(AttributeError):
        run.root = tmp_path / "other"  # frozen


def test_the_layers_below_use_the_same_names():
    from gicho.tasks import neural
    from gicho.train import checkpoint, logs

    assert checkpoint.CHECKPOINTS_DIR == RunDir(".").checkpoints.name
    assert logs.TENSORBOARD_DIR == RunDir(".").tensorboard.name
    assert (neural.MODEL_DIR, neural.PREPROCESSING_DIR) == ("model", "preprocessing")


def test_is_run_tells_a_run_from_a_model_directory(tmp_path):
    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / CONFIG_FILE).write_text(json.dumps({"task": "toy", "config": {}}))
    (tmp_path / "run" / "model" / CONFIG_FILE).write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / CONFIG_FILE).write_text("{not json")
    assert RunDir.is_run(tmp_path / "run")
    for path in ("run/model", "empty", "broken", "nowhere"):
        assert not RunDir.is_run(tmp_path / path), path
    assert RunDir(tmp_path / "run").read_config()["task"] == "toy"


def test_read_json_names_the_file_and_raises_the_callers_error(tmp_path):
    class MyError(RuntimeError):
        pass

    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2]}')
    assert read_json(good, "thing") == {"a": [1, 2]}
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff{")
    (tmp_path / "dir.json").mkdir()
    cases = [
        (tmp_path / "missing.json", r"thing .*missing\.json is missing$"),
        (tmp_path / "dir.json", r"thing .*dir\.json is not a regular file \(a directory\)"),
        (bad, r"thing .*bad\.json is not readable JSON"),
    ]
    for path, message in cases:
        with pytest.raises(ValueError, match=message):
            read_json(path, "thing")
        with pytest.raises(MyError, match=message):
            read_json(path, "thing", error=MyError)
    with pytest.raises(ValueError, match=r"larger than 4 bytes; it is not a thing"):
        read_json(good, "thing", max_bytes=4)
    if os.path.exists("/dev/zero"):
        link = tmp_path / "zero.json"
        link.symlink_to("/dev/zero")
        with pytest.raises(ValueError, match=r"is not a regular file \(a link to /dev/zero, a character device\)"):
            read_json(link, "thing")


def test_dist_reads_torchrun_variables(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert (_dist.rank(), _dist.world_size(), _dist.local_rank(), _dist.is_main_process()) == (0, 1, 0, True)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert (_dist.rank(), _dist.world_size(), _dist.local_rank(), _dist.is_main_process()) == (3, 4, 1, False)
    monkeypatch.setenv("RANK", "")  # unset in effect
    assert _dist.rank() == 0
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match=r"environment variable WORLD_SIZE must be an integer; got 'two'"):
        _dist.world_size()


def test_dist_and_rundir_import_no_torch():
    import subprocess
    import sys

    code = ("import sys, gicho._dist, gicho.rundir; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
