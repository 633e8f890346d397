"""Task ``mlm-bert``: pretrain a BERT by masked-language modelling on real text.

* T: :class:`~gicho.models.bert.BertForMaskedLM` (``--model.preset tiny|mini|small|...``);
* E: a corpus (``--data.corpus PATH``: a text file or a directory, streamed), by default the
  English documentation that ships with Python (``pydoc`` topics and the standard library's
  docstrings); a WordPiece vocabulary is trained on the training documents, which are packed
  into blocks and masked afresh at every batch (15% of tokens: 80% [MASK], 10% random, 10%
  unchanged); ``data.valid_fraction`` of the documents are held out;
* P: masked-token accuracy and perplexity on the held-out documents, beside the unigram
  baseline (always answering the most frequent training token).

``predict`` fills masks: ``"The [MASK] statement exits a loop."`` → the top tokens with their
probabilities. The run's ``model/`` holds the tokenizer beside the weights.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

from gicho.tasks import register
from gicho.tasks._training import check_num_threads
from gicho.tasks.bert_text import load_tokenizer_extras, save_tokenizer_extras
from gicho.tasks.neural import NeuralSpec, Predictor, Splits, neural_task
from gicho.train.config import TrainConfig

__all__ = ["MLMBertConfig", "MLMData", "MLMModel"]

TOP_K = 5  # tokens shown per [MASK]
EXAMPLE = "The [MASK] statement exits the innermost loop."  # the report's fill-mask example


@dataclass
class MLMModel:
    """The BERT: a preset of Turc et al. (2019) and what may change about it."""

    preset: Literal["tiny", "mini", "small", "medium", "base", "large"] = field(
        default="tiny", metadata={"help": "BERT size (tiny: 2 layers of 128)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in the encoder"})


@dataclass
class MLMData:
    """The corpus, its vocabulary and the masking."""

    corpus: str = field(default="", metadata={"help": "text file or directory; empty: Python's own docs"})
    vocab_size: int = field(default=8000, metadata={"help": "WordPiece vocabulary size"})
    block_size: int = field(default=128, metadata={"help": "tokens per packed training block"})
    valid_fraction: float = field(default=0.05, metadata={"help": "documents held out"})
    max_documents: int = field(default=0, metadata={"help": "use at most this many documents (0: all)"})
    mask_prob: float = field(default=0.15, metadata={"help": "share of tokens to predict"})
    whole_word: bool = field(default=False, metadata={"help": "mask whole words"})
    seed: int = field(default=0, metadata={"help": "split and masking seed"})

    def __post_init__(self) -> None:
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"field `valid_fraction` must lie in (0, 1); got {self.valid_fraction!r}")
        for name, low in (("vocab_size", 100), ("block_size", 8), ("max_documents", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"field `{name}` must be >= {low}; got {getattr(self, name)!r}")


@dataclass
class MLMBertConfig:
    """Config of ``mlm-bert``: ``model``, ``data``, ``train``."""

    model: MLMModel = field(default_factory=MLMModel)
    data: MLMData = field(default_factory=MLMData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=2000, batch_size=32, lr=1e-3, weight_decay=0.01, warmup_steps=100, eval_every=250,
        log_every=50, eval_batch_size=64))
    num_threads: int = field(default=1, metadata={"help": "torch CPU threads (0 = torch's default)"})

    def __post_init__(self) -> None:
        check_num_threads(self.num_threads)


def _documents(data: MLMData) -> list[str]:
    from gicho.data.text import TextCorpus, python_docs_corpus

    corpus = TextCorpus(data.corpus) if data.corpus else python_docs_corpus()
    texts = [doc.text for doc in corpus]
    if not texts:
        raise ValueError(f"the corpus {data.corpus or 'of Python docs'} holds no text")
    random.Random(data.seed).shuffle(texts)
    return texts[: data.max_documents] if data.max_documents else texts


def build_data(config: MLMBertConfig, preprocessing: dict[str, Any] | None = None) -> Splits:
    import torch

    from gicho.data.text import HeldOutMasks, MaskOrPad, MLMCollator, PackedBlocks, train_wordpiece

    d = config.data
    texts = _documents(d)
    n_valid = max(1, round(len(texts) * d.valid_fraction))
    if n_valid >= len(texts):
        raise ValueError(f"the corpus has {len(texts)} documents: too few to hold {d.valid_fraction:.0%} out")
    train_texts, valid_texts = texts[n_valid:], texts[:n_valid]
    # WordPiece training is not deterministic (ties are broken in parallel): a finished run is
    # evaluated with the tokenizer saved beside its model, never with a fresh one
    tokenizer = (preprocessing or {}).get("tokenizer") or train_wordpiece(train_texts, vocab_size=d.vocab_size)
    train = PackedBlocks(train_texts, tokenizer, d.block_size, drop_last=True)
    valid = PackedBlocks(valid_texts, tokenizer, d.block_size)
    counts = torch.bincount(train.blocks.flatten().long(), minlength=tokenizer.vocab_size)
    counts[list(tokenizer.special_ids)] = 0
    masking = {"mask_prob": d.mask_prob, "whole_word": d.whole_word}
    held_out = HeldOutMasks(valid, MLMCollator(tokenizer, seed=d.seed + 1, **masking))
    collate = MaskOrPad(MLMCollator(tokenizer, seed=d.seed, **masking), tokenizer.pad_id)
    return Splits(train, held_out, held_out, collate=collate,
                  info={"tokenizer": tokenizer, "unigram_id": int(counts.argmax())})


def build_model(config: MLMBertConfig, splits: Splits) -> Any:
    from gicho.models.bert import BertConfig, BertForMaskedLM

    tokenizer = splits.info["tokenizer"]
    bert = BertConfig.from_preset(config.model.preset, vocab_size=tokenizer.vocab_size,
                                  pad_token_id=tokenizer.pad_id, dropout=config.model.dropout,
                                  attention_dropout=config.model.dropout,
                                  max_len=max(config.data.block_size, 128))
    return BertForMaskedLM(bert)


def metrics(config: MLMBertConfig, info: dict[str, Any], split: str) -> Any:
    from gicho.train import MaskedLMScores

    return lambda: MaskedLMScores(baseline_id=info.get("unigram_id"))


def read_inputs(config: MLMBertConfig, predictor: Predictor, texts: list[str]) -> dict[str, Any]:
    """Each input: a sentence with at least one ``[MASK]``."""
    missing = [t for t in texts if "[MASK]" not in t]
    if missing:
        raise ValueError(f"input {missing[0]!r} has no [MASK] to fill; write e.g. {EXAMPLE!r}")
    return {"texts": texts}


def fill_masks(predictor: Predictor, texts: list[str], k: int = TOP_K) -> list[list[tuple[str, float]]]:
    """For each input, the top-``k`` tokens and probabilities of its first [MASK]."""
    from gicho.tasks.bert_text import fill_mask

    return [fill_mask(predictor.model, predictor.info["tokenizer"], text, k)[0] for text in texts]


def write_outputs(config: MLMBertConfig, predictor: Predictor, batch: dict[str, Any],
                  options: dict[str, Any]) -> list[str]:
    return [", ".join(f"{tok} ({p:.2f})" for tok, p in top) for top in fill_masks(predictor, batch["texts"])]


def fill_mask_figure(config: MLMBertConfig, predictor: Predictor, splits: Splits, ctx: Any,
                     scores: dict[str, float]) -> dict[str, float]:
    """The report's fill-mask example: the top tokens for :data:`EXAMPLE`."""
    from gicho.plots.text import plot_top_tokens

    (top,) = fill_masks(predictor, [EXAMPLE])
    plot_top_tokens([t for t, _ in top], [p for _, p in top], EXAMPLE, ctx.plots_dir / "fill_mask.png")
    return {}


def describe(config: MLMBertConfig) -> tuple[str, str]:
    d = config.data
    return (f"BERT-{config.model.preset} masked-language model",
            f"{d.corpus or 'Python documentation'} ({d.vocab_size}-token WordPiece, blocks of {d.block_size}, "
            f"{d.mask_prob:.0%} masked, {d.valid_fraction:.0%} of documents held out)")


TASK = register(neural_task(
    name="mlm-bert", config_cls=MLMBertConfig,
    spec=NeuralSpec(build_data=build_data, build_model=build_model, metrics=metrics, read_inputs=read_inputs,
                    write_outputs=write_outputs, model_type="bert", select="best",
                    save_extras=save_tokenizer_extras, load_extras=load_tokenizer_extras, after_fit=fill_mask_figure),
    model="BERT masked-language model (tiny preset)", data="Python's own documentation, 5% held out",
    metrics=("masked_accuracy", "perplexity", "unigram_accuracy"), describe=describe,
    description="Pretrain a BERT on real text by masked-language modelling; fill masks with it.",
    tour={"train.max_steps": 300, "train.eval_every": 150, "data.max_documents": 3000},
    quick={"train.max_steps": 60, "train.eval_every": 60, "data.max_documents": 800, "data.vocab_size": 2000},
))
