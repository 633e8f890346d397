"""Labelled text for fine-tuning BERT: two tasks from Python's own docs, and users' CSV files.

* :func:`docstring_topic_task` — which part of the standard library does a docstring come
  from? Labels are groups of top-level modules (:data:`STDLIB_GROUPS`, after the chapters of
  the Python Library Reference); splits are drawn **by top-level module**, so no module
  (``email``, ``asyncio``, ...) has docstrings in two splits.
* :func:`same_document_task` — do two sentences come from the same document? Balanced
  positives and negatives; each pair is ``[CLS] a [SEP] b [SEP]`` with segment ids 0 / 1.
  Documents are split by source module as well.
* :func:`read_text_csv` / :func:`csv_task` — a user's CSV file with columns ``text,label``
  or ``text_a,text_b,label``.

A :class:`TextTask` holds the splits as lists of :class:`TextExample` and the label names;
:meth:`TextTask.datasets` tokenizes them into :class:`TextClassificationDataset` s (map-style,
dict items) whose ``collate_fn`` pads each batch to its longest sequence.
"""

from __future__ import annotations

import csv
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gicho._validation import check_positive, check_probability, describe
from gicho.data.text.batching import PadCollator
from gicho.data.text.corpus import (
    MIN_DOCSTRING_CHARS,
    Document,
    iter_utf8_lines,
    python_docs_corpus,
)
from gicho.data.text.tokenizer import TextTokenizer

__all__ = [
    "DEFAULT_MAX_LEN",
    "STDLIB_GROUPS",
    "TextClassificationDataset",
    "TextExample",
    "TextTask",
    "csv_task",
    "describe_task",
    "docstring_topic_task",
    "read_text_csv",
    "same_document_task",
    "split_sentences",
    "stratified_sample",
]

DEFAULT_MAX_LEN = 128
ENCODE_CHUNK = 10_000  # texts tokenized at a time: bounds the Python lists alive at once
DEFAULT_VALID_FRACTION, DEFAULT_TEST_FRACTION = 0.1, 0.2
CSV_VALID_FRACTION, CSV_TEST_FRACTION = 0.1, 0.1
MAX_DOCSTRINGS_PER_MODULE = 100  # so asyncio or logging do not make up a whole class
MIN_SENTENCE_WORDS = 5
MAX_SENTENCE_CHARS = 400
SAME_DOCUMENT_LABELS = ("different", "same")

# Top-level standard-library modules → label, after the Python Library Reference's chapters
# (https://docs.python.org/3/library/). Modules not listed are not part of the task.
STDLIB_GROUPS: dict[str, tuple[str, ...]] = {
    "text": ("string", "re", "difflib", "textwrap", "unicodedata", "stringprep", "readline", "rlcompleter",
             "struct", "codecs", "gettext", "locale", "shlex"),
    "data": ("datetime", "zoneinfo", "calendar", "collections", "heapq", "bisect", "array", "weakref", "types",
             "copy", "pprint", "reprlib", "enum", "graphlib", "numbers", "math", "cmath", "decimal", "fractions",
             "random", "statistics", "itertools", "functools", "operator", "secrets"),
    "files": ("pathlib", "posixpath", "ntpath", "genericpath", "fileinput", "stat", "filecmp", "tempfile", "glob",
              "fnmatch", "linecache", "shutil", "pickle", "copyreg", "shelve", "marshal", "dbm", "sqlite3", "zlib",
              "gzip", "bz2", "lzma", "zipfile", "tarfile", "csv", "configparser", "tomllib", "netrc", "plistlib",
              "hashlib", "hmac"),
    "os": ("os", "io", "time", "argparse", "optparse", "getopt", "logging", "getpass", "curses", "platform",
           "errno", "ctypes", "pty", "tty", "fcntl", "resource", "syslog"),
    "concurrency": ("threading", "multiprocessing", "concurrent", "subprocess", "sched", "queue", "contextvars",
                    "asyncio", "socket", "ssl", "select", "selectors", "signal", "mmap"),
    "internet_data": ("email", "json", "mailbox", "mimetypes", "base64", "binascii", "quopri", "html", "xml"),
    "network": ("webbrowser", "wsgiref", "urllib", "http", "ftplib", "poplib", "imaplib", "smtplib", "uuid",
                "socketserver", "xmlrpc", "ipaddress", "nntplib", "telnetlib"),
    "development": ("typing", "pydoc", "doctest", "unittest", "pdb", "bdb", "faulthandler", "timeit", "trace",
                    "tracemalloc", "cProfile", "profile", "pstats", "sys", "sysconfig", "warnings", "dataclasses",
                    "contextlib", "abc", "atexit", "traceback", "gc", "inspect", "site", "code", "codeop",
                    "importlib", "pkgutil", "modulefinder", "runpy", "zipimport", "ast", "symtable", "token",
                    "keyword", "tokenize", "tabnanny", "pyclbr", "py_compile", "compileall", "dis", "pickletools"),
}


