"""gicho.data.text.wordpiece: a deterministic WordPiece trainer (issue 19)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from collections import Counter
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gicho.data.text import SPECIAL_TOKENS, python_docs_corpus, train_wordpiece
from gicho.data.text.wordpiece import learn_wordpiece_vocab

MODULES = ("json", "textwrap", "shlex", "glob", "csv")
PREFIX = "##"


@pytest.fixture(scope="module")
def stdlib_texts() -> list[str]:
    return [d.text for d in python_docs_corpus(topics=False, modules=MODULES)]


def _pieces(tok) -> list[str]:
    """The vocabulary's pieces in id order."""
    return [tok.id_to_token(i) for i in range(tok.vocab_size)]


def _fingerprint(vocab: dict[str, int]) -> str:
    return hashlib.sha256(json.dumps(sorted(vocab.items(), key=lambda kv: kv[1])).encode()).hexdigest()


def _naive(word_counts: dict[str, int], vocab_size: int, min_frequency: int, limit_alphabet: int) -> dict[str, int]:
    """The module's docstring read literally: every pair recounted in every word at every merge."""
    frequency: Counter[str] = Counter()
    for word, count in word_counts.items():
        for char in word:
            frequency[char] += count
    later = {c for word in word_counts for c in word[1:]}
    kept: list[str] = []
    room = vocab_size - len(SPECIAL_TOKENS)
    for char in sorted(frequency, key=lambda c: (-frequency[c], c))[:limit_alphabet]:
        room -= 1 + (char in later)
        if room < 0:
            break
        kept.append(char)
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for piece in sorted(kept) + [PREFIX + c for c in sorted(kept) if c in later]:
        vocab.setdefault(piece, len(vocab))
    words = [([c if i == 0 else PREFIX + c for i, c in enumerate(w) if c in kept], n) for w, n in word_counts.items()]
    while len(vocab) < vocab_size:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, n in words:
            for pair in pairwise(symbols):
                pairs[pair] += n
        if not pairs:
            break
        (left, right), count = min(pairs.items(), key=lambda kv: (-kv[1], vocab[kv[0][0]], vocab[kv[0][1]]))
        if count < min_frequency:
            break
        piece = left + right.removeprefix(PREFIX)
        vocab.setdefault(piece, len(vocab))
        merged_words = []
        for symbols, n in words:
            out, i = [], 0
            while i < len(symbols):
                if symbols[i] == left and i + 1 < len(symbols) and symbols[i + 1] == right:
                    out.append(piece)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged_words.append((out, n))
        words = merged_words
    return vocab


# ---------------------------------------------------------------------------- by hand
def test_hand_worked_merges_of_low_lower_lowest():
    # Words: low x2, lower x2, lowest x2. Characters: l o w 6 times, e 4, r s t 2 each.
    # Ids 0-4 special; the alphabet by code point: e l o r s t w (5-11); the ## forms of the
    # characters seen after a word's first one, by code point: ##e ##o ##r ##s ##t ##w (12-17).
    # Pieces: l ##o ##w | l ##o ##w ##e ##r | l ##o ##w ##e ##s ##t.
    # Pair counts: (l,##o) 6, (##o,##w) 6, (##w,##e) 4, (##e,##r) 2, (##e,##s) 2, (##s,##t) 2.
    # Ties go to the smaller (left id, right id):
    # 1. tie at 6: l (6) before ##o (13)         -> l + ##o = lo (18)
    # 2. (lo,##w) 6                              -> low (19)
    # 3. (low,##e) 4                             -> lowe (20); left: (lowe,##r) (lowe,##s) (##s,##t), 2 each
    # 4. tie at 2: ##s (15) before lowe (20)     -> ##st (21)
    # 5. tie at 2: lowe both, ##r (14) before ##st (21) -> lower (22)
    # 6. (lowe,##st) 2                           -> lowest (23); no pair is left.
    tok = train_wordpiece(["low lower lowest"] * 2, vocab_size=100, min_frequency=2)
    expected = [*SPECIAL_TOKENS, "e", "l", "o", "r", "s", "t", "w",
                "##e", "##o", "##r", "##s", "##t", "##w", "lo", "low", "lowe", "##st", "lower", "lowest"]
    assert tok.get_vocab() == {t: i for i, t in enumerate(expected)}
    assert tok.tokenize("lowest lower low lows") == ["lowest", "lower", "low", "low", "##s"]
    # min_frequency=3 stops before the pairs seen twice: merges 1-3 only
    assert _pieces(train_wordpiece(["low lower lowest"] * 2, vocab_size=100, min_frequency=3)) == expected[:21]
    # vocab_size cuts the same sequence: 20 ids hold the first two merges
    assert _pieces(train_wordpiece(["low lower lowest"] * 2, vocab_size=20, min_frequency=2)) == expected[:20]


