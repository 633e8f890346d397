"""Text corpora, streamed: a file or a directory of files, and Python's own documentation.

A corpus is a re-iterable sequence of :class:`Document` s, each with its text and its
source (a file path, or the module a docstring belongs to). Files are read line by line as
bytes and decoded strictly, so non-UTF-8 input fails with the file and the byte offset, and
a corpus larger than memory streams in constant memory (no document exceeds
``max_document_chars``).

The embedded default, :func:`python_docs_corpus`, is English documentation that ships with
Python: the ``pydoc_data.topics`` texts (the language reference behind ``help("if")``) and
the docstrings of the standard library's modules, classes and functions, read from the
source files with :mod:`ast` (nothing is imported, so no module's import side effects run).
It depends on the Python version; for one Python it is always the same, in the same order.
"""

from __future__ import annotations

import ast
import codecs
import functools
import inspect
import os
import sysconfig
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gicho._validation import check_choice, check_positive

__all__ = [
    "DEFAULT_SUFFIXES",
    "MAX_DOCUMENT_CHARS",
    "MIN_DOCSTRING_CHARS",
    "Document",
    "TextCorpus",
    "iter_utf8_lines",
    "python_docs_corpus",
    "stdlib_docstrings",
]

DEFAULT_SUFFIXES = (".txt", ".md", ".rst", ".text")
MAX_DOCUMENT_CHARS = 1_000_000  # longer paragraphs / files are cut into documents of this size
MIN_DOCSTRING_CHARS = 40  # shorter docstrings ("Return self.") carry little text
PYDOC_TOPICS_SOURCE = "pydoc_data.topics"
Unit = Literal["line", "paragraph", "file"]

# Standard-library packages left out of the default corpus: tests and demos, GUI toolkits,
# vendored or deprecated code, and modules whose "documentation" is not English prose.
STDLIB_EXCLUDED = frozenset({
    "test", "tests", "idlelib", "tkinter", "turtle", "turtledemo", "lib2to3", "ensurepip",
    "distutils", "venv", "pydoc_data", "this", "antigravity", "__phello__", "__main__",
    "site-packages", "dist-packages",
})


@dataclass(frozen=True)
class Document:
    """One document: its text, where it comes from, and a name inside that source.

    ``source`` is a file path for file corpora and a dotted module name for the default
    corpus (``"json.decoder"``; ``"pydoc_data.topics"`` for the language-reference topics);
    ``name`` is the object (``"JSONDecoder.decode"``), the topic, or ``"line N"``.
    """

    text: str
    source: str
    name: str = ""


