"""Task ``dates``: human-written dates to ISO 8601 with an attention-based RNN seq2seq.

* T: :class:`gicho.models.seq2seq.Seq2Seq` (bi-GRU encoder, LSTM decoder with attention).
* E: pairs from :class:`gicho.data.dates.DateGenerator` (Faker + Babel; en, ko, de, fr, es);
  training, validation and held-out test sets come from disjoint seeds, and the held-out sets
  exclude every input string seen in training.
* P: exact-match accuracy (headline) and character accuracy of greedy decoding on the
  held-out test set, overall and per locale (``exact_match_en``, ...).

The validation set selects the best checkpoint (by exact match); the test set is only
scored at the end. The run writes ``vocab.json`` (source and target vocabularies) next to
the checkpoints, and attention heatmaps of a few held-out examples under ``plots/``.

``predict`` reads each input with :func:`gicho.data.dates.encode_source`: surrounding
whitespace is stripped; an empty input or one longer than ``max_input_len`` raises
``ValueError`` (a date is never truncated, which could drop its year); characters outside the
vocabulary are read as ``<unk>`` with a warning. Option ``attention=PATH`` draws the
attention map (input characters × output characters) of the first input.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gicho.tasks import RunContext, Task, register
from gicho.tasks._training import check_num_threads, train_config_from, with_config_threads

__all__ = ["DatesConfig", "plot_attention", "score_strings"]

VOCAB_FILE = "vocab.json"
LOCALES = ("en", "ko", "de", "fr", "es")  # = gicho.data.dates.LOCALES (kept import-free; tested)
PREDICT_OPTIONS = ("attention", "beam_width", "length_penalty")
# Fonts with Hangul tried before matplotlib's default (any that is installed is used).
_CJK_FONTS = ("Noto Sans CJK KR", "Noto Sans KR", "NanumGothic", "Malgun Gothic", "AppleGothic")


@dataclass
class DatesConfig:
    """Config of ``dates`` (every field is a ``--field value`` override).

    Data: ``locales`` is a comma-separated subset of ``en,ko,de,fr,es``; ``n_train``,
    ``n_valid``, ``n_test`` are split sizes; ``data_seed`` seeds the generator. Model: see
    :class:`gicho.models.seq2seq.Seq2SeqConfig`. Decoding for ``predict``: ``beam_width``
    (1 = greedy) and ``length_penalty``; metrics always use greedy decoding. Training: the
    fields shared with :class:`gicho.train.TrainConfig`. ``n_heatmaps`` held-out examples get
    an attention figure. ``num_threads`` sets torch's CPU threads while a hook runs (restored
    afterwards; 0 leaves torch's setting): the small recurrent steps run fastest on one
    thread, and far slower with two on a busy two-core machine.
    """

    locales: str = "en,ko,de,fr,es"
    n_train: int = 50_000
    n_valid: int = 1_000
    n_test: int = 5_000
    data_seed: int = 0
    max_input_len: int = 64
    rnn: Literal["gru", "lstm"] = "gru"
    bidirectional: bool = True
    embed_dim: int = 64
    hidden_dim: int = 128
    encoder_layers: int = 1
    decoder_layers: int = 1
    attention: Literal["dot", "general", "additive"] = "general"
    attention_dim: int = 128
    input_feeding: bool = False
    dropout: float = 0.0
    teacher_forcing_ratio: float = 1.0
    beam_width: int = 1
    length_penalty: float = 1.0
    max_steps: int = 1500
    batch_size: int = 128
    eval_batch_size: int = 500
    lr: float = 3e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    eval_every: int = 250
    log_every: int = 50
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    compile: bool = False
    n_heatmaps: int = 4
    num_threads: int = 1

    def __post_init__(self) -> None:
        check_num_threads(self.num_threads)
        tags = _locales(self)
        if not tags or any(tag not in LOCALES for tag in tags):
            raise ValueError(f"field `locales` must be a comma-separated subset of {','.join(LOCALES)}; "
                             f"got {self.locales!r}")
        for name in ("n_train", "n_valid", "n_test", "max_input_len", "beam_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"field `{name}` must be >= 1; got {getattr(self, name)!r}")
        if self.n_heatmaps < 0:
            raise ValueError(f"field `n_heatmaps` must be >= 0; got {self.n_heatmaps!r}")


def _locales(config: DatesConfig) -> tuple[str, ...]:
    return tuple(part.strip() for part in config.locales.split(",") if part.strip())


# ----------------------------------------------------------------------------- metrics


def score_strings(predictions: Sequence[str], targets: Sequence[str]) -> dict[str, float]:
    """Exact-match and character accuracy of predicted strings against targets.

    Character accuracy compares position by position over each target's characters (a
    missing predicted character counts as wrong, extra ones are ignored).
    """
    from gicho.metrics import accuracy

    if len(predictions) != len(targets) or not targets:
        raise ValueError(f"need as many predictions as targets (>= 1); got {len(predictions)} and {len(targets)}")
    true_chars = [c for t in targets for c in t]
    pred_chars = [p[i] if i < len(p) else "" for p, t in zip(predictions, targets, strict=True) for i in range(len(t))]
    return {"exact_match": accuracy(list(targets), list(predictions)),
            "char_accuracy": accuracy(true_chars, pred_chars)}


def _decode_rows(vocab: Any, rows: Any) -> list[str]:
    return [vocab.decode([int(i) for i in row if int(i) >= 0]) for row in rows.tolist()]


class _StringScores:
    """Streaming metric for the Trainer: exact and char accuracy of the greedy decodings."""

    def __init__(self, target_vocab: Any) -> None:
        self.vocab = target_vocab
        self.predictions: list[str] = []
        self.targets: list[str] = []

    def update(self, outputs: Any, batch: Any) -> None:
        self.predictions += _decode_rows(self.vocab, outputs["generated"])
        self.targets += _decode_rows(self.vocab, batch["labels"])

    def compute(self) -> dict[str, float]:
        return score_strings(self.predictions, self.targets)


def _trainer_metrics(target_vocab: Any) -> Any:
    """The Trainer's metrics factory: greedy decoding, exact and char accuracy."""
    return lambda: _StringScores(target_vocab)


