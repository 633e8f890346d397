"""Run reports: number formatting, escaping of user-supplied values, embedded figures."""

from __future__ import annotations

import json

import toy_task  # noqa: F401 - registers the task "toy"
from gicho.report import format_metric, write_run_report
from gicho.runs import run_task
from gicho.tasks import get


def test_format_metric_keeps_counts_and_rounds_scores():
    assert format_metric(28) == "28"
    assert format_metric(1.0) == "1.0000"
    assert format_metric(0.99996) == "1.0000"  # a score stays a score, never shown as "1"
    assert format_metric(0.0) == "0.0000"
    assert format_metric(1.5e-5) == "1.500e-05"


def test_report_escapes_config_values_and_embeds_figures(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(
        {"task": "toy", "config": {"note": "<script>alert(1)</script>"}}))
    (run_dir / "results.json").write_text(json.dumps({"metrics": {"r2": 0.5, "n": 3}}))
    page = write_run_report(run_dir).read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<td class=\"num\">0.5000</td>" in page and "<td class=\"num\">3</td>" in page


def test_run_task_writes_scores_as_floats_and_counts_as_ints(tmp_path):
    outcome = run_task(get("toy"), get("toy").make_config({"train.max_steps": 5}), root=tmp_path)
    results = json.loads((outcome.run_dir / "results.json").read_text())
    assert all(isinstance(v, float) for v in results["metrics"].values())
    assert "data:image/png;base64," in (outcome.run_dir / "report.html").read_text()

    pca = get("pca-digits")
    outcome = run_task(pca, pca.make_config(pca.quick), root=tmp_path)
    metrics = json.loads((outcome.run_dir / "results.json").read_text())["metrics"]
    assert isinstance(metrics["n_components"], int) and isinstance(metrics["accuracy"], float)


def test_report_describes_the_model_that_was_run(tmp_path):
    """T and E come from the run's config: a [CLS]-pooled run must not say "mean pooling"."""
    task = get("digits-rows")
    config = task.make_config({**task.quick, "model.pool": "cls", "train.max_steps": 10,
                               "train.eval_every": 10, "train.device": "cpu"})
    outcome = run_task(task, config, run_dir=tmp_path / "run", progress=False)
    page = (outcome.run_dir / "report.html").read_text()
    assert "[CLS] (learned) pooling" in page and "mean pooling" not in page
    assert "model.pool" in page and "train.max_steps" in page  # the config table uses dotted names


def test_damaged_run_files_are_clear_errors(tmp_path):
    """Findings rows 63 and 75: metrics.jsonl lines that are no records, huge numbers, non-UTF-8
    bytes; a config.json that is not a regular file."""
    import pytest

    from gicho.rundir import read_json

    outcome = run_task(get("toy"), get("toy").make_config({"train.max_steps": 3}), root=tmp_path)
    log = outcome.run_dir / "metrics.jsonl"
    good = log.read_bytes()
    huge = '{"step": 1, "split": "train", "loss": 1' + "0" * 400 + "}"
    for line, message in [("[1, 2]", "is not a metrics record"),
                          ('{"step": "x", "split": "train"}', "is not a metrics record"),
                          (huge, "has 401 digits")]:
        log.write_bytes(good + line.encode() + b'\n{"step": 9, "split": "train", "loss": 1}\n')
        with pytest.raises(ValueError, match=message):
            write_run_report(outcome.run_dir)
    log.write_bytes(good + b"\xff\xfe\n")
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        write_run_report(outcome.run_dir)
    (tmp_path / "cfg").mkdir()
    with pytest.raises(ValueError, match="is not a regular file"):
        read_json(tmp_path / "cfg", "run config")


def _config_fields(config, prefix=""):
    import dataclasses

    names = set()
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            names |= _config_fields(value, f"{prefix}{f.name}.")
        else:
            names.add(prefix + f.name)
    return names


def test_report_marks_the_config_fields_the_run_did_not_read(tmp_path):
    """An mlm-bert run on a corpus listed the default ``data.sources`` as if it had been used."""
    import html

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(
        {"task": "mlm-bert", "config": {"data": {"corpus": "notes.txt", "sources": ["python-docs"]}}}))
    (run_dir / "results.json").write_text(json.dumps({"metrics": {"masked_accuracy": 0.2}}))
    page = html.unescape(write_run_report(run_dir).read_text())
    assert '["python-docs"] (not used: data.corpus is given)' in page
    assert '"notes.txt"</td>' in page  # the corpus itself is not marked

    import dataclasses

    defaults = dataclasses.asdict(get("mlm-bert").make_config())  # what a run stores: every field
    (run_dir / "config.json").write_text(json.dumps({"task": "mlm-bert", "config": defaults}))
    page = html.unescape(write_run_report(run_dir).read_text())
    assert '["python-docs"]</td>' in page and '"paragraph" (not used: no data.corpus)' in page


def test_unused_fields_name_real_fields_and_follow_the_config():
    mlm, classify = get("mlm-bert"), get("bert-classify")
    cases = [(mlm, {}), (mlm, {"data.corpus": "a.jsonl"}), (mlm, {"data.corpus": "a.txt", "model.checkpoint": "x"}),
             (classify, {}), (classify, {"data.csv": "a.csv", "data.n_train": 10}),
             (classify, {"data.source": "docstrings"})]
    for task, overrides in cases:
        config = task.make_config(overrides)
        unused = task.unused_fields(config)
        assert unused and set(unused) <= _config_fields(config), (task.name, overrides, unused)
        assert not set(unused) & {k for k in overrides}, (task.name, overrides, unused)  # given ones are read
    assert set(mlm.unused_fields(mlm.make_config({"data.corpus": "a.jsonl"}))) == {"data.sources", "data.unit"}
    assert "data.max_per_module" not in classify.unused_fields(classify.make_config({"data.source": "docstrings"}))
    assert "data.sample_seed" not in classify.unused_fields(classify.make_config({"data.n_eval": 5}))
    assert get("digits-rows").unused_fields(get("digits-rows").make_config()) == {}

    vit = get("vit")  # fine-tuning: the architecture left at the task's defaults is the checkpoint's
    assert vit.unused_fields(vit.make_config()) == {}
    unused = vit.unused_fields(vit.make_config({"model.checkpoint": "some/vit", "model.dropout": 0.2}))
    assert {"model.d_model", "model.n_layers", "model.image_size"} <= set(unused) <= _config_fields(vit.make_config())
    assert not {"model.dropout", "model.n_labels", "model.label_names", "model.checkpoint"} & set(unused)
