"""Text data for BERT: WordPiece tokenizer, streamed corpora, MLM masking, labelled tasks.

* :mod:`~gicho.data.text.tokenizer`: :class:`TextTokenizer`, :func:`train_wordpiece`,
  :func:`load_tokenizer` (ids identical to ``transformers``' BERT tokenizer);
* :mod:`~gicho.data.text.corpus`: :class:`TextCorpus` (a file or directory, streamed) and
  the embedded default :func:`python_docs_corpus` (Python's own documentation);
"""

from gicho.data.text.corpus import (
    Document,
    TextCorpus,
    iter_utf8_lines,
    python_docs_corpus,
    stdlib_docstrings,
)
from gicho.data.text.tokenizer import (
    SPECIAL_TOKENS,
    TextTokenizer,
    load_tokenizer,
    train_wordpiece,
)

__all__ = [
    "SPECIAL_TOKENS",
    "Document",
    "TextCorpus",
    "TextTokenizer",
    "iter_utf8_lines",
    "load_tokenizer",
    "python_docs_corpus",
    "stdlib_docstrings",
    "train_wordpiece",
]
