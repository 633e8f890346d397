"""MemmapBlocks: the blocks of PackedBlocks, written to a .npy file and memory-mapped (issue 21, item 5)."""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pytest
import torch

from gicho.data.text import MemmapBlocks, PackedBlocks, train_wordpiece
from gicho.data.text import mlm as mlm_module

TEXTS = [f"Paragraph {i} says that the for statement loops {'over items ' * (i % 7)}and stops." for i in range(60)]


@pytest.fixture(scope="module")
def tok():
    return train_wordpiece(TEXTS, vocab_size=120)


def _assert_same(disk, memory):
    assert torch.equal(disk.blocks, memory.blocks) and disk.blocks.dtype == torch.int32
    assert (len(disk), disk.last_length, disk.n_tokens) == (len(memory), memory.last_length, memory.n_tokens)
    for i in (0, len(memory) - 1, -1):
        assert torch.equal(disk[i]["input_ids"], memory[i]["input_ids"])
        assert disk[i]["input_ids"].dtype == torch.int64
    assert torch.equal(disk.token_counts(500), memory.token_counts(500))
    assert torch.equal(disk.token_counts(), memory.token_counts())


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("block_size", [8, 13, 64])
def test_the_same_blocks_as_packed_blocks(tok, block_size, drop_last, monkeypatch):
    monkeypatch.setattr(mlm_module, "WRITE_CHUNK", 5)  # several writes
    disk = MemmapBlocks(iter(TEXTS), tok, block_size, drop_last=drop_last)  # a one-pass stream
    _assert_same(disk, PackedBlocks(TEXTS, tok, block_size, drop_last=drop_last))
    stored = np.load(disk.path)  # a plain .npy file
    assert stored.shape == (len(disk), block_size) and np.array_equal(stored, disk.blocks.numpy())


def test_a_pickled_copy_reads_the_same_file_and_only_the_owner_removes_it(tok, tmp_path):
    disk = MemmapBlocks(TEXTS, tok, 16)
    directory = disk.path.parent
    assert directory.name.startswith("gicho-blocks-")
    copy = pickle.loads(pickle.dumps(disk))  # what a spawned DataLoader worker gets
    assert len(pickle.dumps(disk)) < disk.blocks.numel()  # the blocks themselves are not pickled
    _assert_same(copy, disk)
    del copy
    gc.collect()
    assert disk.path.is_file()
    del disk
    gc.collect()
    assert not directory.exists()
    given = MemmapBlocks(TEXTS, tok, 16, directory=tmp_path)  # a directory of the caller's: kept
    assert given.path == tmp_path / "blocks.npy"
    given.close()
    assert (tmp_path / "blocks.npy").is_file()


def test_errors_leave_no_directory(tok, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    for corpus, drop_last in ((["", "  "], False), (["paragraph"], True)):
        with pytest.raises(ValueError) as in_memory:
            PackedBlocks(corpus, tok, 16, drop_last=drop_last)
        with pytest.raises(ValueError) as on_disk:  # the same words as PackedBlocks
            MemmapBlocks(corpus, tok, 16, drop_last=drop_last)
        assert str(on_disk.value) == str(in_memory.value)
    assert list(tmp_path.iterdir()) == []


def test_a_dataloader_batches_it(tok):
    disk = MemmapBlocks(TEXTS, tok, 16, drop_last=True)
    loader = torch.utils.data.DataLoader(disk, batch_size=4, collate_fn=lambda items: torch.stack(
        [it["input_ids"] for it in items]))
    assert torch.equal(torch.cat(list(loader)), disk.blocks.long())
