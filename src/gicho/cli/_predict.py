"""`gicho predict`: answer inputs (arguments, a text file, a CSV column, an image folder) with a run's model.

The inputs are read here, at the command line's boundary, as strings (a line, a CSV cell, an
image file's path); the task parses them (``Predictor.predict_records``) and answers batch by
batch, with a progress bar on a terminal. The answers are printed as tab-separated lines
(``--format tsv``, the default), a table, CSV or JSON (each answer's fields: a classifier's
label, probability and top-k classes, a date, a value).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from gicho.cli._app import PrecisionOption, _console, app, check_precision_option

# What `--attention` can write: the formats matplotlib writes with gicho's dependencies alone.
ATTENTION_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
FORMATS = ("tsv", "table", "csv", "json")
# A progress bar is drawn (on a terminal) from this many inputs on: fewer answer at once.
PROGRESS_FROM = 256


@app.command("predict", context_settings={"ignore_unknown_options": True})
def predict_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory.")],
    inputs: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(metavar="INPUT...", help="Inputs, one answer each."),
    ] = None,
    input_path: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--input", help="More inputs: a UTF-8 text file (each non-blank line), a .csv file (one "
                     "column: --column), or a folder of images (every image file in it and its subfolders)."),
    ] = None,
    column: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--column", help="The column of a --input .csv file (default: its only column)."),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="tsv (input<TAB>answer), table, csv or json (the answers' fields).")
    ] = "tsv",
    top_k: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--top-k", help="Answers per input, most probable first (classifiers; mlm-bert's tokens)."),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Inputs run through the model at once.")] = 64,
    precision: PrecisionOption = "fp32",
    progress: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option("--progress/--no-progress", help="A progress bar (default: on a terminal, for "
                     f"{PROGRESS_FROM}+ inputs)."),
    ] = None,
    attention: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--attention", help="Draw the attention map of the first input to this image "
                     "(.png, .pdf, .svg or .jpg; no suffix: .png)."),
    ] = None,
) -> None:
    """Answer each INPUT (and each input of --input) with the model trained in RUN_DIR.

    Inputs that start with a minus sign ("-5 -5 ...") are read as inputs, not options.
    """
    import gicho
    from gicho.runs import load_run

    if output_format not in FORMATS:
        raise ValueError(f"--format {output_format!r}: allowed: {', '.join(FORMATS)}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be an integer >= 1; got {batch_size}")
    inputs = list(inputs or [])
    _warn_about_file_names(inputs)
    if column is not None and (input_path is None or input_path.suffix.lower() != ".csv"):
        raise ValueError("--column names a column of a --input .csv file; no .csv file was given")
    if input_path is not None:
        inputs += read_inputs(input_path, column)
    if not inputs:
        raise ValueError("no input: give INPUT arguments or --input FILE")
    task, _ = load_run(run_dir)
    options: dict[str, object] = {}
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"--top-k must be an integer >= 1; got {top_k}")
        if "top_k" not in task.predict_options:
            raise ValueError(f"--top-k: the task of {run_dir} ({task.name}) has one answer per input")
        options["top_k"] = top_k
    if attention is not None:
        options["attention"] = _attention_path(attention)
    predictor = gicho.load(run_dir, precision=check_precision_option(precision))
    predictor.batch_size = batch_size
    with progress_bar(len(inputs), progress) as advance:
        records = predictor.predict_records(inputs, on_batch=advance, **options)
    _print_records(inputs, records, output_format)
    if attention is not None:
        typer.echo(f"attention map: {options['attention']}", err=output_format != "tsv")


def _attention_path(attention: Path) -> Path:
    if attention.is_dir():
        raise ValueError(f"--attention {attention} is a directory; give the PNG file to write")
    attention = attention if attention.suffix else attention.with_suffix(".png")
    if attention.suffix.lower() not in ATTENTION_SUFFIXES:
        raise ValueError(f"--attention {attention}: cannot draw a {attention.suffix} file; "
                         f"allowed suffixes: {', '.join(ATTENTION_SUFFIXES)}")
    return attention


@contextlib.contextmanager
def progress_bar(total: int, progress: bool | None, desc: str = "predict", unit: str = "input") -> Any:
    """``advance(n)`` for a batched loop (``predict_records``, ``sentence_embeddings``): a tqdm bar on
    stderr when asked for, or by default on a terminal for long inputs; None otherwise."""
    show = progress if progress is not None else (total >= PROGRESS_FROM and sys.stderr.isatty())
    if not show:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True) as bar:
        yield bar.update


def _printable(value: Any) -> Any:
    """A record's field as JSON writes it (NumPy scalars as numbers)."""
    return value.item() if hasattr(value, "item") else value