@dataclass(frozen=True)
class TextExample:
    """One labelled example: a text (or a pair of texts), its label index and its source."""

    text: str
    label: int
    text_pair: str | None = None
    source: str = ""


@dataclass
class TextTask:
    """Splits of labelled examples and the label names (``label_names[label]``).

    ``groups`` maps each split to the sources (modules, files) its examples come from.
    """

    splits: dict[str, list[TextExample]]
    label_names: tuple[str, ...]
    description: str = ""
    groups: dict[str, set[str]] = field(default_factory=dict)

    def datasets(self, tokenizer: TextTokenizer, max_len: int = DEFAULT_MAX_LEN
                 ) -> dict[str, TextClassificationDataset]:
        """Tokenize every non-empty split (see :class:`TextClassificationDataset`)."""
        return {name: TextClassificationDataset(examples, tokenizer, max_len, n_labels=len(self.label_names))
                for name, examples in self.splits.items() if examples}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        return f"TextTask({sizes}, labels={list(self.label_names)})"


class TextClassificationDataset(torch.utils.data.Dataset):
    """Tokenized examples for sequence classification (map-style).

    Parameters
    ----------
    examples : sequence of TextExample
    tokenizer : TextTokenizer
    max_len : int, default=128
        Texts are truncated to this many ids, [CLS] and [SEP] included (pairs lose tokens
        from the longer text first). Must not exceed the tokenizer's ``model_max_length``.
    n_labels : int, optional
        When given, every label must lie in ``[0, n_labels)``.

    Items are ``{"input_ids": (L,), "token_type_ids": (L,), "labels": ()}`` int64;
    ``collate_fn`` pads a list of items into ``input_ids``, ``token_type_ids``,
    ``attention_mask`` (B, T) and ``labels`` (B,). ``lengths`` lists every item's L (for
    :class:`~gicho.data.text.LengthBucketSampler`). The texts are tokenized in chunks and
    kept as one flat int32 tensor of ids (and one int8 tensor of segment ids) with offsets,
    not one tensor per item: a million rows take tens of MB, not gigabytes.
    """

    def __init__(self, examples: Sequence[TextExample], tokenizer: TextTokenizer, max_len: int = DEFAULT_MAX_LEN,
                 n_labels: int | None = None):
        check_positive(max_len, "max_len", integer=True)
        limit = tokenizer.model_max_length
        if limit is not None and max_len > limit:
            raise ValueError(f"argument `max_len` ({max_len}) exceeds the tokenizer's model_max_length ({limit})")
        self.examples = list(examples)
        if not self.examples:
            raise ValueError("argument `examples` is empty; a dataset needs at least one example")
        pairs = [ex.text_pair is not None for ex in self.examples]
        if any(pairs) and not all(pairs):
            raise ValueError("argument `examples` mixes single texts and text pairs; use one kind per dataset")
        for i, ex in enumerate(self.examples):
            if isinstance(ex.label, bool) or not isinstance(ex.label, int) or ex.label < 0 or (
                    n_labels is not None and ex.label >= n_labels):
                allowed = f"[0, {n_labels})" if n_labels is not None else "an integer >= 0"
                raise ValueError(f"example {i} has label {describe(ex.label)}; labels must lie in {allowed}")
        ids, types, self.lengths = [], [], []
        for start in range(0, len(self.examples), ENCODE_CHUNK):
            chunk = self.examples[start:start + ENCODE_CHUNK]
            texts_b = [str(ex.text_pair) for ex in chunk] if pairs[0] else None
            encoded = tokenizer.encode_batch([ex.text for ex in chunk], texts_b, max_len=max_len)
            self.lengths.extend(len(e["input_ids"]) for e in encoded)
            ids.append(torch.tensor([i for e in encoded for i in e["input_ids"]], dtype=torch.int32))
            types.append(torch.tensor([t for e in encoded for t in e["token_type_ids"]], dtype=torch.int8))
        self._ids, self._types = torch.cat(ids), torch.cat(types)  # (sum of L,)
        self._offsets = torch.cumsum(torch.tensor([0, *self.lengths], dtype=torch.long), 0)  # (N + 1,)
        self.labels = torch.tensor([ex.label for ex in self.examples], dtype=torch.long)
        self.collate_fn = PadCollator(tokenizer.pad_id)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = range(len(self))[index]  # negative indices; IndexError out of range
        start, end = int(self._offsets[index]), int(self._offsets[index + 1])
        return {"input_ids": self._ids[start:end].long(), "token_type_ids": self._types[start:end].long(),
                "labels": self.labels[index]}


