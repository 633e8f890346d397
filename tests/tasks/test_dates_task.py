"""Tests of the ``dates`` task: training to a real accuracy, evaluation, prediction, figures."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import torch

from gicho.data.dates import LOCALES as DATA_LOCALES
from gicho.data.dates import DateGenerator, Vocab
from gicho.plots.attention import plot_attention
from gicho.tasks import RunContext, get
from gicho.tasks.dates import (
    LOCALES,
    DatesConfig,
    DatesData,
    build_data,
    evaluate,
    predict,
    score_strings,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# A small config that still learns every locale: trains in well under a minute on 2 cores.
SMALL = {"data.n_train": 6000, "data.n_valid": 300, "data.n_test": 1000, "model.embed_dim": 32,
         "model.hidden_dim": 64, "model.attention_dim": 64, "train.max_steps": 400,
         "train.batch_size": 64, "train.eval_every": 200, "train.log_every": 50,
         "train.warmup_steps": 30, "train.lr": 5e-3, "n_heatmaps": 3, "train.device": "cpu"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from gicho.runs import run_task

    task = get("dates")
    config = task.make_config(SMALL)
    run_dir = tmp_path_factory.mktemp("dates-run")
    threads = torch.get_num_threads()
    outcome = run_task(task, config, run_dir=run_dir, progress=False, report=False)
    assert torch.get_num_threads() == threads  # config.num_threads=1 held only during the run
    return config, RunContext(run_dir=run_dir, progress=False), outcome.metrics


@pytest.mark.slow
def test_small_config_reaches_90_percent_exact_match(trained) -> None:
    config, _, metrics = trained
    assert list(metrics)[:2] == ["exact_match", "char_accuracy"]  # headline first
    assert metrics["exact_match"] >= 0.90
    assert metrics["char_accuracy"] >= metrics["exact_match"]
    test = build_data(config).test.examples
    counts = {tag: sum(ex.locale == tag for ex in test) for tag in ("en", "ko", "de", "fr", "es")}
    for tag in counts:
        assert metrics[f"exact_match_{tag}"] >= 0.75, tag
    # the overall figure is the count-weighted mean of the per-locale ones
    pooled = sum(counts[t] * metrics[f"exact_match_{t}"] for t in counts) / len(test)
    assert pooled == pytest.approx(metrics["exact_match"], abs=1e-12)


@pytest.mark.slow
def test_run_writes_vocab_checkpoints_log_and_heatmaps(trained) -> None:
    _, ctx, _ = trained
    vocabs = json.loads((ctx.run_dir / "model" / "vocab.json").read_text(encoding="utf-8"))
    assert Vocab.from_dict(vocabs["target"]).itos[4:] == list("-0123456789")
    assert "년" in Vocab.from_dict(vocabs["source"])
    events = [json.loads(line) for line in (ctx.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(e["split"] == "eval" and "exact_match" in e for e in events)
    assert (ctx.run_dir / "checkpoints" / "best.json").is_file()
    heatmaps = sorted((ctx.run_dir / "plots").glob("attention-*.png"))
    assert len(heatmaps) == 3
    assert len({p.stem.rsplit("-", 1)[1] for p in heatmaps}) == 3  # one locale after another
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in heatmaps)


@pytest.mark.slow
def test_evaluate_reproduces_the_run_metrics(trained) -> None:
    config, ctx, metrics = trained
    again = evaluate(config, ctx)
    assert again.keys() == metrics.keys()
    for key, value in metrics.items():
        assert again[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.slow
def test_predict_translates_unseen_dates(trained) -> None:
    config, ctx, _ = trained
    examples = DateGenerator().generate(100, seed="predict-test")  # a seed no split uses
    answers = predict(config, ctx, [f"  {ex.text} " for ex in examples], {})
    assert len(answers) == 100
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", a) for a in answers[:90] if a)
    correct = sum(a == ex.iso for a, ex in zip(answers, examples, strict=True))
    assert correct >= 85
    beam = predict(config, ctx, [ex.text for ex in examples], {"beam_width": 3})
    assert sum(a == ex.iso for a, ex in zip(beam, examples, strict=True)) >= 85


@pytest.mark.slow
def test_predict_through_the_run_directory(trained) -> None:
    from gicho.runs import predict_run

    _, ctx, _ = trained
    texts = [
        "3rd of March, 2021",
        "2021년 3월 3일",
        "3. März 2021",
        "3 mars 2021",
        "3 de marzo de 2021",
    ]
    answers = predict_run(ctx.run_dir, texts)
    assert len(answers) == 5
    assert sum(a == "2021-03-03" for a in answers) >= 4
    import gicho  # the same from Python, in two lines

    assert gicho.load(ctx.run_dir).predict(texts) == answers


@pytest.mark.slow
def test_predict_draws_the_attention_map(trained, tmp_path) -> None:
    config, ctx, _ = trained
    path = tmp_path / "figs" / "att.png"
    predict(config, ctx, ["3rd of March, 2021", "1 mars 2000"], {"attention": str(path)})
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 5_000


@pytest.mark.slow
def test_predict_bad_input(trained) -> None:
    config, ctx, _ = trained
    with pytest.raises(ValueError, match=r"empty date string"):
        predict(config, ctx, ["3rd of March, 2021", "   "], {})
    with pytest.raises(
        ValueError, match=r"has 70 characters; the model reads at most max_input_len=64"
    ):
        predict(config, ctx, ["x" * 70], {})
    with pytest.warns(
        UserWarning, match=r"characters '@' of '3rd of March @ 2021' are not in the vocabulary"
    ):
        (answer,) = predict(config, ctx, ["3rd of March @ 2021"], {})
    assert isinstance(answer, str)
    with pytest.raises(
        ValueError, match=r"unknown predict option\(s\) \['beam'\]; allowed: attention"
    ):
        predict(config, ctx, ["3rd of March, 2021"], {"beam": 3})
    with pytest.raises(ValueError, match=r"`inputs` must be a non-empty list of strings"):
        predict(config, ctx, [], {})


def test_score_strings_known_values() -> None:
    scores = score_strings(
        ["2021-03-03", "2021-03-04", "20"], ["2021-03-03", "2021-03-03", "2021-03-03"]
    )
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["char_accuracy"] == pytest.approx((10 + 9 + 2) / 30)
    with pytest.raises(ValueError, match=r"need as many predictions as targets"):
        score_strings(["a"], ["a", "b"])


def test_plot_attention_checks_shapes(tmp_path) -> None:
    with pytest.raises(
        ValueError, match=r"weights of shape \(2, 3\) do not match the input \(4 chars\)"
    ):
        plot_attention("abcd", "1", torch.ones(2, 3), tmp_path / "a.png")
    path = plot_attention("2021년", "2021", torch.full((5, 5), 0.2), tmp_path / "b.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_config_and_registry() -> None:
    task = get("dates")
    assert task.metrics == ("exact_match", "char_accuracy")
    config = task.make_config(
        ["--model.hidden-dim", "32", "--model.attention", "additive", "--data.locales", "ko,en"]
    )
    assert (config.model.hidden_dim, config.model.attention, config.data.locales) == (32, "additive", "ko,en")
    for overrides in (task.tour, task.quick):
        assert isinstance(task.make_config(overrides), DatesConfig)
    subset = r"`locales` must be a comma-separated subset of en,ko,de,fr,es; got "
    with pytest.raises(ValueError, match=subset + "'en,jp'"):
        DatesData(locales="en,jp")
    with pytest.raises(ValueError, match=subset + "' , '"):
        DatesData(locales=" , ")
    assert LOCALES == DATA_LOCALES  # the task's import-free copy
    with pytest.raises(ValueError, match=r"field `n_train` must be >= 1; got 0"):
        DatesData(n_train=0)
    with pytest.raises(ValueError, match=r"field `n_heatmaps` must be >= 0; got -1"):
        DatesConfig(n_heatmaps=-1)
    with pytest.raises(ValueError, match=r"field `num_threads` must be >= 0"):
        DatesConfig(num_threads=-2)


def test_held_out_dates_are_not_in_training() -> None:
    splits = build_data(DatesConfig(data=DatesData(n_train=3000, n_valid=200, n_test=500)))
    train = {ex.text for ex in splits.train.examples}
    assert not train & {ex.text for ex in splits.test.examples}
    assert all(dt.date.fromisoformat(ex.iso) for ex in splits.test.examples)


def test_attention_map_draws_hangul_with_the_bundled_font(tmp_path) -> None:
    import numpy as np
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    source = "2021년 3월"
    path = plot_attention(source, "2021-03", np.full((8, len(source)), 1 / len(source)), tmp_path / "ko.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    nanum = [f.fname for f in font_manager.fontManager.ttflist if f.name == "NanumGothic"]
    assert nanum, "the NanumGothic font of koreanize-matplotlib was not registered"
    assert ord("년") in FT2Font(nanum[0]).get_charmap()


def test_tampered_vocabulary_and_absurd_sizes_are_refused(trained, tmp_path) -> None:
    """Findings rows 73 and 78: a split of 10^12 dates, a vocabulary with a duplicated character."""
    with pytest.raises(ValueError, match=r"field `n_test` must be <= 5000000"):
        DatesData(n_test=10**12)
    with pytest.raises(ValueError, match=r"duplicated characters \['a'\]"):
        Vocab.from_dict({"specials": list(Vocab.SPECIALS), "chars": ["a", "a", "b"]})
    with pytest.raises(ValueError, match="characters out of order"):
        Vocab.from_dict({"specials": list(Vocab.SPECIALS), "chars": ["b", "a"]})
    import shutil

    from gicho.runs import predict_run

    _, ctx, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(ctx.run_dir, copy)
    vocab_path = copy / "model" / "vocab.json"
    vocabs = json.loads(vocab_path.read_text(encoding="utf-8"))
    vocabs["source"]["chars"].insert(5, vocabs["source"]["chars"][5])
    vocab_path.write_text(json.dumps(vocabs), encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab.json is not a gicho vocabulary file .*duplicated"):
        predict_run(copy, ["3rd of March, 2021"])
