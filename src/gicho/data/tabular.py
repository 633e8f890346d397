"""Tabular data: scikit-learn's bundled diabetes table and chunked readers for large files.

Readers yield row chunks so that a fit never holds more than one chunk in memory:

* ``.npy``: memory-mapped, one mapping per chunk (unmapped when the chunk is dropped, so
  the resident memory stays at about one chunk even for files larger than RAM);
* CSV (with a header line): pyarrow's streaming CSV reader;
* Parquet: pyarrow's ``ParquetFile.iter_batches``.

:func:`iter_xy_chunks` splits each chunk into ``(X, y)`` by column name (CSV, Parquet) or
index (``.npy``) and feeds :meth:`gicho.linear.LinearRegression.fit_chunks` directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gicho._validation import check_positive, describe
from gicho.data._table_files import Column, column_names, read_columns

__all__ = [
    "TabularData",
    "iter_csv_chunks",
    "iter_npy_chunks",
    "iter_parquet_chunks",
    "iter_xy_chunks",
    "load_diabetes_table",
    "load_table",
    "npy_shape",
]

DEFAULT_CHUNK_ROWS = 65_536
SUFFIXES = (".npy", ".csv", ".tsv", ".txt", ".parquet", ".pq")


@dataclass(frozen=True)
class TabularData:
    """A table: ``X`` (n, p) float64, ``y`` (n,) float64 (or None: no target) and their names.

    ``n_rows`` is the number of data rows read, ``n_dropped`` how many of them were dropped
    for missing values (so ``X`` has ``n_rows - n_dropped`` rows).
    """

    X: np.ndarray
    y: np.ndarray | None
    feature_names: tuple[str, ...]
    target_name: str | None
    description: str
    n_rows: int = -1
    n_dropped: int = 0

    def __post_init__(self) -> None:
        if self.n_rows < 0:
            object.__setattr__(self, "n_rows", int(self.X.shape[0]) + self.n_dropped)

    def features_frame(self) -> Any:
        """``X`` as a pyarrow Table with the feature names as columns.

        Estimators fitted on it record ``feature_names_in_`` (scikit-learn reads the names of
        any dataframe), so their warnings and summaries name the user's columns.
        """
        import pyarrow as pa

        return pa.table({name: self.X[:, j] for j, name in enumerate(self.feature_names)})


def load_diabetes_table(scaled: bool = True) -> TabularData:
    """scikit-learn's bundled diabetes data (442 patients, 10 baseline variables; no download).

    Parameters
    ----------
    scaled : bool, default=True
        The features as shipped (mean-centred, scaled to unit Euclidean norm per column);
        False gives the original units (age in years, BMI, blood pressure, ...).
    """
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=scaled)
    return TabularData(
        X=np.asarray(bunch.data, dtype=np.float64),
        y=np.asarray(bunch.target, dtype=np.float64),
        feature_names=tuple(bunch.feature_names),
        target_name="progression",
        description="diabetes (scikit-learn, bundled): disease progression after one year",
    )


# ---------------------------------------------------------------------------- readers
def _check_file(path: Path | str, suffixes: Sequence[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"data file {path} has suffix {path.suffix!r}; allowed: {', '.join(suffixes)}")
    return path


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    with path.open("rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        offset = handle.tell()
    if dtype.hasobject:
        raise ValueError(f"{path}: holds Python objects; only numeric arrays can be read (no pickles)")
    need = math.prod(shape) * dtype.itemsize
    have = path.stat().st_size - offset
    if need > have:  # checked before any mapping: a header may claim 10^12 rows
        raise ValueError(
            f"{path}: the header claims shape {shape} ({need:,} bytes of {dtype}) but the file "
            f"holds {have:,} bytes of data; the file is truncated or its header is wrong"
        )
    if fortran and len(shape) == 2 and shape[1] > 1:
        raise ValueError(
            f"{path}: stored in Fortran (column-major) order, so rows cannot be streamed; "
            "re-save it with np.save(path, np.ascontiguousarray(a))"
        )
    return shape, dtype, offset


def npy_shape(path: Path | str) -> tuple[int, ...]:
    """Shape of the array in a ``.npy`` file, read from its header only."""
    return _npy_header(_check_file(path, (".npy",)))[0]


def iter_npy_chunks(path: Path | str, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[np.ndarray]:
    """Row chunks of a 1-D or 2-D ``.npy`` array, each a read-only memory map.

    Each chunk maps only its own rows; once the caller drops it the pages leave the
    process's resident set (the OS page cache may keep them, outside the process).
    """
    check_positive(chunk_rows, "chunk_rows", integer=True)
    path = _check_file(path, (".npy",))
    shape, dtype, offset = _npy_header(path)
    if len(shape) not in (1, 2):
        raise ValueError(f"{path}: expected a 1-D or 2-D array; got shape {shape}")
    n = shape[0]
    row_bytes = dtype.itemsize * (shape[1] if len(shape) == 2 else 1)
    for start in range(0, n, chunk_rows):
        rows = min(chunk_rows, n - start)
        chunk = np.memmap(path, dtype=dtype, mode="r", offset=offset + start * row_bytes,
                          shape=(rows, *shape[1:]))  # fmt: skip
        yield chunk
        del chunk  # drop our reference so the mapping can close


def _arrow_columns(batch: Any, columns: Sequence[str] | None, path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    import pyarrow as pa

    names = tuple(batch.schema.names) if columns is None else tuple(columns)
    arrays = []
    for name in names:
        if name not in batch.schema.names:
            raise ValueError(f"{path}: no column {name!r}; columns: {', '.join(batch.schema.names)}")
        column = batch.column(name)
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                or pa.types.is_boolean(column.type) or pa.types.is_null(column.type)):  # fmt: skip
            raise ValueError(f"{path}: column {name!r} is not numeric (type {column.type})")
        values = column.to_numpy(zero_copy_only=False)  # nulls become NaN (caught by the fit)
        arrays.append(np.asarray(values, dtype=np.float64))
    if not arrays:
        return np.empty((batch.num_rows, 0)), names
    return np.column_stack(arrays), names


def iter_csv_chunks(
    path: Path | str,
    columns: Sequence[str] | None = None,
    chunk_bytes: int = 16 << 20,
    delimiter: str = ",",
) -> Iterator[tuple[np.ndarray, tuple[str, ...]]]:
    """Chunks ``(values, names)`` of a CSV file with a header line, via pyarrow's reader.

    ``values`` is float64 (rows, len(names)); missing values become NaN. Chunks hold about
    ``chunk_bytes`` of text each.
    """
    import pyarrow.csv as pcsv

    check_positive(chunk_bytes, "chunk_bytes", integer=True)
    path = _check_file(path, (".csv", ".tsv", ".txt"))
    reader = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=int(chunk_bytes)),
        parse_options=pcsv.ParseOptions(delimiter=delimiter),
        convert_options=pcsv.ConvertOptions(include_columns=list(columns) if columns else None),
    )
    for batch in reader:
        if batch.num_rows:
            yield _arrow_columns(batch, columns, path)


def iter_parquet_chunks(
    path: Path | str, columns: Sequence[str] | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[tuple[np.ndarray, tuple[str, ...]]]:
    """Chunks ``(values, names)`` of a Parquet file (float64), ``chunk_rows`` rows each."""
    import pyarrow.parquet as pq

    check_positive(chunk_rows, "chunk_rows", integer=True)
    path = _check_file(path, (".parquet", ".pq"))
    file = pq.ParquetFile(path)
    if columns is not None:
        missing = [c for c in columns if c not in file.schema_arrow.names]
        if missing:
            raise ValueError(f"{path}: no column(s) {missing}; columns: {', '.join(file.schema_arrow.names)}")
    for batch in file.iter_batches(batch_size=chunk_rows, columns=list(columns) if columns else None):
        if batch.num_rows:
            yield _arrow_columns(batch, columns, path)


def _table_names(path: Path) -> tuple[str, ...]:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        shape = npy_shape(path)
        if len(shape) != 2:
            raise ValueError(f"{path}: expected a 2-D array (rows = samples); got shape {shape}")
        return tuple(str(j) for j in range(shape[1]))
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return tuple(pq.ParquetFile(path).schema_arrow.names)
    import pyarrow.csv as pcsv

    with path.open("rb") as handle:  # the block must hold the whole header line
        header_bytes = len(handle.readline())
    reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=max(1 << 16, 2 * header_bytes + 1)))
    return tuple(reader.schema.names)


def resolve_columns(
    path: Path | str, target: str | int | None, features: Sequence[str] | None
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """``(target, features, all names)`` of a table file; the default target is the last column.

    For ``.npy`` the names are the column indices as strings ("0", "1", ...).
    """
    path = Path(path)
    names = _table_names(path)
    if not names:
        raise ValueError(f"{path}: the table has no columns")
    target = names[-1] if target is None else str(target)
    if target not in names:
        raise ValueError(f"argument `target`: no column {target!r} in {path}; columns: {', '.join(names)}")
    if features is None:
        features = tuple(c for c in names if c != target)
    else:
        features = tuple(str(f) for f in features)
        unknown = [f for f in features if f not in names]
        if unknown:
            raise ValueError(f"argument `features`: no column(s) {unknown} in {path}; columns: {', '.join(names)}")
        if target in features:
            raise ValueError(f"argument `features` contains the target column {target!r}")
    if not features:
        raise ValueError(f"{path}: no feature columns besides the target {target!r}")
    return target, features, names


def iter_xy_chunks(
    path: Path | str,
    target: str | int | None = None,
    features: Sequence[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(X, y)`` chunks of a ``.npy`` / CSV / Parquet table (target: name, or index for .npy)."""
    path = _check_file(path, SUFFIXES)
    target, features, names = resolve_columns(path, target, features)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        t = names.index(target)
        idx = [names.index(f) for f in features]
        contiguous = idx == list(range(idx[0], idx[0] + len(idx)))
        for chunk in iter_npy_chunks(path, chunk_rows):
            X = chunk[:, idx[0] : idx[0] + len(idx)] if contiguous else chunk[:, idx]
            yield X, chunk[:, t]
        return
    wanted = (*features, target)
    if suffix in (".parquet", ".pq"):
        chunks = iter_parquet_chunks(path, wanted, chunk_rows)
    else:
        delimiter = "\t" if suffix == ".tsv" else ","
        chunks = iter_csv_chunks(path, wanted, chunk_bytes=max(1 << 16, chunk_rows * 16 * len(wanted)),
                                 delimiter=delimiter)  # fmt: skip
    for values, _ in chunks:
        yield values[:, :-1], values[:, -1]


