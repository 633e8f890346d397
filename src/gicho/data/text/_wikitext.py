"""A MediaWiki XML dump's articles as plain text: the standard library's iterparse, no DTD.

:func:`read_pages` streams ``(title, wikitext)`` of the articles (namespace 0, redirects skipped)
with :func:`xml.etree.ElementTree.iterparse`; a document type declaration (where entities are
declared) is refused before parsing: no entity expansion, nothing fetched. :func:`wikitext_to_plain` strips
the markup reasonably, not perfectly: comments, references, templates (``{{...}}``, nested),
tables, files, categories and interlanguage links are dropped; links keep their label; bold,
italics, headings' ``==`` and list markers are removed; HTML tags and entities are resolved.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import IO

__all__ = ["read_pages", "wikitext_to_plain"]

ARTICLE_NAMESPACE = "0"
_DROPPED_LINK_PREFIXES = ("file:", "image:", "category:", "media:")


PROLOG_BYTES = 1 << 16  # a declaration must come before the root element: look this far


class _NoDeclarations:
    """A byte stream that refuses a ``<!DOCTYPE`` or ``<!ENTITY`` before the root element.

    Entities are declared only in a document type declaration, which must precede the root
    element; refusing it in the prolog means nothing can be expanded or fetched.
    """

    def __init__(self, stream: IO[bytes]):
        self._stream = stream
        self._checked = False

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size if self._checked else max(size, PROLOG_BYTES))
        if not self._checked:
            self._checked = True
            root = re.search(rb"<[A-Za-z_]", data)
            prolog = data if root is None else data[:root.start()]
            if (root is None and data) or b"<!DOCTYPE" in prolog.upper() or b"<!ENTITY" in prolog.upper():
                raise ValueError("the XML declares a document type or entities (or has no root element in its "
                                 f"first {PROLOG_BYTES} bytes); gicho does not read such files (no entity expansion)")
        return data


def read_pages(stream: IO[bytes]) -> Iterator[tuple[str, str]]:
    """``(title, wikitext)`` of each article page of a MediaWiki export, in file order.

    Raises
    ------
    ValueError
        When the XML has a ``<!DOCTYPE`` or an ``<!ENTITY`` declaration.
    """
    for _, element in ET.iterparse(_NoDeclarations(stream), events=("end",)):
        if _local(element.tag) != "page":
            continue
        fields = {_local(child.tag): child for child in element}
        ns = fields.get("ns")
        revision = fields.get("revision")
        if ns is not None and ns.text == ARTICLE_NAMESPACE and "redirect" not in fields and revision is not None:
            text = next((c.text for c in revision if _local(c.tag) == "text"), None) or ""
            title = (fields["title"].text or "") if "title" in fields else ""
            if not text.lstrip().lower().startswith("#redirect"):
                yield title, text
        element.clear()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _drop_nested(text: str, open_: str, close: str) -> str:
    """Remove every ``open_ ... close`` span, nested ones included (an unclosed one runs to the end)."""
    out, depth, i = [], 0, 0
    n_open, n_close = len(open_), len(close)
    while i < len(text):
        if text.startswith(open_, i):
            depth += 1
            i += n_open
        elif depth and text.startswith(close, i):
            depth -= 1
            i += n_close
        else:
            if not depth:
                out.append(text[i])
            i += 1
    return "".join(out)


_FILE_LINK = re.compile(r"\[\[\s*(?:file|image|media):", re.I)


def _drop_file_links(text: str) -> str:
    """Remove ``[[File:...]]`` / ``[[Image:...]]`` with everything nested in their captions."""
    while (match := _FILE_LINK.search(text)) is not None:
        depth, i = 0, match.start()
        while i < len(text):
            if text.startswith("[[", i):
                depth, i = depth + 1, i + 2
            elif text.startswith("]]", i):
                depth, i = depth - 1, i + 2
                if depth == 0:
                    break
            else:
                i += 1
        text = text[:match.start()] + text[i:]
    return text


def _link(match: re.Match[str]) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target.strip().lower().startswith(_DROPPED_LINK_PREFIXES) or re.match(r"^[a-z-]{2,12}:", target):
        return ""  # files, categories, interlanguage links
    return label.rsplit("|", 1)[-1] if label else target


_COMMENT = re.compile(r"<!--.*?-->", re.S)
_REF = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S | re.I)
_DROPPED_TAGS = re.compile(r"<(math|gallery|timeline|score|syntaxhighlight|source|pre)[^>]*>.*?</\1>", re.S | re.I)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_INNER_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]+\s*([^\]]*)\]")
_BARE_URL = re.compile(r"https?://\S+")
_EMPHASIS = re.compile(r"'{2,}")
_HEADING = re.compile(r"^=+\s*(.*?)\s*=+\s*$", re.M)
_LIST_MARK = re.compile(r"^[*#:;]+\s*", re.M)
_BEHAVIOUR_SWITCH = re.compile(r"__[A-Z]+__")


def wikitext_to_plain(wikitext: str) -> str:
    """Plain text of one page's wikitext: paragraphs separated by blank lines (see the module)."""
    text = _COMMENT.sub("", wikitext)
    text = _REF.sub("", text)
    text = _DROPPED_TAGS.sub("", text)
    text = _drop_nested(text, "{{", "}}")
    text = _drop_nested(text, "{|", "|}")
    text = _drop_file_links(text)
    for _ in range(3):  # links inside links' labels: innermost first
        text = _INNER_LINK.sub(_link, text)
    text = _EXTERNAL_LINK.sub(r"\1", text)
    text = _BARE_URL.sub("", text)
    text = _TAG.sub("", text)
    text = html.unescape(text).replace("\u00a0", " ")
    text = _EMPHASIS.sub("", text)
    text = _BEHAVIOUR_SWITCH.sub("", text)
    text = _HEADING.sub(r"\n\1\n", text)  # a heading is a paragraph of its own
    text = _LIST_MARK.sub("", text)
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    paragraphs, current = [], []
    for line in lines:
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(p for p in paragraphs if any(ch.isalnum() for ch in p))