def test_a_pair_seen_once_is_never_merged_at_min_frequency_2():
    # Once each: (l,##o) 3, (##o,##w) 3, (##w,##e) 2, the rest 1: lo, low, lowe, then stop.
    pieces = _pieces(train_wordpiece(["low lower lowest"], vocab_size=100, min_frequency=2))
    assert pieces[len(SPECIAL_TOKENS) + 13:] == ["lo", "low", "lowe"]  # after 7 characters and 6 ## forms
    vocab = train_wordpiece(["low lower lowest"], vocab_size=100, min_frequency=1).get_vocab()
    assert {"lower", "lowest"} <= vocab.keys()


def test_limit_alphabet_keeps_the_most_frequent_characters_ties_by_code_point():
    # z and y twice, x and w once: the third character kept is w (U+0077 < U+0078)
    pieces = _pieces(train_wordpiece(["zz yy x w"], vocab_size=50, limit_alphabet=3, min_frequency=1))
    # then the two pairs seen once, the tie going to the smaller left id: y (6), so yy, zz
    assert pieces[5:] == ["w", "y", "z", "##y", "##z", "yy", "zz"]
    assert "x" not in pieces


def _library_pieces(texts: list[str], vocab_size: int, min_frequency: int = 2) -> set[str]:
    """The pieces of ``tokenizers``' own (non-deterministic) WordPieceTrainer, as gicho called it before."""
    from tokenizers import Tokenizer, models, trainers

    from gicho.data.text.tokenizer import UNK, _bert_pipeline

    tok = Tokenizer(models.WordPiece(unk_token=UNK, continuing_subword_prefix=PREFIX))
    _bert_pipeline(tok, lowercase=True)
    tok.train_from_iterator(texts, trainer=trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False, special_tokens=list(SPECIAL_TOKENS),
        limit_alphabet=1000, continuing_subword_prefix=PREFIX))
    return set(tok.get_vocab())


def test_pieces_agree_with_the_library_trainer(stdlib_texts):
    # Same merges, same tie rule (older ids first); only the library's ids of ## forms, and so
    # some of its ties, follow hash-map order: its own runs share ~99.9% of their pieces.
    assert set(train_wordpiece(["low lower lowest"] * 2, vocab_size=100).get_vocab()) == _library_pieces(
        ["low lower lowest"] * 2, 100)
    ours = set(train_wordpiece(stdlib_texts, vocab_size=1000).get_vocab())
    assert len(ours & _library_pieces(stdlib_texts, 1000)) >= 0.95 * 1000


# ---------------------------------------------------------------------------- determinism
def test_two_trainings_give_identical_vocabularies(stdlib_texts):
    first = train_wordpiece(stdlib_texts, vocab_size=1000)
    second = train_wordpiece(stdlib_texts, vocab_size=1000)
    assert first.get_vocab() == second.get_vocab()
    assert _pieces(first) == _pieces(second)
    assert first.encode(stdlib_texts[0]) == second.encode(stdlib_texts[0])


def test_vocabulary_depends_only_on_the_word_counts(stdlib_texts):
    # The trainer sees only how often each word occurs: shuffling the texts, or joining them
    # with a newline (the pre-tokeniser splits on whitespace), changes no count.
    reference = train_wordpiece(stdlib_texts, vocab_size=800).get_vocab()
    shuffled = list(stdlib_texts)
    random.Random(0).shuffle(shuffled)
    assert train_wordpiece(shuffled, vocab_size=800).get_vocab() == reference
    joined = ["\n".join(stdlib_texts[i:i + 3]) for i in range(0, len(stdlib_texts), 3)]
    assert train_wordpiece(joined, vocab_size=800).get_vocab() == reference


