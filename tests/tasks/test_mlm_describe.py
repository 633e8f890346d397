"""The mlm-bert run's data description (report and tour tables) claims no more than it knows."""

from __future__ import annotations

from gicho.tasks.mlm_bert import TASK, MLMBertConfig


def test_the_vocabulary_size_is_given_as_the_requested_upper_bound():
    """A small corpus trains fewer WordPiece tokens than `data.vocab_size` (109 of 8000 for a
    corpus of 1,500 lines over 20 words): the description is written before the tokenizer is
    trained, so it says "at most", not "8000-token"."""
    _, data = TASK.describe(MLMBertConfig())
    assert "WordPiece of at most 8000 tokens" in data and "8000-token" not in data
