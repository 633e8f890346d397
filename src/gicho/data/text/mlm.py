"""Masked-language-model data: documents packed into fixed-length blocks, and the masking collator.

Packing (RoBERTa's FULL-SENTENCES; Liu et al., 2019, §4.2): documents are tokenized without
special tokens, each followed by [SEP], concatenated into one stream and cut into blocks of
``block_size`` ids, each ``[CLS]`` + ``block_size - 1`` stream ids. Only the last block can
be short, so batches of blocks carry almost no padding. :class:`PackedBlocks` keeps the blocks
in memory; :class:`MemmapBlocks` writes the same blocks to a ``.npy`` file as they are packed
and reads them through a memory map, for corpora whose blocks outgrow memory.

Masking (Devlin et al., 2019, §3.1): every real, non-special token is selected with
probability ``mask_prob``; a selected token becomes [MASK] with probability
``replace_with_mask``, a random token with probability ``replace_with_random``, and stays
unchanged otherwise. Labels hold the original id at selected positions and -100 elsewhere.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gicho._validation import IGNORE_INDEX, check_positive, check_probability, describe
from gicho.data._seeded import SeededCollate
from gicho.data.text.batching import pad_batch
from gicho.data.text.tokenizer import TextTokenizer

__all__ = ["DEFAULT_BLOCK_SIZE", "MASK_PROB", "REPLACE_WITH_MASK", "REPLACE_WITH_RANDOM", "HeldOutMasks", "MLMCollator", "MaskOrPad", "MemmapBlocks", "PackedBlocks",
           "iter_packed_blocks"]

MASK_PROB = 0.15  # BERT: 15% of the tokens are selected for prediction ...
REPLACE_WITH_MASK = 0.8  # ... of which 80% become [MASK],
REPLACE_WITH_RANDOM = 0.1  # 10% a random token, and the rest (10%) stay as they are
DEFAULT_BLOCK_SIZE = 128
ENCODE_CHUNK = 1_000  # documents tokenized per call while packing
WRITE_CHUNK = 4_096  # blocks that MemmapBlocks holds before writing them
BLOCKS_FILE = "blocks.npy"


def iter_packed_blocks(documents: Iterable[Sequence[int]], block_size: int, cls_id: int, sep_id: int,
                       drop_last: bool = False) -> Iterator[list[int]]:
    """Pack token-id sequences into blocks ``[CLS] d1 [SEP] d2 [SEP] d3...`` of ``block_size``.

    Parameters
    ----------
    documents : iterable of sequence of int
        The documents' ids without special tokens (streamed; empty ones are skipped).
    block_size : int
        Ids per block, [CLS] included (>= 2).
    cls_id, sep_id : int
    drop_last : bool, default=False
        Drop the final short block instead of yielding it.

    Yields
    ------
    list of int
        ``block_size`` ids each (the last may be shorter). Removing each block's leading
        [CLS] and joining them gives every document in order, each followed by [SEP].
    """
    check_positive(block_size, "block_size", integer=True)
    if block_size < 2:
        raise ValueError(f"argument `block_size` must be >= 2 ([CLS] and one token); got {block_size}")
    room = block_size - 1
    buffer: list[int] = []
    for doc in documents:
        if len(doc) == 0:
            continue
        buffer.extend(int(i) for i in doc)
        buffer.append(sep_id)
        while len(buffer) >= room:
            yield [cls_id, *buffer[:room]]
            del buffer[:room]
    if buffer and not drop_last:
        yield [cls_id, *buffer]


def _no_blocks_error(n_tokens: int, block_size: int) -> ValueError:
    """Why packing gave no block: an empty corpus, or (with ``drop_last``) too few tokens."""
    if n_tokens == 0:
        return ValueError("the corpus gave no tokens to pack (is it empty?)")
    return ValueError(f"the corpus gave {n_tokens} tokens, fewer than one block of block_size={block_size} "
                      "(with [CLS] and [SEP]); give more text or a smaller block_size")


class PackedBlocks(torch.utils.data.Dataset):
    """A corpus tokenized and packed into blocks for MLM pretraining (map-style).

    The documents are streamed and tokenized in chunks; the blocks are kept as one int32
    tensor (4 bytes per token).

    Parameters
    ----------
    corpus : iterable of Document or str
        E.g. :func:`~gicho.data.text.python_docs_corpus` or a
        :class:`~gicho.data.text.TextCorpus`.
    tokenizer : TextTokenizer
    block_size : int, default=128
    drop_last : bool, default=False

    Items are ``{"input_ids": (L,) int64}`` (L = ``block_size`` except maybe for the last);
    batch them with :class:`MLMCollator`.
    """

    def __init__(self, corpus: Iterable[Any], tokenizer: TextTokenizer, block_size: int = DEFAULT_BLOCK_SIZE,
                 drop_last: bool = False):
        self.block_size = block_size
        counted = {"tokens": 0}

        def counting(stream: Iterator[list[int]]) -> Iterator[list[int]]:
            for ids in stream:
                counted["tokens"] += len(ids)
                yield ids

        blocks = list(iter_packed_blocks(counting(self._token_stream(corpus, tokenizer)), block_size,
                                         tokenizer.cls_id, tokenizer.sep_id, drop_last))
        if not blocks:
            raise _no_blocks_error(counted["tokens"], block_size)
        self.last_length = len(blocks[-1])
        blocks[-1] = blocks[-1] + [tokenizer.pad_id] * (block_size - len(blocks[-1]))
        self.blocks = torch.tensor(blocks, dtype=torch.int32)  # (N, block_size)
        self.n_tokens = (len(blocks) - 1) * block_size + self.last_length

    @staticmethod
    def _token_stream(corpus: Iterable[Any], tokenizer: TextTokenizer) -> Iterator[list[int]]:
        chunk: list[str] = []
        for item in corpus:
            text = item if isinstance(item, str) else getattr(item, "text", None)
            if not isinstance(text, str):
                raise TypeError(f"argument `corpus` must yield str or documents with .text; got {describe(item)}")
            chunk.append(text)
            if len(chunk) == ENCODE_CHUNK:
                yield from (e["input_ids"] for e in tokenizer.encode_batch(chunk, add_special_tokens=False))
                chunk = []
        if chunk:
            yield from (e["input_ids"] for e in tokenizer.encode_batch(chunk, add_special_tokens=False))

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        n = self.last_length if index in (-1, len(self) - 1) else self.block_size
        return {"input_ids": self.blocks[index, :n].long()}

    def token_counts(self, minlength: int = 0) -> torch.Tensor:
        """How often each id occurs in the blocks (the last block's padding included), int64."""
        return torch.bincount(self.blocks.flatten().long(), minlength=minlength)


class MemmapBlocks(PackedBlocks):
    """:class:`PackedBlocks` on disk: the same blocks, written to a ``.npy`` file while they are
    packed and read through a memory map (copy-on-write), so memory holds a few thousand blocks
    at a time however large the corpus.

    Parameters
    ----------
    corpus : iterable of Document or str
        Streamed once (e.g. :meth:`gicho.data.text.datasets_corpus.DatasetsCorpus.texts`).
    tokenizer : TextTokenizer
    block_size : int, default=128
    drop_last : bool, default=False
    directory : str or Path, optional
        Where ``blocks.npy`` is written. Default: a new temporary directory (``TMPDIR``) that
        this object owns and removes once it is garbage-collected or the process exits.

    ``blocks`` is an int32 tensor of shape (N, ``block_size``) over the memory map, equal to
    :class:`PackedBlocks`' for the same arguments; so are the items, ``last_length``,
    ``n_tokens`` and :meth:`token_counts` (counted while writing). A pickled copy (a spawned
    ``DataLoader`` worker) opens the same file again instead of copying the blocks.
    """

    def __init__(self, corpus: Iterable[Any], tokenizer: TextTokenizer, block_size: int = DEFAULT_BLOCK_SIZE,
                 drop_last: bool = False, directory: str | Path | None = None):
        check_positive(block_size, "block_size", integer=True)
        self.block_size = block_size
        owned = directory is None
        where = Path(tempfile.mkdtemp(prefix="gicho-blocks-")) if owned else Path(directory)
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(where), True) if owned else None
        self.path = where / BLOCKS_FILE
        try:
            self._write(corpus, tokenizer, drop_last)
        except BaseException:
            if self._cleanup is not None:
                self._cleanup()
            raise
        self._open()

    def _write(self, corpus: Iterable[Any], tokenizer: TextTokenizer, drop_last: bool) -> None:
        size = self.block_size
        counts = np.zeros(0, dtype=np.int64)
        n_blocks, n_stream, last_length = 0, 0, size
        pending: list[list[int]] = []

        def flush(f: Any) -> None:
            nonlocal counts
            chunk = np.asarray(pending, dtype=np.int32)
            f.write(chunk.tobytes())
            found = np.bincount(chunk.ravel(), minlength=len(counts))
            found[: len(counts)] += counts
            counts = found
            pending.clear()

        def header(n: int) -> dict[str, Any]:
            return {"descr": np.lib.format.dtype_to_descr(np.dtype("<i4")), "fortran_order": False,
                    "shape": (n, size)}

        with open(self.path, "wb") as f:
            # numpy pads a header so that the first dimension can be rewritten in place later
            np.lib.format.write_array_header_1_0(f, header(0))
            data_offset = f.tell()
            stream = self._token_stream(corpus, tokenizer)

            def counting() -> Iterator[list[int]]:
                nonlocal n_stream
                for ids in stream:
                    n_stream += len(ids)
                    yield ids

            for block in iter_packed_blocks(counting(), size, tokenizer.cls_id, tokenizer.sep_id, drop_last):
                if len(block) < size:  # only the last block can be short
                    last_length = len(block)
                    block = block + [tokenizer.pad_id] * (size - len(block))
                pending.append(block)
                n_blocks += 1
                if len(pending) == WRITE_CHUNK:
                    flush(f)
            if pending:
                flush(f)
            if n_blocks == 0:
                raise _no_blocks_error(n_stream, size)
            f.seek(0)
            np.lib.format.write_array_header_1_0(f, header(n_blocks))
            if f.tell() != data_offset:  # pragma: no cover - numpy always leaves room for the shape
                raise RuntimeError(f"{self.path}: the .npy header of {n_blocks} blocks does not fit the room "
                                   "left for it")
        self.last_length = last_length
        self.n_tokens = (n_blocks - 1) * size + last_length
        self._counts = counts

    def _open(self) -> None:
        mapped = np.load(self.path, mmap_mode="c")  # copy-on-write: torch wants a writable array
        self.blocks = torch.from_numpy(mapped)  # (N, block_size) int32, shares the map

    def token_counts(self, minlength: int = 0) -> torch.Tensor:
        counts = torch.from_numpy(self._counts.copy())
        if len(counts) < minlength:
            counts = torch.cat([counts, counts.new_zeros(minlength - len(counts))])
        return counts

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("blocks", "_cleanup")}
        state["_cleanup"] = None  # a copy never removes the original's file
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()

    def close(self) -> None:
        """Drop the memory map and remove the temporary directory now (when this object owns it)."""
        self.blocks = None
        if self._cleanup is not None:
            self._cleanup()


