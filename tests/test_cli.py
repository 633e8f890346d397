"""The CLI end to end with a toy task: train, evaluate, predict, report, tour, resume, torchrun.

This is the acceptance test of the <T, E, P> spine: a task registered from outside gicho
trains, checkpoints, is killed mid-run and resumes identically, runs under torchrun with two
processes, and produces a self-contained report.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import toy_task  # noqa: F401 - registers the task "toy" in this process
from gicho.cli import main

TESTS_DIR = Path(__file__).resolve().parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["GICHO_EXTRA_TASKS"] = "toy_task"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH", "")]))
    env["OMP_NUM_THREADS"] = "1"
    return env


def _gicho(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gicho.cli", *args], env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def cli(*args: str) -> None:
    """Run the CLI in-process; a successful command exits with code 0."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code in (0, None)


def _train_losses(run_dir: Path) -> dict[int, float]:
    losses = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("split") == "train":
            losses[record["step"]] = record["loss"]
    return losses


def test_version_and_help(capsys):
    cli("--version")
    assert capsys.readouterr().out.strip().startswith("gicho ")
    result = _gicho("--help")
    assert result.returncode == 0
    for command in ("train", "evaluate", "predict", "report", "tasks", "tour"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "no-such-task"], "error: unknown task 'no-such-task'; allowed: "),
        (["train", "toy", "--no-such-field", "1"], "error: unknown field `--no-such-field` for ToyConfig; allowed: --model.hidden"),
        (["train", "toy", "--train.max-steps", "many"], "error: field `train.max_steps` must be an integer; got 'many'"),
        (["evaluate", "/nonexistent/run"], "error: run directory not found: /nonexistent/run"),
        (["report", "/nonexistent/run"], "error: run directory not found: /nonexistent/run"),
    ],
)
def test_bad_input_is_one_line_exit_2_without_traceback(args, message):
    result = _gicho(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message)


def test_tasks_lists_toy_with_t_e_p(capsys):
    cli("tasks")
    out = capsys.readouterr().out
    assert "toy" in out and "MLP 4-16-1" in out and "r2, mae" in out
    cli("tasks", "toy")
    assert "--train.max-steps" in capsys.readouterr().out


def test_train_evaluate_predict_report(tmp_path, capsys):
    cli("train", "toy", "--runs-dir", str(tmp_path), "--train.max-steps", "30")
    out = capsys.readouterr().out
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.startswith("toy-")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["task"] == "toy" and config["config"]["train"]["max_steps"] == 30
    results = json.loads((run_dir / "results.json").read_text())
    assert results["metrics"]["r2"] > 0.5, results  # the toy target is nearly linear
    assert "r2" in out and str(run_dir) in out

    cli("evaluate", str(run_dir))
    evaluated = capsys.readouterr().out
    assert "r2" in evaluated

    cli("predict", str(run_dir), "1,0,0,0", "0,1,0,0")
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["1,0,0,0", "0,1,0,0"]
    assert float(lines[0].split("\t")[1]) > float(lines[1].split("\t")[1])  # 1 > -2 in the target

    report = run_dir / "report.html"
    assert (run_dir / "plots" / "learning_curves.png").is_file()
    page = report.read_text()
    assert "data:image/png;base64," in page and "MLP 4-16-1" in page and "train.max_steps" in page
    report.unlink()
    cli("report", str(run_dir))
    assert report.is_file()


def test_tour_runs_selected_task_and_links_reports(tmp_path, capsys):
    cli("tour", "--quick", "--task", "toy", "--runs-dir", str(tmp_path))
    out = capsys.readouterr().out
    assert "toy" in out and "r2" in out
    index = (tmp_path / "report.html").read_text()
    assert 'href="toy/report.html"' in index
    assert (tmp_path / "toy" / "report.html").is_file()


def test_tour_describes_the_config_that_ran(tmp_path, capsys):
    """The tour's T column said "2x2 patches" for digits-vit while --quick trains 4x4 patches: it
    printed the task's static words, not the config that ran."""
    cli("tour", "--quick", "--task", "digits-vit", "--runs-dir", str(tmp_path))
    # issue 23: a task's training is not silent inside the tour (off a terminal: a line per log event)
    assert re.search(r"step \d+/150 \(\d+%\) \| loss", capsys.readouterr().err)
    index = (tmp_path / "report.html").read_text()
    assert "2x2 patches of 4x4 px" in index  # --quick: patch_size 4 on 8x8 digits
    assert "ViT (2x2 patches of 8x8 digits" not in index  # the task's words for its default


