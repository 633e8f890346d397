"""gicho.data.text corpora: streamed files and directories, clear errors, Python's own docs."""

from __future__ import annotations

import inspect
import json.decoder
import os
import textwrap
import tracemalloc

import pytest

from gicho.data.text import (
    Document,
    TextCorpus,
    iter_utf8_lines,
    python_docs_corpus,
    stdlib_docstrings,
)
from gicho.data.text.corpus import PYDOC_TOPICS_SOURCE


@pytest.fixture
def corpus_dir(tmp_path):
    (tmp_path / "b.txt").write_text("Second file, first paragraph.\n\nSecond paragraph\nspans two lines.\n",
                                    encoding="utf-8")
    (tmp_path / "a.txt").write_text("\ufeffFirst file.\n", encoding="utf-8")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "c.md").write_text("\n\n  Nested markdown.  \r\n", encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text("hidden\n", encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\x00\xff")
    return tmp_path


def test_directory_paragraphs_in_sorted_order(corpus_dir):
    corpus = TextCorpus(corpus_dir)
    docs = list(corpus)
    assert [d.text for d in docs] == ["First file.", "Second file, first paragraph.",
                                      "Second paragraph\nspans two lines.", "Nested markdown."]
    assert [d.source for d in docs] == [str(corpus_dir / "a.txt"), str(corpus_dir / "b.txt"),
                                        str(corpus_dir / "b.txt"), str(corpus_dir / "sub" / "c.md")]
    assert docs[2].name == "line 3"
    assert list(corpus) == docs  # re-iterable, same order
    assert list(corpus.texts()) == [d.text for d in docs]


def test_units(corpus_dir):
    lines = [d.text for d in TextCorpus(corpus_dir / "b.txt", unit="line")]
    assert lines == ["Second file, first paragraph.", "Second paragraph", "spans two lines."]
    files = [d.text for d in TextCorpus(corpus_dir, unit="file")]
    assert files[1] == "Second file, first paragraph.\n\nSecond paragraph\nspans two lines."
    assert len(files) == 3


def test_long_documents_are_cut(tmp_path):
    (tmp_path / "long.txt").write_text("".join(f"line {i}\n" for i in range(1000)), encoding="utf-8")
    docs = list(TextCorpus(tmp_path / "long.txt", max_document_chars=1000))
    assert all(len(d.text) <= 1000 for d in docs) and len(docs) > 5
    assert "\n".join(d.text for d in docs).split("\n") == [f"line {i}" for i in range(1000)]


def test_a_large_file_streams_in_bounded_memory(tmp_path):
    path = tmp_path / "big.txt"
    paragraph = "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n" * 5 + "\n"
    with path.open("w", encoding="utf-8") as fh:
        for _ in range(20_000):
            fh.write(paragraph)
    size = path.stat().st_size
    tracemalloc.start()
    n = sum(1 for _ in TextCorpus(path))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 20_000
    assert peak < size / 20, f"peak {peak} bytes while reading a {size}-byte file"


def test_non_utf8_names_file_and_byte_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"fine line\ncaf" + b"\xe9 au lait\n")
    with pytest.raises(ValueError, match=r"latin1\.txt: not valid UTF-8 at byte offset 13 \(byte b'\\xe9'\)"):
        list(TextCorpus(tmp_path, unit="line"))
    truncated = tmp_path / "cut.txt"
    truncated.write_bytes(b"ok " + "한".encode()[:2])
    with pytest.raises(ValueError, match=r"cut\.txt: not valid UTF-8: the file ends inside a multi-byte"):
        list(iter_utf8_lines(truncated))


def test_empty_and_missing_corpora(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"corpus path not found: .*nope"):
        TextCorpus(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"corpus directory .* holds no text files \(suffixes .txt, .md"):
        TextCorpus(tmp_path)
    (tmp_path / "blank.txt").write_text("\n   \n\t\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"corpus .* is empty: no non-blank text in 1 file\(s\)"):
        TextCorpus(tmp_path)
    with pytest.raises(ValueError, match=r"argument `unit` must be one of 'paragraph', 'line', 'file'; got 'page'"):
        TextCorpus(tmp_path, unit="page")


def test_docstrings_read_with_ast_equal_inspect_getdoc():
    docs = {d.name: d for d in stdlib_docstrings(["json.decoder"], min_chars=0)}
    assert docs[""].text == inspect.getdoc(json.decoder)
    assert docs["JSONDecoder.decode"].text == inspect.getdoc(json.decoder.JSONDecoder.decode)
    assert docs["JSONDecoder"].source == "json.decoder"
    wrapped = {d.name: d.text for d in stdlib_docstrings("textwrap")}
    assert wrapped["TextWrapper"] == inspect.getdoc(textwrap.TextWrapper)


@pytest.fixture(scope="module")
def python_docs():
    return list(python_docs_corpus())


def test_python_docs_corpus_is_real_deterministic_and_sourced(python_docs):
    topics = [d for d in python_docs if d.source == PYDOC_TOPICS_SOURCE]
    names = {d.name for d in topics}
    assert {"else", "for", "with", "try", "while"} <= names  # "if" has the same text as "else"
    assert any("break" in d.text and "loop" in d.text for d in topics)
    docstrings = [d for d in python_docs if d.source != PYDOC_TOPICS_SOURCE]
    modules = {d.source.split(".")[0] for d in docstrings}
    assert {"json", "email", "asyncio", "collections", "typing", "doctest", "unittest"} <= modules
    assert not modules & {"test", "idlelib", "tkinter", "turtle", "turtledemo", "this", "antigravity"}
    assert len(docstrings) > 3000 and sum(len(d.text) for d in python_docs) > 1_000_000
    assert len({d.text for d in python_docs}) == len(python_docs)  # exact duplicates dropped
    assert all(isinstance(d, Document) and d.text.strip() == d.text and d.text for d in python_docs)
    assert [d.source for d in docstrings] == sorted(d.source for d in docstrings)
    assert list(python_docs_corpus()) == python_docs


def test_python_docs_corpus_arguments():
    only = list(python_docs_corpus(topics=False, modules="email"))
    assert only and all(d.source == "email" or d.source.startswith("email.") for d in only)
    assert all(len(d.text) >= 200 for d in python_docs_corpus(topics=False, modules="json", min_chars=200))
    with pytest.raises(ValueError, match="needs `topics` or `docstrings`"):
        python_docs_corpus(topics=False, docstrings=False)


def test_the_text_data_layer_imports_no_models_trainer_or_tasks():
    import subprocess
    import sys

    code = ("import sys, gicho.data.text; print(sorted(m for m in sys.modules "
            "if m.startswith(('gicho.models', 'gicho.train', 'gicho.tasks', 'gicho.cli'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_devices_and_fifos_are_refused_not_called_empty(tmp_path):  # K1 (issue 19)
    with pytest.raises(ValueError, match=r"corpus path /dev/zero is neither a regular file nor a directory"):
        TextCorpus("/dev/zero")
    (tmp_path / "ok.txt").write_text("Some text.\n", encoding="utf-8")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")  # read, it would never end
    with pytest.raises(ValueError, match=r"corpus file .*zero\.txt is not a regular file"):
        TextCorpus(tmp_path)
    (tmp_path / "zero.txt").unlink()
    os.mkfifo(tmp_path / "pipe.txt")
    with pytest.raises(ValueError, match=r"corpus file .*pipe\.txt is not a regular file"):
        TextCorpus(tmp_path)
    with pytest.raises(ValueError, match=r"corpus path .*pipe\.txt is neither a regular file nor a directory"):
        TextCorpus(tmp_path / "pipe.txt")