class MLMCollator(SeededCollate):
    """Pad a batch and mask it for masked-language modelling; new masks on every call.

    Parameters
    ----------
    tokenizer : TextTokenizer
        Gives the special ids (never selected), [MASK], [PAD], the vocabulary size and, for
        whole-word masking, which ids are ``##`` continuation pieces.
    mask_prob : float, default=0.15
        Probability that a real, non-special token is selected for prediction.
    replace_with_mask : float, default=0.8
        Probability that a selected token is replaced by [MASK].
    replace_with_random : float, default=0.1
        Probability that a selected token is replaced by a random non-special token (which
        may by chance be the original); the remaining ``1 - replace_with_mask -
        replace_with_random`` stay unchanged.
    whole_word : bool, default=False
        Select whole words: a word's ``##`` pieces are selected together with its first
        piece (each word with probability ``mask_prob``, so the expected share of selected
        tokens is still ``mask_prob``).
    seed : int, default=0
        Seeds the collator's own generator. Every call draws fresh masks, so every epoch
        sees new masks; inside ``DataLoader`` workers the generator is re-seeded from
        ``(seed, worker seed)`` so that workers never repeat each other's masks.

    Calling it on items ``{"input_ids": (L_i,), "token_type_ids": (L_i,) optional}`` returns
    ``input_ids`` (masked), ``token_type_ids``, ``attention_mask`` and ``labels``: (B, T)
    int64, T = max L_i; labels are -100 except at selected positions.
    """

    def __init__(self, tokenizer: TextTokenizer, mask_prob: float = MASK_PROB,
                 replace_with_mask: float = REPLACE_WITH_MASK, replace_with_random: float = REPLACE_WITH_RANDOM,
                 whole_word: bool = False, seed: int = 0):
        self.mask_prob = check_probability(mask_prob, "mask_prob")
        self.replace_with_mask = check_probability(replace_with_mask, "replace_with_mask")
        self.replace_with_random = check_probability(replace_with_random, "replace_with_random")
        if replace_with_mask + replace_with_random > 1:
            raise ValueError(f"arguments `replace_with_mask` + `replace_with_random` must be <= 1; got "
                             f"{replace_with_mask} + {replace_with_random} = {replace_with_mask + replace_with_random}")
        self.whole_word = bool(whole_word)
        self.pad_id, self.mask_id = tokenizer.pad_id, tokenizer.mask_id
        self.vocab_size = tokenizer.vocab_size
        special = torch.zeros(self.vocab_size, dtype=torch.bool)
        special[list(tokenizer.special_ids)] = True
        self._special = special  # (V,)
        self._random_ids = torch.nonzero(~special).flatten()  # replacement candidates
        self._continuation = torch.tensor(tokenizer.continuation_mask(), dtype=torch.bool)  # (V,)
        self._seed_generator(seed)

    def __call__(self, items: Sequence[Mapping[str, Any]] | Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        items = [it if isinstance(it, Mapping) else {"input_ids": it} for it in items]
        batch = pad_batch(items, self.pad_id)
        batch.pop("labels", None)
        input_ids, labels = self.mask(batch["input_ids"], batch["attention_mask"])
        return {**batch, "input_ids": input_ids, "labels": labels}

    def mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask a padded batch.

        Parameters
        ----------
        input_ids : (B, T) int64
        attention_mask : (B, T), optional
            1 at real tokens; default: positions not equal to [PAD].

        Returns
        -------
        masked_ids, labels : (B, T) int64
        """
        if input_ids.dim() != 2:
            raise ValueError(f"argument `input_ids` must have shape (B, T); got {tuple(input_ids.shape)}")
        if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= self.vocab_size):
            raise ValueError(f"argument `input_ids` holds ids outside the vocabulary [0, {self.vocab_size}): "
                             f"min {int(input_ids.min())}, max {int(input_ids.max())}")
        g = self._rng()
        real = input_ids != self.pad_id if attention_mask is None else attention_mask.bool()
        maskable = real & ~self._special[input_ids]  # (B, T)
        u = torch.rand(input_ids.shape, generator=g)  # (B, T)
        if self.whole_word:
            # every position takes the draw of its word's first piece
            T = input_ids.shape[1]
            starts = ~self._continuation[input_ids]
            pos = torch.arange(T).expand_as(input_ids)
            word_start = torch.where(starts, pos, torch.zeros_like(pos)).cummax(dim=1).values  # (B, T)
            u = u.gather(1, word_start)
        selected = maskable & (u < self.mask_prob)
        labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
        action = torch.rand(input_ids.shape, generator=g)  # (B, T)
        to_mask = selected & (action < self.replace_with_mask)
        to_random = selected & (action >= self.replace_with_mask) & (
            action < self.replace_with_mask + self.replace_with_random)
        random_ids = self._random_ids[torch.randint(len(self._random_ids), input_ids.shape, generator=g)]
        masked = torch.where(to_mask, torch.full_like(input_ids, self.mask_id), input_ids)
        masked = torch.where(to_random, random_ids, masked)
        return masked, labels

    def __repr__(self) -> str:
        return (f"MLMCollator(mask_prob={self.mask_prob}, replace_with_mask={self.replace_with_mask}, "
                f"replace_with_random={self.replace_with_random}, whole_word={self.whole_word}, seed={self.seed})")


class HeldOutMasks(torch.utils.data.Dataset):
    """Held-out blocks masked once, with ``collator``'s own seed: every evaluation scores the
    same tokens, so a reloaded model's evaluation reproduces the run's; items carry ``labels``."""

    def __init__(self, blocks: Any, collator: Any) -> None:
        ids = [blocks[i]["input_ids"] for i in range(len(blocks))]
        self.items = []
        for item in ids:
            masked, labels = collator.mask(item[None, :])
            self.items.append({"input_ids": masked[0], "labels": labels[0]})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


class MaskOrPad:
    """Training blocks get fresh masks; held-out ones (with labels) are only padded."""

    def __init__(self, collator: Any, pad_id: int) -> None:
        self.collator, self.pad_id = collator, pad_id

    def state_dict(self) -> dict[str, Any]:
        """The masking collator's generator state (see :meth:`MLMCollator.state_dict`)."""
        return self.collator.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.collator.load_state_dict(state)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return pad_batch(items, self.pad_id) if "labels" in items[0] else self.collator(items)