def test_vocabulary_is_the_same_in_a_single_threaded_process(stdlib_texts):
    script = ("import hashlib, json; from gicho.data.text import python_docs_corpus, train_wordpiece; "
              f"t = [d.text for d in python_docs_corpus(topics=False, modules={list(MODULES)!r})]; "
              "v = train_wordpiece(t, vocab_size=800).get_vocab(); "
              "print(hashlib.sha256(json.dumps(sorted(v.items(), key=lambda kv: kv[1])).encode()).hexdigest())")
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "RAYON_NUM_THREADS": "1", "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == _fingerprint(train_wordpiece(stdlib_texts, vocab_size=800).get_vocab())


# ---------------------------------------------------------------------------- contract
@pytest.mark.parametrize("vocab_size", [6, 20, 60, 300, 1000])
def test_special_ids_and_vocab_size(stdlib_texts, vocab_size):
    tok = train_wordpiece(stdlib_texts, vocab_size=vocab_size)
    vocab = tok.get_vocab()
    assert [vocab[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert sorted(vocab.values()) == list(range(len(vocab)))
    assert len(vocab) == tok.vocab_size
    assert len(vocab) <= vocab_size
    if vocab_size >= 300:  # the corpus has pairs enough to fill it
        assert len(vocab) == vocab_size


@pytest.mark.parametrize("limit_alphabet", [30, 1000])
def test_every_training_word_in_the_alphabet_encodes_without_unk(stdlib_texts, limit_alphabet):
    tok = train_wordpiece(stdlib_texts, vocab_size=600, limit_alphabet=limit_alphabet)
    vocab = tok.get_vocab()
    backend = tok.backend
    words = sorted({w for t in stdlib_texts
                    for w, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(t))})
    inside = [w for w in words if len(w) <= 100 and w[0] in vocab and all(PREFIX + c in vocab for c in w[1:])]
    assert len(inside) > len(words) // 2
    for word, encoded in zip(inside, tok.encode_batch(inside, add_special_tokens=False), strict=True):
        assert tok.unk_id not in encoded["input_ids"], word
        assert "".join(tok.id_to_token(i).removeprefix(PREFIX) for i in encoded["input_ids"]) == word
    if limit_alphabet == 30:
        assert len(inside) < len(words)  # some words hold a character outside the alphabet


def test_incremental_merging_equals_the_naive_reference_on_real_words(stdlib_texts):
    backend = train_wordpiece(stdlib_texts[:1], vocab_size=50).backend
    counts = Counter(w for t in stdlib_texts
                     for w, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(t)))
    for vocab_size, min_frequency, limit_alphabet in [(400, 2, 1000), (300, 1, 40), (150, 3, 25)]:
        got = learn_wordpiece_vocab(counts, vocab_size, SPECIAL_TOKENS, min_frequency, limit_alphabet, PREFIX)
        assert got == _naive(counts, vocab_size, min_frequency, limit_alphabet)


@settings(max_examples=60, deadline=None)
@given(words=st.dictionaries(st.text(alphabet="abcd", min_size=1, max_size=9), st.integers(1, 6), min_size=1,
                             max_size=25),
       vocab_size=st.integers(6, 80), min_frequency=st.integers(1, 3), limit_alphabet=st.integers(1, 4))
def test_incremental_merging_equals_the_naive_reference(words, vocab_size, min_frequency, limit_alphabet):
    got = learn_wordpiece_vocab(words, vocab_size, SPECIAL_TOKENS, min_frequency, limit_alphabet, PREFIX)
    assert got == _naive(words, vocab_size, min_frequency, limit_alphabet)
    assert len(got) <= vocab_size


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"`vocab_size` must be a finite integer > 0; got 0"):
        learn_wordpiece_vocab({"ab": 1}, 0)
    with pytest.raises(ValueError, match=r"`min_frequency` must be a finite integer > 0; got 0"):
        learn_wordpiece_vocab({"ab": 1}, 10, min_frequency=0)
    with pytest.raises(ValueError, match=r"`limit_alphabet` must be a finite integer > 0; got -1"):
        learn_wordpiece_vocab({"ab": 1}, 10, limit_alphabet=-1)