def iter_utf8_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(byte_offset, line)`` for each line of a UTF-8 file, newline kept; streamed.

    A UTF-8 byte-order mark at the start is dropped. Raises ``ValueError`` naming the file
    and the byte offset of the first byte that is not UTF-8.
    """
    path = Path(path)
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    with path.open("rb") as fh:
        for raw in fh:
            try:
                line = decoder.decode(raw)
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}: not valid UTF-8 at byte offset {offset + err.start} "
                                 f"(byte {raw[err.start:err.start + 1]!r}); re-save the file as UTF-8") from None
            if offset == 0 and line.startswith("\ufeff"):
                line = line[1:]
            yield offset, line
            offset += len(raw)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not valid UTF-8: the file ends inside a multi-byte character "
                             f"(byte offset {offset})") from None


def _iter_file_documents(path: Path, unit: Unit, max_chars: int) -> Iterator[Document]:
    """Documents of one file; none longer than ``max_chars`` (longer lines are cut)."""
    buffer: list[str] = []
    size, first_line = 0, 1

    def flush() -> Iterator[Document]:
        nonlocal buffer, size
        text = "".join(buffer).strip()
        buffer, size = [], 0
        if text:
            yield Document(text, str(path), f"line {first_line}")

    for number, (_, line) in enumerate(iter_utf8_lines(path), start=1):
        if unit == "line":
            text = line.strip()
            for start in range(0, len(text), max_chars):
                yield Document(text[start:start + max_chars], str(path), f"line {number}")
            continue
        if unit == "paragraph" and not line.strip():
            yield from flush()
            continue
        for start in range(0, len(line), max_chars):
            piece = line[start:start + max_chars]
            if size + len(piece) > max_chars:
                yield from flush()
            if not buffer:
                first_line = number
            buffer.append(piece)
            size += len(piece)
    yield from flush()


class TextCorpus:
    """Documents from a text file or a directory of text files, streamed.

    Parameters
    ----------
    path : str or Path
        A file, or a directory searched recursively (in sorted order; hidden files skipped)
        for files with one of ``suffixes``.
    unit : {"paragraph", "line", "file"}, default="paragraph"
        What one document is: a block of lines between blank lines, one line, or one file.
    suffixes : sequence of str, default=(".txt", ".md", ".rst", ".text")
        File suffixes read from a directory (a single file is read whatever its suffix).
    max_document_chars : int, default=1_000_000
        Longer documents are cut (at line ends) into pieces of about this size, so memory
        stays bounded whatever the file.

    Iterating yields :class:`Document` s; each iteration reads the files again. Creating a
    corpus checks that the path exists, that a directory holds text files, and that the
    corpus has at least one non-blank document.
    """

    def __init__(self, path: str | Path, unit: Unit = "paragraph", suffixes: Sequence[str] = DEFAULT_SUFFIXES,
                 max_document_chars: int = MAX_DOCUMENT_CHARS):
        self.path = Path(path)
        self.unit = check_choice(unit, "unit", ("paragraph", "line", "file"))
        self.suffixes = tuple(s.lower() for s in suffixes)
        self.max_document_chars = check_positive(max_document_chars, "max_document_chars", integer=True)
        if not self.path.exists():
            raise FileNotFoundError(f"corpus path not found: {self.path}")
        if not (self.path.is_dir() or self.path.is_file()):
            raise ValueError(f"corpus path {self.path} is neither a regular file nor a directory (a device, FIFO "
                             "or socket); give a text file or a directory of text files")
        if self.path.is_dir() and not self.files():
            raise ValueError(f"corpus directory {self.path} holds no text files (suffixes "
                             f"{', '.join(self.suffixes)}); pass `suffixes=` to read others")
        if next(iter(self), None) is None:
            raise ValueError(self._empty_message())

    def _empty_message(self) -> str:
        return f"corpus {self.path} is empty: no non-blank text in {len(self.files())} file(s)"

    def files(self) -> list[Path]:
        """The files read, in order.

        Raises
        ------
        ValueError
            When a file of the directory with one of ``suffixes`` is not a regular file (a
            FIFO, or a link to a device such as ``/dev/zero``): reading it would never end.
        """
        if self.path.is_file():
            return [self.path]
        found = []
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found.extend(Path(dirpath) / f for f in sorted(filenames)
                         if not f.startswith(".") and Path(f).suffix.lower() in self.suffixes)
        for file in found:
            if not file.is_file():
                raise ValueError(f"corpus file {file} is not a regular file (a device, FIFO, socket or broken "
                                 "link); remove it from the corpus directory")
        return found

    def __iter__(self) -> Iterator[Document]:
        any_document = False
        for file in self.files():
            for doc in _iter_file_documents(file, self.unit, self.max_document_chars):
                any_document = True
                yield doc
        if not any_document:
            raise ValueError(self._empty_message())

    def texts(self) -> Iterator[str]:
        """The documents' texts."""
        return (doc.text for doc in self)

    def __repr__(self) -> str:
        return f"TextCorpus({str(self.path)!r}, unit={self.unit!r})"


# ---------------------------------------------------------------------------- Python's docs
def _is_test(name: str) -> bool:
    return name in ("test", "tests") or name.startswith("test_") or name.endswith(("_test", "_tests"))


