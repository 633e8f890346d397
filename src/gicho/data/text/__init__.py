"""Text data for BERT: WordPiece tokenizer, streamed corpora, MLM masking, labelled tasks.

* :mod:`~gicho.data.text.tokenizer`: :class:`TextTokenizer`, :func:`train_wordpiece`,
  :func:`load_tokenizer` (ids identical to ``transformers``' BERT tokenizer);
* :mod:`~gicho.data.text.corpus`: :class:`TextCorpus` (a file or directory, streamed) and
  the embedded default :func:`python_docs_corpus` (Python's own documentation);
* :mod:`~gicho.data.text.mlm`: :class:`PackedBlocks` (documents packed into blocks) and
  :class:`MLMCollator` (15% / 80 / 10 / 10 masking, optional whole words);
* :mod:`~gicho.data.text.batching`: :func:`pad_batch`, :class:`PadCollator`,
  :class:`LengthBucketSampler`, :func:`padding_fraction`;
"""

from gicho.data.text.batching import LengthBucketSampler, PadCollator, pad_batch, padding_fraction
from gicho.data.text.corpus import (
    Document,
    TextCorpus,
    iter_utf8_lines,
    python_docs_corpus,
    stdlib_docstrings,
)
from gicho.data.text.mlm import MLMCollator, PackedBlocks, iter_packed_blocks
from gicho.data.text.tokenizer import (
    SPECIAL_TOKENS,
    TextTokenizer,
    load_tokenizer,
    train_wordpiece,
)

__all__ = [
    "SPECIAL_TOKENS",
    "Document",
    "LengthBucketSampler",
    "MLMCollator",
    "PackedBlocks",
    "PadCollator",
    "TextCorpus",
    "TextTokenizer",
    "iter_packed_blocks",
    "iter_utf8_lines",
    "load_tokenizer",
    "pad_batch",
    "padding_fraction",
    "python_docs_corpus",
    "stdlib_docstrings",
    "train_wordpiece",
]
