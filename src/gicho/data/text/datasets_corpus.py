"""Text corpora in Parquet, JSON-lines or Arrow files, read through Hugging Face ``datasets``.

A corpus too large for memory often comes as a table: one row per document, its text in one
column. :class:`DatasetsCorpus` opens such files (one file, a glob pattern or a directory of
them) with ``datasets.load_dataset("parquet" | "json" | "arrow", data_files=..., split="train")``,
which converts them once into Arrow files and memory-maps them: the rows stay on disk, and
iterating reads the text column a batch of rows at a time (no list of every text is ever built).

* :data:`FORMATS`: file suffix → ``datasets`` builder (``.parquet``, ``.jsonl`` / ``.json``
  (JSON lines), ``.arrow``);
* :func:`datasets_format`: which builder reads a path, or None (a text file: see
  :class:`~gicho.data.text.TextCorpus`);
* :class:`DatasetsCorpus`: the corpus; ``for text in corpus`` gives the non-blank texts in row
  order, :meth:`DatasetsCorpus.batches` the rows a batch at a time,
  :meth:`DatasetsCorpus.split` a held-out split by row;
* :class:`HeldOutRows`: which rows are held out, chosen by a seeded hash of the row index, so a
  split needs neither the texts nor a shuffle of them (the same rows in any process);
* :class:`RowTexts`: the texts of some rows, re-iterable (a tokenizer trainer reads them once,
  the block packer again).

No network is used: the files are local, and ``datasets`` runs in offline mode while it reads
them. Its conversion cache goes to ``cache_dir``; by default a temporary directory that the
corpus owns and removes once it is garbage-collected (or at exit), so a run leaves no copy of
the corpus in ``~/.cache`` and never reuses a stale one (put it elsewhere with ``TMPDIR``).
``datasets`` is imported on first use (``pip install 'gicho[datasets]'``), not by ``import gicho``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gicho._validation import check_positive
from gicho.data.text.corpus import DEFAULT_SUFFIXES

__all__ = ["DEFAULT_BATCH_ROWS", "FORMATS", "DatasetsCorpus", "HeldOutRows", "RowTexts", "datasets_format"]

FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".arrow": "arrow"}
DEFAULT_BATCH_ROWS = 1_000  # rows of text read (as Python strings) at a time
_HASH_CHUNK = 1 << 20  # row indices hashed at a time when a split counts its rows
_GLOB_CHARS = frozenset("*?[")
_MASK64 = (1 << 64) - 1
_SAVE_TO_DISK_METADATA = ("state.json", "dataset_info.json")
_GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's increment


def _is_glob(path: str) -> bool:
    """Whether ``path`` is a glob pattern (a path that exists is itself, whatever its characters)."""
    return any(c in _GLOB_CHARS for c in path) and not Path(path).exists()


def _listed_files(directory: Path) -> list[Path]:
    """The non-hidden files under ``directory``, sorted, walking sub-directories in order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return found


def _table_files(directory: Path) -> list[Path]:
    """The files of :data:`FORMATS` under ``directory``, less the metadata that
    ``Dataset.save_to_disk`` writes beside its ``.arrow`` files (``state.json``,
    ``dataset_info.json``)."""
    files = [p for p in _listed_files(directory) if p.suffix.lower() in FORMATS]
    with_arrow = {p.parent for p in files if p.suffix.lower() == ".arrow"}
    return [p for p in files if not (p.parent in with_arrow and p.name in _SAVE_TO_DISK_METADATA)]


def datasets_format(path: str | Path) -> str | None:
    """The ``datasets`` builder that reads ``path`` (``"parquet"``, ``"json"`` or ``"arrow"``), or None.

    A file (or a glob pattern) is judged by its suffix; a directory is a table corpus when it
    holds files with one of :data:`FORMATS`' suffixes and no text file (``.txt``, ``.md``,
    ``.rst``, ``.text``), which keeps every directory that reads as a
    :class:`~gicho.data.text.TextCorpus` one. Mixed formats give the first one found (opening
    the corpus then says what is mixed). Nothing is read but names.
    """
    text = str(path)
    if _is_glob(text):
        names = [Path(p) for p in sorted(glob.glob(text, recursive=True))] or [Path(text)]
    elif Path(text).is_dir():
        if any(p.suffix.lower() in DEFAULT_SUFFIXES for p in _listed_files(Path(text))):
            return None
        names = _table_files(Path(text))
    else:
        names = [Path(text)]
    for name in names:
        found = FORMATS.get(name.suffix.lower())
        if found is not None:
            return found
    return None


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ImportError("reading Parquet, JSON-lines or Arrow corpora needs the `datasets` package, "
                          "which is not installed; install gicho's extra: pip install 'gicho[datasets]'") from None
    return datasets


