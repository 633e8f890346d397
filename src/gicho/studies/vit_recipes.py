"""The ViT-recipes study: what closes a ViT's data gap to a CNN on small image sets?

On MNIST-5k (the ``mnist`` task's split: 1,000 test images, 100 per digit), every arm is trained
on stratified samples of ``sizes`` training images (about 100, 300, 1,000 and all 4,000), with
``seeds`` seeds (the sample, the initialisation, the batch order), for the same number of
optimizer steps (``task.train``) whatever the arm or the size. The arms (:data:`ARMS`), each the
``mnist`` task with a few options changed:

* ``cnn``: :class:`~gicho.models.cnn.SmallCNN` (locality and weight sharing built in), the
  baseline to beat;
* ``vit``: the plain ViT of ``mnist`` (4x4 patches of 7x7 pixels, [CLS] head);
* one ingredient each, on the plain ViT: ``conv-stem`` (convolutions before the patch
  projection: Xiao et al. 2021; Compact Convolutional Transformers), ``spt`` (shifted-patch
  tokenisation) and ``lsa`` (locality self-attention), both from Lee et al. 2021 "Vision
  Transformer for Small-Size Datasets", ``mean-pool`` (the mean of the patch tokens instead of
  [CLS]: Beyer et al. 2022 "Better plain ViT baselines"), ``strong-aug`` (MixUp / CutMix on top of
  the shifts every arm gets), ``distill`` (DeiT's distillation token learning the hard predictions
  of the ``cnn`` arm's model trained on the same images: Touvron et al. 2021);
* ``combined``: the ingredients named by ``combine`` together.

Every arm gets the same ±2 px shift augmentation (a ViT or CNN trained without any would be a straw
man). :func:`run_vit_recipes_study` returns one row per run and writes ``vit_recipes_study.csv``,
``.json``, ``.md`` (mean ± std per arm and size, then each arm's gain over the plain ViT, paired by
seed) and ``.png`` (accuracy vs training images, one line per arm). The teachers (the ``cnn`` arm's
models) are kept in ``OUT/teachers/``. The study reports what it measures; it asserts nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gicho._io import atomic_write_text
from gicho._validation import check_choice
from gicho.plots.studies import plot_arms_by_size
from gicho.studies._tables import require_nonempty, summarise_arms, write_study_tables
from gicho.tasks.mnist import MnistConfig

__all__ = ["ARMS", "QUICK", "ViTRecipesStudyConfig", "arm_overrides", "run_vit_recipes_study", "summary_markdown"]

STEM = "vit_recipes_study"
INGREDIENTS: dict[str, dict[str, Any]] = {
    "conv-stem": {"model.vit.stem": "conv"},
    "spt": {"model.vit.stem": "shifted"},
    "lsa": {"model.vit.attention": "lsa"},
    "mean-pool": {"model.vit.pool": "mean"},
    "strong-aug": {"data.augment": "strong"},
    "distill": {"model.vit.distillation": True},
}
ARMS = ("cnn", "vit", *INGREDIENTS, "combined")
ARM_LABELS = {
    "cnn": "CNN", "vit": "plain ViT", "conv-stem": "ViT + conv stem", "spt": "ViT + shifted patches",
    "lsa": "ViT + locality self-attention", "mean-pool": "ViT + mean pooling", "strong-aug": "ViT + MixUp/CutMix",
    "distill": "ViT + distillation token (CNN teacher)", "combined": "ViT, combined",
}
DEFAULT_ARMS = ("cnn", "vit", "conv-stem", "lsa", "mean-pool", "strong-aug", "distill", "combined")
# `gicho study vit-recipes --quick`: 2 sizes, 1 seed, 3 arms, 60 steps: well under a minute
QUICK = {"sizes": (100, 1000), "seeds": (0,), "arms": ("cnn", "vit", "distill"), "task.train.max_steps": 60,
         "task.train.warmup_steps": 6}


def _task() -> MnistConfig:
    from gicho.tasks.mnist import MnistData, MnistModel, plain_vit
    from gicho.train.config import TrainConfig

    # the plain ViT and the shifts every arm gets (the mnist task's own defaults are the recipe);
    # every arm, every size: the same 1,500 steps of 64 images (24 passes over all 4,000)
    return MnistConfig(model=MnistModel(vit=plain_vit()), data=MnistData(augment="shift"),
                       train=TrainConfig(max_steps=1500, batch_size=64, lr=2e-3, weight_decay=0.05, warmup_steps=75,
                                         eval_batch_size=500, num_threads=1))


@dataclass
class ViTRecipesStudyConfig:
    """Settings of ``gicho study vit-recipes`` (every field is an option ``--field value``).

    Parameters
    ----------
    sizes : tuple of int
        Training images (stratified samples of the training split; at most its 4,000).
    seeds : tuple of int
        Each seed draws its own samples, initialisations and batch orders.
    arms : tuple of str
        Among :data:`ARMS`; ``distill`` and ``combined`` with distillation need a teacher: the
        ``cnn`` arm's model of the same size and seed (trained first, and kept, even when ``cnn``
        is not among the arms reported).
    combine : tuple of str
        The ingredients of the ``combined`` arm (names of :data:`INGREDIENTS`); by default the
        conv stem, mean pooling, MixUp/CutMix and distillation, the best of a one-seed pilot at
        1,000 images (``benchmarks/RESULTS.md``; mean pooling and MixUp/CutMix alone did not help there).
    task : MnistConfig
        The ``mnist`` task every arm starts from (``--task.train.max-steps 800``,
        ``--task.model.vit.d-model 96``); the study sets the sample, the seed and the arm's options.
    """

    sizes: tuple[int, ...] = (100, 300, 1000, 4000)
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[str, ...] = DEFAULT_ARMS
    combine: tuple[str, ...] = ("conv-stem", "mean-pool", "strong-aug", "distill")
    task: MnistConfig = field(default_factory=_task)

    def __post_init__(self) -> None:
        require_nonempty(self, "sizes", "seeds", "arms")
        for n in self.sizes:
            if isinstance(n, bool) or not isinstance(n, int) or n < 10:
                raise ValueError(f"argument `sizes` must hold integers >= 10 (one image per digit at least); got {n!r}")
        for arm in self.arms:
            check_choice(arm, "arms", ARMS)
        for name in self.combine:
            check_choice(name, "combine", tuple(INGREDIENTS))
        if "combined" in self.arms and not self.combine:
            raise ValueError("argument `combine` is empty, but the arms include 'combined'; name its ingredients")
        stems = [n for n in self.combine if n in ("conv-stem", "spt")]
        if len(stems) > 1:
            raise ValueError(f"argument `combine` names two stems ({', '.join(stems)}); a ViT has one")


def arm_overrides(config: ViTRecipesStudyConfig, arm: str) -> dict[str, Any]:
    """The ``mnist`` options that make ``arm`` out of ``config.task`` (without the teacher)."""
    if arm == "cnn":
        return {"model.arch": "cnn"}
    names = config.combine if arm == "combined" else (arm,) if arm in INGREDIENTS else ()
    out: dict[str, Any] = {"model.arch": "vit"}
    for name in names:
        out.update(INGREDIENTS[name])
    return out


def _distilled(overrides: dict[str, Any]) -> bool:
    return bool(overrides.get("model.vit.distillation"))


def _train(config: ViTRecipesStudyConfig, overrides: dict[str, Any], n: int, seed: int) -> tuple[float, Any]:
    """Train one ``mnist`` model on ``n`` images with ``seed``: its test accuracy and the model."""
    import torch

    from gicho.tasks import apply_overrides
    from gicho.tasks.mnist import TASK
    from gicho.train import ClassificationAccuracy, Trainer

    base = config.task
    run = apply_overrides(base, {**overrides, "data.n_train": n, "data.sample_seed": seed, "train.seed": seed})
    run = dataclasses.replace(run, train=dataclasses.replace(run.train, eval_every=run.train.max_steps,
                                                             log_every=run.train.max_steps, progress=False))
    splits = TASK.build_data(run)
    torch.manual_seed(seed)
    model = TASK.build_model(run, splits)
    result = Trainer(model, splits.train, splits.test, ClassificationAccuracy, run.train, collate_fn=splits.collate,
                     train_collate_fn=splits.train_collate).fit()
    return result.final_metrics["accuracy"], model


def run_vit_recipes_study(config: ViTRecipesStudyConfig | None = None, out_dir: str | Path | None = None,
                          on_run_start: Callable[[int, int, str, int, int], None] | None = None) -> list[dict[str, Any]]:
    """Train every (size, seed, arm) and return one row each: ``arm, n_train, seed, accuracy,
    params, seconds``. The tables and the figure are rewritten after every run (an interrupted
    study keeps what it measured)."""
    from gicho.train.config import torch_threads

    config = ViTRecipesStudyConfig() if config is None else config
    out = Path(out_dir) if out_dir is not None else None
    needs_teacher = any(_distilled(arm_overrides(config, arm)) for arm in config.arms)
    runs = [(n, seed, arm) for n in config.sizes for seed in config.seeds for arm in config.arms]
    rows: list[dict[str, Any]] = []
    with torch_threads(config.task.train.num_threads), _teacher_dir(out) as teachers:
        for i, (n, seed, arm) in enumerate(runs, start=1):
            if on_run_start is not None:
                on_run_start(i, len(runs), arm, n, seed)
            overrides = arm_overrides(config, arm)
            teacher = teachers / f"cnn-n{n}-seed{seed}"
            start = time.perf_counter()
            if _distilled(overrides):
                if not (teacher / "config.json").is_file():  # the cnn arm is not reported: train it for this
                    _, cnn = _train(config, arm_overrides(config, "cnn"), n, seed)
                    cnn.save_pretrained(teacher)
                overrides["model.teacher"] = str(teacher)
            accuracy, model = _train(config, overrides, n, seed)
            if arm == "cnn" and needs_teacher:
                model.save_pretrained(teacher)
            rows.append({"arm": arm, "n_train": n, "seed": seed, "accuracy": accuracy,
                         "params": sum(p.numel() for p in model.parameters()),
                         "seconds": round(time.perf_counter() - start, 2)})
            if out is not None:
                _write(config, out, rows)
    return rows


@contextlib.contextmanager
def _teacher_dir(out: Path | None) -> Iterator[Path]:
    """``OUT/teachers`` (kept), or a temporary directory when the study writes nothing."""
    if out is not None:
        yield out / "teachers"
        return
    with tempfile.TemporaryDirectory(prefix="gicho-vit-recipes-") as tmp:
        yield Path(tmp)


def _write(config: ViTRecipesStudyConfig, out: Path, rows: list[dict[str, Any]]) -> None:
    from gicho.tasks import config_to_dict

    write_study_tables(out, STEM, config_to_dict(config), rows)
    atomic_write_text(out / f"{STEM}.md", summary_markdown(rows))
    plot(rows, out / f"{STEM}.png")


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds per (arm, n_train), arms in :data:`ARMS` order."""
    return summarise_arms(rows, "n_train", ARMS)