# ---------------------------------------------------------------------------- group splits
def _check_fractions(valid_fraction: float, test_fraction: float) -> None:
    check_probability(valid_fraction, "valid_fraction")
    check_probability(test_fraction, "test_fraction")
    if valid_fraction + test_fraction >= 1:
        raise ValueError(f"arguments `valid_fraction` + `test_fraction` must be < 1 (training needs data); got "
                         f"{valid_fraction} + {test_fraction}")


def _split_groups(sizes: Mapping[str, int], valid_fraction: float, test_fraction: float, rng: random.Random,
                  what: str) -> dict[str, list[str]]:
    """Assign whole groups to test, then valid, until each reaches its share of the items."""
    names = sorted(sizes)
    rng.shuffle(names)
    needed = 1 + (valid_fraction > 0) + (test_fraction > 0)
    if len(names) < needed:
        raise ValueError(f"{what}: {len(names)} group(s) cannot fill {needed} disjoint splits")
    total = sum(sizes.values())
    out: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    counts = dict.fromkeys(out, 0)
    for i, name in enumerate(names):
        after = len(names) - i - 1  # groups left to place after this one
        need_train = 0 if out["train"] else 1
        need_valid = 1 if valid_fraction > 0 and not out["valid"] else 0
        if test_fraction > 0 and (not out["test"] or counts["test"] < test_fraction * total) \
                and after >= need_valid + need_train:
            split = "test"
        elif valid_fraction > 0 and (not out["valid"] or counts["valid"] < valid_fraction * total) \
                and after >= need_train:
            split = "valid"
        else:
            split = "train"
        out[split].append(name)
        counts[split] += sizes[name]
    return out


def _top_module(source: str) -> str:
    return source.split(".", 1)[0]


def docstring_topic_task(valid_fraction: float = DEFAULT_VALID_FRACTION, test_fraction: float = DEFAULT_TEST_FRACTION,
                         seed: int = 0, groups: Mapping[str, Sequence[str]] | None = None,
                         max_per_module: int | None = MAX_DOCSTRINGS_PER_MODULE,
                         min_chars: int = MIN_DOCSTRING_CHARS) -> TextTask:
    """Which part of the standard library does a docstring come from?

    Parameters
    ----------
    valid_fraction, test_fraction : float, default=0.1, 0.2
        Share of each label's docstrings held out; whole top-level modules are held out
        (drawn at random, by seed, until the share is reached), so shares are approximate.
    seed : int, default=0
    groups : mapping of str to sequence of str, optional
        Label → top-level modules; default :data:`STDLIB_GROUPS` (8 labels).
    max_per_module : int or None, default=100
        At most this many docstrings per top-level module (a seeded sample, kept in order).
    min_chars : int, default=40
        Shorter docstrings are skipped.

    Returns
    -------
    TextTask
        Splits ``train``, ``valid``, ``test``; ``groups[split]`` is the set of top-level
        modules in that split (pairwise disjoint).
    """
    _check_fractions(valid_fraction, test_fraction)
    groups = dict(STDLIB_GROUPS if groups is None else groups)
    if max_per_module is not None:
        check_positive(max_per_module, "max_per_module", integer=True)
    label_of: dict[str, int] = {}
    for label, modules in enumerate(groups.values()):
        for module in modules:
            if module in label_of:
                raise ValueError(f"argument `groups`: module {module!r} is listed under two labels")
            label_of[module] = label
    by_module: dict[str, list[Document]] = defaultdict(list)
    for doc in python_docs_corpus(topics=False, modules=sorted(label_of), min_chars=min_chars):
        by_module[_top_module(doc.source)].append(doc)
    rng = random.Random(f"docstring-topic:{seed}")
    if max_per_module is not None:
        for module, docs in by_module.items():
            if len(docs) > max_per_module:
                keep = sorted(rng.sample(range(len(docs)), max_per_module))
                by_module[module] = [docs[i] for i in keep]
    splits: dict[str, list[TextExample]] = {"train": [], "valid": [], "test": []}
    held: dict[str, set[str]] = {k: set() for k in splits}
    for label, name in enumerate(groups):
        sizes = {m: len(d) for m, d in by_module.items() if label_of[m] == label}
        assigned = _split_groups(sizes, valid_fraction, test_fraction, rng, f"label {name!r}")
        for split, modules in assigned.items():
            held[split].update(modules)
            for module in sorted(modules):
                splits[split].extend(TextExample(d.text, label, None, d.source) for d in by_module[module])
    for split, examples in splits.items():
        random.Random(f"docstring-topic:{seed}:{split}").shuffle(examples)
    return TextTask(splits, tuple(groups), "standard-library docstring → part of the library "
                    "(held out by top-level module)", held)


