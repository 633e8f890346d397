"""Text in, BERT out: fill-mask and sentence embeddings over a checkpoint and its tokenizer.

What ``gicho fill-mask``, ``gicho embed`` and the ``mlm-bert`` task run (the CLI prints). The
tokenizer is gicho's one WordPiece reader, :func:`gicho.data.text.load_tokenizer` (a
checkpoint's ``tokenizer.json`` or ``vocab.txt``; ids equal ``transformers``' tokenizer);
:func:`load_tokenizer` here adds what a sentence-embedding checkpoint says about length
(``sentence_bert_config.json``'s ``max_seq_length``, which ``sentence-transformers`` honours).

Texts longer than the limit are truncated with a warning that names them; a text that is not
valid UTF-8, a [MASK] lost to truncation, a tokenizer with more tokens than the model's
vocabulary and non-finite embeddings are refused with a message that says so.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gicho.data.text import TextTokenizer, pad_batch
from gicho.data.text import load_tokenizer as _load_tokenizer
from gicho.rundir import model_directory  # re-exported: run directory → its model/

__all__ = ["SENTENCE_CONFIG", "Encoded", "check_vocab_size", "count_masks", "embedding_max_len", "encode", "fill_mask",
           "load_tokenizer", "load_tokenizer_extras", "model_directory", "save_tokenizer_extras",
           "sentence_embeddings"]

# sentence-transformers' settings of its Transformer module, beside a checkpoint's config.json
SENTENCE_CONFIG = "sentence_bert_config.json"
MAX_SENTENCE_CONFIG_BYTES = 1 << 16  # a few keys; anything larger is not such a config
QUOTE_CHARS = 60  # messages quote at most this much of a user's text
LISTED_TEXTS = 5  # a warning names at most this many truncated texts


def _quote(text: str) -> str:
    """``text`` for a message: repr of at most QUOTE_CHARS characters, with its full length."""
    if len(text) <= QUOTE_CHARS:
        return repr(text)
    return f"{text[:QUOTE_CHARS - 3]!r}... ({len(text):,} characters)"


def _sentence_max_seq_length(directory: Path) -> int | None:
    """``max_seq_length`` of ``directory/sentence_bert_config.json``, if there is one."""
    from gicho._io import read_json

    path = directory / SENTENCE_CONFIG
    if not os.path.lexists(path):
        return None
    data = read_json(path, "sentence-transformers config", max_bytes=MAX_SENTENCE_CONFIG_BYTES)
    value = data.get("max_seq_length") if isinstance(data, dict) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 3:
        raise ValueError(f"sentence-transformers config {path}: max_seq_length must be an integer >= 3 "
                         f"([CLS], a token, [SEP]); got {value!r}")
    return value


def load_tokenizer(path: str | os.PathLike) -> TextTokenizer:
    """A BERT checkpoint's tokenizer (:func:`gicho.data.text.load_tokenizer`), with the length
    limit of a sentence-embedding checkpoint.

    When ``path`` holds ``sentence_bert_config.json`` (a ``sentence-transformers`` model such as
    all-MiniLM-L6-v2), its ``max_seq_length`` bounds ``model_max_length``, so that
    :func:`sentence_embeddings` truncates where ``sentence-transformers`` does (256 tokens for
    all-MiniLM-L6-v2, whose position table holds 512).

    Raises
    ------
    ValueError
        An unreadable ``sentence_bert_config.json`` or a bad ``max_seq_length``; the tokenizer
        reader's errors (see :func:`gicho.data.text.load_tokenizer`).
    FileNotFoundError
        When ``path`` holds no tokenizer.
    """
    path = Path(path)
    tokenizer = _load_tokenizer(path)
    limit = _sentence_max_seq_length(path if path.is_dir() else path.parent)
    if limit is not None:
        current = tokenizer.model_max_length
        tokenizer.model_max_length = limit if current is None else min(current, limit)
    return tokenizer


def check_vocab_size(tokenizer: TextTokenizer, vocab_size: int, source: str = "the model") -> None:
    """Refuse a tokenizer that can produce ids the model's embedding table lacks.

    Raises
    ------
    ValueError
        ``tokenizer has N tokens but the model's vocab_size is M``, naming both sources.
    """
    n_tokens = max(tokenizer.get_vocab().values()) + 1
    if n_tokens > vocab_size:
        raise ValueError(f"tokenizer {tokenizer.source} has {n_tokens:,} tokens but the model's vocab_size is "
                         f"{vocab_size:,} ({source}); the tokenizer does not belong to this model")


def embedding_max_len(model: Any, tokenizer: TextTokenizer) -> int:
    """Where :func:`sentence_embeddings` truncates: the model's ``max_len``, or the tokenizer's
    ``model_max_length`` when smaller (as ``sentence-transformers``)."""
    limit = model.config.max_len
    if tokenizer.model_max_length is not None:
        limit = min(limit, tokenizer.model_max_length)
    return limit


@dataclass
class Encoded:
    """A padded batch: ``input_ids``, ``attention_mask``, ``token_type_ids`` (B, T) int64, and
    for each text its length before truncation (``lengths``) and whether it was truncated."""

    input_ids: Tensor
    attention_mask: Tensor
    token_type_ids: Tensor
    lengths: list[int]
    truncated: list[bool]


def _check_utf8(texts: list[str]) -> None:
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            continue  # the tokenizer names the type
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"text {i + 1} {_quote(text)} is not valid UTF-8 (character {exc.start + 1} is "
                             f"{text[exc.start]!r}, undecodable bytes such as a Latin-1 command line "
                             "gives); pass UTF-8 text") from None


def encode(tokenizer: TextTokenizer, texts: list[str], max_len: int, pad_token_id: int | None = None) -> Encoded:
    """``[CLS] text [SEP]`` for each text, truncated to ``max_len`` ids (the final [SEP] kept)
    and right-padded (with the tokenizer's [PAD] unless ``pad_token_id`` is given) by the one
    padded-batch builder, :func:`gicho.data.text.pad_batch`.

    Raises
    ------
    ValueError
        When ``texts`` is empty, or a text is not valid UTF-8 (lone surrogates, as Python
        decodes bytes that are not UTF-8 in a command line).
    """
    if not texts:
        raise ValueError("argument `texts` is empty; give at least one text")
    texts = list(texts)
    _check_utf8(texts)
    lengths = [len(e["input_ids"]) for e in tokenizer.encode_batch(texts)]
    encodings = tokenizer.encode_batch(texts, max_len=max_len)
    batch = pad_batch(encodings, tokenizer.pad_id if pad_token_id is None else pad_token_id)  # (B, T) each
    return Encoded(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], lengths,
                   [n > max_len for n in lengths])


def _warn_truncated(texts: list[str], lengths: list[int], truncated: list[bool], max_len: int, why: str) -> None:
    cut = [i for i, flag in enumerate(truncated) if flag]
    if not cut:
        return
    named = "; ".join(f"text {i + 1} {_quote(texts[i])}, {lengths[i]:,} tokens" for i in cut[:LISTED_TEXTS])
    more = f"; and {len(cut) - LISTED_TEXTS} more" if len(cut) > LISTED_TEXTS else ""
    warnings.warn(f"{len(cut)} text(s) longer than max_len={max_len} tokens ({why}) truncated to it: "
                  f"{named}{more}", UserWarning, stacklevel=3)


def count_masks(tokenizer: TextTokenizer, text: str, max_len: int) -> tuple[int, int]:
    """The [MASK] tokens of ``text``, and how many of them lie within ``max_len`` tokens.

    Raises
    ------
    ValueError
        When ``text`` has no [MASK] (or the tokenizer does not treat "[MASK]" as its mask
        token), or truncation at ``max_len`` cuts off every one.
    """
    ids = tokenizer.encode(text)["input_ids"]
    n_masks = ids.count(tokenizer.mask_id)
    if n_masks == 0:
        if "[MASK]" in text:
            raise ValueError(f"[MASK] is not a special token of the tokenizer {tokenizer.source}: it splits the "
                             f"[MASK] of text {_quote(text)} into {tokenizer.tokenize('[MASK]')}")
        raise ValueError(f"text {_quote(text)} has no [MASK] token; write [MASK] where a word is to be predicted")
    kept = n_masks if len(ids) <= max_len else (
        tokenizer.encode(text, max_len=max_len)["input_ids"].count(tokenizer.mask_id))
    if kept == 0:
        raise ValueError(f"the [MASK] of text {_quote(text)} was cut off by truncation at max_len={max_len} "
                         f"tokens (the text has {len(ids):,}); move it nearer the start or shorten the text")
    return n_masks, kept


@torch.no_grad()
def fill_mask(model: Any, tokenizer: TextTokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """The ``top_k`` tokens (with probabilities) for each [MASK] of ``text``, left to right.

    ``model`` is a :class:`gicho.models.bert.BertForMaskedLM`. A text longer than the model's
    ``max_len`` is truncated with a warning; [MASK]s cut off with it are named in the warning.

    Raises
    ------
    ValueError
        When ``text`` has no [MASK] (or the tokenizer does not treat "[MASK]" as its mask
        token), when truncation at ``max_len`` cut off every [MASK], or ``top_k`` < 1.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"argument `top_k` must be an integer >= 1; got {top_k!r}")
    max_len = model.config.max_len
    n_masks, kept = count_masks(tokenizer, text, max_len)
    batch = encode(tokenizer, [text], max_len)
    where = (batch.input_ids[0] == tokenizer.mask_id).nonzero().flatten()  # (M,) = kept
    if batch.truncated[0]:
        lost = f", which cut off {n_masks - kept} of its {n_masks} [MASK]s" if n_masks > kept else ""
        warnings.warn(f"text {_quote(text)} has {batch.lengths[0]:,} tokens, more than max_len={max_len}: "
                      f"truncated{lost}", UserWarning, stacklevel=2)
    logits = model(batch.input_ids, batch.attention_mask, batch.token_type_ids)["logits"][0]  # (T, V)
    probs = torch.softmax(logits[where].float(), dim=-1)  # (M, V)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    return [[(tokenizer.id_to_token(int(i)), float(p)) for p, i in zip(ps, ids, strict=True)]
            for ps, ids in zip(top.values, top.indices, strict=True)]