def gains(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each arm's accuracy minus the plain ViT's, paired by (size, seed): mean and std per (arm,
    n_train) over the seeds both ran (none without ``vit`` rows)."""
    plain = {(r["n_train"], r["seed"]): r["accuracy"] for r in rows if r["arm"] == "vit"}
    paired = [{**r, "accuracy": r["accuracy"] - plain[(r["n_train"], r["seed"])]} for r in rows
              if r["arm"] != "vit" and (r["n_train"], r["seed"]) in plain]
    return summarise_arms(paired, "n_train", ARMS) if paired else []


def summary_markdown(rows: list[dict[str, Any]]) -> str:
    """Two markdown tables: accuracy (mean ± std over seeds) per arm and size, then each arm's
    gain over the plain ViT in points (paired by seed)."""
    sizes = sorted({r["n_train"] for r in rows})
    head = ["| arm | " + " | ".join(f"{n} images" for n in sizes) + " |", "|---|" + "---:|" * len(sizes)]

    def table(summary: list[dict[str, Any]], cell: Callable[[dict[str, Any]], str]) -> list[str]:
        lines = list(head)
        for arm in dict.fromkeys(s["arm"] for s in summary):
            cells = {s["n_train"]: cell(s) for s in summary if s["arm"] == arm}
            lines.append(f"| {ARM_LABELS[arm]} | " + " | ".join(cells.get(n, "") for n in sizes) + " |")
        return lines

    seeds = sorted({r["seed"] for r in rows})
    text = table(summarise(rows), lambda s: f"{s['mean']:.3f} ± {s['std']:.3f}")
    text.append(f"\nTest accuracy (1,000 held-out images), mean ± std over {len(seeds)} seed(s) {seeds}.")
    delta = gains(rows)
    if delta:
        text += ["", "Gain over the plain ViT, in points (paired by seed; mean ± std):", ""]
        text += table(delta, lambda s: f"{100 * s['mean']:+.1f} ± {100 * s['std']:.1f}")
    return "\n".join(text) + "\n"


def plot(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Accuracy vs training images, one line per arm (:func:`gicho.plots.studies.plot_arms_by_size`)."""
    low = min(r["accuracy"] for r in rows)
    seeds = len({r["seed"] for r in rows})
    return plot_arms_by_size(rows, summarise(rows), path, labels=ARM_LABELS, size_key="n_train",
                             xlabel="training images (MNIST-5k)", ylim=(max(0.0, low - 0.05), 1.0),
                             title=f"what closes a ViT's data gap to a CNN\n(the same steps for every arm; "
                                   f"{seeds} seed{'s' if seeds > 1 else ''})")
