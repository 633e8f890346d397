"""Whole-table readers behind :func:`gicho.data.tabular.load_table` (``gicho ols``, ``gicho pca``).

A file is read into named columns, each either numeric (float64, NaN where a value is
missing) or text (an object array of ``str``, ``None`` where missing). Everything that can
go wrong with a user's file becomes a ``ValueError`` that names the file and, where there is
one, the column or the (1-based) row:

* ``.npy``: the header is checked against the file size before anything is allocated (a
  header may claim 10^12 rows); a zip archive (an ``.npz`` renamed) and complex, object or
  structured arrays are refused;
* CSV / TSV / TXT: read by pyarrow with a block large enough for the longest line (a
  200,000-column header or a 5 MB line), duplicate column names refused, a file that is
  not UTF-8 named with the offset of the first bad byte; a first line of numbers means
  there is no header (columns are then named "0", "1", ... like ``.npy`` columns);
* Parquet: pyarrow's reader, errors wrapped with the file name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Column", "column_names", "read_columns"]

# Block size of pyarrow's CSV reader: at least this, and at least the whole file (up to the
# cap) so that no line, however long, straddles two blocks.
_MIN_BLOCK_BYTES = 1 << 20
_MAX_BLOCK_BYTES = (1 << 31) - 1  # pyarrow takes an int32
# bytes of the first line read to decide whether it is a header
_HEADER_PROBE_BYTES = 1 << 26
_ZIP_MAGIC = b"PK\x03\x04"


class Column:
    """One column of a table: ``values`` float64 (numeric) or object ``str`` (text)."""

    __slots__ = ("is_text", "missing", "name", "values")

    def __init__(self, name: str, values: np.ndarray, missing: np.ndarray, is_text: bool) -> None:
        self.name = name
        self.values = values
        self.missing = missing  # (n,) bool
        self.is_text = is_text


def column_names(path: Path) -> list[str]:
    """The column names of ``path``, from its header (CSV), schema (Parquet) or shape (.npy)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        shape, _, _ = _npy_layout(path)
        return [str(j) for j in range(shape[1])]
    if suffix in (".parquet", ".pq"):
        return _parquet_names(path)
    return _csv_layout(path, suffix)[0]


def read_columns(path: Path, wanted: Sequence[str] | None = None) -> tuple[list[Column], int]:
    """The columns ``wanted`` (default: all) of ``path`` and the number of rows.

    Only the wanted columns are parsed and converted: a 200,000-column CSV costs what its
    header and the few columns used cost.
    """
    suffix = path.suffix.lower()
    if suffix == ".npy":
        columns, n = _read_npy(path)
    elif suffix in (".parquet", ".pq"):
        columns, n = _read_parquet(path, wanted)
    else:
        columns, n = _read_csv(path, suffix, wanted)
    if wanted is not None:
        by_name = {c.name: c for c in columns}
        columns = [by_name[name] for name in wanted]
    return columns, n


# ------------------------------------------------------------------------------------ .npy
def _npy_layout(path: Path) -> tuple[tuple[int, ...], Any, int]:
    """Shape, dtype and data offset of a .npy file, checked before anything is allocated."""
    with path.open("rb") as handle:
        magic = handle.read(len(_ZIP_MAGIC))
        if magic == _ZIP_MAGIC:
            raise ValueError(
                f"{path}: is a zip archive (an .npz file?), not a .npy array; load it with "
                "np.load and save the array you want with np.save"
            )
        handle.seek(0)
        try:
            version = np.lib.format.read_magic(handle)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _fortran, dtype = reader(handle)
        except ValueError as exc:
            raise ValueError(f"{path}: not a readable .npy file ({exc})") from None
        offset = handle.tell()
    if dtype.hasobject:
        raise ValueError(f"{path}: holds Python objects; only numeric arrays can be read (no pickles)")
    if dtype.names is not None:
        raise ValueError(f"{path}: holds a structured array (fields {list(dtype.names)}); save a plain 2-D numeric array")
    if dtype.kind == "c":
        raise ValueError(
            f"{path}: holds complex numbers ({dtype}); only real values are allowed (Complex data "
            "not supported): save the real and imaginary parts as separate columns if both matter"
        )
    if len(shape) != 2:
        raise ValueError(f"{path}: expected a 2-D matrix (rows = samples); got shape {shape}")
    need = math.prod(shape) * dtype.itemsize
    have = path.stat().st_size - offset
    if need > have:
        raise ValueError(
            f"{path}: the header claims shape {shape} ({need:,} bytes of {dtype}) but the file "
            f"holds {have:,} bytes of data; the file is truncated or its header is wrong"
        )
    return shape, dtype, offset


def _read_npy(path: Path) -> tuple[list[Column], int]:
    shape, dtype, _ = _npy_layout(path)
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    if dtype.kind not in "biuf":
        raise ValueError(f"{path}: holds {dtype} values; only numbers can be read")
    with np.errstate(over="ignore"):  # float128 beyond float64: inf, caught as non-finite later
        data = np.asarray(mapped, dtype=np.float64)
    columns = [Column(str(j), data[:, j], np.isnan(data[:, j]), False) for j in range(shape[1])]
    for column in columns:
        _refuse_infinite(path, column)
    return columns, shape[0]


