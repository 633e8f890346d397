"""Two labelled tasks from Python's own documentation (embedded defaults, no download).

* :func:`docstring_topic_task` — which part of the standard library does a docstring come
  from? Labels are groups of top-level modules (:data:`STDLIB_GROUPS`, after the chapters of
  the Python Library Reference); splits are drawn **by top-level module**, so no module
  (``email``, ``asyncio``, ...) has docstrings in two splits.
* :func:`same_document_task` — do two sentences come from the same document? Balanced
  positives and negatives; each pair is ``[CLS] a [SEP] b [SEP]`` with segment ids 0 / 1.
  Documents are split by source module as well.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from gicho._validation import check_positive
from gicho.data.text.corpus import MIN_DOCSTRING_CHARS, Document, python_docs_corpus
from gicho.data.text.labelled import TextExample, TextTask, check_fractions

__all__ = ["STDLIB_GROUPS", "docstring_topic_task", "same_document_task", "split_sentences"]

DEFAULT_VALID_FRACTION, DEFAULT_TEST_FRACTION = 0.1, 0.2
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


# ---------------------------------------------------------------------------- docstring topics
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
    check_fractions(valid_fraction, test_fraction)
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
    check_fractions(valid_fraction, test_fraction)
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
