"""A user's labelled texts from a CSV file: reading it, and splitting it into a task.

:func:`read_text_csv` reads columns ``text,label`` (single texts) or ``text_a,text_b,label``
(pairs) from a UTF-8 CSV file with a header line, and :func:`csv_task` splits its rows at
random (by seed) into train / valid / test, with a training row of every label.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from gicho.data.text.corpus import iter_utf8_lines
from gicho.data.text.labelled import TextExample, TextTask, check_fractions

__all__ = ["csv_task", "read_text_csv"]

CSV_VALID_FRACTION, CSV_TEST_FRACTION = 0.1, 0.1
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
    check_fractions(valid_fraction, test_fraction)
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
