"""Text in, BERT out: fill-mask and sentence embeddings over a checkpoint and its tokenizer.

What ``gicho fill-mask``, ``gicho embed`` and the ``mlm-bert`` task run (the CLI prints). The
tokenizer is gicho's one WordPiece reader, :func:`gicho.data.text.load_tokenizer` (a
checkpoint's ``tokenizer.json`` or ``vocab.txt``; ids equal ``transformers``' tokenizer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gicho.data.text import TextTokenizer, load_tokenizer

__all__ = ["Encoded", "encode", "fill_mask", "load_tokenizer", "load_tokenizer_extras", "save_tokenizer_extras",
           "sentence_embeddings"]


@dataclass
class Encoded:
    """A padded batch: ``input_ids``, ``attention_mask``, ``token_type_ids`` (B, T) int64, and
    for each text its length before truncation (``lengths``) and whether it was truncated."""

    input_ids: Tensor
    attention_mask: Tensor
    token_type_ids: Tensor
    lengths: list[int]
    truncated: list[bool]


def encode(tokenizer: TextTokenizer, texts: list[str], max_len: int, pad_token_id: int | None = None) -> Encoded:
    """``[CLS] text [SEP]`` for each text, truncated to ``max_len`` ids (the final [SEP] kept)
    and right-padded (with the tokenizer's [PAD] unless ``pad_token_id`` is given).

    Raises
    ------
    ValueError
        When ``texts`` is empty.
    """
    if not texts:
        raise ValueError("argument `texts` is empty; give at least one text")
    lengths = [len(e["input_ids"]) for e in tokenizer.encode_batch(list(texts))]
    encodings = tokenizer.encode_batch(list(texts), max_len=max_len)
    pad = tokenizer.pad_id if pad_token_id is None else pad_token_id
    T = max(len(e["input_ids"]) for e in encodings)
    ids = torch.full((len(texts), T), pad, dtype=torch.long)
    mask = torch.zeros((len(texts), T), dtype=torch.long)
    types = torch.zeros((len(texts), T), dtype=torch.long)
    for i, e in enumerate(encodings):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        mask[i, :n] = 1
        types[i, :n] = torch.tensor(e["token_type_ids"])
    return Encoded(ids, mask, types, lengths, [n > max_len for n in lengths])


@torch.no_grad()
def fill_mask(model: Any, tokenizer: TextTokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """The ``top_k`` tokens (with probabilities) for each [MASK] of ``text``, left to right.

    ``model`` is a :class:`gicho.models.bert.BertForMaskedLM`.

    Raises
    ------
    ValueError
        When ``text`` has no [MASK], or ``top_k`` < 1.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"argument `top_k` must be an integer >= 1; got {top_k!r}")
    batch = encode(tokenizer, [text], model.config.max_len)
    where = (batch.input_ids[0] == tokenizer.mask_id).nonzero().flatten()  # (M,)
    if len(where) == 0:
        raise ValueError(f"text {text!r} has no [MASK] token; write [MASK] where a word is to be predicted")
    logits = model(batch.input_ids, batch.attention_mask, batch.token_type_ids)["logits"][0]  # (T, V)
    probs = torch.softmax(logits[where].float(), dim=-1)  # (M, V)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    return [[(tokenizer.id_to_token(int(i)), float(p)) for p, i in zip(ps, ids, strict=True)]
            for ps, ids in zip(top.values, top.indices, strict=True)]


@torch.no_grad()
def sentence_embeddings(model: Any, tokenizer: TextTokenizer, texts: list[str],
                        batch_size: int = 32) -> tuple[Tensor, list[bool]]:
    """Normalised mean-pooled embeddings (N, D) float32 of ``texts`` and which were truncated.

    ``model`` is any BERT head (:class:`gicho.models.bert.BertPreTrainedModel`).
    """
    out, truncated = [], []
    for start in range(0, len(texts), batch_size):
        batch = encode(tokenizer, texts[start:start + batch_size], model.config.max_len)
        out.append(model.embed(batch.input_ids, batch.attention_mask, batch.token_type_ids).float())
        truncated.extend(batch.truncated)
    return torch.cat(out), truncated


def save_tokenizer_extras(directory: Path, info: dict[str, Any]) -> None:
    """A BERT task's ``save_extras``: the tokenizer beside the weights."""
    info["tokenizer"].save(directory)


def load_tokenizer_extras(directory: Path) -> dict[str, Any]:
    """A BERT task's ``load_extras``: the tokenizer saved beside the weights."""
    return {"tokenizer": load_tokenizer(directory)}
