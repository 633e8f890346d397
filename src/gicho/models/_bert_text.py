"""Text in, BERT out: a checkpoint's WordPiece tokenizer, fill-mask and sentence embeddings.

What ``gicho fill-mask`` and ``gicho embed`` run (the CLI prints). The tokenizer is read with
the ``tokenizers`` library from the checkpoint directory: ``tokenizer.json`` as it is, or a
WordPiece over ``vocab.txt`` with BERT's normaliser (lower-casing as ``tokenizer_config.json``
says, default on), pre-tokeniser and ``[CLS] A [SEP]`` / ``[CLS] A [SEP] B [SEP]`` template —
the ids ``transformers``' ``BertTokenizerFast`` gives on the same text.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gicho.weights import CheckpointError

__all__ = ["Encoded", "encode", "fill_mask", "load_tokenizer", "sentence_embeddings"]

TOKENIZER_NAME = "tokenizer.json"
VOCAB_NAME = "vocab.txt"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
SPECIAL = {"unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "mask": "[MASK]"}


def load_tokenizer(directory: str | os.PathLike):  # -> tokenizers.Tokenizer
    """The tokenizer of a BERT checkpoint directory, without padding or truncation set.

    Raises
    ------
    CheckpointError
        When the directory has neither ``tokenizer.json`` nor ``vocab.txt``, or one is unreadable,
        or the vocabulary lacks BERT's special tokens.
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    directory = Path(directory)
    if (directory / TOKENIZER_NAME).is_file():
        try:
            tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_NAME))
        except Exception as exc:  # the Rust side raises its own Exception type
            raise CheckpointError(f"tokenizer {directory / TOKENIZER_NAME} is unreadable: {exc}") from None
    elif (directory / VOCAB_NAME).is_file():
        lowercase = True
        if (directory / TOKENIZER_CONFIG_NAME).is_file():
            try:
                lowercase = bool(json.loads((directory / TOKENIZER_CONFIG_NAME).read_text("utf-8"))
                                 .get("do_lower_case", True))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
                raise CheckpointError(f"{directory / TOKENIZER_CONFIG_NAME} is not readable JSON: {exc}") from None
        try:
            tokenizer = Tokenizer(WordPiece.from_file(str(directory / VOCAB_NAME), unk_token=SPECIAL["unk"]))
        except Exception as exc:
            raise CheckpointError(f"vocabulary {directory / VOCAB_NAME} is unreadable: {exc}") from None
        # special tokens are matched whole before normalisation ("[MASK]" is not "[", "mask", "]")
        tokenizer.add_special_tokens([t for t in SPECIAL.values() if tokenizer.token_to_id(t) is not None])
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        cls_id, sep_id = tokenizer.token_to_id(SPECIAL["cls"]), tokenizer.token_to_id(SPECIAL["sep"])
        if cls_id is None or sep_id is None:
            raise CheckpointError(f"vocabulary {directory / VOCAB_NAME} lacks [CLS] or [SEP]")
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    else:
        raise CheckpointError(f"tokenizer of {directory} is missing: it has neither {TOKENIZER_NAME} "
                              f"nor {VOCAB_NAME}")
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


@dataclass
class Encoded:
    """A padded batch: ``input_ids``, ``attention_mask``, ``token_type_ids`` (B, T) int64, and
    for each text its length before truncation (``lengths``) and whether it was truncated."""

    input_ids: Tensor
    attention_mask: Tensor
    token_type_ids: Tensor
    lengths: list[int]
    truncated: list[bool]


def encode(tokenizer, texts: list[str], max_len: int, pad_token_id: int = 0) -> Encoded:
    """Tokenize ``texts`` (each ``[CLS] text [SEP]``), truncated to ``max_len`` tokens (the
    final [SEP] kept) and right-padded with ``pad_token_id``.

    Raises
    ------
    ValueError
        When ``texts`` is empty.
    """
    if not texts:
        raise ValueError("argument `texts` is empty; give at least one text")
    full = tokenizer.encode_batch(list(texts))
    lengths = [len(e.ids) for e in full]
    tokenizer.enable_truncation(max_length=max_len)
    try:
        encodings = tokenizer.encode_batch(list(texts))
    finally:
        tokenizer.no_truncation()
    T = max(len(e.ids) for e in encodings)
    ids = torch.full((len(texts), T), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(texts), T), dtype=torch.long)
    types = torch.zeros((len(texts), T), dtype=torch.long)
    for i, e in enumerate(encodings):
        n = len(e.ids)
        ids[i, :n] = torch.tensor(e.ids)
        mask[i, :n] = 1
        types[i, :n] = torch.tensor(e.type_ids)
    return Encoded(ids, mask, types, lengths, [n > max_len for n in lengths])


@torch.no_grad()
def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """The ``top_k`` tokens (with probabilities) for each [MASK] of ``text``, left to right.

    ``model`` is a :class:`gicho.models.bert.BertForMaskedLM`.

    Raises
    ------
    ValueError
        When the vocabulary has no [MASK] token or ``text`` has none, or ``top_k`` < 1.
    """
    mask_id = tokenizer.token_to_id(SPECIAL["mask"])
    if mask_id is None:
        raise ValueError("the tokenizer's vocabulary has no [MASK] token")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"argument `top_k` must be an integer >= 1; got {top_k!r}")
    batch = encode(tokenizer, [text], model.config.max_len, model.config.pad_token_id or 0)
    where = (batch.input_ids[0] == mask_id).nonzero().flatten()  # (M,)
    if len(where) == 0:
        raise ValueError(f"text {text!r} has no [MASK] token; write [MASK] where a word is to be predicted")
    logits = model(batch.input_ids, batch.attention_mask, batch.token_type_ids)["logits"][0]  # (T, V)
    probs = torch.softmax(logits[where].float(), dim=-1)  # (M, V)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    return [[(tokenizer.id_to_token(int(i)), float(p)) for p, i in zip(ps, ids, strict=True)]
            for ps, ids in zip(top.values, top.indices, strict=True)]


@torch.no_grad()
def sentence_embeddings(model, tokenizer, texts: list[str], batch_size: int = 32) -> tuple[Tensor, list[bool]]:
    """Normalised mean-pooled embeddings (N, D) float32 of ``texts`` and which were truncated.

    ``model`` is any BERT head (:class:`gicho.models.bert.BertPreTrainedModel`).
    """
    out, truncated = [], []
    for start in range(0, len(texts), batch_size):
        batch = encode(tokenizer, texts[start:start + batch_size], model.config.max_len,
                       model.config.pad_token_id or 0)
        out.append(model.embed(batch.input_ids, batch.attention_mask, batch.token_type_ids).float())
        truncated.extend(batch.truncated)
    return torch.cat(out), truncated
