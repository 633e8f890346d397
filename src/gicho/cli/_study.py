"""`gicho study ...`: train many small models and measure one claim."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from gicho.cli._app import _console, study_app


def _start(ctx: typer.Context, config: Any, out: Path | None, name: str) -> tuple[Any, Path, bool]:
    """The study's config with the command line's overrides, its output directory, and whether
    the directory is the study's own (it did not exist before)."""
    from gicho.tasks import apply_overrides

    config = apply_overrides(config, list(ctx.args))
    created = out is None or not out.exists()
    if out is None:
        from gicho.runs import new_run_dir

        out = new_run_dir(f"study-{name}")
    typer.echo(f"study: {out}", err=True)
    return config, out, created


@contextlib.contextmanager
def _removed_if_empty(out: Path, created: bool) -> Iterator[None]:
    """If the study fails while ``out``, its own directory, is still empty, remove it (and say
    so): a study that failed before it wrote anything leaves nothing behind."""
    try:
        yield
    except BaseException:
        if not created:
            raise
        try:
            out.rmdir()  # only an empty directory
        except OSError:
            pass
        else:
            typer.echo(f"removed {out}: the study failed before it wrote anything", err=True)
        raise


def _report(title: str, columns: tuple[str, ...], cells: list[tuple[str, ...]], out: Path,
            files: tuple[str, ...]) -> None:
    """Print the study's table, then the files it wrote."""
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    for row in cells:
        table.add_row(*row)
    _console().print(table)
    for name in files:
        typer.echo(f"wrote {out / name}")


@study_app.command(
    "pooling",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def study_pooling_command(
    ctx: typer.Context,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Directory of the table and plot (default: runs/study-pooling-<time>)."),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="A small budget: lengths 16,128, one seed, 150 steps (4 runs)."),
    ] = False,
) -> None:
    """Mean vs [CLS] pooling when the evidence is one token among many, at lengths 16..512.

    Every PoolingStudyConfig field is an option. Defaults: --lengths 16,32,64,128,256,512
    --pools mean,cls --seeds 0,1,2 (36 runs) --model.d-model 32 --train.max-steps 300
    (see gicho.studies.pooling).
    """
    from gicho.studies.pooling import QUICK, PoolingStudyConfig, run_pooling_study
    from gicho.tasks import apply_overrides

    start = apply_overrides(PoolingStudyConfig(), QUICK if quick else {})
    config, out, created = _start(ctx, start, out, "pooling")

    def announce(i: int, n: int, length: int, pool: str, seed: int) -> None:
        typer.echo(f"[{i}/{n}] length {length}, {pool} pooling, seed {seed}", err=True)

    with _removed_if_empty(out, created):
        rows = run_pooling_study(config, out_dir=out, on_run_start=announce)
    _report("pooling study: held-out accuracy (chance = 1/n_classes)",
            ("length", "pool", "seed", "accuracy", "eval_loss", "seconds"),
            [(str(r["length"]), r["pool"], str(r["seed"]), f"{r['accuracy']:.3f}",
              f"{r['eval_loss']:.3f}", f"{r['seconds']:.1f}") for r in rows],
            out, ("pooling_study.csv", "pooling_study.json", "pooling_study.png"))



@study_app.command(
    "data-size",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def study_data_size_command(
    ctx: typer.Context,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Directory of the table and plot (default: runs/study-data-size-<time>)."),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="A small budget: fractions 0.1,1, one seed, no shifts, 150 steps "
                           "(6 runs)."),
    ] = False,
) -> None:
    """ViT vs a CNN of similar size vs PCA + logistic regression on growing shares of the digits.

    Every DataSizeStudyConfig field is an option. Defaults: --fractions 0.05,0.1,0.25,0.5,1
    --seeds 0,1,2 --models vit,cnn,pca-logreg --max-shifts 0,1 (75 runs, of which the 60
    neural ones train for --train.max-steps 800) (see gicho.studies.data_size).
    """
    from gicho.studies.data_size import QUICK, DataSizeStudyConfig, run_data_size_study
    from gicho.tasks import apply_overrides

    start = apply_overrides(DataSizeStudyConfig(), QUICK if quick else {})
    config, out, created = _start(ctx, start, out, "data-size")

    def announce(i: int, n: int, model: str, fraction: float, shift: int, seed: int) -> None:
        typer.echo(f"[{i}/{n}] {model}, {fraction:g} of the training set, shift {shift}, seed {seed}", err=True)

    with _removed_if_empty(out, created):
        rows = run_data_size_study(config, out_dir=out, on_run_start=announce)
    _report("data-size study: held-out accuracy on the digits",
            ("model", "params", "n_train", "max_shift", "seed", "accuracy", "seconds"),
            [(r["model"], str(r["params"]), str(r["n_train"]), str(r["max_shift"]), str(r["seed"]),
              f"{r['accuracy']:.3f}", f"{r['seconds']:.1f}") for r in rows],
            out, ("data_size_study.csv", "data_size_study.json", "data_size_study.png"))


