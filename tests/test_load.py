"""gicho.load: a finished run (or its model directory) back in Python, ready to predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gicho
import toy_task
from gicho.runs import predict_run, run_task
from gicho.tasks import get

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    task = get("toy")
    config = task.make_config({"train.max_steps": 20})
    return run_task(task, config, root=tmp_path_factory.mktemp("runs"), progress=False, report=False)


def test_load_run_predicts_like_the_cli(toy_run):
    predictor = gicho.load(toy_run.run_dir)
    inputs = ["1,0,0,0", "0,1,0,0"]
    assert predictor.predict_strings(inputs) == predict_run(toy_run.run_dir, inputs)
    values = predictor.predict(np.eye(4)[:2])  # the native input: rows
    assert [f"{v:.4f}" for v in values] == predict_run(toy_run.run_dir, inputs)
    assert not predictor.model.training
    with pytest.raises(ValueError, match=r"input 'nan,0,0,0' holds non-finite values"):
        predictor.predict_strings(["nan,0,0,0"])
    with pytest.raises(ValueError, match=r"unknown predict option\(s\) \['beam'\]; allowed: \(none\)"):
        predictor.predict(inputs, beam=2)


def test_load_model_directory_gives_the_bare_model(toy_run):
    model = gicho.load(toy_run.run_dir / "model")
    assert isinstance(model, toy_task.ToyModel) and not model.training
    predictor = gicho.load(toy_run.run_dir)
    x = torch.randn(3, 4)
    torch.testing.assert_close(model(x=x)["predictions"], predictor.model(x=x)["predictions"])


def test_load_refuses_what_is_not_a_run(tmp_path, toy_run):
    with pytest.raises(ValueError, match="is not a directory"):
        gicho.load(tmp_path / "missing")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text((toy_run.run_dir / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match=r"model is missing: .* is not a finished 'toy' run"):
        gicho.load(unfinished)


def test_a_model_directory_where_a_run_directory_is_expected_says_which_to_pass(toy_run, tmp_path, capsys):
    from gicho.cli import main
    from gicho.runs import evaluate_run

    model_dir = toy_run.run_dir / "model"
    expected = (rf"{model_dir} is the model directory of the run {toy_run.run_dir} \(task 'toy'\); pass the "
                rf"run directory {toy_run.run_dir}$")
    with pytest.raises(ValueError, match=expected):
        predict_run(model_dir, ["1,0,0,0"])
    with pytest.raises(ValueError, match=expected):
        evaluate_run(model_dir)
    for command in (["predict", str(model_dir), "1,0,0,0"], ["evaluate", str(model_dir)]):
        with pytest.raises(SystemExit) as info:
            main(command)
        assert info.value.code == 2
        assert capsys.readouterr().err == (f"error: {model_dir} is the model directory of the run "
                                           f"{toy_run.run_dir} (task 'toy'); pass the run directory "
                                           f"{toy_run.run_dir}\n")
    alone = tmp_path / "alone"  # a model directory outside any run
    gicho.load(model_dir).save_pretrained(alone)
    with pytest.raises(ValueError, match=rf"{alone} is a model directory \(model_type 'toy-mlp'\), not a run "
                                         rf"directory; pass a run directory \(runs/<task>-<time>\), or load the "
                                         rf"model with gicho.load\('{alone}'\)"):
        predict_run(alone, ["1,0,0,0"])