# ------------------------------------------------------------------------------------ CSV
def _first_line(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.readline(_HEADER_PROBE_BYTES)


def _check_utf8(path: Path, data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: is not UTF-8 text (byte {data[exc.start:exc.start + 1]!r} at offset "
            f"{exc.start} of the {where}); save it as UTF-8"
        ) from None


def _delimiter(suffix: str, first: str) -> str:
    if suffix == ".tsv":
        return "\t"
    if suffix == ".txt":
        return "," if "," in first else ("\t" if "\t" in first else " ")
    return ","


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _csv_layout(path: Path, suffix: str) -> tuple[list[str], bool, str]:
    """``(names, has_header, delimiter)`` from the first line (parsed by Python's csv module)."""
    import csv

    first = _check_utf8(path, _first_line(path), "first line").rstrip("\r\n")
    if not first.strip():
        raise ValueError(f"{path}: the file is empty (no header line and no rows)")
    delimiter = _delimiter(suffix, first)
    tokens = first.split() if delimiter == " " else next(csv.reader([first], delimiter=delimiter))
    tokens = [tok.strip() for tok in tokens]
    header = not all(_is_number(tok) for tok in tokens if tok)
    if not header:
        return [str(j) for j in range(len(tokens))], False, delimiter
    counts: dict[str, int] = {}
    for tok in tokens:
        counts[tok] = counts.get(tok, 0) + 1
    duplicates = [name for name, count in counts.items() if count > 1]
    if duplicates:
        raise ValueError(
            f"{path}: duplicate column name(s) {', '.join(map(repr, duplicates))} in the header; "
            "every column needs its own name"
        )
    return tokens, True, delimiter


def _read_csv(path: Path, suffix: str, wanted: Sequence[str] | None) -> tuple[list[Column], int]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names, header, delimiter = _csv_layout(path, suffix)
    index = {name: j for j, name in enumerate(names)}
    chosen = list(range(len(names))) if wanted is None else [index[name] for name in wanted]
    size = path.stat().st_size
    block = int(min(_MAX_BLOCK_BYTES, max(_MIN_BLOCK_BYTES, size + 1)))
    # pyarrow names the columns f0, f1, ... ; ours come from the header parsed above
    read_options = pcsv.ReadOptions(block_size=block, autogenerate_column_names=True, skip_rows=int(header))
    parse_options = pcsv.ParseOptions(delimiter=delimiter, ignore_empty_lines=True)
    convert_options = pcsv.ConvertOptions(include_columns=[f"f{j}" for j in chosen])
    try:
        table = pcsv.read_csv(path, read_options=read_options, parse_options=parse_options,
                              convert_options=convert_options)  # fmt: skip
    except pa.ArrowInvalid as exc:
        text = str(exc)
        if "UTF8" in text or "utf8" in text.lower():
            _check_utf8(path, path.read_bytes(), "file")  # names the offset
        raise ValueError(f"{path}: cannot be read as {suffix.lstrip('.').upper()} ({text})") from None
    return _arrow_columns(table, [names[j] for j in chosen], path, header), table.num_rows


# ------------------------------------------------------------------------------------ Parquet
def _parquet_names(path: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = list(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: cannot be read as Parquet ({exc})") from None
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: duplicate column name(s) {', '.join(map(repr, duplicates))}")
    return names


def _read_parquet(path: Path, wanted: Sequence[str] | None) -> tuple[list[Column], int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = _parquet_names(path) if wanted is None else list(wanted)
    try:
        table = pq.read_table(path, columns=names)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: cannot be read as Parquet ({exc})") from None
    return _arrow_columns(table, names, path), table.num_rows


def _arrow_columns(table: Any, names: Sequence[str], path: Path, header: bool = False) -> list[Column]:
    """Columns of a pyarrow table; ``header``: the file's rows are counted after a header line."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for j, name in enumerate(names):
        chunked = table.column(j)
        kind = chunked.type
        if pa.types.is_dictionary(kind):
            chunked = chunked.cast(kind.value_type)
            kind = chunked.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind):
            values = np.asarray(chunked.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
            columns.append(Column(name, values, np.isnan(values), False))
            _refuse_infinite(path, columns[-1], header)
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            values = np.asarray(chunked.to_pylist(), dtype=object)
            missing = np.asarray(pc.or_kleene(pc.is_null(chunked), pc.equal(chunked, "")).to_numpy(zero_copy_only=False), dtype=bool)
            columns.append(Column(name, values, missing, True))
        elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            # pyarrow reads text that is not valid UTF-8 as bytes: say so, where
            for row, raw in enumerate(chunked.to_pylist(), start=1):
                try:
                    (raw or b"").decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ValueError(
                        f"{path}: column {name!r} is not UTF-8 text (byte {raw[exc.start:exc.start + 1]!r} "
                        f"in data row {row}, 1-based); save the file as UTF-8"
                    ) from None
            raise ValueError(f"{path}: column {name!r} holds binary data, not numbers or text")
        else:
            raise ValueError(f"{path}: column {name!r} is not numeric (type {kind})")
    return columns


def _refuse_infinite(path: Path, column: Column, header: bool = False) -> None:
    """An infinite value (``inf``, or a number beyond float64's range such as a 5 MB string of
    digits) named by file, column and row, not later as "`X` contains infinite values"."""
    infinite = np.isinf(column.values)
    if infinite.any():
        row = int(np.argmax(infinite)) + 1
        where = f"first in data row {row}, 1-based, after the header" if header else f"first in row {row}, 1-based"
        raise ValueError(
            f"{path}: column {column.name!r} holds {int(infinite.sum())} infinite value(s) ({where}): "
            "'inf' or a number beyond float64's range (about ±1.8e308); only finite numbers can be used"
        )