def _eval_forward(model: Any, batch: Any) -> dict[str, Any]:
    """One evaluation forward: the loss and the greedy decoding the metrics score."""
    return {**model(**batch), "generated": model.generate(batch["src"], batch["src_mask"])["tokens"]}


# ----------------------------------------------------------------------------- building


def _data(config: DatesConfig) -> dict[str, Any]:
    from gicho.data.dates import DateGenerator, make_splits

    generator = DateGenerator(locales=_locales(config))
    return make_splits(config.n_train, config.n_valid, config.n_test, config.data_seed, generator)


def _model(config: DatesConfig, source_vocab: Any, target_vocab: Any) -> Any:
    import torch

    from gicho.models.seq2seq import Seq2Seq, Seq2SeqConfig

    torch.manual_seed(config.seed)
    names = {f.name for f in dataclasses.fields(Seq2SeqConfig)}
    kwargs = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name in names}
    return Seq2Seq(Seq2SeqConfig(
        src_vocab_size=len(source_vocab), tgt_vocab_size=len(target_vocab), pad_id=target_vocab.pad_id,
        bos_id=target_vocab.bos_id, eos_id=target_vocab.eos_id, **kwargs))


def _is_main_process() -> bool:
    """False on the other ranks of a torchrun launch (only rank 0 writes shared files)."""
    return int(os.environ.get("RANK", "0")) == 0


def _save_vocabs(run_dir: Path, source: Any, target: Any) -> None:
    if not _is_main_process():
        return
    from gicho._io import atomic_write_text

    text = json.dumps({"source": source.to_dict(), "target": target.to_dict()}, ensure_ascii=False)
    atomic_write_text(run_dir / VOCAB_FILE, text)