# ---------------------------------------------------------------------------- sentence pairs
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'`])")
_SPACE = re.compile(r"\s+")


def split_sentences(text: str, min_words: int = MIN_SENTENCE_WORDS, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Sentences of a text: cut after ``. ! ?`` before a capital; short or overlong ones dropped."""
    text = _SPACE.sub(" ", text).strip()
    return [s for s in _SENTENCE_END.split(text) if len(s.split()) >= min_words and len(s) <= max_chars]


def same_document_task(documents: Iterable[Document] | None = None, valid_fraction: float = DEFAULT_VALID_FRACTION,
                       test_fraction: float = DEFAULT_TEST_FRACTION, seed: int = 0,
                       pairs_per_document: int = 1) -> TextTask:
    """Do two sentences come from the same document? (labels ``("different", "same")``)

    For each document with at least two sentences and each of ``pairs_per_document`` draws,
    a sentence ``a`` is paired once with another sentence of the same document (label 1) and
    once with a sentence of another document of the same split (label 0): the classes are
    balanced and ``a`` alone tells nothing. Documents are split by source (module / file), so
    no source has documents in two splits.

    Parameters
    ----------
    documents : iterable of Document, optional
        Default: :func:`~gicho.data.text.python_docs_corpus` (topics and docstrings).
    valid_fraction, test_fraction : float, default=0.1, 0.2
    seed : int, default=0
    pairs_per_document : int, default=1

    Returns
    -------
    TextTask
        Examples with ``text`` (segment 0) and ``text_pair`` (segment 1).
    """
    _check_fractions(valid_fraction, test_fraction)
    check_positive(pairs_per_document, "pairs_per_document", integer=True)
    docs = python_docs_corpus() if documents is None else documents
    by_source: dict[str, list[list[str]]] = defaultdict(list)
    for doc in docs:
        sentences = split_sentences(doc.text)
        if sentences:
            by_source[doc.source].append(sentences)
    if not by_source:
        raise ValueError("argument `documents` holds no sentences (empty corpus?)")
    rng = random.Random(f"same-document:{seed}")
    sizes = {s: sum(len(d) >= 2 for d in ds) for s, ds in by_source.items()}
    assigned = _split_groups(sizes, valid_fraction, test_fraction, rng, "same_document_task: sources")
    splits: dict[str, list[TextExample]] = {}
    for split, sources in assigned.items():
        pool = [(s, d) for s in sorted(sources) for d in by_source[s]]
        examples: list[TextExample] = []
        if len(pool) < 2:
            raise ValueError(f"same_document_task: split {split!r} has {len(pool)} document(s); need >= 2")
        for index, (source, sentences) in enumerate(pool):
            if len(sentences) < 2:
                continue
            for _ in range(pairs_per_document):
                i, j = rng.sample(range(len(sentences)), 2)
                other = rng.randrange(len(pool) - 1)
                other += other >= index  # any document but this one
                negative = rng.choice(pool[other][1])
                examples.append(TextExample(sentences[i], 1, sentences[j], source))
                examples.append(TextExample(sentences[i], 0, negative, source))
        rng.shuffle(examples)
        splits[split] = examples
    return TextTask(splits, SAME_DOCUMENT_LABELS, "do two sentences come from the same document? "
                    "(held out by source)", {k: set(v) for k, v in assigned.items()})


# ---------------------------------------------------------------------------- CSV files
SINGLE_COLUMNS, PAIR_COLUMNS = ("text", "label"), ("text_a", "text_b", "label")


def read_text_csv(path: str | Path, label_names: Sequence[str] | None = None
                  ) -> tuple[list[TextExample], tuple[str, ...]]:
    """Read a CSV file of labelled texts: columns ``text,label`` or ``text_a,text_b,label``.

    Parameters
    ----------
    path : str or Path
        UTF-8, with a header line; other columns are ignored.
    label_names : sequence of str, optional
        The allowed labels, in label-index order (pass the training file's to read its
        validation file). Default: the file's distinct labels, sorted.

    Returns
    -------
    examples : list of TextExample
    label_names : tuple of str
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"CSV path {path} is a directory, not a CSV file; give the file itself")
    if not path.exists():
        raise FileNotFoundError(f"CSV file not found: {path}")
    if not path.is_file():
        raise ValueError(f"CSV path {path} is not a regular file (a device, FIFO or socket); give a CSV file")
    reader = csv.reader(line for _, line in iter_utf8_lines(path))
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f"CSV file {path} is empty; expected a header line with columns "
                         f"{','.join(SINGLE_COLUMNS)} or {','.join(PAIR_COLUMNS)}") from None
    except csv.Error as err:
        raise ValueError(f"{path}: not a valid CSV file ({err})") from None
    header = [h.strip() for h in header]
    columns = PAIR_COLUMNS if all(c in header for c in PAIR_COLUMNS) else SINGLE_COLUMNS
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"{path}: no column(s) {', '.join(missing)}; found columns {', '.join(header) or '(none)'}; "
                         f"expected {','.join(SINGLE_COLUMNS)} or {','.join(PAIR_COLUMNS)}")
    repeated = [c for c in columns if header.count(c) > 1]
    if repeated:
        raise ValueError(f"{path}: column {repeated[0]!r} appears {header.count(repeated[0])} times in the header "
                         f"({', '.join(header)}); rename or drop all but one")
    where = [header.index(c) for c in columns]
    rows: list[tuple[list[str], int]] = []
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank line
            if len(row) != len(header):
                raise ValueError(f"{path}, line {reader.line_num}: {len(row)} field(s); the header has {len(header)}")
            values = [row[i] for i in where]
            for name, value in zip(columns, values, strict=True):
                if not value.strip():
                    raise ValueError(f"{path}, line {reader.line_num}: column {name!r} is empty")
            rows.append((values, reader.line_num))
    except csv.Error as err:
        raise ValueError(f"{path}, line {reader.line_num}: not valid CSV ({err})") from None
    if not rows:
        raise ValueError(f"CSV file {path} has a header but no rows")
    found = sorted({values[-1].strip() for values, _ in rows})
    names = tuple(found) if label_names is None else tuple(label_names)
    index = {name: i for i, name in enumerate(names)}
    examples = []
    for values, line in rows:
        label = values[-1].strip()
        if label not in index:
            raise ValueError(f"{path}, line {line}: label {label!r} is not one of {', '.join(map(repr, names))}")
        pair = values[1] if columns == PAIR_COLUMNS else None
        examples.append(TextExample(values[0], index[label], pair, f"{path}:{line}"))
    return examples, names