@study_app.command(
    "pretraining",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def study_pretraining_command(
    ctx: typer.Context,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Directory of the tables and plot (default: runs/study-pretraining-<time>)."),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="A small budget (a few minutes): 2 label counts, 1 seed, short training."),
    ] = False,
) -> None:
    """Fine-tune from random init, gicho's own MLM-pretrained BERT and MiniLM at growing numbers of labels.

    The task is bert-classify's default (Rotten Tomatoes sentiment, held out by film; the same
    test split for every run). `random` has the architecture and tokenizer of gicho's model, so
    random vs gicho isolates pretraining; MiniLM is a bigger architecture with its own tokenizer
    (the ceiling; skipped, with a note, without the `bert` extra). --pretrained RUN (an mlm-bert
    run) skips the pretraining the study otherwise does first (the recipe: BERT-tiny, pre-LN, no
    dropout, 25% masking, 7,500 steps on the offline corpora with the sentiment task's training
    films only; about an hour on two cores; kept in OUT/pretrain). Defaults: --labels
    64,256,1024,0 (stratified samples; 0 = all) --seeds 0,1,2 --arms random,gicho,minilm, 300
    fine-tuning steps of 32 texts of at most 64 tokens at every size (--finetune.train.max-steps,
    --finetune.model.max-len), --gicho-lr 5e-4 --minilm-lr 1e-4. Writes
    pretraining_study.{csv,json,md,png} (the .md: mean ± std over seeds, majority-class baseline,
    the pretrained model's facts) after every run. See gicho.studies.pretraining.
    """
    from gicho.studies.pretraining import (
        QUICK,
        PretrainingStudyConfig,
        run_pretraining_study,
        summarise,
    )
    from gicho.tasks import apply_overrides

    start = apply_overrides(PretrainingStudyConfig(), QUICK if quick else {})
    config, out, created = _start(ctx, start, out, "pretraining")

    def announce(i: int, n: int, arm: str, n_labels: int, seed: int) -> None:
        typer.echo(f"[{i}/{n}] {arm}, {n_labels} labels, seed {seed}", err=True)

    with _removed_if_empty(out, created):
        rows = run_pretraining_study(config, out_dir=out, on_run_start=announce,
                                     on_note=lambda message: typer.echo(message, err=True))
    _report("pretraining study: test accuracy, mean ± std over seeds "
            f"(majority class: {rows[0]['majority_accuracy']:.3f})",
            ("arm", "labels", "seeds", "accuracy"),
            [(s["arm"], str(s["n_labels"]), str(s["seeds"]), f"{s['mean']:.3f} ± {s['std']:.3f}")
             for s in summarise(rows)],
            out, ("pretraining_study.csv", "pretraining_study.json", "pretraining_study.md",
                  "pretraining_study.png"))


@study_app.command(
    "vit-recipes",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def study_vit_recipes_command(
    ctx: typer.Context,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Directory of the tables and plot (default: runs/study-vit-recipes-<time>)."),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="A small budget: 100 and 1,000 images, 1 seed, cnn/vit/distill, 60 steps."),
    ] = False,
) -> None:
    """What closes a ViT's data gap to a CNN on MNIST-5k: a CNN, a plain ViT, and a ViT with each ingredient.

    Arms: cnn, vit, conv-stem, lsa, mean-pool, strong-aug (MixUp/CutMix), distill (DeiT's token,
    the cnn arm's model as teacher), combined (--combine; default
    conv-stem,mean-pool,strong-aug,distill, chosen in a one-seed pilot; measured over 3 seeds:
    0.973 at 1,000 images, the CNN 0.978);
    also spt (shifted patches). Defaults: --sizes 100,300,1000,4000 (stratified training samples;
    1,000 test images) --seeds 0,1,2, the same --task.train.max-steps 1500 of 64 images for every
    run; every arm gets ±2 px shifts. Writes vit_recipes_study.{csv,json,md,png} after every run
    (the .md: accuracy per arm and size, and each arm's gain over the plain ViT) and the teachers
    in OUT/teachers. See gicho.studies.vit_recipes.
    """
    from gicho.studies.vit_recipes import (
        QUICK,
        ViTRecipesStudyConfig,
        run_vit_recipes_study,
        summarise,
    )
    from gicho.tasks import apply_overrides

    start = apply_overrides(ViTRecipesStudyConfig(), QUICK if quick else {})
    config, out, created = _start(ctx, start, out, "vit-recipes")

    def announce(i: int, n: int, arm: str, n_train: int, seed: int) -> None:
        typer.echo(f"[{i}/{n}] {arm}, {n_train} images, seed {seed}", err=True)

    with _removed_if_empty(out, created):
        rows = run_vit_recipes_study(config, out_dir=out, on_run_start=announce)
    _report("ViT-recipes study: test accuracy on MNIST-5k, mean ± std over seeds", ("arm", "images", "seeds", "accuracy"),
            [(s["arm"], str(s["n_train"]), str(s["seeds"]), f"{s['mean']:.3f} ± {s['std']:.3f}")
             for s in summarise(rows)],
            out, ("vit_recipes_study.csv", "vit_recipes_study.json", "vit_recipes_study.md", "vit_recipes_study.png"))
