"""Atomic file writes and safe reads of small JSON files, shared by checkpoints, model
directories, run directories and reports.

A file is written under a temporary name beside its target, flushed to disk and renamed over
the target, so a reader (or a crash) never sees half a file. A JSON file that gicho reads (a
config, a sentence-transformers setting) must be a regular file of bounded size: a link to
``/dev/zero`` must not be read forever; :func:`read_json` is the one reader. Torch-free on purpose: run directories and reports of
classical tasks use it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "TMP_PREFIX",
    "atomic_write_bytes",
    "atomic_write_dir",
    "atomic_write_text",
    "fsync_dir",
    "not_regular_file",
    "read_json",
    "tmp_target",
]

# Temporary files and directories start with this prefix; a crash may leave one behind and
# readers ignore (or clean up) anything named so.
TMP_PREFIX = ".tmp-"
# A temporary file's name: the prefix, its target's name, the writing process's id.
_TMP_NAME = re.compile(re.escape(TMP_PREFIX) + r"(?P<target>.+)-\d+")


def tmp_target(path: str | os.PathLike) -> Path | None:
    """The file a temporary file ``DIR/.tmp-NAME-PID`` stands in for (``DIR/NAME``); None for
    any other name. Error messages name the target: the user never named the temporary file."""
    path = Path(path)
    match = _TMP_NAME.fullmatch(path.name)
    return path.with_name(match.group("target")) if match else None


def fsync_dir(path: Path) -> None:
    """Persist a rename in ``path``; not every platform lets a directory be opened (benign)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk must not leave the temporary file behind
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_write_dir(final: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Create the directory ``final`` whole: ``write(tmp)`` fills a temporary sibling, whose
    files are flushed to disk, and it is renamed into place.

    If ``write`` fails the temporary directory is removed and the error propagates; an existing
    ``final`` is replaced only once the new one is complete (checkpoints, a run's preprocessing).
    """
    final = Path(final)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{TMP_PREFIX}{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        for file in tmp.iterdir():
            if file.is_file():
                with open(file, "rb") as fh:
                    os.fsync(fh.fileno())
        if final.exists():
            old = root / f"{TMP_PREFIX}old-{final.name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def not_regular_file(path: str | os.PathLike) -> str:
    """Why ``path``, which exists (or is a link), is not a regular file, as the end of a message:
    ``"is not a regular file (a link to /dev/zero, a character device)"``."""
    path = Path(path)
    target = Path(os.path.realpath(path))
    link = f"a link to {target}, " if path.is_symlink() else ""
    if not target.exists():
        return f"is not a regular file ({link}which does not exist)" if link else "is not a regular file"
    mode = target.stat().st_mode
    kinds = [(stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")]
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"is not a regular file ({link}{kind})"


def read_json(path: str | os.PathLike, what: str, *, error: type[Exception] = ValueError,
              max_bytes: int | None = None) -> Any:
    """Parse the JSON file ``path``; ``what`` names it in errors (``"run config"``).

    The one reader of gicho's JSON files (run configs and results, model configs, trainer
    state, best-checkpoint records): each caller chooses the exception its layer raises.

    Raises
    ------
    error
        When ``path`` is missing, is not a regular file (a directory, a device, a FIFO), is
        larger than ``max_bytes`` (so it is no such file; no limit when None), or is not
        UTF-8 JSON.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise error(f"{what} {path} is missing")
    if not path.is_file():
        raise error(f"{what} {path} {not_regular_file(path)}")
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise error(f"{what} {path} is larger than {max_bytes} bytes; it is not a {what}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{what} {path} is not readable JSON: {exc}") from None


