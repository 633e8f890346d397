"""gicho's deterministic WordPiece trainer against ``tokenizers``' ``WordPieceTrainer``.

Run: ``.venv/bin/python benchmarks/wordpiece_train.py [--rounds 5] [--held-out 0.1] [--seed 0]``

Both learn an uncased BERT vocabulary (special tokens, ``min_frequency=2``,
``limit_alphabet=1000``) from Python's documentation (:func:`python_docs_corpus`, shuffled
with ``--seed``) in the same process, on three inputs:

* ``all``: every document, ``vocab_size=8000`` (the tour's and ``mlm-bert``'s default size);
* ``train``: all but the held-out documents, ``vocab_size=8000``;
* ``800``: 800 of the training documents, ``vocab_size=2000``.

Time: the median of ``--rounds`` interleaved rounds (one call of each per round, after one
warm-up) and the median of the per-round ratios gicho / library (> 1: gicho is slower); a
call includes the normalisation and pre-tokenisation of the texts. Agreement: the share of
the library's pieces that gicho's vocabulary also holds (in brackets: that a second library
training holds), and how many ids differ between two trainings of the same trainer on the
same texts (the library breaks ties by hash-map order).
Quality (inputs ``train`` and ``800``): WordPiece tokens per word and the [UNK] share on the
held-out documents, both vocabularies encoded by the ``tokenizers`` WordPiece model.
Never run by the tests.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
from collections.abc import Callable, Sequence
from typing import Any

import tokenizers
from _common import hardware_lines, paired_ratios
from tokenizers import Tokenizer, models, trainers

import gicho
from gicho.data.text import SPECIAL_TOKENS, TextTokenizer, python_docs_corpus, train_wordpiece
from gicho.data.text.tokenizer import (
    CONTINUATION_PREFIX,
    DEFAULT_LIMIT_ALPHABET,
    DEFAULT_MIN_FREQUENCY,
    MAX_INPUT_CHARS_PER_WORD,
    UNK,
    _bert_pipeline,
    _bert_post_processor,
)


def library_wordpiece(texts: Sequence[str], vocab_size: int) -> TextTokenizer:
    """``train_wordpiece`` as it was before gicho's trainer: ``tokenizers``' WordPieceTrainer."""
    tok = Tokenizer(models.WordPiece(unk_token=UNK, continuing_subword_prefix=CONTINUATION_PREFIX,
                                     max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD))
    _bert_pipeline(tok, lowercase=True)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=DEFAULT_MIN_FREQUENCY, show_progress=False,
        special_tokens=list(SPECIAL_TOKENS), limit_alphabet=DEFAULT_LIMIT_ALPHABET,
        continuing_subword_prefix=CONTINUATION_PREFIX,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    _bert_post_processor(tok)
    return TextTokenizer(tok, source="library")


def gicho_wordpiece(texts: Sequence[str], vocab_size: int) -> TextTokenizer:
    return train_wordpiece(texts, vocab_size=vocab_size)


TRAINERS: dict[str, Callable[[Sequence[str], int], TextTokenizer]] = {
    "library": library_wordpiece, "gicho": gicho_wordpiece}


def tokens_per_word(tok: TextTokenizer, texts: Sequence[str]) -> tuple[float, float]:
    """(WordPiece tokens per pre-tokenised word, share of tokens that are [UNK]) over ``texts``."""
    backend = tok.backend
    words = sum(len(backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(t))) for t in texts)
    ids = [i for e in tok.encode_batch(texts, add_special_tokens=False) for i in e["input_ids"]]
    return len(ids) / words, ids.count(tok.unk_id) / len(ids)


def ids_differing(a: dict[str, int], b: dict[str, int]) -> int:
    return sum(a[t] != b.get(t) for t in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--held-out", type=float, default=0.1, help="share of documents held out")
    parser.add_argument("--seed", type=int, default=0, help="shuffles the documents")
    args = parser.parse_args()

    docs = [d.text for d in python_docs_corpus()]
    random.Random(args.seed).shuffle(docs)
    n_held = round(len(docs) * args.held_out)
    held, train = docs[:n_held], docs[n_held:]
    print(f"gicho {gicho.__version__}, tokenizers {tokenizers.__version__}, Python {platform.python_version()}, "
          f"{sys.platform}; TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', '(unset)')}, "
          f"RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', '(unset)')}")
    for line in hardware_lines():
        print(line)
    print(f"python_docs_corpus(): {len(docs)} documents, {sum(map(len, docs)):,} characters; "
          f"held out {len(held)} ({sum(map(len, held)):,} characters); {args.rounds} rounds\n")

    cases: list[tuple[str, list[str], int, bool]] = [
        ("all", docs, 8000, False), ("train", train, 8000, True), ("800", train[:800], 2000, True)]
    print("| input | docs | vocab_size | library s | gicho s | gicho / library (min-max) | sizes lib / gicho "
          "| shared pieces (lib run 2) | ids differing, 2 runs lib / gicho | tokens/word lib / gicho | [UNK] lib / gicho |")
    print("|---|---:|---:|---:|---:|---|---|---:|---|---|---|")
    for name, texts, vocab_size, quality in cases:
        contenders: dict[str, Callable[[], Any]] = {
            k: (lambda f=f, t=texts, v=vocab_size: f(t, v)) for k, f in TRAINERS.items()}
        timing = paired_ratios(contenders, args.rounds, base="library")
        first = {k: f(texts, vocab_size) for k, f in TRAINERS.items()}
        again = {k: f(texts, vocab_size).get_vocab() for k, f in TRAINERS.items()}
        vocab = {k: t.get_vocab() for k, t in first.items()}
        shared = len(vocab["library"].keys() & vocab["gicho"].keys()) / len(vocab["library"])
        shared_lib = len(vocab["library"].keys() & again["library"].keys()) / len(vocab["library"])
        row = [name, str(len(texts)), str(vocab_size), f"{timing['library']['median']:.2f}",
               f"{timing['gicho']['median']:.2f}",
               f"{timing['gicho']['ratio']:.2f} ({timing['gicho']['ratio_lo']:.2f}-{timing['gicho']['ratio_hi']:.2f})",
               f"{len(vocab['library'])} / {len(vocab['gicho'])}", f"{shared:.1%} ({shared_lib:.1%})",
               f"{ids_differing(vocab['library'], again['library'])} / {ids_differing(vocab['gicho'], again['gicho'])}"]
        if quality:
            (lib_tpw, lib_unk), (our_tpw, our_unk) = (tokens_per_word(first[k], held) for k in TRAINERS)
            row += [f"{lib_tpw:.3f} / {our_tpw:.3f}", f"{lib_unk:.2%} / {our_unk:.2%}"]
        else:
            row += ["-", "-"]
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