MISSING = ("raise", "drop")


def _encode(column: Column, rows: np.ndarray, path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """One-hot columns of a text column (first level dropped), named ``name[level]``.

    Levels are sorted, as statsmodels' formulas (patsy) sort them, and the first is the
    reference level absorbed by the intercept.
    """
    values = column.values[rows]
    levels = sorted(set(values.tolist()))
    if len(levels) < 2:
        raise ValueError(
            f"{path}: text column {column.name!r} has a single level {levels[0]!r} in the rows used; "
            "it carries no information (leave it out with --features / `features`)"
        )
    dummies = np.column_stack([(values == level).astype(np.float64) for level in levels[1:]])
    return dummies, tuple(f"{column.name}[{level}]" for level in levels[1:])


def _missing_message(path: Path, used: Sequence[Column], bad_rows: np.ndarray, n: int) -> str:
    per_column = [(c.name, int(c.missing.sum()), int(np.argmax(c.missing)) + 1) for c in used if c.missing.any()]
    listed = "; ".join(f"column {name!r}: {count} missing (first in data row {row})" for name, count, row in per_column)
    return (
        f"{path}: {int(bad_rows.sum())} of {n} row(s) have missing values ({listed}; rows are "
        "1-based, counted after the header). Pass missing='drop' (gicho ols: --missing drop) to "
        "fit on the complete rows"
    )


def load_table(
    path: Path | str | None = None,
    target: str | int | None = None,
    features: Sequence[str] | None = None,
    *,
    require_target: bool = True,
    categorical: bool = False,
    missing: str = "raise",
) -> TabularData:
    """A whole table in memory: ``path`` (.npy, CSV, Parquet) or, for None, the diabetes data.

    The one table reader of ``gicho ols`` and ``gicho pca``.

    Parameters
    ----------
    path : path or None
        ``.npy`` (a 2-D numeric array; its columns are named "0", "1", ...), ``.csv`` /
        ``.tsv`` / ``.txt`` (a header line of names, or none when the first line is all
        numbers), ``.parquet`` / ``.pq``. None gives scikit-learn's diabetes data.
    target : str, optional
        The response column. Default: the last column when ``require_target``, else none
        (every column is a feature, ``y`` is None).
    features : sequence of str, optional
        The predictor columns, in this order (default: every column but the target).
    require_target : bool, default=True
        Whether the table must have a target (``gicho ols``) or may not (``gicho pca``).
    categorical : bool, default=False
        One-hot encode text feature columns (first level dropped, columns named
        ``city[Daegu]`` as statsmodels' formulas name them); otherwise a text feature is an
        error that says so.
    missing : {"raise", "drop"}, default="raise"
        Rows with a missing value (empty field, null, NaN) in a used column: an error naming
        the columns and counts, or dropped (``TabularData.n_dropped`` says how many).

    Returns
    -------
    TabularData
    """
    from gicho._validation import check_choice

    check_choice(missing, "missing", MISSING)
    if path is None:
        data = load_diabetes_table()
        if target not in (None, "progression", "target"):
            raise ValueError(
                f"argument `target`={describe(target)} is not a column of the diabetes data; "
                "its target is 'progression'"
            )
        if features is not None:
            unknown = [f for f in features if f not in data.feature_names]
            if unknown:
                raise ValueError(
                    f"argument `features`: no column(s) {unknown} in the diabetes data; columns: "
                    f"{', '.join(data.feature_names)}"
                )
            idx = [data.feature_names.index(f) for f in features]
            data = TabularData(data.X[:, idx], data.y, tuple(features), data.target_name, data.description)
        return data
    path = _check_file(path, SUFFIXES)
    names = column_names(path)
    if not names:
        raise ValueError(f"{path}: the table has no columns")
    if target is None and require_target:
        target = names[-1]
    if target is not None:
        target = str(target)
        if target not in names:
            raise ValueError(f"argument `target`: no column {target!r} in {path}; columns: {_listing(names)}")
    if features is None:
        features = tuple(c for c in names if c != target)
    else:
        features = tuple(str(f) for f in features)
        known = set(names)
        unknown = [f for f in features if f not in known]
        if unknown:
            raise ValueError(f"argument `features`: no column(s) {unknown} in {path}; columns: {_listing(names)}")
        if target in features:
            raise ValueError(f"argument `features` contains the target column {target!r}")
    if not features:
        raise ValueError(f"{path}: no feature columns besides the target {target!r}")
    columns, n = read_columns(path, [*features, *([target] if target is not None else [])])
    by_name = {c.name: c for c in columns}
    if n == 0:
        raise ValueError(f"{path}: the table has no rows")
    used = [by_name[f] for f in features] + ([by_name[target]] if target is not None else [])
    text = [c.name for c in used if c.is_text]
    if target is not None and by_name[target].is_text:
        raise ValueError(f"{path}: the target column {target!r} holds text; the target must be numeric")
    if text and not categorical:
        example = next(v for v in by_name[text[0]].values if v)
        raise ValueError(
            f"{path}: column(s) {', '.join(map(repr, text))} hold text (e.g. {example!r}); pass "
            "categorical=True (gicho ols: --categorical) to one-hot encode them, or leave them out "
            "with `features` (--features)"
        )
    bad = np.zeros(n, dtype=bool)
    for c in used:
        bad |= c.missing
    if bad.any() and missing == "raise":
        raise ValueError(_missing_message(path, used, bad, n))
    rows = ~bad
    if not rows.any():
        raise ValueError(f"{path}: every one of the {n} row(s) has a missing value in the columns used")
    blocks, feature_names = [], []
    for name in features:
        c = by_name[name]
        if c.is_text:
            dummies, dummy_names = _encode(c, rows, path)
            blocks.append(dummies)
            feature_names.extend(dummy_names)
        else:
            blocks.append(c.values[rows][:, None])
            feature_names.append(name)
    X = np.concatenate(blocks, axis=1)
    y = by_name[target].values[rows] if target is not None else None
    return TabularData(X, y, tuple(feature_names), target, str(path), n_rows=n, n_dropped=int(bad.sum()))


def _listing(names: Sequence[str], limit: int = 20) -> str:
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