def test_killed_run_resumes_with_identical_loss_curve(tmp_path):
    args = ["--train.max-steps", "40", "--train.eval-every", "10", "--train.log-every", "1"]
    reference = _gicho("train", "toy", "--runs-dir", str(tmp_path / "reference"), *args)
    assert reference.returncode == 0, reference.stderr
    (reference_dir,) = (tmp_path / "reference").iterdir()

    runs = tmp_path / "interrupted"
    process = subprocess.Popen(
        [sys.executable, "-m", "gicho.cli", "train", "toy", "--runs-dir", str(runs), *args,
         "--model.step-sleep", "0.05"],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            checkpoints = list(runs.glob("*/checkpoints/step-*"))
            if any(path.name.endswith("0000020") for path in checkpoints):
                break
            if process.poll() is not None:
                pytest.fail(f"training ended before it could be killed: {process.stderr.read()}")
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint appeared within 120 s")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    (run_dir,) = runs.iterdir()
    assert not (run_dir / "results.json").exists()  # it really was interrupted
    interrupted_steps = max(_train_losses(run_dir))
    assert interrupted_steps < 40

    resumed = _gicho("train", "toy", "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    expected, got = _train_losses(reference_dir), _train_losses(run_dir)
    assert sorted(got) == sorted(expected) == list(range(1, 41))
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-6, abs=1e-9), step
    assert (run_dir / "report.html").is_file()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_processes_trains_and_reports(tmp_path):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        f"--master_port={_free_port()}", "-m", "gicho.cli", "train", "toy",
        "--runs-dir", str(tmp_path), "--train.max-steps", "20", "--train.batch-size", "8",
    ]
    result = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()  # both ranks wrote into one run directory
    results = json.loads((run_dir / "results.json").read_text())
    assert results["metrics"]["r2"] > 0.3
    assert (run_dir / "report.html").is_file()
    assert result.stdout.count("report: ") == 1  # printed by rank 0 only


def test_checkpoint_problems_are_one_line_errors(tmp_path):
    empty_run = tmp_path / "empty"
    empty_run.mkdir()
    (empty_run / "config.json").write_text(json.dumps({"task": "toy", "config": {}}))
    result = _gicho("evaluate", str(empty_run))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "checkpoint" in result.stderr

    cli("train", "toy", "--runs-dir", str(tmp_path / "runs"), "--train.max-steps", "10")
    (run_dir,) = (tmp_path / "runs").iterdir()
    saved_config = (run_dir / "config.json").read_text()
    # A different batch size would change the data order: resuming "exactly" is impossible.
    result = _gicho("train", "toy", "--resume", str(run_dir), "--train.max-steps", "20", "--train.batch-size", "4")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: ") and "batch_size" in result.stderr
    assert (run_dir / "config.json").read_text() == saved_config  # the failed resume changed nothing
    result = _gicho("train", "dates", "--resume", str(run_dir))
    assert result.returncode == 2 and "is a run of task 'toy', not 'dates'" in result.stderr


def test_resume_with_more_steps_extends_the_run(tmp_path):
    cli("train", "toy", "--runs-dir", str(tmp_path), "--train.max-steps", "10")
    (run_dir,) = tmp_path.iterdir()
    cli("train", "toy", "--resume", str(run_dir), "--train.max-steps", "20")
    assert max(_train_losses(run_dir)) == 20
    assert json.loads((run_dir / "config.json").read_text())["config"]["train"]["max_steps"] == 20


