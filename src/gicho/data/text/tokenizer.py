"""WordPiece tokenisation for BERT through Hugging Face's ``tokenizers`` library.

A :class:`TextTokenizer` wraps a ``tokenizers.Tokenizer`` set up as BERT's: the BERT
normaliser (clean text, CJK characters split, lowercase and strip accents when uncased), the
BERT pre-tokeniser (split on whitespace and punctuation), a WordPiece model with ``##``
continuation pieces and the post-processor ``[CLS] a [SEP]`` / ``[CLS] a [SEP] b [SEP]``
with segment (token type) ids 0 for ``a`` and 1 for ``b`` (Devlin et al., 2019, §3).

* :func:`train_wordpiece` learns a vocabulary from texts or a corpus;
* :func:`load_tokenizer` reads a checkpoint's ``tokenizer.json`` or ``vocab.txt`` and gives
  the ids that ``transformers``' ``BertTokenizer`` gives on the same text;
* :meth:`TextTokenizer.save` writes ``tokenizer.json``, ``vocab.txt`` and
  ``tokenizer_config.json``, which ``transformers.AutoTokenizer`` loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)

from gicho._io import atomic_write_text
from gicho._validation import check_positive, describe

__all__ = [
    "CONTINUATION_PREFIX",
    "DEFAULT_VOCAB_SIZE",
    "SPECIAL_TOKENS",
    "TextTokenizer",
    "load_tokenizer",
    "train_wordpiece",
]

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)  # ids 0-4 in a trained vocabulary
CONTINUATION_PREFIX = "##"  # WordPiece marks a piece that continues the previous one
DEFAULT_VOCAB_SIZE = 8_000
DEFAULT_MIN_FREQUENCY = 2
DEFAULT_LIMIT_ALPHABET = 1_000  # most frequent characters kept as single-character pieces
MAX_INPUT_CHARS_PER_WORD = 100  # BERT's: a longer word becomes [UNK]
N_SPECIAL_SINGLE, N_SPECIAL_PAIR = 2, 3  # [CLS] a [SEP]  /  [CLS] a [SEP] b [SEP]

TOKENIZER_FILE, VOCAB_FILE, CONFIG_FILE = "tokenizer.json", "vocab.txt", "tokenizer_config.json"


def _bert_pipeline(tok: Tokenizer, lowercase: bool) -> None:
    """Give ``tok`` BERT's normaliser, pre-tokeniser and decoder (in place)."""
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # cleanup=False: transformers' clean-up would turn "do not" into "don't".
    tok.decoder = decoders.WordPiece(prefix=CONTINUATION_PREFIX, cleanup=False)


def _bert_post_processor(tok: Tokenizer) -> None:
    cls_id, sep_id = tok.token_to_id(CLS), tok.token_to_id(SEP)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{CLS}:0 $A:0 {SEP}:0",
        pair=f"{CLS}:0 $A:0 {SEP}:0 $B:1 {SEP}:1",
        special_tokens=[(CLS, cls_id), (SEP, sep_id)],
    )


