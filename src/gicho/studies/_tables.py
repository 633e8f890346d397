"""The tables every study writes: ``<stem>.csv`` (one row per run) and ``<stem>.json`` (config + rows)."""

from __future__ import annotations

import os
from pathlib import Path

from gicho._io import atomic_write_text

__all__ = ["summarise_arms", "write_study_tables"]


def write_study_tables(directory: str | os.PathLike, stem: str, config: dict, rows: list[dict]) -> Path:
    """Write a study's rows as ``<stem>.csv`` and, with its config, ``<stem>.json`` (atomically);
    return the directory (created if missing)."""
    import csv
    import io
    import json

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(directory / f"{stem}.csv", table.getvalue())
    atomic_write_text(directory / f"{stem}.json", json.dumps({"config": config, "rows": rows}, indent=2) + "\n")
    return directory


def require_nonempty(config: object, *names: str) -> None:
    """Raise ValueError naming the first of a study config's list fields ``names`` that is empty
    (a study over no lengths, seeds or arms would run nothing and write an empty table)."""
    for name in names:
        if len(getattr(config, name)) == 0:
            raise ValueError(f"argument `{name}` must not be empty")


def summarise_arms(rows: list[dict], size_key: str, order: tuple[str, ...]) -> list[dict]:
    """Mean and standard deviation (over seeds; 0 for one seed) of ``accuracy`` per (arm, size),
    sorted by the arm's place in ``order``, then by size: ``{arm, <size_key>, seeds, mean, std}``."""
    import statistics

    out = []
    for arm, n in dict.fromkeys((r["arm"], r[size_key]) for r in rows):
        scores = [r["accuracy"] for r in rows if r["arm"] == arm and r[size_key] == n]
        out.append({"arm": arm, size_key: n, "seeds": len(scores), "mean": statistics.fmean(scores),
                    "std": statistics.stdev(scores) if len(scores) > 1 else 0.0})
    return sorted(out, key=lambda s: (order.index(s["arm"]), s[size_key]))
