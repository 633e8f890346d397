"""Character vocabularies of the dates task (source characters, target ISO characters).

:class:`Vocab` maps characters to ids (padding, start, end and unknown tokens first);
:func:`save_vocabularies` / :func:`load_vocabularies` keep a model's two vocabularies beside its
weights, and refuse a tampered file rather than shift the ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gicho._validation import describe

__all__ = ["VOCAB_FILE", "Vocab", "load_vocabularies", "save_vocabularies"]

VOCAB_FILE = "vocab.json"


class Vocab:
    """A character vocabulary with padding, start, end and unknown tokens (ids 0-3).

    Characters outside the vocabulary encode to the unknown token ``<unk>``.

    Parameters
    ----------
    chars : iterable of str
        The characters (single-character strings); kept sorted after the special tokens.
    """

    PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
    SPECIALS = (PAD, BOS, EOS, UNK)

    def __init__(self, chars: Iterable[str]) -> None:
        chars = sorted(set(chars))
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"argument `chars` must hold single characters; got {describe(bad)}")
        self.itos: list[str] = [*self.SPECIALS, *chars]
        self.stoi: dict[str, int] = {tok: i for i, tok in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(4)

    @classmethod
    def build(cls, texts: Iterable[str]) -> Vocab:
        """The vocabulary of every character occurring in ``texts``."""
        return cls(c for text in texts for c in text)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, char: object) -> bool:
        return isinstance(char, str) and len(char) == 1 and char in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens)"

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of ``text`` that are not in the vocabulary, in order."""
        return list(dict.fromkeys(c for c in text if c not in self.stoi))

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Character ids of ``text``; unknown characters become ``unk_id``."""
        ids = [self.stoi.get(c, self.unk_id) for c in text]
        return [self.bos_id] * add_bos + ids + [self.eos_id] * add_eos

    def decode(self, ids: Iterable[int], stop_at_eos: bool = True) -> str:
        """The string of ``ids``: stops at the end token, skips padding and start tokens.

        Unknown tokens are written as ``"<unk>"``.
        """
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise ValueError(f"token id {i} is out of range for a vocabulary of {len(self)}")
            if i == self.eos_id and stop_at_eos:
                break
            if i in (self.pad_id, self.bos_id, self.eos_id):
                continue
            out.append(self.itos[i])
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {"specials": list(self.SPECIALS), "chars": self.itos[len(self.SPECIALS):]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocab:
        """Rebuild a vocabulary from :meth:`to_dict`; ids are checked, not silently shifted.

        Raises
        ------
        ValueError
            When the specials differ, or ``chars`` is not the sorted list of distinct
            characters :meth:`to_dict` writes (a duplicated or reordered character would move
            every later id and change the model's answers).
        """
        if not isinstance(data, dict) or list(data.get("specials", [])) != list(cls.SPECIALS):
            raise ValueError(f"not a gicho character vocabulary: specials must be {list(cls.SPECIALS)}")
        chars = data.get("chars")
        if not isinstance(chars, list):
            raise ValueError(f"vocabulary `chars` must be a list of characters; got {describe(chars)}")
        vocab = cls(chars)
        if vocab.itos[len(cls.SPECIALS):] != chars:
            dupes = sorted({c for c in chars if chars.count(c) > 1})
            why = f"duplicated characters {dupes}" if dupes else "characters out of order"
            raise ValueError(f"vocabulary `chars` has {why}; the token ids would not be the trained ones")
        return vocab

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON (UTF-8)."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        """Read a vocabulary written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def save_vocabularies(directory: str | Path, source: Vocab, target: Vocab) -> Path:
    """Write ``vocab.json`` (both vocabularies) into ``directory`` atomically; return its path."""
    from gicho._io import atomic_write_text

    path = Path(directory) / VOCAB_FILE
    atomic_write_text(path, json.dumps({"source": source.to_dict(), "target": target.to_dict()}, ensure_ascii=False))
    return path


def load_vocabularies(directory: str | Path) -> tuple[Vocab, Vocab]:
    """The ``(source, target)`` vocabularies of ``directory/vocab.json``.

    Raises
    ------
    ValueError
        Naming the file when it is missing, unreadable or tampered (see :meth:`Vocab.from_dict`).
    """
    path = Path(directory) / VOCAB_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Vocab.from_dict(data["source"]), Vocab.from_dict(data["target"])
    except (OSError, KeyError, TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path} is not a gicho vocabulary file ({type(exc).__name__}: {exc})") from None