class TextTokenizer:
    """BERT's WordPiece tokenizer: text → ids with [CLS]/[SEP] and segment ids, and back.

    Build one with :func:`train_wordpiece` or :func:`load_tokenizer` (or
    :meth:`from_vocab`); the constructor takes a ready ``tokenizers.Tokenizer`` whose model
    is WordPiece and whose vocabulary holds the special tokens [PAD] [UNK] [CLS] [SEP]
    [MASK]. Padding and truncation stored in the tokenizer are switched off: :meth:`encode`
    truncates only when asked (``max_len``) and batches are padded by the collators.

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer
    model_max_length : int, optional
        The longest sequence the model that goes with this tokenizer accepts (informative;
        read from ``tokenizer_config.json`` by :func:`load_tokenizer`).
    source : str, default="tokenizer"
        Where the tokenizer comes from, for error messages.
    """

    def __init__(self, tokenizer: Tokenizer, model_max_length: int | None = None, source: str = "tokenizer"):
        state = json.loads(tokenizer.to_str())
        kind = state.get("model", {}).get("type")
        if kind != "WordPiece":
            raise ValueError(f"{source}: expected a WordPiece model; got model type {kind!r}")
        missing = [t for t in SPECIAL_TOKENS if tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(f"{source}: the vocabulary lacks the special token(s) {', '.join(missing)}; "
                             f"BERT needs all of {', '.join(SPECIAL_TOKENS)}")
        tokenizer.no_padding()
        tokenizer.no_truncation()
        if tokenizer.post_processor is None:
            _bert_post_processor(tokenizer)
        self._tok = tokenizer
        self.model_max_length = model_max_length
        self.source = source
        normalizer = state.get("normalizer") or {}
        self.lowercase = bool(normalizer.get("lowercase", False))
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            tokenizer.token_to_id(t) for t in SPECIAL_TOKENS
        )
        self.special_ids = (self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_vocab(cls, vocab: dict[str, int], lowercase: bool = True, model_max_length: int | None = None,
                   source: str = "vocabulary") -> TextTokenizer:
        """A BERT tokenizer over ``vocab`` (token → id), as ``BertTokenizer(vocab_file)`` builds."""
        tok = Tokenizer(models.WordPiece(vocab, unk_token=UNK, continuing_subword_prefix=CONTINUATION_PREFIX,
                                         max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD))
        _bert_pipeline(tok, lowercase)
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise ValueError(f"{source}: the vocabulary lacks the special token(s) {', '.join(missing)}; "
                             f"BERT needs all of {', '.join(SPECIAL_TOKENS)}")
        tok.add_special_tokens(list(SPECIAL_TOKENS))  # "[MASK]" in a text is the mask token
        _bert_post_processor(tok)
        return cls(tok, model_max_length=model_max_length, source=source)

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        """Number of ids (the embedding table's rows)."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def backend(self) -> Tokenizer:
        """The underlying ``tokenizers.Tokenizer`` (do not change its padding or truncation)."""
        return self._tok

    def get_vocab(self) -> dict[str, int]:
        """Token → id for the whole vocabulary."""
        return self._tok.get_vocab(with_added_tokens=True)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, index: int) -> str | None:
        return self._tok.id_to_token(index)

    def continuation_mask(self) -> list[bool]:
        """``mask[i]`` is True when id ``i`` is a ``##`` piece that continues a word."""
        vocab = self.get_vocab()
        mask = [False] * (max(vocab.values()) + 1)
        for token, index in vocab.items():
            mask[index] = token.startswith(CONTINUATION_PREFIX) and len(token) > len(CONTINUATION_PREFIX)
        return mask

    # ------------------------------------------------------------------ encoding
    def _check_max_len(self, max_len: int | None, pair: bool) -> None:
        if max_len is None:
            return
        check_positive(max_len, "max_len", integer=True)
        least = (N_SPECIAL_PAIR + 2) if pair else (N_SPECIAL_SINGLE + 1)
        if max_len < least:
            raise ValueError(f"argument `max_len` must be >= {least} for {'pairs' if pair else 'single texts'} "
                             f"(special tokens plus one token per text); got {max_len}")

    def _encode(self, inputs: list[Any], max_len: int | None, add_special_tokens: bool) -> list[Any]:
        """Encodings of texts or (text, pair) tuples, truncated to ``max_len`` ids when given.

        Truncation is done here, not by the ``tokenizers`` backend: its truncation also builds
        every overflowing window, and for a pair those are the product of both texts' windows
        (two Wikipedia pages truncated to 48 ids: millions of encodings, tens of GB). The
        lengths kept are the backend's ``longest_first`` rule (:func:`_longest_first`), so the
        ids are those of ``transformers``' fast tokenizer with ``truncation=True``.
        """
        if max_len is None:
            return self._tok.encode_batch(inputs, add_special_tokens=add_special_tokens)
        pair = bool(inputs) and isinstance(inputs[0], tuple)
        firsts_text = [i[0] for i in inputs] if pair else inputs
        firsts = self._tok.encode_batch(firsts_text, add_special_tokens=False)
        seconds = self._tok.encode_batch([i[1] for i in inputs], add_special_tokens=False) if pair else None
        budget = max_len - (self._tok.num_special_tokens_to_add(pair) if add_special_tokens else 0)
        out = []
        for k, first in enumerate(firsts):
            second = seconds[k] if seconds is not None else None
            if second is not None:
                n1, n2 = _longest_first(len(first.ids), len(second.ids), budget)
                first = self._truncated(inputs[k][0], first, n1)
                second = self._truncated(inputs[k][1], second, n2)
            else:
                first = self._truncated(firsts_text[k], first, budget)
            out.append(self._tok.post_process(first, second, add_special_tokens=add_special_tokens))
        return out

    def _truncated(self, text: str, encoding: Any, n: int) -> Any:
        """``encoding`` of ``text`` cut to its first ``n`` tokens, with few overflowing windows.

        ``Encoding.truncate`` keeps the rest as overflowing windows, and post-processing a pair
        multiplies both texts' windows: the text is first cut after the word of its n-th token
        (words are split on whitespace and punctuation, so the tokens before stay the same).
        """
        if len(encoding.ids) <= n:
            return encoding
        word = encoding.word_ids[n - 1]
        last = n - 1
        while word is not None and last + 1 < len(encoding.ids) and encoding.word_ids[last + 1] == word:
            last += 1
        shorter = self._tok.encode(text[:encoding.offsets[last][1]], add_special_tokens=False)
        shorter.truncate(n)
        return shorter

    @staticmethod
    def _check_text(text: Any, name: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"argument `{name}` must be a str; got {describe(text)}")

    def encode(self, text: str, text_pair: str | None = None, max_len: int | None = None,
               add_special_tokens: bool = True) -> dict[str, list[int]]:
        """Token ids of one text (or one pair of texts).

        Parameters
        ----------
        text : str
        text_pair : str, optional
            A second segment: ``[CLS] text [SEP] text_pair [SEP]``, its tokens with segment id 1.
        max_len : int, optional
            Truncate to at most this many ids, special tokens included; pairs lose tokens from
            the longer text first (``longest_first``, as ``transformers``). None: no truncation.
        add_special_tokens : bool, default=True

        Returns
        -------
        dict
            ``input_ids``, ``token_type_ids`` and ``attention_mask`` (all ones): lists of
            length L <= ``max_len``.
        """
        self._check_text(text, "text")
        if text_pair is not None:
            self._check_text(text_pair, "text_pair")
        return self.encode_batch([text], None if text_pair is None else [text_pair], max_len, add_special_tokens)[0]

    def encode_batch(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None,
                     max_len: int | None = None, add_special_tokens: bool = True) -> list[dict[str, list[int]]]:
        """:meth:`encode` over many texts (in parallel threads inside ``tokenizers``); unpadded."""
        texts = list(texts)
        for i, text in enumerate(texts):
            self._check_text(text, f"texts[{i}]")
        if text_pairs is not None:
            text_pairs = list(text_pairs)
            if len(text_pairs) != len(texts):
                raise ValueError(f"argument `text_pairs` must have one text per text: {len(texts)}; "
                                 f"got {len(text_pairs)}")
            for i, text in enumerate(text_pairs):
                self._check_text(text, f"text_pairs[{i}]")
        self._check_max_len(max_len, pair=text_pairs is not None and add_special_tokens)
        inputs: list[Any] = texts if text_pairs is None else list(zip(texts, text_pairs, strict=True))
        return [{"input_ids": e.ids, "token_type_ids": e.type_ids, "attention_mask": e.attention_mask}
                for e in self._encode(inputs, max_len, add_special_tokens)]

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of ``text`` (no special tokens)."""
        self._check_text(text, "text")
        return self._encode([text], None, add_special_tokens=False)[0].tokens

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text from ids: pieces joined by spaces, ``##`` continuations glued to their word.

        Lowercasing, accents and spacing around punctuation are not restored.
        """
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"argument `ids` holds id(s) outside the vocabulary [0, {self.vocab_size}): "
                             f"{describe(bad)}")
        return self._tok.decode(ids, skip_special_tokens=skip_special_tokens)

    # ------------------------------------------------------------------ saving
    def save(self, directory: str | Path) -> Path:
        """Write ``tokenizer.json``, ``vocab.txt`` and ``tokenizer_config.json`` into ``directory``.

        ``transformers.AutoTokenizer.from_pretrained(directory)`` and :func:`load_tokenizer`
        both read the result back with the same ids.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        vocab = self.get_vocab()
        by_id = sorted(vocab.items(), key=lambda kv: kv[1])
        if [i for _, i in by_id] != list(range(len(by_id))):
            raise ValueError(f"{self.source}: the vocabulary's ids are not 0..{len(by_id) - 1} without gaps; "
                             "it cannot be written as vocab.txt")
        atomic_write_text(directory / TOKENIZER_FILE, self._tok.to_str(pretty=True))
        atomic_write_text(directory / VOCAB_FILE, "".join(f"{t}\n" for t, _ in by_id))
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": self.lowercase,
                  "strip_accents": None, "tokenize_chinese_chars": True,
                  "unk_token": UNK, "sep_token": SEP, "pad_token": PAD, "cls_token": CLS, "mask_token": MASK}
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
        return directory

    def __getstate__(self) -> dict[str, Any]:  # picklable (DataLoader workers, spawn)
        state = self.__dict__.copy()
        state["_tok"] = self._tok.to_str()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["_tok"] = Tokenizer.from_str(state["_tok"])
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return (f"TextTokenizer(vocab_size={self.vocab_size}, lowercase={self.lowercase}, "
                f"source={self.source!r})")


def _longest_first(n1: int, n2: int, budget: int) -> tuple[int, int]:
    """How many tokens of each text of a pair ``longest_first`` keeps within ``budget`` tokens.

    The rule of ``tokenizers`` (``truncate_encodings``) that ``transformers``' fast tokenizers
    apply: nothing is cut when both fit; else, with ``s <= l`` the shorter and longer lengths,
    the shorter keeps its ``s`` tokens and the longer gets ``budget - s`` (at least ``s``);
    when that still overflows, each gets half the budget (the first text the odd token when
    it is the longer).
    """
    if n1 + n2 <= budget:
        return n1, n2
    short, long_ = (n2, n1) if n1 > n2 else (n1, n2)
    long_ = short if short > budget else max(short, budget - short)
    if short + long_ > budget:
        short = budget // 2
        long_ = short + budget % 2
    return (long_, short) if n1 > n2 else (short, long_)


# ---------------------------------------------------------------------------- loading
def _read_vocab(path: Path) -> dict[str, int]:
    """``vocab.txt``: one token a line, id = line number (as ``transformers``' ``load_vocab``)."""
    from gicho.data.text.corpus import iter_utf8_lines

    vocab: dict[str, int] = {}
    for index, (_, line) in enumerate(iter_utf8_lines(path)):
        vocab[line.rstrip("\n").rstrip("\r")] = index
    if not vocab:
        raise ValueError(f"vocabulary file {path} is empty")
    return vocab


def _is_regular_file(path: Path, what: str) -> bool:
    """True for a regular file, False when nothing is there; raises for anything else.

    A device (``/dev/zero``), a FIFO, a directory or a broken link in a file's place is refused
    by name, never skipped (a link to ``/dev/zero`` would otherwise be read without end, or
    passed over for another file).
    """
    if path.is_file():
        return True
    if not path.exists() and not path.is_symlink():
        return False
    kind = "a directory" if path.is_dir() else "a broken link" if not path.exists() else "a device, FIFO or socket"
    raise ValueError(f"{what} {path} is not a regular file ({kind}); replace it with the file itself")


def _register_special_tokens(tok: Tokenizer) -> None:
    """Register as special (added) tokens the BERT special tokens that are only in the vocabulary.

    Without it a ``tokenizer.json`` whose ``added_tokens`` lack ``[MASK]`` splits a written
    "[MASK]" into ``[``, ``mask``, ``]``; ``transformers`` registers them from its config the
    same way. The ids stay those of the vocabulary.
    """
    added = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
    missing = [t for t in SPECIAL_TOKENS if t not in added and tok.token_to_id(t) is not None]
    if missing:
        tok.add_special_tokens(missing)


def load_tokenizer(path: str | Path, lowercase: bool | None = None) -> TextTokenizer:
    """Load a BERT checkpoint's tokenizer: ``tokenizer.json`` or ``vocab.txt``.

    Parameters
    ----------
    path : str or Path
        A directory holding ``tokenizer.json`` (preferred) or ``vocab.txt``, or one of these
        files itself.
    lowercase : bool, optional
        For ``vocab.txt`` only: uncased (True) or cased (False). Default: ``do_lower_case`` of
        a ``tokenizer_config.json`` beside it, else True.

    Returns
    -------
    TextTokenizer
        Padding and truncation stored in ``tokenizer.json`` are switched off; the special
        tokens [PAD] [UNK] [CLS] [SEP] [MASK] of its vocabulary are registered as special
        tokens when its ``added_tokens`` lack them (so "[MASK]" in a text is one token).

    Raises
    ------
    ValueError
        When a tokenizer file (or ``tokenizer_config.json``) is there but is not a regular
        file: a device such as ``/dev/zero``, a FIFO, a directory or a broken link.
    """
    path = Path(path)
    if path.is_dir():
        for name in (TOKENIZER_FILE, VOCAB_FILE):
            if _is_regular_file(path / name, "tokenizer file"):
                path = path / name
                break
        else:
            raise FileNotFoundError(f"tokenizer directory {path} holds neither {TOKENIZER_FILE} nor {VOCAB_FILE}")
    elif not _is_regular_file(path, "tokenizer path"):
        raise FileNotFoundError(f"tokenizer path not found: {path}")
    config: dict[str, Any] = {}
    config_path = path.parent / CONFIG_FILE
    if _is_regular_file(config_path, "tokenizer config"):
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{config_path}: not a valid UTF-8 JSON file ({err})") from None
        if not isinstance(config, dict):
            raise ValueError(f"{config_path}: expected a JSON object; got {type(config).__name__}")
    max_length = config.get("model_max_length")
    max_length = max_length if isinstance(max_length, int) and 0 < max_length < 1 << 31 else None
    if path.suffix == ".json":
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises its own Exception type
            raise ValueError(f"{path}: not a tokenizers JSON file ({err})") from None
        _register_special_tokens(tok)
        return TextTokenizer(tok, model_max_length=max_length, source=str(path))
    if lowercase is None:
        lowercase = bool(config.get("do_lower_case", True))
    return TextTokenizer.from_vocab(_read_vocab(path), lowercase=lowercase, model_max_length=max_length,
                                    source=str(path))


# ---------------------------------------------------------------------------- training
def train_wordpiece(
    texts: Iterable[str] | Any,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    lowercase: bool = True,
    min_frequency: int = DEFAULT_MIN_FREQUENCY,
    limit_alphabet: int = DEFAULT_LIMIT_ALPHABET,
) -> TextTokenizer:
    """Learn a WordPiece vocabulary of at most ``vocab_size`` ids from texts.

    The merges of ``tokenizers``' WordPiece trainer with every tie broken by a fixed rule
    (:mod:`gicho.data.text.wordpiece`): the vocabulary depends only on the words of the texts
    and their counts, so the same texts give the same ids in any order, process or thread
    count. Encoding is the ``tokenizers`` WordPiece model over that vocabulary.

    Parameters
    ----------
    texts : iterable of str, or a corpus
        Streamed once; a :class:`~gicho.data.text.TextCorpus` (or any iterable of objects with
        a ``text`` attribute) gives its documents' texts.
    vocab_size : int, default=8000
        Special tokens, the alphabet (characters and their ``##`` forms) and the learned
        pieces together; when the first two alone would exceed it, only the most frequent
        characters that fit are kept.
    lowercase : bool, default=True
        Uncased (BERT ``uncased``: lowercase and strip accents) or cased.
    min_frequency : int, default=2
        A pair of pieces seen fewer times is never merged.
    limit_alphabet : int, default=1000
        At most this many distinct characters are kept, the most frequent (ties: lower code
        point); rarer ones become [UNK].

    Returns
    -------
    TextTokenizer
        Special tokens get ids 0-4 in the order [PAD] [UNK] [CLS] [SEP] [MASK].
    """
    check_positive(vocab_size, "vocab_size", integer=True)
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"argument `vocab_size` must exceed the {len(SPECIAL_TOKENS)} special tokens; "
                         f"got {vocab_size}")
    check_positive(min_frequency, "min_frequency", integer=True)
    check_positive(limit_alphabet, "limit_alphabet", integer=True)
    if isinstance(texts, (str, bytes, Path)):
        raise TypeError(f"argument `texts` must be an iterable of str or a corpus, not a single "
                        f"{type(texts).__name__} ({describe(texts)}); wrap a path in TextCorpus(path)")
    seen = {"documents": 0, "characters": 0}

    def stream() -> Iterable[str]:
        for item in texts:
            text = item if isinstance(item, str) else getattr(item, "text", None)
            if not isinstance(text, str):
                raise TypeError(f"argument `texts` must yield str (or documents with .text); got {describe(item)}")
            seen["documents"] += 1
            seen["characters"] += len(text.strip())
            yield text

    from gicho.data.text.wordpiece import count_words, learn_wordpiece_vocab

    splitter = Tokenizer(models.WordPiece(unk_token=UNK))
    _bert_pipeline(splitter, lowercase)  # its normaliser and pre-tokeniser turn texts into words
    word_counts = count_words(stream(), splitter)
    if seen["characters"] == 0:
        raise ValueError(f"cannot train a vocabulary on an empty corpus ({seen['documents']} texts, "
                         "none with any non-blank character)")
    vocab = learn_wordpiece_vocab(word_counts, vocab_size, special_tokens=SPECIAL_TOKENS,
                                  min_frequency=min_frequency, limit_alphabet=limit_alphabet,
                                  prefix=CONTINUATION_PREFIX)
    return TextTokenizer.from_vocab(vocab, lowercase=lowercase, source="train_wordpiece")
