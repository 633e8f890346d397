"""gicho.tasks.bert_text.encode: BERT's padded batch comes from the one builder, gicho.data.text.pad_batch."""

from __future__ import annotations

import pytest
import torch

from gicho.data.text import pad_batch
from gicho.tasks.bert_text import encode, load_tokenizer

WORDS = ["the", "a", "break", "continue", "return", "statement", "exits", "loop", "for", "while", "."]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = range(5)
THE, LOOP, BREAK = 5, 12, 7
TEXTS = ["the loop", "", "break the while loop . return the statement for a loop", "xyz", "[MASK] exits"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vocab")
    (directory / "vocab.txt").write_text("\n".join(SPECIALS + WORDS) + "\n")
    return load_tokenizer(directory)


def test_encode_pads_right_with_the_pad_id_and_masks_the_padding(tokenizer):
    batch = encode(tokenizer, ["the loop", "break"], max_len=8)
    assert torch.equal(batch.input_ids, torch.tensor([[CLS, THE, LOOP, SEP], [CLS, BREAK, SEP, PAD]]))
    assert torch.equal(batch.attention_mask, torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]))
    assert torch.equal(batch.token_type_ids, torch.zeros(2, 4, dtype=torch.long))
    assert all(t.dtype == torch.int64 for t in (batch.input_ids, batch.attention_mask, batch.token_type_ids))
    assert batch.lengths == [4, 3] and batch.truncated == [False, False]
    custom = encode(tokenizer, ["the loop", "break"], max_len=8, pad_token_id=9)
    assert custom.input_ids[1, 3] == 9 and torch.equal(custom.attention_mask, batch.attention_mask)


@pytest.mark.parametrize("max_len", [3, 5, 512])
@pytest.mark.parametrize("pad_token_id", [None, 7])
def test_encode_is_the_batching_builders_batch(tokenizer, max_len, pad_token_id):
    """The tensors of encode are pad_batch's over the tokenizer's truncated encodings, bit for bit."""
    batch = encode(tokenizer, TEXTS, max_len, pad_token_id)
    built = pad_batch(tokenizer.encode_batch(TEXTS, max_len=max_len),
                      tokenizer.pad_id if pad_token_id is None else pad_token_id)
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        ours = getattr(batch, name)
        assert ours.dtype == built[name].dtype and torch.equal(ours, built[name]), name
    full = [len(e["input_ids"]) for e in tokenizer.encode_batch(TEXTS)]
    assert batch.lengths == full and batch.truncated == [n > max_len for n in full]
    assert batch.input_ids.shape[1] == min(max(full), max_len)


def test_encode_errors(tokenizer):
    with pytest.raises(ValueError, match=r"argument `texts` is empty; give at least one text"):
        encode(tokenizer, [], 8)
    with pytest.raises(ValueError, match=r"text 1 'a\\udcff' is not valid UTF-8 \(character 2"):
        encode(tokenizer, ["a\udcff"], 8)
