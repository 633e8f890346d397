"""Deterministic WordPiece vocabulary training.

The vocabulary is learned as Hugging Face ``tokenizers``' ``WordPieceTrainer`` learns it
(BPE-style merging, Sennrich et al., 2016, with WordPiece's ``##`` continuation pieces; Wu
et al., 2016), with the library's tie rule but with ids given in a fixed order, so the
result depends only on the words of the texts and their counts, never on hash-map order or
threads:

1. count the words (the normaliser's and pre-tokeniser's output) in the texts;
2. the alphabet: the ``limit_alphabet`` most frequent characters (a character's count is the
   number of times it occurs in the text; ties: lower code point first);
3. split each word into its first character and ``##``-prefixed continuation characters
   (characters outside the alphabet are dropped, as the library drops them);
4. repeatedly merge the most frequent adjacent pair of pieces ``(left, right)`` in every
   word, into ``left + right`` without ``right``'s ``##``; ties go to the pair whose
   ``(id of left, id of right)`` is smallest, i.e. to older pieces, as in the library. Stop
   when the vocabulary holds ``vocab_size`` pieces, or when the best pair is seen fewer
   than ``min_frequency`` times.

Ids: the special tokens first, in the order given, then the alphabet's characters by code
point, then their ``##`` forms by code point, then the merged pieces in the order they were
learned (a merge whose piece is already there, from another pair, keeps that id).

Each merge touches only the words that may hold the pair: pair counts are kept exact, an
index maps each pair to the words that may hold it (a word that lost the pair stays listed;
merging there changes nothing), and a heap holds upper bounds of the pair counts (an entry
whose count is stale is pushed again with the true count when popped).

Where the result differs from the library's on purpose: the library gives the ``##`` forms
their ids in hash-map order of the words (so its ties, and the ids of the merged pieces,
change from run to run); here they come by code point. And ``vocab_size`` is never exceeded
(the library keeps the whole alphabet even when it alone is larger). On Python's docs the
two vocabularies share 99.8-100% of their pieces (``benchmarks/wordpiece_train.py``).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from operator import itemgetter
from typing import Any

from gicho._validation import check_positive

__all__ = ["count_words", "learn_wordpiece_vocab"]

_SHIFT = 32  # a pair of piece ids (left, right) is the int ``left << _SHIFT | right``
_LOW = (1 << _SHIFT) - 1


def count_words(texts: Iterable[str], tokenizer: Any) -> Counter[str]:
    """How often each word occurs in ``texts``, as ``tokenizer`` splits them.

    Parameters
    ----------
    texts : iterable of str
    tokenizer : tokenizers.Tokenizer
        Its ``normalizer`` and ``pre_tokenizer`` (both required) turn a text into words.

    Returns
    -------
    collections.Counter
        Word → number of occurrences.
    """
    normalize = tokenizer.normalizer.normalize_str
    pre_tokenize = tokenizer.pre_tokenizer.pre_tokenize_str
    word = itemgetter(0)  # pre_tokenize_str gives (word, (start, end)) pairs
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(map(word, pre_tokenize(normalize(text))))
    return counts


def _alphabet(word_counts: Mapping[str, int], limit: int | None, room: int) -> tuple[list[str], list[str]]:
    """The kept characters and those of them that occur after a word's first character.

    At most ``limit`` characters (None: no limit), the most frequent first (ties: lower code point), and fewer
    when a character and its ``##`` form would not fit into ``room`` pieces.
    """
    frequency: dict[str, int] = {}
    later: set[str] = set()  # characters seen at a position > 0: they need a ## form
    for word, count in word_counts.items():
        for char in word:
            frequency[char] = frequency.get(char, 0) + count
        later.update(word[1:])
    ranked = sorted(frequency, key=lambda c: (-frequency[c], c))[:limit]
    kept, used = 0, 0
    for char in ranked:
        cost = 1 + (char in later)
        if used + cost > room:
            break
        kept, used = kept + 1, used + cost
    chars = sorted(ranked[:kept])
    return chars, [c for c in chars if c in later]


def _pairs(symbols: list[int]) -> list[int]:
    return [a << _SHIFT | b for a, b in pairwise(symbols)]


def learn_wordpiece_vocab(
    word_counts: Mapping[str, int],
    vocab_size: int,
    special_tokens: Sequence[str] = (),
    min_frequency: int = 2,
    limit_alphabet: int | None = None,
    prefix: str = "##",
) -> dict[str, int]:
    """A WordPiece vocabulary learned from word counts (see the module's docstring).

    Parameters
    ----------
    word_counts : mapping of str to int
        Each word (already normalised and pre-tokenised) and how often it occurs (> 0).
    vocab_size : int
        At most this many pieces, special tokens included. When the special tokens and the
        alphabet with its ``##`` forms would not fit, the alphabet keeps only its most
        frequent characters that do.
    special_tokens : sequence of str
        Ids ``0 .. len(special_tokens) - 1``, in this order.
    min_frequency : int, default=2
        A pair of pieces seen fewer times is never merged.
    limit_alphabet : int, optional
        At most this many distinct characters; None: all of them.
    prefix : str, default="##"
        The mark of a piece that continues a word.

    Returns
    -------
    dict
        Piece → id, ids ``0 .. len - 1`` without gaps; the same for the same word counts.
    """
    check_positive(vocab_size, "vocab_size", integer=True)
    check_positive(min_frequency, "min_frequency", integer=True)
    if limit_alphabet is not None:
        check_positive(limit_alphabet, "limit_alphabet", integer=True)
    vocab: dict[str, int] = {}
    for token in special_tokens:
        vocab.setdefault(token, len(vocab))
    chars, later = _alphabet(word_counts, limit_alphabet, max(0, vocab_size - len(vocab)))
    for piece in [*chars, *(prefix + c for c in later)]:
        vocab.setdefault(piece, len(vocab))
    pieces = sorted(vocab, key=vocab.__getitem__)  # id → piece

    # The words as lists of piece ids; a word of one piece holds no pair and never changes.
    first, rest = {c: vocab[c] for c in chars}, {c: vocab[prefix + c] for c in later}
    words: list[list[int]] = []
    counts: list[int] = []
    for word, count in sorted(word_counts.items()):
        symbols = [first[c] if i == 0 else rest[c] for i, c in enumerate(word) if c in first]
        if len(symbols) > 1:
            words.append(symbols)
            counts.append(count)

    pair_counts: dict[int, int] = {}
    where: dict[int, set[int]] = {}  # pair → the words that may hold it
    for w, (symbols, count) in enumerate(zip(words, counts, strict=True)):
        for pair in _pairs(symbols):
            pair_counts[pair] = pair_counts.get(pair, 0) + count
            where.setdefault(pair, set()).add(w)
    # (-count, pair): the most frequent pair first, ties by (left id, right id)
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)

    while len(vocab) < vocab_size and heap:
        negative, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -negative:  # stale: counts only fall between pushes, so re-push the truth
            if 0 < count < -negative:
                heapq.heappush(heap, (-count, pair))
            continue
        if count < min_frequency:
            break
        a, b = pair >> _SHIFT, pair & _LOW
        left, right = pieces[a], pieces[b]
        piece = left + (right[len(prefix):] if right.startswith(prefix) else right)
        merged = vocab.get(piece)
        if merged is None:
            merged = vocab[piece] = len(pieces)
            pieces.append(piece)
        del pair_counts[pair]
        delta: dict[int, int] = {}
        # Merge left to right; a merge next to an earlier one sees it through ``out[-1]``.
        # ``where`` over-estimates: a word that lost a pair stays listed (merging it there
        # changes nothing), so a word is only ever added to the new pairs' entries.
        for w in where.pop(pair):
            symbols, times = words[w], counts[w]
            out: list[int] = []
            i, n = 0, len(symbols)
            while i < n:
                if symbols[i] == a and i + 1 < n and symbols[i + 1] == b:
                    if out:
                        before = out[-1] << _SHIFT
                        delta[before | a] = delta.get(before | a, 0) - times
                        p = before | merged
                        delta[p] = delta.get(p, 0) + times
                        where.setdefault(p, set()).add(w)
                    if i + 2 < n:
                        after = symbols[i + 2]
                        delta[b << _SHIFT | after] = delta.get(b << _SHIFT | after, 0) - times
                        p = merged << _SHIFT | after
                        delta[p] = delta.get(p, 0) + times
                        where.setdefault(p, set()).add(w)
                    out.append(merged)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            if n != len(out):
                words[w] = out
        delta.pop(pair, None)
        for p, change in delta.items():
            if change == 0:
                continue
            total = pair_counts.get(p, 0) + change
            if total > 0:
                pair_counts[p] = total
            else:
                pair_counts.pop(p, None)
            if change > 0:  # a count that grows needs a new upper bound in the heap
                heapq.heappush(heap, (-total, p))
    return vocab