def _split_sizes(n: int, valid_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Rows for (valid, test): ``round(fraction * n)``, but at least one when the fraction is > 0."""
    n_valid = max(1, round(valid_fraction * n)) if valid_fraction > 0 else 0
    n_test = max(1, round(test_fraction * n)) if test_fraction > 0 else 0
    return n_valid, n_test


def _train_every_label(pick: dict[str, list[int]], labels: Sequence[int]) -> None:
    """Swap rows (in place) so every label of ``labels`` has a row in ``pick["train"]``.

    A label whose rows all fell in valid / test trades its first held-out row (from valid when
    it has one there, else from test) for the last training row of a label with several. Needs
    at least as many training rows as labels (then, by pigeonhole, a donor always exists).
    """
    train = pick["train"]
    counts: dict[int, int] = defaultdict(int)
    for i in train:
        counts[labels[i]] += 1
    for label in sorted(set(labels) - set(counts)):
        split = "valid" if any(labels[i] == label for i in pick["valid"]) else "test"
        held = next(pos for pos, i in enumerate(pick[split]) if labels[i] == label)
        give = max(pos for pos, i in enumerate(train) if counts[labels[i]] > 1)
        counts[labels[train[give]]] -= 1
        counts[label] += 1
        train[give], pick[split][held] = pick[split][held], train[give]


def csv_task(path: str | Path, valid_fraction: float = CSV_VALID_FRACTION,
             test_fraction: float = CSV_TEST_FRACTION, seed: int = 0,
             label_names: Sequence[str] | None = None) -> TextTask:
    """A user's CSV file (see :func:`read_text_csv`) split at random (by seed) into train/valid/test.

    A split whose fraction is > 0 gets ``round(fraction * n_rows)`` rows, but at least one;
    training keeps the rest, at least one row per label: with the defaults a file of 2 labels
    needs 4 rows. Every label of the file gets at least one training row: a label whose rows
    all fell in valid / test swaps one of them for a training row of a label that has several
    (the split sizes stay).

    Raises
    ------
    ValueError
        When the file's rows carry fewer than 2 distinct labels (a classifier needs 2), or
        when it has too few rows for the splits and a training row of each label.
    """
    _check_fractions(valid_fraction, test_fraction)
    examples, names = read_text_csv(path, label_names)
    present = sorted({ex.label for ex in examples})
    if len(present) < 2:
        raise ValueError(f"a classifier needs at least 2 labels; CSV file {path} has only {names[present[0]]!r} "
                         f"(in all {len(examples)} row(s))")
    n = len(examples)
    n_valid, n_test = _split_sizes(n, valid_fraction, test_fraction)
    if n - n_valid - n_test < len(present):
        least = n + 1
        while least - sum(_split_sizes(least, valid_fraction, test_fraction)) < len(present):
            least += 1
        raise ValueError(f"CSV file {path} has {n} row(s): too few to split with valid_fraction={valid_fraction} "
                         f"and test_fraction={test_fraction} (each split needs a row, and training a row of each "
                         f"of the {len(present)} labels); give at least {least} rows")
    order = list(range(n))
    random.Random(f"csv:{seed}").shuffle(order)
    pick = {"test": order[:n_test], "valid": order[n_test:n_test + n_valid], "train": order[n_test + n_valid:]}
    _train_every_label(pick, [ex.label for ex in examples])
    return TextTask({k: [examples[i] for i in pick[k]] for k in ("train", "valid", "test")}, names,
                    f"CSV file {path}")


def stratified_sample(examples: Sequence[TextExample], n: int, seed: int) -> list[TextExample]:
    """``n`` of ``examples``, each label kept in its share (largest remainders), drawn by ``seed``.

    The same (examples, n, seed) always give the same sample; the examples keep their order.

    Raises
    ------
    ValueError
        When ``n`` is not an integer in ``[1, len(examples)]``.
    """
    check_positive(n, "n", integer=True)
    if n > len(examples):
        raise ValueError(f"argument `n` ({n}) exceeds the {len(examples)} examples to sample from")
    by_label: dict[int, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_label[ex.label].append(i)
    shares = {label: n * len(idx) / len(examples) for label, idx in sorted(by_label.items())}
    quota = {label: int(share) for label, share in shares.items()}
    # the seats left go to the largest remainders (ties: the smaller label id)
    for label in sorted(shares, key=lambda k: (-(shares[k] - quota[k]), k))[: n - sum(quota.values())]:
        quota[label] += 1
    rng = random.Random(f"stratified:{seed}")
    chosen = [i for label in sorted(by_label) for i in rng.sample(by_label[label], quota[label])]
    return [examples[i] for i in sorted(chosen)]


def _label_counts(examples: Iterable[TextExample], n_labels: int) -> list[int]:
    counts = [0] * n_labels
    for ex in examples:
        counts[ex.label] += 1
    return counts


def describe_task(task: TextTask) -> dict[str, Any]:
    """Per-split sizes and label counts (for reports and tests)."""
    n = len(task.label_names)
    return {split: {"n": len(ex), "labels": dict(zip(task.label_names, _label_counts(ex, n), strict=True))}
            for split, ex in task.splits.items()}