def _load_trained(ctx: RunContext) -> tuple[Any, Any, Any]:
    """The best checkpoint's model (eval mode, CPU) and the run's two vocabularies."""
    from gicho.data.dates import Vocab
    from gicho.models.seq2seq import Seq2Seq, Seq2SeqConfig
    from gicho.train import best_checkpoint, load_model_weights

    path = ctx.run_dir / VOCAB_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {ctx.run_dir} is not a finished `dates` run")
    try:
        vocabs = json.loads(path.read_text(encoding="utf-8"))
        source, target = Vocab.from_dict(vocabs["source"]), Vocab.from_dict(vocabs["target"])
    except (KeyError, TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path} is not a gicho vocabulary file ({type(exc).__name__}: {exc})") from None
    checkpoint = best_checkpoint(ctx.run_dir)
    config_path = checkpoint / "config.json"
    try:
        model = Seq2Seq(Seq2SeqConfig(**json.loads(config_path.read_text(encoding="utf-8"))))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{config_path} is not a valid Seq2SeqConfig ({exc})") from None
    load_model_weights(model, checkpoint)
    return model.eval(), source, target


# ----------------------------------------------------------------------------- evaluation


def _translate(model: Any, texts: Sequence[str], source: Any, target: Any, max_input_len: int,
               beam_width: int = 1, length_penalty: float = 1.0, batch_size: int = 500,
               warn_unknown: bool = True) -> tuple[list[str], list[Any]]:
    """Decode ``texts``; returns the output strings and each one's attention (T_out, S) on CPU."""
    import torch

    from gicho.data.dates import encode_source

    # every input is checked before any decoding
    encoded = [encode_source(text, source, max_input_len, warn_unknown) for text in texts]
    device = next(model.parameters()).device
    outputs, attentions = [], []
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            S = max(len(ids) for ids in chunk)
            src = torch.full((len(chunk), S), source.pad_id, dtype=torch.long)
            for i, ids in enumerate(chunk):
                src[i, : len(ids)] = torch.tensor(ids)
            mask = src != source.pad_id
            out = model.generate(src.to(device), mask.to(device), beam_width=beam_width,
                                 length_penalty=length_penalty)
            for i, row in enumerate(out["tokens"].cpu().tolist()):
                n = row.index(target.eos_id) + 1 if target.eos_id in row else len(row)
                outputs.append(target.decode(row))
                attentions.append(out["attentions"][i, :n, : len(chunk[i])].float().cpu())
    return outputs, attentions


def _held_out_metrics(model: Any, examples: Sequence[Any], source: Any, target: Any,
                      config: DatesConfig) -> tuple[dict[str, float], list[str], list[Any]]:
    """Greedy exact-match and character accuracy on ``examples``, overall and per locale."""
    predictions, attentions = _translate(model, [ex.text for ex in examples], source, target,
                                         config.max_input_len, batch_size=config.eval_batch_size,
                                         warn_unknown=False)
    metrics = score_strings(predictions, [ex.iso for ex in examples])
    for tag in _locales(config):
        idx = [i for i, ex in enumerate(examples) if ex.locale == tag]
        if idx:
            part = score_strings([predictions[i] for i in idx], [examples[i].iso for i in idx])
            metrics[f"exact_match_{tag}"] = part["exact_match"]
            metrics[f"char_accuracy_{tag}"] = part["char_accuracy"]
    return metrics, predictions, attentions


# ----------------------------------------------------------------------------- figures


