"""The pooling study: does mean pooling degrade as sequences grow, when [CLS] does not?

The synthetic task puts its evidence in a few tokens among many. Each sequence of length
``L`` is made of noise tokens drawn uniformly from ``noise_vocab`` ids, and ``n_markers``
copies of one of ``n_classes`` marker ids placed at random positions; the label is which
marker appears. A mean-pooled model sees the marker's contribution diluted by ``1/L``
unless attention spreads it over the sequence; a [CLS] model can attend to it directly.

For each length and each pooling mode, a fresh :class:`~gicho.models.classifier.
SequenceClassifier` is trained with :class:`gicho.train.Trainer` on freshly generated
sequences and scored on a held-out set generated with another seed. :func:`run_pooling_study`
returns one row per (length, pooling, seed) and writes ``pooling_study.csv``,
``pooling_study.json`` and ``pooling_study.png`` (accuracy vs length for both poolings,
:func:`gicho.plots.studies.plot_pooling_study`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gicho._validation import check_choice, check_positive
from gicho.plots.studies import plot_pooling_study
from gicho.studies._tables import require_nonempty, write_study_tables

__all__ = ["PoolingStudyConfig", "StudyEncoder", "make_marker_data", "run_pooling_study"]

PAD_ID = 0  # never generated; keeps the models' default pad_token_id harmless
FIRST_MARKER_ID = 1  # marker ids are 1..n_classes, noise ids follow them


@dataclass
class StudyEncoder:
    """The encoder every run of the study trains (see :class:`gicho.models.classifier.ClassifierConfig`).

    The input (token ids over the marker vocabulary), the classes, the pooling mode and the
    length are set by the study for each run.
    """

    d_model: int = field(default=32, metadata={"help": "encoder width"})
    n_heads: int = field(default=2, metadata={"help": "attention heads"})
    n_layers: int = field(default=1, metadata={"help": "encoder layers"})
    dropout: float = field(default=0.0, metadata={"help": "dropout"})
    norm_first: bool = field(default=True, metadata={"help": "pre-LN blocks"})
    position: Literal["learned", "sinusoidal", "none"] = field(default="learned",
                                                                metadata={"help": "position embedding"})


def _study_train() -> Any:
    from gicho.train.config import TrainConfig

    return TrainConfig(max_steps=300, batch_size=32, lr=1e-2, weight_decay=0.01, warmup_steps=30,
                       eval_batch_size=256)


# `gicho study pooling --quick`: 4 runs at two lengths, one seed
QUICK = {"lengths": (16, 128), "seeds": (0,), "train.max_steps": 150}


@dataclass
class PoolingStudyConfig:
    """Settings of ``gicho study pooling`` (every field is a CLI option ``--field value``).

    Parameters
    ----------
    lengths : tuple of int
        Sequence lengths to compare.
    pools : tuple of str
        Pooling modes to compare (``"mean"``, ``"cls"``, ``"max"``).
    seeds : tuple of int
        Training seeds; each (length, pool) is trained once per seed (``train.seed``).
    n_classes : int
        Number of marker ids (classes); chance accuracy is ``1 / n_classes``.
    n_markers : int
        Copies of the marker in each sequence.
    noise_vocab : int
        Number of noise ids.
    n_test : int
        Held-out sequences per length (generated with ``data_seed + 1``).
    data_seed : int
        Seed of the generated training (``data_seed``) and held-out (``data_seed + 1``) data.
    model : StudyEncoder
        The encoder (``--model.d-model 64``).
    train : TrainConfig
        Training (``--train.max-steps 300``); each step sees ``batch_size`` freshly generated
        sequences; ``seed`` is taken from ``seeds``, evaluation happens once, at the end.
    """

    lengths: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    pools: tuple[str, ...] = ("mean", "cls")
    seeds: tuple[int, ...] = (0, 1, 2)
    n_classes: int = 4
    n_markers: int = 1
    noise_vocab: int = 32
    n_test: int = 512
    data_seed: int = 0
    model: StudyEncoder = field(default_factory=StudyEncoder)
    train: Any = field(default_factory=_study_train)

    def __post_init__(self) -> None:
        require_nonempty(self, "lengths", "pools", "seeds")
        for length in self.lengths:
            check_positive(length, "lengths", integer=True)
        for pool in self.pools:
            check_choice(pool, "pools", ("mean", "cls", "max"))
        for name in ("n_classes", "n_markers", "noise_vocab", "n_test"):
            check_positive(getattr(self, name), name, integer=True)
        if self.n_markers > min(self.lengths):
            raise ValueError(
                f"n_markers={self.n_markers} does not fit in the shortest length {min(self.lengths)}"
            )


def make_marker_data(
    n: int, length: int, *, n_classes: int, n_markers: int, noise_vocab: int, seed: int
) -> tuple[Any, Any]:
    """Generate the marker task.

    Returns
    -------
    input_ids : Tensor, int64, shape (n, length)
        Noise ids in ``[1 + n_classes, 1 + n_classes + noise_vocab)`` with ``n_markers`` copies
        of marker ``1 + label`` at distinct random positions.
    labels : Tensor, int64, shape (n,), values in ``[0, n_classes)``
    """
    import torch

    if n_markers > length:
        raise ValueError(f"n_markers={n_markers} does not fit in length={length}")
    g = torch.Generator().manual_seed(seed)
    first_noise = FIRST_MARKER_ID + n_classes
    ids = torch.randint(first_noise, first_noise + noise_vocab, (n, length), generator=g)
    labels = torch.randint(0, n_classes, (n,), generator=g)
    positions = torch.rand(n, length, generator=g).argsort(dim=1)[:, :n_markers]  # (n, n_markers)
    markers = (FIRST_MARKER_ID + labels)[:, None].expand(n, n_markers)
    ids.scatter_(1, positions, markers)
    return ids, labels


def _one_run(config: PoolingStudyConfig, length: int, pool: str, seed: int) -> dict[str, Any]:
    import torch

    from gicho.data.arrays import ArrayDataset
    from gicho.models.classifier import ClassifierConfig, SequenceClassifier
    from gicho.train import ClassificationAccuracy, Trainer

    common = {"n_classes": config.n_classes, "n_markers": config.n_markers, "noise_vocab": config.noise_vocab}
    steps = config.train.max_steps
    n_train = steps * config.train.batch_size  # every step sees new sequences
    ids, labels = make_marker_data(n_train, length, seed=config.data_seed, **common)
    train = ArrayDataset(input_ids=ids, labels=labels)
    ids, labels = make_marker_data(config.n_test, length, seed=config.data_seed + 1, **common)
    test = ArrayDataset(input_ids=ids, labels=labels)
    torch.manual_seed(seed)
    model = SequenceClassifier(ClassifierConfig(
        **dataclasses.asdict(config.model), vocab_size=FIRST_MARKER_ID + config.n_classes + config.noise_vocab,
        n_labels=config.n_classes, pool=pool, max_len=length, pad_token_id=PAD_ID))
    train_config = dataclasses.replace(config.train, eval_every=steps, log_every=max(1, steps // 10),
                                       seed=seed, progress=False)
    start = time.perf_counter()
    result = Trainer(model, train, test, ClassificationAccuracy, train_config).fit()
    seconds = time.perf_counter() - start
    final_loss = next(
        (e["loss"] for e in reversed(result.history) if e.get("split") == "train" and "loss" in e),
        float("nan"),
    )
    return {
        "length": length,
        "pool": pool,
        "seed": seed,
        "accuracy": result.final_metrics["accuracy"],
        "eval_loss": result.final_metrics.get("eval_loss", float("nan")),
        "train_loss": final_loss,  # mean over the last ~10% of steps
        "steps": result.step,
        "seconds": round(seconds, 2),
    }


def run_pooling_study(
    config: PoolingStudyConfig | None = None, out_dir: str | Path | None = None,
    on_run_start: Any = None,
) -> list[dict[str, Any]]:
    """Train every (length, pool, seed) combination and return one row each.

    Parameters
    ----------
    config : PoolingStudyConfig, optional
    out_dir : path, optional
        When given, ``pooling_study.csv``, ``pooling_study.json`` (config + rows) and
        ``pooling_study.png`` are written there.
    on_run_start : callable, optional
        ``on_run_start(i, n, length, pool, seed)`` before the i-th of n runs (progress).

    Returns
    -------
    list of dict
        Keys: ``length, pool, seed, accuracy, eval_loss, train_loss, steps, seconds``;
        ``accuracy`` and ``eval_loss`` are on the held-out set after the last step,
        ``train_loss`` is the mean training loss over the last ~10% of the steps.
    """
    config = PoolingStudyConfig() if config is None else config
    runs = [(length, pool, seed) for length in config.lengths for pool in config.pools
            for seed in config.seeds]
    rows = []
    for i, (length, pool, seed) in enumerate(runs, start=1):
        if on_run_start is not None:
            on_run_start(i, len(runs), length, pool, seed)
        rows.append(_one_run(config, length, pool, seed))
    if out_dir is not None:
        out = write_study_tables(out_dir, "pooling_study", dataclasses.asdict(config), rows)
        plot_pooling_study(rows, out / "pooling_study.png", chance=1.0 / config.n_classes)
    return rows