def test_config_and_plugin_errors_are_one_line(tmp_path):
    """Findings rows 89, 92, 93: a broken plug-in, a huge integer, a bad split fraction."""
    result = _gicho("train", "toy", "--train.max-steps", "9" * 25)
    assert result.returncode == 2 and "field `train.max_steps` must be an integer of magnitude" in result.stderr
    result = _gicho("train", "digits-rows", "--data.test-fraction", "0")
    assert result.returncode == 2 and "field `data.test_fraction` must lie in (0, 1); got 0.0" in result.stderr
    (tmp_path / "broken_tasks.py").write_text("def oops(:\n")
    env = {**_env(), "GICHO_EXTRA_TASKS": "broken_tasks",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), _env()["PYTHONPATH"]])}
    result = subprocess.run([sys.executable, "-m", "gicho.cli", "tasks"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot import task module 'broken_tasks' (SyntaxError" in result.stderr


def test_predict_reads_negative_numbers_and_checks_the_attention_path(tmp_path):
    cli("train", "toy", "--runs-dir", str(tmp_path), "--train.max-steps", "5")
    (run_dir,) = tmp_path.iterdir()
    result = _gicho("predict", str(run_dir), "-1,-2,0,0", "1,nan,0,0")
    assert result.returncode == 2 and "input '1,nan,0,0' holds non-finite values" in result.stderr
    result = _gicho("predict", str(run_dir), "-1,-2,0,0")
    assert result.returncode == 0 and result.stdout.startswith("-1,-2,0,0\t")
    result = _gicho("predict", str(run_dir), "1,0,0,0", "--attention", str(tmp_path))
    assert result.returncode == 2 and "is a directory; give the PNG file" in result.stderr
    # N-CLI3: a suffix matplotlib cannot write was a matplotlib traceback
    result = _gicho("predict", str(run_dir), "1,0,0,0", "--attention", str(tmp_path / "att.txt"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr == (f"error: --attention {tmp_path / 'att.txt'}: cannot draw a .txt file; "
                             "allowed suffixes: .png, .pdf, .svg, .jpg, .jpeg\n")


def test_predict_reads_inputs_from_a_file_and_says_when_an_argument_names_one(tmp_path):
    """Newcomer 2026-12-06 #22: `gicho predict RUN heldout.txt` answered the path as a sentence."""
    cli("train", "toy", "--runs-dir", str(tmp_path / "runs"), "--train.max-steps", "5")
    (run_dir,) = (tmp_path / "runs").iterdir()
    inputs = tmp_path / "heldout.txt"
    inputs.write_text("1,0,0,0\n\n-1,2,0,0\n", encoding="utf-8")
    from_file = _gicho("predict", str(run_dir), "--input", str(inputs))
    assert from_file.returncode == 0, from_file.stderr
    assert [line.split("\t")[0] for line in from_file.stdout.splitlines()] == ["1,0,0,0", "-1,2,0,0"]
    empty = tmp_path / "empty"
    empty.mkdir()
    as_text = _gicho("predict", str(run_dir), str(inputs))  # the toy task refuses it as numbers
    assert as_text.stderr.startswith(f"warning: input '{inputs}' is read as text, though a file has that "
                                     f"name; to predict each line of the file, use --input {inputs}\n")
    for args, message in [
        ([], "error: no input: give INPUT arguments or --input FILE"),
        (["--input", str(tmp_path / "missing.txt")], f"error: --input {tmp_path / 'missing.txt'}: no such file"),
        (["--input", str(empty)], f"error: --input {empty} is a folder without image files"),
        (["1,0,0,0", "--top-k", "2"], f"error: --top-k: the task of {run_dir} (toy) has one answer per input"),
        (["1,0,0,0", "--top-k", "0"], "error: --top-k must be an integer >= 1; got 0"),
    ]:
        result = _gicho("predict", str(run_dir), *args)
        assert result.returncode == 2 and result.stderr.startswith(message), result.stderr


def test_ctrl_c_checkpoints_and_prints_the_resume_command(tmp_path):
    args = ["--train.max-steps", "40", "--train.eval-every", "20", "--train.log-every", "1",
            "--model.step-sleep", "0.05"]
    process = subprocess.Popen(
        [sys.executable, "-m", "gicho.cli", "train", "toy", "--runs-dir", str(tmp_path), *args],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = process.stderr.readline()  # the run directory is printed as training starts
    assert first.startswith("run: "), first
    run_dir = Path(first.split("run: ", 1)[1].strip())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (run_dir / "metrics.jsonl").is_file():
        time.sleep(0.05)
    time.sleep(0.5)  # a few steps in, before the first scheduled checkpoint at step 20
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert f"resume with: gicho train toy --resume {run_dir}" in err
    stopped = max(_train_losses(run_dir))
    assert stopped < 40 and any(run_dir.glob("checkpoints/step-*"))  # nothing since the last step is lost
    resumed = _gicho("train", "toy", "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(_train_losses(run_dir)) == list(range(1, 41))


def _signal_toy_run(tmp_path: Path, sig: int, ready, *args: str) -> tuple[Path, subprocess.Popen, str]:
    """Start ``gicho train toy ARGS``, send ``sig`` once ``ready(run_dir)`` holds; return the run
    directory, the finished process and its stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gicho.cli", "train", "toy", "--runs-dir", str(tmp_path),
         "--train.max-steps", "5", *args],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        run_dir = Path(process.stderr.readline().split("run: ", 1)[1].strip())
        deadline = time.monotonic() + 120
        while not ready(run_dir):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the run never got ready for the signal: {process.stderr.read()}")
            time.sleep(0.05)
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    return run_dir, process, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_after_training_prints_how_to_finish(tmp_path, sig):
    """R9: a signal during the final evaluation / model / report phase ends with exit 130 and the
    command that finishes the run (it used to die with the signal, printing nothing)."""
    # model/ is written after training, before the after-training hook sleeps
    run_dir, process, err = _signal_toy_run(tmp_path, sig, lambda d: (d / "model" / "config.json").is_file(),
                                            "--data.final-sleep", "60")
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == f"interrupted after training; finish with: gicho train toy --resume {run_dir}"
    assert not (run_dir / "results.json").exists()
    finished = _gicho("train", "toy", "--resume", str(run_dir), "--data.final-sleep", "0")
    assert finished.returncode == 0, finished.stderr
    assert (run_dir / "results.json").is_file() and (run_dir / "report.html").is_file()


def test_ctrl_c_before_the_first_step_leaves_nothing_and_offers_no_resume(tmp_path):
    """The directory of a run interrupted while its data are built is removed (it holds nothing),
    so the line must not offer a --resume of it."""
    started = time.monotonic()
    run_dir, process, err = _signal_toy_run(tmp_path, signal.SIGINT, lambda d: time.monotonic() - started > 1.0,
                                            "--data.build-sleep", "60")  # signalled inside build_data's sleep
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == f"interrupted before training; nothing was saved ({run_dir} removed)"
    assert not run_dir.exists()


def test_a_run_that_fails_before_saving_anything_leaves_nothing(tmp_path, capsys):
    """N-RUN / E34: a failure after config parsing (here: a batch larger than the data) used to
    leave runs/<task>-<time>/ holding only config.json, and the `run:` line pointing at it."""
    runs = tmp_path / "new" / "runs"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "toy", "--runs-dir", str(runs), "--train.batch-size", "1000"])
    assert exit_info.value.code == 2
    started, removed, error = capsys.readouterr().err.strip().splitlines()
    assert started.startswith(f"run: {runs}/toy-")
    assert removed == f"removed {started[5:]}: the run failed before it saved anything"
    assert error.startswith("error: train_data has 192 samples") and "batch_size=1000" in error
    assert not (tmp_path / "new").exists()  # the parents it made for the run go too

    # an existing runs directory and its other runs are left alone
    cli("train", "toy", "--runs-dir", str(runs), "--train.max-steps", "2")
    (kept,) = runs.iterdir()
    with pytest.raises(SystemExit):
        main(["train", "toy", "--runs-dir", str(runs), "--train.batch-size", "1000"])
    assert list(runs.iterdir()) == [kept]
    # a failed --resume never removes the run it was given
    with pytest.raises(SystemExit):
        main(["train", "toy", "--resume", str(kept), "--train.max-steps", "4", "--train.batch-size", "1000"])
    assert (kept / "checkpoints").is_dir() and (kept / "results.json").is_file()


def test_unwritable_files_are_one_line_errors(tmp_path, capsys, monkeypatch):
    """D4c, D4e: a read-only run or runs directory gave an OSError traceback."""
    import errno

    import gicho._io

    cli("train", "toy", "--runs-dir", str(tmp_path / "runs"), "--train.max-steps", "2")
    (run_dir,) = (tmp_path / "runs").iterdir()
    capsys.readouterr()

    def read_only_open(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    with monkeypatch.context() as patch:
        patch.setattr(gicho._io, "open", read_only_open, raising=False)
        with pytest.raises(SystemExit) as exit_info:
            main(["report", str(run_dir)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: cannot write {run_dir}/plots/learning_curves.png: read-only file system\n")
    assert not [p for p in run_dir.rglob(".tmp-*")]

    read_only = tmp_path / "ro"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.is_relative_to(read_only):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "toy", "--runs-dir", str(read_only)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {read_only}/toy-") and err.endswith(": read-only file system\n")


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        # N-CLI4: the file the user named, not gicho's temporary file beside it
        (FileNotFoundError(2, "No such file or directory", "/proc/.tmp-x.png-4242"),
         "error: cannot write /proc/x.png: no such file or directory"),
        (OSError(28, "No space left on device", "/data/.tmp-report.html-7"),
         "error: cannot write /data/report.html: no space left on device (disk full)"),
        (PermissionError(13, "Permission denied", "/etc/gicho.json"), "error: permission denied: /etc/gicho.json"),
        (OSError(28, "No space left on device"), "error: cannot write: no space left on device (disk full)"),
    ],
)
def test_os_error_lines_name_the_users_file(exc, line):
    from gicho.cli import _error_line, _is_user_facing

    assert _is_user_facing(exc)
    assert _error_line(exc) == line


def test_error_lines_are_relative_to_the_current_directory_and_short(tmp_path, monkeypatch):
    """The CLI's error lines carried absolute paths and ran to 1,600 characters."""
    from gicho.cli import MAX_ERROR_CHARS, _error_line

    monkeypatch.chdir(tmp_path)
    assert _error_line(ValueError(f"run directory not found: {tmp_path}/runs/x\nmore")) == (
        "error: run directory not found: runs/x")
    line = _error_line(ValueError(f"text {'word ' * 400!r} has no [MASK]"))
    assert len(line) == MAX_ERROR_CHARS and line.startswith("error: text 'word word") and line.endswith("…")
    assert _error_line(ValueError("x" * 2000)) == "error: " + "x" * (MAX_ERROR_CHARS - 8) + "…"
    result = _gicho("train", "toy", "--runs-dir", str(tmp_path / "runs"), "--train.max-steps", "10000000000")
    assert result.returncode == 2 and result.stderr.startswith(
        "error: field `train.max_steps` must be <= 1000000000 (a step count above 10^9 is a typo"), result.stderr


def test_a_study_that_fails_before_writing_leaves_no_directory(tmp_path, monkeypatch, capsys):
    """N-RUN for studies: the study's own directory goes when it fails empty; a given one stays."""
    monkeypatch.chdir(tmp_path)
    args = ["study", "pooling", "--lengths", "6", "--seeds", "0", "--train.max-steps", "2",
            "--n-test", "16", "--model.d-model", "8", "--train.device", "cuda:99"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    out = lines[0].removeprefix("study: ")
    assert f"removed {out}: the study failed before it wrote anything" in lines
    assert lines[-1].startswith("error: ") and "cuda:99 was asked for" in lines[-1].replace("'", "")
    assert list((tmp_path / "runs").iterdir()) == []
    given = tmp_path / "given"
    given.mkdir()
    with pytest.raises(SystemExit):
        main([*args, "--out", str(given)])
    assert given.is_dir()


def test_attention_map_paths_are_checked_before_drawing(tmp_path):
    """N-CLI3: `--attention att.txt` was a matplotlib traceback; N-CLI4: an unwritable place
    named gicho's temporary file (`/proc/.tmp-x.png-PID`), not the user's."""
    tiny = ["--train.max-steps", "2", "--train.eval-every", "2", "--train.batch-size", "16",
            "--data.n-train", "64", "--data.n-valid", "16", "--data.n-test", "16", "--model.embed-dim", "8",
            "--model.hidden-dim", "8", "--model.attention-dim", "8", "--n-heatmaps", "0"]
    trained = _gicho("train", "dates", "--runs-dir", str(tmp_path / "runs"), *tiny)
    assert trained.returncode == 0, trained.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    result = _gicho("predict", str(run_dir), "3 March 2021", "--attention", str(tmp_path / "att.txt"))
    assert result.returncode == 2 and result.stderr == (
        f"error: --attention {tmp_path / 'att.txt'}: cannot draw a .txt file; "
        "allowed suffixes: .png, .pdf, .svg, .jpg, .jpeg\n")
    result = _gicho("predict", str(run_dir), "3 March 2021", "--attention", str(tmp_path / "att.svg"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "att.svg").read_text().lstrip().startswith("<?xml")
    if sys.platform == "linux":  # /proc takes no new files
        result = _gicho("predict", str(run_dir), "3 March 2021", "--attention", "/proc/x.png")
        assert result.returncode == 2
        assert result.stderr == "error: cannot write /proc/x.png: no such file or directory\n"