@torch.no_grad()
def sentence_embeddings(model: Any, tokenizer: TextTokenizer, texts: list[str], batch_size: int = 32,
                        max_len: int | None = None,
                        on_batch: Callable[[int], None] | None = None) -> tuple[Tensor, list[bool]]:
    """Normalised mean-pooled embeddings (N, D) float32 of ``texts`` and which were truncated.

    ``on_batch(n)`` is called after each batch of n texts (``gicho embed``'s progress bar).

    ``model`` is any BERT head (:class:`gicho.models.bert.BertPreTrainedModel`). Texts longer
    than ``max_len`` tokens (default :func:`embedding_max_len`: 256 for all-MiniLM-L6-v2, as
    ``sentence-transformers``) are truncated, with one warning naming them.

    Raises
    ------
    ValueError
        A text that is not valid UTF-8; embeddings that are not finite (NaN or infinite:
        damaged weights), naming the texts.
    """
    texts = list(texts)
    limit = embedding_max_len(model, tokenizer) if max_len is None else max_len
    out, truncated, lengths = [], [], []
    for start in range(0, len(texts), batch_size):
        batch = encode(tokenizer, texts[start:start + batch_size], limit)
        out.append(model.embed(batch.input_ids, batch.attention_mask, batch.token_type_ids).float())
        truncated.extend(batch.truncated)
        lengths.extend(batch.lengths)
        if on_batch is not None:
            on_batch(len(batch.lengths))
    embeddings = torch.cat(out)
    bad = (~torch.isfinite(embeddings).all(dim=1)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"the model gave non-finite (NaN or infinite) embeddings for {len(bad)} of {len(texts)} "
                         f"text(s), text {bad[0] + 1} {_quote(texts[bad[0]])} first; its weights may be damaged")
    _warn_truncated(texts, lengths, truncated, limit, _limit_reason(model, tokenizer, limit, max_len))
    return embeddings, truncated


def _limit_reason(model: Any, tokenizer: TextTokenizer, limit: int, max_len: int | None) -> str:
    """Where a truncation limit comes from, for the warning."""
    if max_len is not None:
        return "as asked"
    if limit == model.config.max_len:
        return "the model's position table"
    if (Path(tokenizer.source).parent / SENTENCE_CONFIG).is_file():
        return f"max_seq_length of {SENTENCE_CONFIG}, as sentence-transformers"
    return "the tokenizer's model_max_length"


def save_tokenizer_extras(directory: Path, info: dict[str, Any]) -> None:
    """A BERT task's ``save_extras``: the tokenizer beside the weights."""
    info["tokenizer"].save(directory)


def load_tokenizer_extras(directory: Path) -> dict[str, Any]:
    """A BERT task's ``load_extras``: the tokenizer saved beside the weights."""
    return {"tokenizer": load_tokenizer(directory)}