@contextlib.contextmanager
def _offline(datasets: Any) -> Iterator[None]:
    """``datasets`` in offline mode (local files only, no Hub look-up) for the duration."""
    config = datasets.config
    saved = {name: getattr(config, name) for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
             if hasattr(config, name)}
    for name in saved:
        setattr(config, name, True)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(config, name, value)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 (wrapping arithmetic): a fixed, well-mixed hash."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class HeldOutRows:
    """Which of ``n_rows`` rows are held out: those whose seeded hash falls below ``fraction``.

    Row ``i`` is held out when output ``i + 1`` of SplitMix64 seeded with ``seed``, divided by
    ``2**64``, is below ``fraction``: about ``fraction * n_rows`` rows, decided by the index
    alone (no texts, no shuffle, the same in every process and on every platform), and the
    held-out rows of a larger ``n_rows`` include those of a smaller one. When no row falls
    below ``fraction`` (a small table), the row with the smallest hash is held out instead, so
    there is always at least one.

    Parameters
    ----------
    n_rows : int
        Rows ``0 .. n_rows - 1`` (at least 2).
    fraction : float
        In (0, 1).
    seed : int

    Attributes
    ----------
    n_held_out : int
        How many rows are held out (``n_rows - n_held_out`` remain for training).

    Raises
    ------
    ValueError
        When every row would be held out (nothing left to train on).
    """

    def __init__(self, n_rows: int, fraction: float, seed: int = 0) -> None:
        check_positive(n_rows, "n_rows", integer=True)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ValueError(f"argument `fraction` must lie in (0, 1); got {fraction!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"argument `seed` must be an integer; got {type(seed).__name__}")
        self.n_rows, self.fraction, self.seed = int(n_rows), float(fraction), int(seed)
        self._key = np.uint64(int(seed) & _MASK64)
        self._threshold = np.uint64(min(int(self.fraction * 2.0**64), _MASK64))
        self._fallback: int | None = None
        count, best_row, best_hash = 0, 0, None
        for start in range(0, self.n_rows, _HASH_CHUNK):
            hashes = self._hashes(start, min(start + _HASH_CHUNK, self.n_rows))
            count += int(np.count_nonzero(hashes < self._threshold))
            low = int(hashes.argmin())
            if best_hash is None or hashes[low] < best_hash:
                best_row, best_hash = start + low, hashes[low]
        if count == 0:
            self._fallback, count = best_row, 1
        self.n_held_out = count
        if self.n_held_out >= self.n_rows:
            raise ValueError(f"holding {self.fraction:.0%} out of {self.n_rows} row(s) leaves none to train on; "
                             "give more rows or a smaller fraction")

    def _hashes(self, start: int, stop: int) -> np.ndarray:
        """SplitMix64's outputs number ``start + 1 .. stop`` from the state ``seed``."""
        steps = np.arange(start + 1, stop + 1, dtype=np.uint64)
        return _mix64(steps * np.uint64(_GOLDEN) + self._key)

    def mask(self, start: int, stop: int) -> np.ndarray:
        """Whether each row of ``start .. stop - 1`` is held out, (stop - start,) bool."""
        if not 0 <= start <= stop <= self.n_rows:
            raise ValueError(f"arguments `start`, `stop` must satisfy 0 <= start <= stop <= {self.n_rows}; "
                             f"got {start}, {stop}")
        held = self._hashes(start, stop) < self._threshold
        if self._fallback is not None and start <= self._fallback < stop:
            held[self._fallback - start] = True
        return held

    def training(self, start: int, stop: int) -> np.ndarray:
        """The complement of :meth:`mask`: whether each row is kept for training."""
        return ~self.mask(start, stop)

    def __repr__(self) -> str:
        return (f"HeldOutRows(n_rows={self.n_rows}, fraction={self.fraction}, seed={self.seed}: "
                f"{self.n_held_out} held out)")


class DatasetsCorpus:
    """Documents in the rows of Parquet, JSON-lines or Arrow files, memory-mapped by ``datasets``.

    Parameters
    ----------
    path : str or Path
        One file, a glob pattern (``"shards/*.parquet"``, ``**`` recursive) or a directory (its
        files with the suffixes of :data:`FORMATS`, sub-directories included, in sorted order;
        a directory written by ``Dataset.save_to_disk`` gives its ``.arrow`` files).
        All files must be of one format; ``.json`` files are read as JSON lines (one object per
        line), as ``datasets``' ``json`` builder reads them.
    text_field : str, default="text"
        The column that holds each row's text (a string column).
    cache_dir : str or Path, optional
        Where ``datasets`` writes its Arrow conversion (about the corpus's size again); default:
        a temporary directory this corpus owns and removes (see the module).
    batch_rows : int, default=1000
        Rows read at a time when iterating.

    Iterating gives each non-blank row's text (``str``), in row order; a null or blank row is
    no document and is skipped (row indices still count it). ``len(corpus)`` is the number of
    rows.

    Raises
    ------
    FileNotFoundError
        When ``path`` (or every file a pattern names) does not exist.
    ValueError
        When ``path`` has an unknown suffix, mixes formats, holds no such file, cannot be read,
        has no column ``text_field`` (the columns there are are named) or that column is not text.
    ImportError
        When ``datasets`` is not installed (``pip install 'gicho[datasets]'``).
    """

    def __init__(self, path: str | Path, text_field: str = "text", cache_dir: str | Path | None = None,
                 batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        if not isinstance(text_field, str) or not text_field:
            raise ValueError(f"argument `text_field` must be a non-empty column name; got {text_field!r}")
        self.path = str(path)
        self.text_field = text_field
        self.batch_rows = check_positive(batch_rows, "batch_rows", integer=True)
        self.files = self._resolve_files(self.path)
        suffixes = sorted({f.suffix.lower() for f in self.files})
        formats = sorted({FORMATS[s] for s in suffixes})
        if len(formats) > 1:
            raise ValueError(f"argument `path` ({self.path}) mixes file formats ({', '.join(suffixes)}); "
                             "give files of one format (one glob pattern or directory per format)")
        self.format = formats[0]
        datasets = _import_datasets()
        if cache_dir is None:
            cache = tempfile.mkdtemp(prefix="gicho-datasets-")
            self._cleanup = weakref.finalize(self, shutil.rmtree, cache, True)
        else:
            cache = str(cache_dir)
            self._cleanup = None
        self.cache_dir = Path(cache)
        try:
            with _offline(datasets):
                # data_files are patterns to datasets: a literal name is escaped
                table = datasets.load_dataset(self.format, data_files=[glob.escape(str(f)) for f in self.files],
                                              split="train", cache_dir=cache)
        except Exception as exc:
            self.close()
            where = self.files[0] if len(self.files) == 1 else f"{self.path} ({len(self.files)} files)"
            raise ValueError(f"argument `path`: cannot read {where} as {self.format} through `datasets`: "
                             f"{type(exc).__name__}: {exc}") from exc
        columns = list(table.column_names)
        if text_field not in columns:
            self.close()
            raise ValueError(f"argument `text_field`: {self.path} has no column {text_field!r}; its columns: "
                             f"{', '.join(map(repr, columns)) or '(none)'}")
        feature = table.features[text_field]
        dtype = getattr(feature, "dtype", None)
        if dtype not in ("string", "large_string"):
            self.close()
            kind = dtype if dtype is not None else type(feature).__name__
            raise ValueError(f"argument `text_field`: column {text_field!r} of {self.path} holds {kind}, not "
                             f"text (strings); the columns: {', '.join(map(repr, columns))}")
        # only the text column is read; "arrow" format: batches stay Arrow until a batch is converted
        self._table = table.select_columns([text_field]).with_format("arrow")

    @staticmethod
    def _resolve_files(path: str) -> list[Path]:
        known = ", ".join(FORMATS)
        if _is_glob(path):
            files = [Path(p) for p in sorted(glob.glob(path, recursive=True)) if Path(p).is_file()]
            if not files:
                raise FileNotFoundError(f"argument `path`: no file matches the pattern {path}")
        elif Path(path).is_dir():
            files = _table_files(Path(path))
            if not files:
                raise ValueError(f"argument `path`: directory {path} holds no {known} files")
        elif Path(path).exists():
            if not Path(path).is_file():
                raise ValueError(f"argument `path`: {path} is neither a regular file nor a directory")
            files = [Path(path)]
        else:
            raise FileNotFoundError(f"argument `path`: file not found: {path}")
        unknown = sorted({f.suffix or "(no suffix)" for f in files if f.suffix.lower() not in FORMATS})
        if unknown:
            raise ValueError(f"argument `path` ({path}): unknown file suffix {', '.join(unknown)}; a table corpus is "
                             f"{known} files (JSON lines), read through `datasets`")
        return files

    def close(self) -> None:
        """Remove the temporary conversion cache now (the corpus cannot be read afterwards)."""
        self._table = None
        if self._cleanup is not None:
            self._cleanup()

    def __len__(self) -> int:
        """The number of rows (blank ones included)."""
        if self._table is None:
            raise ValueError(f"{self!r} is closed")
        return self._table.num_rows

    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, list[str | None]]]:
        """``(index of the batch's first row, the rows' texts)`` for rows ``start .. stop - 1``.

        At most ``batch_rows`` texts exist as Python strings at a time; a null row is None.
        """
        n = len(self)
        stop = n if stop is None else stop
        if not 0 <= start <= stop <= n:
            raise ValueError(f"arguments `start`, `stop` must satisfy 0 <= start <= stop <= {n} (the rows); "
                             f"got {start}, {stop}")
        for first in range(start, stop, self.batch_rows):
            last = min(first + self.batch_rows, stop)
            batch = self._table[first:last]  # a pyarrow Table over the memory map
            yield first, batch.column(self.text_field).to_pylist()

    def texts(self, stop: int | None = None,
              keep: Callable[[int, int], np.ndarray] | None = None) -> RowTexts:
        """The non-blank texts of rows ``0 .. stop - 1`` for which ``keep(first, last)`` is True
        (a re-iterable :class:`RowTexts`; all rows when ``keep`` is None)."""
        return RowTexts(self, len(self) if stop is None else stop, keep)

    def split(self, fraction: float, seed: int = 0, max_rows: int = 0) -> tuple[RowTexts, RowTexts]:
        """``(training texts, held-out texts)`` of the first ``max_rows`` rows (0: all), by
        :class:`HeldOutRows` (``fraction`` of the rows, chosen by a seeded hash of the index).

        Raises
        ------
        ValueError
            When fewer than 2 rows are used: nothing could be held out and trained on.
        """
        check_positive(max_rows, "max_rows", strict=False, integer=True)
        n = len(self) if not max_rows else min(max_rows, len(self))
        if n < 2:
            raise ValueError(f"{self.path} has {len(self)} row(s); using {n}: too few to hold {fraction:.0%} out "
                             "and train on the rest")
        rows = HeldOutRows(n, fraction, seed)
        return self.texts(n, rows.training), self.texts(n, rows.mask)

    def __iter__(self) -> Iterator[str]:
        return iter(self.texts())

    def __repr__(self) -> str:
        return f"DatasetsCorpus({self.path!r}, text_field={self.text_field!r}, format={self.format!r})"


class RowTexts:
    """The non-blank texts of the rows ``0 .. stop - 1`` of a :class:`DatasetsCorpus` that
    ``keep`` selects, in row order; every iteration reads them again from the memory map."""

    def __init__(self, corpus: DatasetsCorpus, stop: int,
                 keep: Callable[[int, int], np.ndarray] | None = None) -> None:
        self.corpus, self.stop, self.keep = corpus, stop, keep

    def __iter__(self) -> Iterator[str]:
        for first, texts in self.corpus.batches(0, self.stop):
            chosen = self.keep(first, first + len(texts)) if self.keep is not None else None
            for i, text in enumerate(texts):
                if (chosen is None or chosen[i]) and text is not None and text.strip():
                    yield text

    def __repr__(self) -> str:
        return f"RowTexts({self.corpus!r}, stop={self.stop})"
