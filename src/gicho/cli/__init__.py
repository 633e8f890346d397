"""The ``gicho`` command: thin commands over the task registry and the run directories.

The commands live by concept in ``_runs`` (tasks, train, evaluate, predict, report, tour),
``_classical`` (ols, pca), ``_text`` (fill-mask, embed) and ``_study`` (study ...), on the app of
``_app``; this module registers them and holds the error handling of :func:`main`.

Commands parse arguments, call the library and print; the library never prints. Bad input
(an unknown task or field, a value of the wrong type, a missing path) ends with a one-line
``error: ...`` on stderr and exit code 2, without a traceback (set ``GICHO_DEBUG=1`` to see
one).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gicho.cli._app import USAGE_ERROR, app

__all__ = ["app", "main"]

# The command modules register themselves on `app` / `study_app` when imported, in the order
# `gicho --help` lists them (the run commands first).
from gicho.cli import _runs  # noqa: F401, I001
from gicho.cli import _classical  # noqa: F401
from gicho.cli import _text  # noqa: F401
from gicho.cli import _study  # noqa: F401


def _is_user_facing(exc: BaseException) -> bool:
    """Whether ``exc`` reports a problem with the user's input or files (no traceback needed).

    Checkpoint problems (missing, torn, mismatched) and a diverged run are the user's to act
    on; other RuntimeErrors and OSErrors are bugs or system faults and keep their traceback.
    The training modules are looked up in ``sys.modules``: if they were never imported, the
    error cannot have come from them, and importing them here would cost the torch import.
    """
    if isinstance(exc, (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)):
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
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        sys.exit(USAGE_ERROR)


