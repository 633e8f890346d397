"""The ``gicho`` command: thin commands over the task registry and the run directories.

The commands live by concept in ``_runs`` (tasks, train, evaluate, report, tour), ``_predict``
(predict), ``_classical`` (ols, pca), ``_text`` (fill-mask, embed), ``_export`` (export to ONNX)
and ``_study`` (study ...), on the app of ``_app``; this module registers them and holds the
error handling of :func:`main`.

Commands parse arguments, call the library and print; the library never prints. Bad input
(an unknown task or field, a value of the wrong type, a missing path) and a file that cannot
be written (read-only file system, no permission, disk full) end with a one-line
``error: ...`` on stderr and exit code 2, without a traceback (set ``GICHO_DEBUG=1`` to see
one). The line names paths under the current directory relative to it and is cut at
:data:`MAX_ERROR_CHARS` characters.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

from gicho.cli._app import USAGE_ERROR, app

__all__ = ["MAX_ERROR_CHARS", "app", "main"]


# The command modules register themselves on `app` / `study_app` when imported, in the order
# `gicho --help` lists them (the run commands first).
from gicho.cli import _runs  # noqa: F401, I001
from gicho.cli import _predict  # noqa: F401
from gicho.cli import _classical  # noqa: F401
from gicho.cli import _text  # noqa: F401
from gicho.cli import _export  # noqa: F401
from gicho.cli import _study  # noqa: F401

# An error line longer than this is cut (with "…"): a message that repeats a long input must
# still read as one line on a terminal.
MAX_ERROR_CHARS = 300
# OSErrors about a file that the user can act on (not bugs): those that only a write gives, and
# those of permissions (a read may give them too).
_WRITE_ERRNOS = {
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device (disk full)",
    getattr(errno, "EDQUOT", errno.ENOSPC): "disk quota exceeded",  # no EDQUOT on Windows
}
_PERMISSION_ERRNOS = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted"}


def _is_user_facing(exc: BaseException) -> bool:
    """Whether ``exc`` reports a problem with the user's input or files (no traceback needed).

    Checkpoint problems (missing, torn, mismatched), a diverged run and a file that cannot be
    written (read-only, no permission, disk full) are the user's to act on; other RuntimeErrors
    and OSErrors are bugs or system faults and keep their traceback.
    The training modules are looked up in ``sys.modules``: if they were never imported, the
    error cannot have come from them, and importing them here would cost the torch import.
    """
    if isinstance(exc, (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)):
        return True
    if isinstance(exc, OSError) and (exc.errno in _WRITE_ERRNOS or exc.errno in _PERMISSION_ERRNOS):
        return True
    if isinstance(exc, ValueError) and isinstance(exc, RuntimeError):  # e.g. DeviceUnavailableError
        return _raised_by_gicho(exc)
    if isinstance(exc, RuntimeError):
        checkpoint = sys.modules.get("gicho.weights")
        trainer = sys.modules.get("gicho.train.trainer")
        return bool(
            (checkpoint and isinstance(exc, checkpoint.CheckpointError))
            or (trainer and isinstance(exc, trainer.NonFiniteLossError))
        )
    if isinstance(exc, OSError):
        return False
    return _raised_by_gicho(exc)


def _raised_by_gicho(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by gicho's own code (its validation), not deep in a library.

    A ValueError from inside NumPy or torch on gicho's behalf is a bug in gicho (it should have
    validated first): it keeps its traceback.
    """
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return True
    here = Path(__file__).resolve().parent.parent  # the gicho package
    try:
        return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(here)
    except (OSError, ValueError):  # pragma: no cover - odd frames (frozen, <string>)
        return False


def _os_error_message(exc: OSError) -> str | None:
    """A plain message for an OSError about a file, naming the file the user knows; None: str(exc).

    ``cannot write PATH: read-only file system`` (or permission denied, disk full), where PATH
    is the file a gicho temporary file was to become.
    """
    from gicho._io import tmp_target

    filename = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes, os.PathLike)) else None
    target = tmp_target(filename) if filename else None
    known = {**_WRITE_ERRNOS, **_PERMISSION_ERRNOS}
    cause = known.get(exc.errno) or (exc.strerror or type(exc).__name__).lower()
    if filename is None:
        return f"cannot write: {cause}" if exc.errno in _WRITE_ERRNOS else None
    if target is not None or exc.errno in _WRITE_ERRNOS:  # a temporary file is only ever written
        return f"cannot write {target or filename}: {cause}"
    if exc.errno in _PERMISSION_ERRNOS:  # a read or a write
        return f"{cause}: {filename}"
    return None


def _error_line(exc: BaseException) -> str:
    """The ``error: ...`` line for ``exc``: its first line, paths under the current directory
    made relative, cut at :data:`MAX_ERROR_CHARS` characters."""
    text = str(exc).strip()
    message = (_os_error_message(exc) if isinstance(exc, OSError) else None) or (
        text.splitlines()[0] if text else type(exc).__name__)
    with_cwd = str(Path.cwd())
    if with_cwd != os.sep:
        message = message.replace(with_cwd + os.sep, "")
    line = f"error: {message}"
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gicho`` script; turns bad input into a one-line error, exit 2."""
    import warnings

    from gicho.tasks import UnknownTaskError

    def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
        # a user reads "warning: ...", not the source line of gicho that raised it
        print(f"warning: {message}", file=sys.stderr if file is None else file)

    warnings.showwarning = one_line_warning
    try:
        app(args=argv, prog_name="gicho")
    except (ValueError, TypeError, UnknownTaskError, OSError, RuntimeError) as exc:
        if os.environ.get("GICHO_DEBUG") or not _is_user_facing(exc):
            raise
        print(_error_line(exc), file=sys.stderr)
        sys.exit(USAGE_ERROR)