def _register_bundled_hangul_font(font_manager: Any) -> None:
    """Make the NanumGothic font shipped by the ``koreanize-matplotlib`` package known to matplotlib.

    matplotlib's own fonts have no Hangul. The package is a dependency of gicho only for its
    font file: it is located, not imported, because importing it changes matplotlib's global
    font settings for the whole process.
    """
    import importlib.util

    spec = importlib.util.find_spec("koreanize_matplotlib")
    if spec is None or spec.origin is None:
        return  # not installed: Korean characters are labelled U+XXXX instead
    font = Path(spec.origin).parent / "fonts" / "NanumGothic.ttf"
    known = {f.fname for f in font_manager.fontManager.ttflist}
    if font.is_file() and str(font) not in known:
        font_manager.fontManager.addfont(str(font))


def _label(char: str, font_chars: set[int] | None) -> str:
    if char == " ":
        return "␣"
    if font_chars is not None and ord(char) not in font_chars:
        return f"U+{ord(char):04X}"  # the installed fonts cannot draw it
    return char


def plot_attention(source: str, output: str, weights: Any, path: str | Path, title: str | None = None) -> Path:
    """Draw an attention map: output characters (rows) × input characters (columns).

    Parameters
    ----------
    source : str
        The input string (S characters).
    output : str
        The decoded output without the end token; the map's last row is the end token.
    weights : array-like, shape (len(output) + 1, S) or (len(output), S)
        Attention weights of each output step.
    path : path
        The PNG to write (parent directories are created).

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    weights = np.asarray(weights, dtype=float)
    rows = [*output, "</s>"][: weights.shape[0]]
    if weights.ndim != 2 or weights.shape[1] != len(source) or len(rows) != weights.shape[0]:
        raise ValueError(f"weights of shape {weights.shape} do not match the input ({len(source)} chars) "
                         f"and the output ({len(output)} chars + end)")
    _register_bundled_hangul_font(font_manager)
    installed = {f.name for f in font_manager.fontManager.ttflist}
    families = [f for f in _CJK_FONTS if f in installed] + ["DejaVu Sans"]
    font_chars: set[int] = set()
    for family in families:
        try:
            font_chars |= set(FT2Font(font_manager.findfont(family)).get_charmap())
        except (OSError, RuntimeError):  # pragma: no cover - broken font file
            continue
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context({"font.family": families}):
        fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(source) + 1.5), max(3.0, 0.35 * len(rows) + 1.2)))
        image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(source)), [_label(c, font_chars) for c in source],
                      rotation=0)
        ax.set_yticks(range(len(rows)), [_label(c, font_chars) if c != "</s>" else c for c in rows])
        ax.set_xlabel("input characters")
        ax.set_ylabel("output characters")
        shown = "".join(_label(c, font_chars) if c != " " else c for c in source)
        ax.set_title(title or f"{shown}  ->  {output}", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return path


def _heatmaps(examples: Sequence[Any], predictions: Sequence[str], attentions: Sequence[Any],
              plots_dir: Path, n: int) -> list[Path]:
    """Figures for ``n`` held-out examples, one locale after another, written dates first."""
    chosen: list[int] = []
    by_locale: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_locale.setdefault(ex.locale, []).append(i)
    for idx in by_locale.values():  # month names make the more telling maps
        idx.sort(key=lambda i: not any(c.isalpha() for c in examples[i].text))
    round_ = 0
    while len(chosen) < min(n, len(examples)):  # round-robin over the locales
        chosen += [idx[round_] for idx in by_locale.values() if round_ < len(idx)][: n - len(chosen)]
        round_ += 1
    paths = []
    for k, i in enumerate(chosen):
        ex = examples[i]
        mark = "✓" if predictions[i] == ex.iso else f"✗ (target {ex.iso})"
        title = f"[{ex.locale}] {predictions[i]} {mark}"
        paths.append(plot_attention(ex.text.strip(), predictions[i], attentions[i],
                                    plots_dir / f"attention-{k + 1}-{ex.locale}.png", title=title))
    return paths


# ----------------------------------------------------------------------------- hooks


@with_config_threads
def run(config: DatesConfig, ctx: RunContext) -> dict[str, float]:
    """Train on generated dates; return held-out exact match (headline), char accuracy, per locale."""
    from gicho.data.dates import TARGET_ALPHABET, DateDataset, Vocab
    from gicho.train import Trainer

    splits = _data(config)
    source = Vocab.build(ex.text for ex in splits["train"])
    target = Vocab(TARGET_ALPHABET)
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    _save_vocabs(ctx.run_dir, source, target)
    train = DateDataset(splits["train"], source, target, config.max_input_len)
    valid = DateDataset(splits["valid"], source, target, config.max_input_len)
    model = _model(config, source, target)
    train_config = train_config_from(config, early_stopping_metric="exact_match",
                                     early_stopping_mode="max", progress=ctx.progress)
    trainer = Trainer(model, train, valid, _trainer_metrics(target), train_config,
                      run_dir=ctx.run_dir, collate_fn=train.collate, eval_forward=_eval_forward)
    trainer.fit(resume=ctx.resume)
    model, source, target = _load_trained(ctx)  # the best checkpoint (validation exact match)
    model.to(trainer.device_)
    metrics, predictions, attentions = _held_out_metrics(model, splits["test"], source, target, config)
    if _is_main_process():
        _heatmaps(splits["test"], predictions, attentions, ctx.plots_dir, config.n_heatmaps)
    return metrics


@with_config_threads
def evaluate(config: DatesConfig, ctx: RunContext) -> dict[str, float]:
    """Reload the best checkpoint and recompute the held-out metrics."""
    model, source, target = _load_trained(ctx)
    return _held_out_metrics(model, _data(config)["test"], source, target, config)[0]


@with_config_threads
def predict(config: DatesConfig, ctx: RunContext, inputs: Sequence[str], options: dict[str, Any]) -> list[str]:
    """Translate each input to an ISO date string.

    Options: ``attention`` (a PNG path: the first input's attention map), ``beam_width`` and
    ``length_penalty`` (default: the config's).
    """
    unknown = sorted(set(options) - set(PREDICT_OPTIONS))
    if unknown:
        raise ValueError(f"unknown predict option(s) {unknown}; allowed: {', '.join(PREDICT_OPTIONS)}")
    if isinstance(inputs, str) or not inputs:
        raise ValueError(f"argument `inputs` must be a non-empty list of strings; got {inputs!r}")
    beam_width = int(options.get("beam_width", config.beam_width))
    length_penalty = float(options.get("length_penalty", config.length_penalty))
    if not math.isfinite(length_penalty):
        raise ValueError(f"option `length_penalty` must be finite; got {length_penalty!r}")
    model, source, target = _load_trained(ctx)
    outputs, attentions = _translate(model, list(inputs), source, target, config.max_input_len,
                                     beam_width=beam_width, length_penalty=length_penalty)
    if options.get("attention"):
        plot_attention(inputs[0].strip(), outputs[0], attentions[0], options["attention"])
    return outputs


register(Task(
    name="dates",
    model="seq2seq RNN with attention (bi-GRU encoder, LSTM decoder, Luong attentional state)",
    data="generated human-written dates (Faker + Babel; en, ko, de, fr, es) -> ISO 8601",
    metrics=("exact_match", "char_accuracy"),
    config_cls=DatesConfig,
    run=run,
    evaluate=evaluate,
    predict=predict,
    description="Translate human-written dates ('3rd of March, 2021', '2021년 3월 3일') to ISO dates.",
    tour={"n_train": 20_000, "n_test": 2_000, "max_steps": 600, "eval_every": 300, "hidden_dim": 64,
          "embed_dim": 32, "attention_dim": 64, "batch_size": 64, "lr": 5e-3, "warmup_steps": 30},
    quick={"n_train": 3_000, "n_valid": 200, "n_test": 500, "max_steps": 150, "eval_every": 150,
           "hidden_dim": 48, "embed_dim": 32, "attention_dim": 48, "batch_size": 64, "lr": 5e-3,
           "warmup_steps": 20, "n_heatmaps": 1},
))
