"""Task ``mlm-bert``: pretrain a BERT by masked-language modelling on real text.

* T: :class:`~gicho.models.bert.BertForMaskedLM` (``--model.preset tiny|mini|small|...``);
* E: a corpus (``--data.corpus PATH``: a text file or a directory, streamed), else the named
  offline corpora of ``--data.sources`` (:mod:`gicho.data.text.pretraining_text`: by default the
  English documentation that ships with Python, ``pydoc`` topics and the standard library's
  docstrings; also ``rotten-tomatoes`` (its training films only), ``tweets``, ``shakespeare``,
  ``wikipedia``, ``lee``); a WordPiece vocabulary is trained on the training documents, which are packed
  into blocks and masked afresh at every batch (15% of tokens: 80% [MASK], 10% random, 10%
  unchanged); ``data.valid_fraction`` of the documents are held out;
* P: masked-token accuracy and perplexity on the held-out documents, beside the unigram
  baseline (always answering the most frequent training token).

A corpus that outgrows memory: Parquet, JSON-lines or Arrow files (``--data.corpus`` a file, a
glob or a directory of them; one document per row, in the column ``--data.text-field``) are
memory-mapped through Hugging Face ``datasets`` (``pip install 'gicho[datasets]'``) and never
all read into memory: rows are held out by a seeded hash of their index (only they are kept in
memory), the vocabulary is trained on the streamed training rows, and the training blocks are
written to a memory-mapped ``.npy`` file in a temporary directory
(:class:`~gicho.data.text.MemmapBlocks`; every ``torchrun`` process builds the same one).

Continued (domain-adaptive) pretraining: ``--model.checkpoint PATH`` (a BERT directory with an
MLM head, or an ``mlm-bert`` run) starts from that model and its tokenizer, on this run's corpus
(Gururangan et al. 2020, "Don't stop pretraining"); its sizes replace ``--model.preset``.

``predict`` fills every mask: ``"The [MASK] statement exits a loop."`` → the top tokens with
their probabilities (``top_k``, default 5), one line per input; an input with several masks
reads ``[MASK]1: ... | [MASK]2: ...``. The run's ``model/`` holds the tokenizer beside the weights.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from gicho._validation import check_choice
from gicho.tasks import register
from gicho.tasks.neural import NeuralTask, Predictor, Splits
from gicho.train.config import TrainConfig

__all__ = ["MLMBertConfig", "MLMBertTask", "MLMData", "MLMModel"]

TOP_K = 5  # tokens shown per [MASK]
EXAMPLE = "The [MASK] statement exits the innermost loop."  # the report's fill-mask example
MIN_BLOCK_SIZE, MAX_BLOCK_SIZE = 8, 512  # a block must fit the presets' 512 positions


@dataclass
class MLMModel:
    """The BERT: a preset of Turc et al. (2019) and what may change about it."""

    preset: Literal["tiny", "mini", "small", "medium", "base", "large"] = field(
        default="tiny", metadata={"help": "BERT size (tiny: 2 layers of 128)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in the encoder"})
    norm_first: bool = field(default=False, metadata={
        "help": "pre-LN layers (transformers cannot load them; post-LN is BERT's own)"})
    checkpoint: str = field(default="", metadata={
        "help": "continue pretraining this BERT dir or mlm-bert run (its weights, sizes, tokenizer; "
                "preset, norm_first and data.vocab_size then come from it)"})


@dataclass
class MLMData:
    """The corpus, its vocabulary and the masking."""

    corpus: str = field(default="", metadata={
        "help": "text file or directory, or Parquet/JSONL/Arrow file(s) (a file, glob or directory); empty: "
                "data.sources"})
    sources: tuple[str, ...] = field(default=("python-docs",), metadata={
        "help": "offline corpora when no corpus is given: python-docs, rotten-tomatoes (training films of "
                "bert-classify's split 0), tweets, shakespeare, wikipedia, lee"})
    unit: Literal["paragraph", "line", "file"] = field(default="paragraph", metadata={
        "help": "one document of data.corpus: lines between blank lines, one line (a sentence-per-line "
                "file), or one file"})
    text_field: str = field(default="text", metadata={"help": "the text column of a Parquet/JSONL/Arrow corpus"})
    vocab_size: int = field(default=8000, metadata={"help": "WordPiece vocabulary size"})
    block_size: int = field(default=128, metadata={"help": "tokens per packed training block (8 to 512)"})
    valid_fraction: float = field(default=0.05, metadata={"help": "documents held out"})
    max_documents: int = field(default=0, metadata={
        "help": "use at most this many documents (0: all; of a Parquet/JSONL/Arrow corpus, its first rows)"})
    mask_prob: float = field(default=0.15, metadata={"help": "share of tokens to predict, in (0, 1)"})
    whole_word: bool = field(default=False, metadata={"help": "mask whole words"})
    seed: int = field(default=0, metadata={"help": "split and masking seed"})

    def __post_init__(self) -> None:
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"field `valid_fraction` must lie in (0, 1); got {self.valid_fraction!r}")
        if not 0 < self.mask_prob < 1:
            raise ValueError(f"field `mask_prob` must lie in (0, 1): 0 leaves nothing to predict and 1 masks every "
                             f"token; got {self.mask_prob!r}")
        for name, low in (("vocab_size", 100), ("block_size", MIN_BLOCK_SIZE), ("max_documents", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"field `{name}` must be >= {low}; got {getattr(self, name)!r}")
        if self.block_size > MAX_BLOCK_SIZE:
            raise ValueError(f"field `block_size` must be <= {MAX_BLOCK_SIZE} (the BERT presets' positions); "
                             f"got {self.block_size!r}")
        if self.unit != "paragraph" and not self.corpus:
            raise ValueError(f"field `unit` ({self.unit!r}) applies to a `corpus` file or directory; the named "
                             "`sources` have their own documents")
        from gicho.data.text.pretraining_text import PRETRAINING_SOURCES

        self.sources = tuple(self.sources)
        if not self.sources or len(set(self.sources)) < len(self.sources):
            raise ValueError(f"field `sources` must name each corpus once; got {self.sources!r}")
        for name in self.sources:
            check_choice(name, "sources", tuple(PRETRAINING_SOURCES))


@dataclass
class MLMBertConfig:
    """Config of ``mlm-bert``: ``model``, ``data``, ``train``."""

    model: MLMModel = field(default_factory=MLMModel)
    data: MLMData = field(default_factory=MLMData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=2000, batch_size=32, lr=1e-3, weight_decay=0.01, warmup_steps=100, eval_every=250,
        log_every=50, eval_batch_size=64, num_threads=1))


def _too_few(n_documents: int, valid_fraction: float) -> bool:
    """Whether holding ``valid_fraction`` (at least one) out of ``n_documents`` leaves none to train on."""
    return max(1, round(n_documents * valid_fraction)) >= n_documents


def _documents(data: MLMData) -> list[str]:
    """The documents, shuffled by seed (at most ``max_documents``); enough to hold some out."""
    from gicho.data.text import TextCorpus
    from gicho.data.text.pretraining_text import pretraining_texts

    if data.corpus:
        texts = [doc.text for doc in TextCorpus(data.corpus, unit=data.unit)]
    else:
        texts = [text for _, text in pretraining_texts(data.sources)]
    if not texts:
        raise ValueError(f"the corpus {data.corpus or ', '.join(data.sources)} holds no text")
    random.Random(data.seed).shuffle(texts)
    if data.max_documents and data.max_documents < len(texts):
        texts = texts[: data.max_documents]
        if _too_few(len(texts), data.valid_fraction):
            least = next(n for n in itertools.count(2) if not _too_few(n, data.valid_fraction))
            raise ValueError(f"field `data.max_documents` ({data.max_documents}) keeps too few documents to hold "
                             f"{data.valid_fraction:.0%} out and train on the rest; give at least {least}")
    if _too_few(len(texts), data.valid_fraction):
        hint = {"paragraph": "documents are separated by blank lines; for a file of one sentence (or text) per "
                             "line give --data.unit line, or put blank lines between documents",
                "line": "each non-blank line is a document; give more lines",
                "file": "each file is a document; give a directory of several files, or --data.unit paragraph"}
        raise ValueError(f"the corpus {data.corpus} has {len(texts)} document(s) (data.unit {data.unit!r}): too few "
                         f"to hold {data.valid_fraction:.0%} out and train on the rest; {hint[data.unit]}")
    return texts


def _streamed_documents(data: MLMData) -> tuple[Iterable[str], list[str]] | None:
    """A Parquet/JSONL/Arrow corpus's training texts (re-iterable, streamed from the memory map)
    and held-out texts (rows chosen by a seeded hash of their index); None for other corpora."""
    from gicho.data.text.datasets_corpus import DatasetsCorpus, datasets_format

    if not data.corpus or datasets_format(data.corpus) is None:
        if data.text_field != "text":
            raise ValueError(f"field `data.text_field` ({data.text_field!r}) applies to a Parquet, JSONL or Arrow "
                             f"corpus; data.corpus is {data.corpus or 'empty (the named data.sources)'}")
        return None
    if data.unit != "paragraph":
        raise ValueError(f"field `data.unit` ({data.unit!r}) applies to text files; in a Parquet, JSONL or Arrow "
                         "corpus each row is a document")
    corpus = DatasetsCorpus(data.corpus, text_field=data.text_field)
    train, valid = corpus.split(data.valid_fraction, data.seed, max_rows=data.max_documents)
    held_out = list(valid)
    if not held_out:
        raise ValueError(f"the held-out rows of {data.corpus} (data.valid_fraction {data.valid_fraction}) hold no "
                         "text; give more rows or a larger valid_fraction")
    return train, held_out


def _checkpoint_dir(checkpoint: str) -> Path:
    """The BERT directory of ``model.checkpoint`` (an ``mlm-bert`` run's ``model/``, or the directory itself)."""
    from gicho.tasks.bert_classify import _checkpoint_dir as bert_dir

    if checkpoint == "random":
        raise ValueError("field `model.checkpoint` must name a BERT directory or an mlm-bert run to continue from; "
                         "leave it empty to pretrain from random weights")
    return bert_dir(checkpoint)


def _continued_tokenizer(checkpoint: str, block_size: int) -> Any:
    """The tokenizer of the checkpoint whose pretraining continues (a vocabulary belongs to its
    weights), after checking that a block fits its positions."""
    from gicho.data.text import load_tokenizer
    from gicho.weights import read_config

    path = _checkpoint_dir(checkpoint)
    positions = int(read_config(path).get("max_position_embeddings", 0))
    if block_size > positions:
        raise ValueError(f"field `data.block_size` ({block_size}) exceeds the {positions} positions of "
                         f"--model.checkpoint {checkpoint}; give at most {positions}")
    return load_tokenizer(path)


def fill_masks(predictor: Predictor, texts: list[str], k: int = TOP_K) -> list[list[list[tuple[str, float]]]]:
    """For each input and each of its [MASK] (left to right), the top-``k`` tokens and probabilities."""
    from gicho.tasks.bert_text import fill_mask

    return [fill_mask(predictor.model, predictor.info["tokenizer"], text, k) for text in texts]


def _format_masks(masks: list[list[tuple[str, float]]]) -> str:
    """``tok (p), ...`` for one [MASK]; ``[MASK]1: tok (p), ... | [MASK]2: ...`` for several."""
    lines = [", ".join(f"{tok} ({p:.2f})" for tok, p in top) for top in masks]
    return lines[0] if len(lines) == 1 else " | ".join(f"[MASK]{m}: {line}" for m, line in enumerate(lines, 1))


class MLMBertTask(NeuralTask):
    """``mlm-bert``: the hooks of :class:`~gicho.tasks.neural.NeuralTask` for masked-language
    pretraining (see the module)."""

    name = "mlm-bert"
    config_cls = MLMBertConfig
    model_type = "bert"
    select = "best"
    model = "BERT masked-language model (tiny preset)"
    data = "Python's own documentation, 5% held out"
    metrics = ("masked_accuracy", "perplexity", "unigram_accuracy")
    description = "Pretrain a BERT on real text by masked-language modelling; fill masks with it."
    predict_options = ("top_k",)
    input_kind = "sentences with at least one [MASK]: a list of strings, e.g. ['The [MASK] statement exits a loop.']"
    tour: ClassVar = {"train.max_steps": 300, "train.eval_every": 150, "data.max_documents": 3000}
    quick: ClassVar = {"train.max_steps": 60, "train.eval_every": 60, "train.warmup_steps": 6,
                       "data.max_documents": 800, "data.vocab_size": 2000}

    def build_data(self, config: MLMBertConfig, preprocessing: dict[str, Any] | None = None) -> Splits:
        """Packed blocks of the training documents, and held-out ones masked once (a fixed seed).

        The tokenizer is the run's own (``run_dir/preprocessing/`` on resume, ``model/`` on
        evaluate) whenever there is one, else trained on the training documents: training is
        deterministic, but a vocabulary belongs to its weights, and the corpus on disk may have
        changed since the run started. A Parquet/JSONL/Arrow corpus's training blocks are
        memory-mapped from a temporary ``.npy`` file (see the module).
        """
        from gicho.data.text import (
            HeldOutMasks,
            MaskOrPad,
            MemmapBlocks,
            MLMCollator,
            PackedBlocks,
            train_wordpiece,
        )

        d = config.data
        streamed = _streamed_documents(d)  # a table corpus: never all in memory
        if streamed is None:
            texts = _documents(d)
            n_valid = max(1, round(len(texts) * d.valid_fraction))
            if n_valid >= len(texts):
                raise ValueError(f"the corpus has {len(texts)} documents: too few to hold {d.valid_fraction:.0%} out")
            train_texts, valid_texts = texts[n_valid:], texts[:n_valid]
        else:
            train_texts, valid_texts = streamed
        tokenizer = (preprocessing or {}).get("tokenizer")
        if tokenizer is None:
            tokenizer = (_continued_tokenizer(config.model.checkpoint, d.block_size) if config.model.checkpoint
                         else train_wordpiece(train_texts, vocab_size=d.vocab_size))
        blocks = PackedBlocks if streamed is None else MemmapBlocks
        train = blocks(train_texts, tokenizer, d.block_size, drop_last=True)
        valid = PackedBlocks(valid_texts, tokenizer, d.block_size)
        counts = train.token_counts(tokenizer.vocab_size)
        counts[list(tokenizer.special_ids)] = 0
        masking = {"mask_prob": d.mask_prob, "whole_word": d.whole_word}
        held_out = HeldOutMasks(valid, MLMCollator(tokenizer, seed=d.seed + 1, **masking))
        collate = MaskOrPad(MLMCollator(tokenizer, seed=d.seed, **masking), tokenizer.pad_id)
        return Splits(train, held_out, held_out, collate=collate,
                      info={"tokenizer": tokenizer, "unigram_id": int(counts.argmax())})

    def build_model(self, config: MLMBertConfig, splits: Splits) -> Any:
        from gicho.models.bert import BertConfig, BertForMaskedLM

        tokenizer = splits.info["tokenizer"]
        if config.model.checkpoint:  # domain-adaptive pretraining: the checkpoint's model, its MLM head
            from gicho.weights import read_config

            path = _checkpoint_dir(config.model.checkpoint)
            stored = BertForMaskedLM.config_from_json(read_config(path), f"model config {path / 'config.json'}")
            rate = config.model.dropout  # the run's dropout; everything else is the checkpoint's
            return BertForMaskedLM.from_pretrained(
                path, config=dataclasses.replace(stored, dropout=rate, attention_dropout=rate)).train()
        bert = BertConfig.from_preset(config.model.preset, vocab_size=tokenizer.vocab_size,
                                      pad_token_id=tokenizer.pad_id, dropout=config.model.dropout,
                                      attention_dropout=config.model.dropout, norm_first=config.model.norm_first,
                                      max_len=max(config.data.block_size, 128))
        return BertForMaskedLM(bert)

    def build_metrics(self, config: MLMBertConfig, info: dict[str, Any], split: str) -> Any:
        from gicho.metrics import MaskedLMScores

        return lambda: MaskedLMScores(baseline_id=info.get("unigram_id"))

    def save_extras(self, directory: Path, info: dict[str, Any]) -> None:
        """The tokenizer beside the weights."""
        from gicho.tasks.bert_text import save_tokenizer_extras

        save_tokenizer_extras(directory, info)

    def load_extras(self, directory: Path) -> dict[str, Any]:
        from gicho.tasks.bert_text import load_tokenizer_extras

        return load_tokenizer_extras(directory)

    def encode_inputs(self, config: MLMBertConfig, predictor: Predictor, inputs: Any) -> dict[str, Any]:
        """Each input: a sentence with at least one ``[MASK]``, every one within the model's positions."""
        from gicho.tasks._inputs import texts as as_texts
        from gicho.tasks.bert_text import count_masks

        texts = as_texts(inputs, self.input_kind)
        missing = [t for t in texts if "[MASK]" not in t]
        if missing:
            raise ValueError(f"input {missing[0]!r} has no [MASK] to fill; write e.g. {EXAMPLE!r}")
        tokenizer, max_len = predictor.info["tokenizer"], predictor.model.config.max_len
        for text in texts:  # every input is checked before any is run
            n_masks, kept = count_masks(tokenizer, text, max_len)
            if kept < n_masks:  # fill-mask warns; predict's one line per input would hide the loss
                raise ValueError(f"input {text[:60]!r}...: {n_masks - kept} of its {n_masks} [MASK] lie beyond the "
                                 f"model's {max_len} positions (truncated away); shorten the input")
        return {"texts": texts}

    def predict_batch(self, config: MLMBertConfig, predictor: Predictor, batch: dict[str, Any],
                      options: dict[str, Any]) -> list[Any]:
        """Each input's most probable token for every [MASK], left to right (a list per input)."""
        return [[top[0][0] for top in masks] for masks in fill_masks(predictor, batch["texts"], 1)]

    def ranked(self, config: MLMBertConfig, predictor: Predictor, batch: dict[str, Any], k: int) -> list[Any]:
        """For each input, a list per [MASK] of its top ``k`` ``(token, probability)``."""
        return fill_masks(predictor, batch["texts"], k)

    def format_outputs(self, config: MLMBertConfig, predictor: Predictor, batch: dict[str, Any],
                       options: dict[str, Any]) -> list[dict[str, Any]]:
        """One line per input: the top ``options["top_k"]`` (default 5) tokens of every [MASK]."""
        k = options.get("top_k", TOP_K)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"option `top_k` must be an integer >= 1; got {k!r}")
        return [{"output": _format_masks(masks),
                 "masks": [[{"token": tok, "probability": p} for tok, p in top] for top in masks]}
                for masks in fill_masks(predictor, batch["texts"], k)]

    def after_fit(self, config: MLMBertConfig, predictor: Predictor, splits: Splits, ctx: Any,
                  scores: dict[str, float], accumulators: Any) -> dict[str, float]:
        """The report's fill-mask example: the top tokens for :data:`EXAMPLE`."""
        from gicho.plots.text import plot_top_tokens

        ((top,),) = fill_masks(predictor, [EXAMPLE])
        plot_top_tokens([t for t, _ in top], [p for _, p in top], EXAMPLE, ctx.plots_dir / "fill_mask.png")
        return {}

    def unused_fields(self, config: MLMBertConfig) -> dict[str, str]:
        from gicho.data.text.datasets_corpus import datasets_format

        d, unused = config.data, {}
        if d.corpus:
            unused["data.sources"] = "data.corpus is given"
            if datasets_format(d.corpus) is None:
                unused["data.text_field"] = "data.corpus is text, not Parquet/JSONL/Arrow"
            else:
                unused["data.unit"] = "each row of a Parquet/JSONL/Arrow corpus is a document"
        else:
            unused.update({"data.unit": "no data.corpus", "data.text_field": "no data.corpus"})
        if config.model.checkpoint:
            unused.update(dict.fromkeys(("model.preset", "model.norm_first", "data.vocab_size"),
                                        "model.checkpoint decides"))
        return unused

    def describe(self, config: MLMBertConfig) -> tuple[str, str]:
        d = config.data
        corpus = d.corpus or " + ".join(d.sources)
        if config.model.checkpoint:
            return (f"BERT masked-language model continued from {config.model.checkpoint}",
                    f"{corpus} (its tokenizer, blocks of {d.block_size}, {d.mask_prob:.0%} masked, "
                    f"{d.valid_fraction:.0%} of documents held out)")
        layers = " (pre-LN)" if config.model.norm_first else ""
        return (f"BERT-{config.model.preset}{layers} masked-language model",
                # the requested size: a small corpus trains fewer tokens (the model's config has them)
                f"{corpus} (WordPiece of at most {d.vocab_size} tokens, blocks of {d.block_size}, "
                f"{d.mask_prob:.0%} masked, {d.valid_fraction:.0%} of documents held out)")


TASK = register(MLMBertTask())