def _print_records(inputs: list[str], records: list[dict[str, Any]], output_format: str) -> None:
    if output_format == "tsv":
        for text, record in zip(inputs, records, strict=True):
            typer.echo(f"{text}\t{record['output']}")
    elif output_format == "json":
        rows = [{"input": text, **{k: _printable(v) for k, v in record.items()}}
                for text, record in zip(inputs, records, strict=True)]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=1, default=_printable))
    elif output_format == "csv":
        # flat fields only: a list (top_k, masks) is written as its JSON text
        keys = ["input", *dict.fromkeys(k for record in records for k in record)]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        for text, record in zip(inputs, records, strict=True):
            writer.writerow({"input": text, **{k: json.dumps(v, ensure_ascii=False, default=_printable)
                                               if isinstance(v, (list, dict)) else _printable(v)
                                               for k, v in record.items()}})
        typer.echo(buffer.getvalue(), nl=False)
    else:
        from rich.table import Table
        from rich.text import Text

        table = Table()
        table.add_column("input", overflow="fold")
        table.add_column("answer", overflow="fold")
        for text, record in zip(inputs, records, strict=True):  # Text: "[unlike ...]" is not rich markup
            table.add_row(Text(text), Text(record["output"]))
        _console().print(table)


def read_inputs(path: Path, column: str | None) -> list[str]:
    """The inputs of ``--input PATH``: a folder's image files, a CSV column, or a text file's lines."""
    if path.is_dir():
        return _image_files(path)
    if path.suffix.lower() == ".csv":
        return _csv_column(path, _read_text(path), column)
    return read_text_lines(path)


def read_text_lines(path: Path) -> list[str]:
    """The non-blank lines of the UTF-8 text file ``--input PATH``, stripped."""
    lines = [line.strip() for line in _read_text(path).splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"--input {path} has no non-blank line")
    return lines


def _read_text(path: Path) -> str:
    if not path.exists():
        raise ValueError(f"--input {path}: no such file")
    if not path.is_file():
        raise ValueError(f"--input {path} is not a regular file (a directory or a device)")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"--input {path} is not UTF-8 text (byte {exc.start})") from None


def _image_files(folder: Path) -> list[str]:
    from gicho.data.image_folder import IMAGE_SUFFIXES, image_files

    files = [str(p) for p in image_files(folder)]
    if not files:
        raise ValueError(f"--input {folder} is a folder without image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _csv_column(path: Path, text: str, column: str | None) -> list[str]:
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    if not columns:
        raise ValueError(f"--input {path} is an empty CSV file (no header row)")
    if column is None:
        if len(columns) != 1:
            raise ValueError(f"--input {path} has {len(columns)} columns ({', '.join(columns)}); choose one with "
                             "--column NAME")
        column = columns[0]
    elif column not in columns:
        raise ValueError(f"--column {column!r} is not a column of {path}; its columns: {', '.join(columns)}")
    values = []
    for line, row in enumerate(reader, start=2):
        value = (row.get(column) or "").strip()
        if not value:
            raise ValueError(f"--input {path}, line {line}: column {column!r} is empty")
        values.append(value)
    if not values:
        raise ValueError(f"--input {path} has a header but no rows")
    return values


def _warn_about_file_names(inputs: list[str]) -> None:
    """Newcomer 2026-12-06 #22: ``gicho predict RUN heldout.txt`` answered the path as a sentence."""
    import warnings

    from gicho.data.image_folder import IMAGE_SUFFIXES

    for text in inputs:
        path = Path(text)
        with contextlib.suppress(OSError, ValueError):
            if path.suffix.lower() not in IMAGE_SUFFIXES and path.is_file():
                warnings.warn(f"input {text!r} is read as text, though a file has that name; to "
                              f"predict each line of the file, use --input {text}", UserWarning, stacklevel=2)
