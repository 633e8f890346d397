"""Labelled text for fine-tuning BERT: examples, tasks, the tokenized dataset, split helpers.

A :class:`TextTask` holds the splits as lists of :class:`TextExample` and the label names;
:meth:`TextTask.datasets` tokenizes them into :class:`TextClassificationDataset` s (map-style,
dict items) whose ``collate_fn`` pads each batch to its longest sequence.

The tasks themselves are built next to this module:

* :mod:`~gicho.data.text.labelled_docs` — two tasks from Python's own docs:
  :func:`~gicho.data.text.docstring_topic_task` (which part of the standard library does a
  docstring come from? held out by top-level module) and
  :func:`~gicho.data.text.same_document_task` (do two sentences come from the same document?);
* :mod:`~gicho.data.text.labelled_csv` — a user's CSV file with columns ``text,label`` or
  ``text_a,text_b,label``: :func:`~gicho.data.text.read_text_csv` and
  :func:`~gicho.data.text.csv_task`.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gicho._validation import check_positive, check_probability, describe
from gicho.data.text.batching import PadCollator
from gicho.data.text.tokenizer import TextTokenizer

__all__ = [
    "DEFAULT_MAX_LEN",
    "TextClassificationDataset",
    "TextExample",
    "TextTask",
    "check_fractions",
    "describe_task",
    "stratified_sample",
]

DEFAULT_MAX_LEN = 128
ENCODE_CHUNK = 10_000  # texts tokenized at a time: bounds the Python lists alive at once


@dataclass(frozen=True)
class TextExample:
    """One labelled example: a text (or a pair of texts), its label index and its source."""

    text: str
    label: int
    text_pair: str | None = None
    source: str = ""


@dataclass
class TextTask:
    """Splits of labelled examples and the label names (``label_names[label]``).

    ``groups`` maps each split to the sources (modules, files) its examples come from.
    """

    splits: dict[str, list[TextExample]]
    label_names: tuple[str, ...]
    description: str = ""
    groups: dict[str, set[str]] = field(default_factory=dict)

    def datasets(self, tokenizer: TextTokenizer, max_len: int = DEFAULT_MAX_LEN
                 ) -> dict[str, TextClassificationDataset]:
        """Tokenize every non-empty split (see :class:`TextClassificationDataset`)."""
        return {name: TextClassificationDataset(examples, tokenizer, max_len, n_labels=len(self.label_names))
                for name, examples in self.splits.items() if examples}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        return f"TextTask({sizes}, labels={list(self.label_names)})"


class TextClassificationDataset(torch.utils.data.Dataset):
    """Tokenized examples for sequence classification (map-style).

    Parameters
    ----------
    examples : sequence of TextExample
    tokenizer : TextTokenizer
    max_len : int, default=128
        Texts are truncated to this many ids, [CLS] and [SEP] included (pairs lose tokens
        from the longer text first). Must not exceed the tokenizer's ``model_max_length``.
    n_labels : int, optional
        When given, every label must lie in ``[0, n_labels)``.

    Items are ``{"input_ids": (L,), "token_type_ids": (L,), "labels": ()}`` int64;
    ``collate_fn`` pads a list of items into ``input_ids``, ``token_type_ids``,
    ``attention_mask`` (B, T) and ``labels`` (B,). ``lengths`` lists every item's L (for
    :class:`~gicho.data.text.LengthBucketSampler`). The texts are tokenized in chunks and
    kept as one flat int32 tensor of ids (and one int8 tensor of segment ids) with offsets,
    not one tensor per item: a million rows take tens of MB, not gigabytes.
    """

    def __init__(self, examples: Sequence[TextExample], tokenizer: TextTokenizer, max_len: int = DEFAULT_MAX_LEN,
                 n_labels: int | None = None):
        check_positive(max_len, "max_len", integer=True)
        limit = tokenizer.model_max_length
        if limit is not None and max_len > limit:
            raise ValueError(f"argument `max_len` ({max_len}) exceeds the tokenizer's model_max_length ({limit})")
        self.examples = list(examples)
        if not self.examples:
            raise ValueError("argument `examples` is empty; a dataset needs at least one example")
        pairs = [ex.text_pair is not None for ex in self.examples]
        if any(pairs) and not all(pairs):
            raise ValueError("argument `examples` mixes single texts and text pairs; use one kind per dataset")
        for i, ex in enumerate(self.examples):
            if isinstance(ex.label, bool) or not isinstance(ex.label, int) or ex.label < 0 or (
                    n_labels is not None and ex.label >= n_labels):
                allowed = f"[0, {n_labels})" if n_labels is not None else "an integer >= 0"
                raise ValueError(f"example {i} has label {describe(ex.label)}; labels must lie in {allowed}")
        ids, types, self.lengths = [], [], []
        for start in range(0, len(self.examples), ENCODE_CHUNK):
            chunk = self.examples[start:start + ENCODE_CHUNK]
            texts_b = [str(ex.text_pair) for ex in chunk] if pairs[0] else None
            encoded = tokenizer.encode_batch([ex.text for ex in chunk], texts_b, max_len=max_len)
            self.lengths.extend(len(e["input_ids"]) for e in encoded)
            ids.append(torch.tensor([i for e in encoded for i in e["input_ids"]], dtype=torch.int32))
            types.append(torch.tensor([t for e in encoded for t in e["token_type_ids"]], dtype=torch.int8))
        self._ids, self._types = torch.cat(ids), torch.cat(types)  # (sum of L,)
        self._offsets = torch.cumsum(torch.tensor([0, *self.lengths], dtype=torch.long), 0)  # (N + 1,)
        self.labels = torch.tensor([ex.label for ex in self.examples], dtype=torch.long)
        self.collate_fn = PadCollator(tokenizer.pad_id)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = range(len(self))[index]  # negative indices; IndexError out of range
        start, end = int(self._offsets[index]), int(self._offsets[index + 1])
        return {"input_ids": self._ids[start:end].long(), "token_type_ids": self._types[start:end].long(),
                "labels": self.labels[index]}


# ---------------------------------------------------------------------------- splits
def check_fractions(valid_fraction: float, test_fraction: float) -> None:
    """Both fractions are probabilities and leave training some data (their sum is < 1)."""
    check_probability(valid_fraction, "valid_fraction")
    check_probability(test_fraction, "test_fraction")
    if valid_fraction + test_fraction >= 1:
        raise ValueError(f"arguments `valid_fraction` + `test_fraction` must be < 1 (training needs data); got "
                         f"{valid_fraction} + {test_fraction}")


def stratified_sample(examples: Sequence[TextExample], n: int, seed: int) -> list[TextExample]:
    """``n`` of ``examples``, each label kept in its share (largest remainders), drawn by ``seed``.

    The same (examples, n, seed) always give the same sample; the examples keep their order.

    Raises
    ------
    ValueError
        When ``n`` is not an integer in ``[1, len(examples)]``.
    """
    check_positive(n, "n", integer=True)
    if n > len(examples):
        raise ValueError(f"argument `n` ({n}) exceeds the {len(examples)} examples to sample from")
    by_label: dict[int, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_label[ex.label].append(i)
    shares = {label: n * len(idx) / len(examples) for label, idx in sorted(by_label.items())}
    quota = {label: int(share) for label, share in shares.items()}
    # the seats left go to the largest remainders (ties: the smaller label id)
    for label in sorted(shares, key=lambda k: (-(shares[k] - quota[k]), k))[: n - sum(quota.values())]:
        quota[label] += 1
    rng = random.Random(f"stratified:{seed}")
    chosen = [i for label in sorted(by_label) for i in rng.sample(by_label[label], quota[label])]
    return [examples[i] for i in sorted(chosen)]


def _label_counts(examples: Iterable[TextExample], n_labels: int) -> list[int]:
    counts = [0] * n_labels
    for ex in examples:
        counts[ex.label] += 1
    return counts


def describe_task(task: TextTask) -> dict[str, Any]:
    """Per-split sizes and label counts (for reports and tests)."""
    n = len(task.label_names)
    return {split: {"n": len(ex), "labels": dict(zip(task.label_names, _label_counts(ex, n), strict=True))}
            for split, ex in task.splits.items()}
