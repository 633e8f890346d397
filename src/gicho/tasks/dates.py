"""Task ``dates``: human-written dates to ISO 8601 with an attention-based RNN seq2seq.

* T: :class:`gicho.models.seq2seq.Seq2Seq` (bi-GRU encoder, LSTM decoder with attention).
* E: pairs from :class:`gicho.data.dates.DateGenerator` (Faker + Babel; en, ko, de, fr, es);
  training, validation and held-out test sets come from disjoint seeds, and the held-out sets
  exclude every input string seen in training.
* P: exact-match accuracy (headline) and character accuracy of greedy decoding on the
  held-out test set, overall and per locale (``exact_match_en``, ...).

The supported years are ``data.first_year``-``data.last_year`` (default 1800-2199; two-digit
years pivot at 50: "21" is 2021, "75" is 1975). The validation set selects the best checkpoint
(by exact match); the test set is only scored at the end. The run's ``model/`` directory holds
the vocabularies (``vocab.json``) beside the weights, and ``plots/`` attention maps of a few
held-out examples.

``predict`` reads each input with :func:`gicho.data.date_grammar.read_dates`: decoding is
constrained to valid ISO dates in the supported years, and each answer is one string, either
``"2021-03-03 (confidence 0.998)"`` (the date, then the probability that the unconstrained model
gives exactly it) or ``"cannot read 'tomorrow' as a date (<reason>)"``. Options:
``min_confidence`` (refuse below it; default :data:`gicho.data.date_grammar.MIN_CONFIDENCE`),
``confidence`` (False: a read date is the bare ``"2021-03-03"``), ``beam_width``,
``length_penalty`` and ``attention=PATH`` (the attention map of the first input). An empty or
too long input raises; unknown characters become ``<unk>`` with a warning.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from gicho.data.date_config import LOCALES, SUPPORTED_YEARS, DatesData
from gicho.metrics import score_strings
from gicho.tasks import register
from gicho.tasks.neural import NeuralTask, Predictor, Splits
from gicho.train.config import TrainConfig

__all__ = ["DatesConfig", "DatesData", "DatesTask", "score_strings"]  # score_strings: gicho.metrics

DATA_FIELDS = ("src_vocab_size", "tgt_vocab_size", "pad_id", "bos_id", "eos_id")  # set from the data


def _default_model() -> Any:
    from gicho.models.seq2seq import Seq2SeqConfig

    return Seq2SeqConfig(embed_dim=64, hidden_dim=128, attention="general", attention_dim=128)


@dataclass
class DatesConfig:
    """Config of ``dates``: ``model`` (Seq2SeqConfig), ``data``, ``train``, and decoding/figures."""

    model: Any = field(default_factory=_default_model)
    data: DatesData = field(default_factory=DatesData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=1500, batch_size=128, eval_batch_size=500, lr=3e-3, weight_decay=0.0,
        warmup_steps=100, min_lr_ratio=0.05, grad_clip=1.0, eval_every=250, log_every=50,
        early_stopping_metric="exact_match", early_stopping_mode="max", num_threads=1))
    beam_width: int = field(default=1, metadata={"help": "beam width of predict (1 = greedy)"})
    length_penalty: float = field(default=1.0, metadata={"help": "beam length normalisation"})
    n_heatmaps: int = field(default=4, metadata={"help": "held-out attention maps in plots/"})

    def __post_init__(self) -> None:
        for name, low in (("beam_width", 1), ("n_heatmaps", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"field `{name}` must be >= {low}; got {getattr(self, name)!r}")
        if not math.isfinite(self.length_penalty):
            raise ValueError(f"field `length_penalty` must be finite; got {self.length_penalty!r}")


class DatesTask(NeuralTask):
    """``dates``: the hooks of :class:`~gicho.tasks.neural.NeuralTask` for reading dates (see the module)."""

    name = "dates"
    config_cls = DatesConfig
    model_type = "seq2seq"
    select = "best"
    model = "seq2seq RNN with attention (bi-GRU encoder, LSTM decoder, Luong attentional state)"
    data = "generated human-written dates (Faker + Babel; en, ko, de, fr, es) -> ISO 8601"
    metrics = ("exact_match", "char_accuracy")
    description = ("Translate human-written dates ('3rd of March, 2021', '2021년 3월 3일') to ISO dates, years "
                   f"{SUPPORTED_YEARS[0]}-{SUPPORTED_YEARS[1]} (two-digit years pivot at 50: '21' is 2021); "
                   "predict answers a valid date with its confidence, or 'cannot read ... as a date (reason)'.")
    predict_options = ("attention", "beam_width", "length_penalty", "min_confidence", "confidence")
    input_kind = "human-written dates: a list of strings, e.g. ['3rd of March, 2021', '2021년 3월 3일']"
    tour: ClassVar = {
        "data.n_train": 20_000, "data.n_test": 2_000, "train.max_steps": 600, "train.eval_every": 300,
        "model.hidden_dim": 64, "model.embed_dim": 32, "model.attention_dim": 64, "train.batch_size": 64,
        "train.lr": 5e-3, "train.warmup_steps": 30}
    quick: ClassVar = {
        "data.n_train": 3_000, "data.n_valid": 200, "data.n_test": 500, "train.max_steps": 150,
        "train.eval_every": 150, "model.hidden_dim": 48, "model.embed_dim": 32, "model.attention_dim": 48,
        "train.batch_size": 64, "train.lr": 5e-3, "train.warmup_steps": 20, "n_heatmaps": 1}

    def build_data(self, config: DatesConfig, preprocessing: dict[str, Any] | None = None) -> Splits:
        """Training, validation and test pairs from disjoint seeds; the source vocabulary is built
        from the training inputs."""
        from gicho.data.dates import TARGET_ALPHABET, DateDataset, DateGenerator, Vocab, make_splits

        d = config.data
        generator = DateGenerator(locales=d.tags, start=dt.date(d.first_year, 1, 1), end=dt.date(d.last_year, 12, 31))
        parts = make_splits(d.n_train, d.n_valid, d.n_test, d.data_seed, generator)
        source, target = Vocab.build(ex.text for ex in parts["train"]), Vocab(TARGET_ALPHABET)
        train, valid, test = (DateDataset(parts[k], source, target, d.max_input_len) for k in ("train", "valid", "test"))
        return Splits(train, valid, test, collate=train.collate,
                      info={"source": source, "target": target,
                            **{f"{k}_locales": [ex.locale for ex in parts[k]] for k in ("valid", "test")}})

    def build_model(self, config: DatesConfig, splits: Splits) -> Any:
        from gicho.models.seq2seq import Seq2Seq, Seq2SeqConfig

        changed = [n for n in DATA_FIELDS if getattr(config.model, n) != getattr(Seq2SeqConfig(), n)]
        if changed:
            raise ValueError(f"model fields {changed} are set from the data's vocabularies; do not override them")
        s, t = splits.info["source"], splits.info["target"]
        return Seq2Seq(dataclasses.replace(config.model, src_vocab_size=len(s), tgt_vocab_size=len(t),
                                           pad_id=t.pad_id, bos_id=t.bos_id, eos_id=t.eos_id))

    def build_metrics(self, config: DatesConfig, info: dict[str, Any], split: str) -> Any:
        from gicho.metrics import SequenceMatchScores

        # per locale too; the locales follow the data's order, which evaluation keeps
        return lambda: SequenceMatchScores(info["target"].decode, info.get(f"{split}_locales"), order=LOCALES)

    def eval_forward(self, model: Any, batch: dict[str, Any]) -> dict[str, Any]:
        """The forward pass (its loss) and the greedy decoding that the metrics score."""
        return {**model(**batch), "generated": model.generate(batch["src"], batch["src_mask"])["tokens"]}

    def save_extras(self, directory: Path, info: dict[str, Any]) -> None:
        """The source and target vocabularies (``vocab.json``)."""
        from gicho.data.vocab import save_vocabularies

        save_vocabularies(directory, info["source"], info["target"])

    def load_extras(self, directory: Path) -> dict[str, Any]:
        from gicho.data.vocab import load_vocabularies

        source, target = load_vocabularies(directory)
        return {"source": source, "target": target}

    def encode_inputs(self, config: DatesConfig, predictor: Predictor, inputs: Any) -> dict[str, Any]:
        from gicho.tasks._inputs import texts

        return {"texts": texts(inputs, self.input_kind)}  # decoded by predict_batch; encode_source checks each

    def predict_batch(self, config: DatesConfig, predictor: Predictor, batch: dict[str, Any],
                      options: dict[str, Any]) -> list[Any]:
        """Each input's ISO date ``YYYY-MM-DD``, or None where it is refused (``format_outputs`` says why)."""
        return [r.date for r in self._read(config, predictor, batch, options)]

    def format_outputs(self, config: DatesConfig, predictor: Predictor, batch: dict[str, Any],
                       options: dict[str, Any]) -> list[dict[str, Any]]:
        """Each input's valid date with its confidence, or a refusal (see the module docstring)."""
        confidence = options.get("confidence", True)
        if not isinstance(confidence, bool):
            raise ValueError(f"option `confidence` must be True or False; got {confidence!r}")
        return [{"output": str(r) if r.refused or confidence else r.date, "date": r.date,
                 "confidence": r.confidence, "refused": r.reason}
                for r in self._read(config, predictor, batch, options)]

    def _read(self, config: DatesConfig, predictor: Predictor, batch: dict[str, Any],
              options: dict[str, Any]) -> list[Any]:
        from gicho.data.date_grammar import MIN_CONFIDENCE, read_dates
        from gicho.plots.attention import plot_attention

        options = {"beam_width": config.beam_width, "length_penalty": config.length_penalty,
                   "min_confidence": MIN_CONFIDENCE, **options}
        width, penalty = int(options["beam_width"]), float(options["length_penalty"])
        if width < 1 or not math.isfinite(penalty):
            raise ValueError(f"option `beam_width` must be >= 1 and `length_penalty` finite; got {width}, {penalty}")
        texts = batch["texts"]
        readings, attentions = read_dates(
            predictor.model, texts, predictor.info["source"], predictor.info["target"], config.data.max_input_len,
            first_year=config.data.first_year, last_year=config.data.last_year,
            min_confidence=options["min_confidence"], beam_width=width, length_penalty=penalty)
        if options.get("attention"):
            plot_attention(texts[0].strip(), readings[0].guess, attentions[0], options["attention"])
        return readings

    def after_fit(self, config: DatesConfig, predictor: Predictor, splits: Splits, ctx: Any, scores: dict,
                  accumulators: Any) -> dict:
        """Attention maps of ``n_heatmaps`` held-out examples, one locale after another."""
        from gicho.data.dates import showcase_examples, translate
        from gicho.plots.attention import plot_attention

        examples = splits.test.examples
        chosen = showcase_examples(examples, config.n_heatmaps)
        texts = [examples[i].text for i in chosen]
        outputs, attentions = translate(predictor.model, texts, predictor.info["source"], predictor.info["target"],
                                        config.data.max_input_len, warn_unknown=False)
        for k, (i, out, att) in enumerate(zip(chosen, outputs, attentions, strict=True)):
            ex = examples[i]
            mark = "✓" if out == ex.iso else f"✗ (target {ex.iso})"
            plot_attention(ex.text.strip(), out, att, ctx.plots_dir / f"attention-{k + 1}-{ex.locale}.png",
                           title=f"[{ex.locale}] {out} {mark}")
        return {}

    def describe(self, config: DatesConfig) -> tuple[str, str]:
        m = config.model
        return (f"seq2seq RNN with {m.attention} attention ({'bi-' if m.bidirectional else ''}{m.rnn.upper()} "
                f"encoder {m.hidden_dim}, LSTM decoder)",
                f"generated dates ({config.data.locales}; years {config.data.first_year}-{config.data.last_year}; "
                f"{config.data.n_train} train) -> ISO 8601")


TASK = register(DatesTask())
# the task's hooks under short names (``from gicho.tasks.dates import build_data, evaluate, predict``)
build_data, evaluate, predict = TASK.build_data, TASK.evaluate, TASK.predict
