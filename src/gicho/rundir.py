"""Run-directory file names and the JSON reader, shared by :mod:`gicho.runs` and :mod:`gicho.report`.

Both need them; keeping them here (below both) means neither imports the other to get them,
so there is no ``runs <-> report`` import cycle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["CONFIG_FILE", "RESULTS_FILE", "read_json"]

CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"


def read_json(path: Path, what: str) -> Any:
    """Read a JSON file, turning a missing or corrupt file into a ValueError naming it."""
    if not path.exists():
        raise ValueError(f"{what} not found: {path} does not exist")
    if not path.is_file():  # a directory, or a device such as /dev/zero
        raise ValueError(f"{what} {path} is not a regular file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} {path} is not valid JSON ({exc})") from None
