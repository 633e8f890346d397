"""Tests of the ``dates`` task: training to a real accuracy, evaluation, prediction, figures."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import torch

from gicho.data.dates import DATE_RANGE, DateGenerator, Vocab
from gicho.data.dates import LOCALES as DATA_LOCALES
from gicho.plots.attention import plot_attention
from gicho.tasks import RunContext, get
from gicho.tasks.dates import (
    LOCALES,
    SUPPORTED_YEARS,
    DatesConfig,
    DatesData,
    build_data,
    evaluate,
    predict,
    score_strings,
)
from gicho.train import TrainConfig

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
    answers = predict(config, ctx, [f"  {ex.text} " for ex in examples], {"confidence": False})
    assert len(answers) == 100
    # a valid date, or an explicit refusal: never anything else
    assert all((re.fullmatch(r"\d{4}-\d{2}-\d{2}", a) and dt.date.fromisoformat(a)) or
               a.startswith(f"cannot read {ex.text!r} as a date (") for a, ex in zip(answers, examples, strict=True))
    correct = sum(a == ex.iso for a, ex in zip(answers, examples, strict=True))
    assert correct >= 85
    beam = predict(config, ctx, [ex.text for ex in examples], {"beam_width": 3, "confidence": False})
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
    assert sum(re.fullmatch(r"2021-03-03 \(confidence (0\.\d{3}|1\.000)\)", a) is not None for a in answers) >= 4
    import gicho  # the same from Python, in two lines

    predictor = gicho.load(ctx.run_dir)
    assert predictor.predict_strings(texts) == answers
    dates = predictor.predict(texts)  # ISO dates, None where refused
    assert [d if d is None else d + " " for d in dates] == [
        None if a.startswith("cannot read ") else a.split("(")[0] for a in answers]


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
    with pytest.raises(ValueError, match=r"`texts` must be a non-empty list of strings"):
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
    with pytest.raises(ValueError, match=r"argument `num_threads` must be >= 0"):
        DatesConfig(train=TrainConfig(num_threads=-2))
    assert SUPPORTED_YEARS == (DATE_RANGE[0].year, DATE_RANGE[1].year)  # the task's import-free copy
    with pytest.raises(ValueError, match=r"fields `first_year`=1700 and `last_year`=2199 must satisfy "
                                         r"1800 <= first_year <= last_year <= 2199"):
        DatesData(first_year=1700)
    with pytest.raises(ValueError, match=r"`first_year`=2000 and `last_year`=1999 must satisfy"):
        DatesData(first_year=2000, last_year=1999)
    narrow = build_data(DatesConfig(data=DatesData(n_train=500, n_valid=50, n_test=50, first_year=1990,
                                                   last_year=1999)))
    assert {ex.iso[:3] for ex in narrow.train.examples} == {"199"}


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


# Held out from training by construction: impossible calendar dates, relative dates, times, and
# years outside the supported 1800-2199. Every one must be refused, never answered.
MUST_REFUSE = [
    "February 30, 2021", "31/02/2020", "30 février 2021", "2021년 2월 30일", "30.02.2021", "April 31, 2019",
    "the 31st of June 2020", "February 29, 2021", "31/12/2020", "13/13/2013", "32 mars 2020", "2021-02-30",
    "tomorrow", "yesterday", "today", "noon", "next Monday", "week 12", "3 pm",
    "le 14 juillet 1789", "Jan 1 2200", "Jan 1 1799", "3 de marzo de 2250",
]


@pytest.mark.slow
def test_predict_refuses_impossible_and_relative_dates(trained) -> None:
    config, ctx, _ = trained
    with pytest.warns(UserWarning, match=r"characters '.*' of 'next Monday' are not in the vocabulary"):
        answers = predict(config, ctx, MUST_REFUSE, {})
    for text, answer in zip(MUST_REFUSE, answers, strict=True):
        assert answer.startswith(f"cannot read {text!r} as a date ("), (text, answer)
        assert answer.endswith(")")
    by_text = dict(zip(MUST_REFUSE, answers, strict=True))
    assert by_text["le 14 juillet 1789"].endswith("(the year 1789 is outside the supported years 1800-2199)")
    assert by_text["tomorrow"].endswith("(it has no number; a date writes at least the day and the year in digits)")
    # the impossible calendar dates are refused by the model's own reading or its confidence, not by a rule
    model_said = [by_text[t] for t in MUST_REFUSE[:12]]
    assert all("the model reads it as" in a or "below min_confidence" in a for a in model_said), model_said


@pytest.mark.slow
def test_predict_reports_confidence_and_rarely_refuses_real_dates(trained) -> None:
    import gicho
    from gicho.data.date_grammar import read_dates

    _, ctx, _ = trained
    examples = DateGenerator().generate(300, seed="refusal-rate")  # a seed no split uses
    predictor = gicho.load(ctx.run_dir)
    answers = predictor.predict_strings([ex.text for ex in examples])
    refused = [a for a in answers if a.startswith("cannot read ")]
    assert len(refused) <= 15  # at most 5% of real dates refused at the default min_confidence
    for answer in answers:
        match = re.fullmatch(r"(\d{4}-\d{2}-\d{2}) \(confidence (\d\.\d{3})\)", answer)
        assert match or answer in refused
        if match:
            assert dt.date(1800, 1, 1) <= dt.date.fromisoformat(match[1]) <= dt.date(2199, 12, 31)
            assert 0.5 <= float(match[2]) <= 1.0
    assert sum(a.startswith(ex.iso + " ") for a, ex in zip(answers, examples, strict=True)) >= 270
    readings, _ = read_dates(predictor.model, [ex.text for ex in examples[:50]], predictor.info["source"],
                             predictor.info["target"], 64, first_year=1800, last_year=2199, warn_unknown=False)
    assert [str(r) for r in readings] == answers[:50]
    strict = predictor.predict_strings([ex.text for ex in examples[:50]], min_confidence=1.0)
    assert sum(a.startswith("cannot read ") for a in strict) > sum(a.startswith("cannot read ") for a in answers[:50])
    assert any("below min_confidence=1.0" in a for a in strict)
    loose = predictor.predict_strings(["Jan 1 2100", "2100년 1월 1일"], min_confidence=0.0, confidence=False)
    assert loose == ["2100-01-01", "2100-01-01"]  # years past 2049 are now supported
    assert predictor.predict(["Jan 1 2100"], min_confidence=0.0).tolist() == ["2100-01-01"]
    with pytest.raises(ValueError, match=r"input 0 is a int, not a string; this task accepts human-written dates"):
        predictor.predict([20210303])


@pytest.mark.slow
def test_predict_rejects_bad_options(trained) -> None:
    config, ctx, _ = trained
    with pytest.raises(ValueError, match=r"argument `min_confidence` must be a probability in \[0, 1\]; got 1.5"):
        predict(config, ctx, ["3rd of March, 2021"], {"min_confidence": 1.5})
    with pytest.raises(ValueError, match=r"option `confidence` must be True or False; got 'no'"):
        predict(config, ctx, ["3rd of March, 2021"], {"confidence": "no"})