def _stdlib_files(root: Path) -> list[tuple[str, Path]]:
    """``(module name, path)`` of the public standard-library source files, sorted by name."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel.parts and (rel.parts[0] in STDLIB_EXCLUDED or rel.parts[0].startswith("config-")):
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(("_", ".")) and d not in STDLIB_EXCLUDED
                             and not _is_test(d))
        for f in sorted(filenames):
            if not f.endswith(".py") or (f.startswith("_") and f != "__init__.py"):
                continue
            parts = (*rel.parts, f[:-3]) if f != "__init__.py" else rel.parts
            if parts and parts[0] not in STDLIB_EXCLUDED and not _is_test(parts[-1]):
                found.append((".".join(parts), Path(dirpath) / f))
    return sorted(found)


def _docstrings(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, str]]:
    """``(qualified name, docstring)`` for classes, functions and methods (not nested in functions)."""
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{node.name}"
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield name, doc
            if isinstance(node, ast.ClassDef):
                yield from _docstrings(node.body, f"{name}.")


@functools.cache
def _module_docstrings(path: Path, module: str) -> tuple[Document, ...]:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):  # a file for another Python version: not documentation
        return ()
    docs = []
    module_doc = (ast.get_docstring(tree, clean=True) or "").strip()
    if module_doc:
        docs.append(Document(module_doc, module, ""))
    docs.extend(Document(doc.strip(), module, name) for name, doc in _docstrings(tree.body, "") if doc.strip())
    return tuple(docs)


def stdlib_docstrings(modules: Iterable[str] | None = None, min_chars: int = MIN_DOCSTRING_CHARS,
                      root: str | Path | None = None) -> Iterator[Document]:
    """Docstrings of the standard library's modules, classes, functions and methods.

    Parameters
    ----------
    modules : iterable of str, optional
        Keep only these modules and their submodules (``"email"`` keeps ``email.message``);
        default: every public module but :data:`STDLIB_EXCLUDED`.
    min_chars : int, default=40
        Shorter docstrings are skipped.
    root : path, optional
        The standard library's directory (default: this Python's).

    Yields
    ------
    Document
        ``source`` = module name, ``name`` = qualified object name ("" for the module's own
        docstring); ordered by module name, then by position in the file. Exact duplicate
        texts are yielded once (the first time).
    """
    check_positive(min_chars, "min_chars", strict=False, integer=True)
    root = Path(root) if root is not None else Path(sysconfig.get_paths()["stdlib"])
    wanted = None if modules is None else tuple(modules)
    if wanted is not None and isinstance(modules, str):
        wanted = (modules,)
    seen: set[str] = set()
    for module, path in _stdlib_files(root):
        if wanted is not None and not any(module == m or module.startswith(m + ".") for m in wanted):
            continue
        for doc in _module_docstrings(path, module):
            if len(doc.text) >= min_chars and doc.text not in seen:
                seen.add(doc.text)
                yield doc


def _pydoc_topics() -> Iterator[Document]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        text = inspect.cleandoc(topics[name]).strip()
        if text:
            yield Document(text, PYDOC_TOPICS_SOURCE, name)


class _PythonDocs:
    """Re-iterable view of :func:`python_docs_corpus` (parsed lazily, cached per file)."""

    def __init__(self, topics: bool, docstrings: bool, modules: tuple[str, ...] | None, min_chars: int):
        self.topics, self.docstrings, self.modules, self.min_chars = topics, docstrings, modules, min_chars

    def __iter__(self) -> Iterator[Document]:
        seen: set[str] = set()  # exact duplicates are yielded once
        if self.topics:
            for doc in _pydoc_topics():
                if doc.text not in seen:
                    seen.add(doc.text)
                    yield doc
        if self.docstrings:
            for doc in stdlib_docstrings(self.modules, self.min_chars):
                if doc.text not in seen:
                    seen.add(doc.text)
                    yield doc

    def texts(self) -> Iterator[str]:
        return (doc.text for doc in self)

    def __repr__(self) -> str:
        return (f"python_docs_corpus(topics={self.topics}, docstrings={self.docstrings}, "
                f"modules={self.modules})")


def python_docs_corpus(topics: bool = True, docstrings: bool = True, modules: Iterable[str] | None = None,
                       min_chars: int = MIN_DOCSTRING_CHARS) -> Iterable[Document]:
    """The default English corpus: Python's ``pydoc`` topics and standard-library docstrings.

    Real text that ships with every Python, no download. With this Python (3.11) it holds
    about 80 language-reference topics (~0.5 M characters) and ~4,500 docstrings (~1.1 M
    characters). Parsing every source file takes a few seconds; ``modules=`` restricts it.

    Parameters
    ----------
    topics : bool, default=True
        Include the ``pydoc_data.topics`` texts (source ``"pydoc_data.topics"``).
    docstrings : bool, default=True
        Include :func:`stdlib_docstrings`.
    modules, min_chars
        Passed to :func:`stdlib_docstrings`.

    Returns
    -------
    iterable of Document
        Re-iterable, in a fixed order: topics by name, then docstrings by module.
    """
    if not (topics or docstrings):
        raise ValueError("python_docs_corpus needs `topics` or `docstrings` (or both) to be True; "
                         "got both False")
    if isinstance(modules, str):
        modules = (modules,)
    return _PythonDocs(topics, docstrings, None if modules is None else tuple(modules), min_chars)
