"""Tour task ``pca-digits``: PCA + logistic regression on digits vs the same classifier on pixels.

T: :class:`gicho.decomposition.PCA` followed by a multinomial logistic regression (scikit-learn,
L-BFGS); E: scikit-learn's bundled 8x8 digits (no download), stratified held-out split;
P: held-out accuracy with PCA (headline), the same classifier on the raw pixels, and the
number of components kept. Also the figures shared with ``gicho pca --plot``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gicho._io import atomic_write_text
from gicho.tasks import RunContext, Task, register

__all__ = ["DIGITS_CLASSES", "DIGITS_ROWS", "PCADigitsConfig", "PCAReport", "analyse", "parse_n_components",
           "pca_figures", "run"]

# The bundled digits (tests check these against them): the stratified split is checked with
# the config, before a run starts, without loading the data.
DIGITS_ROWS, DIGITS_CLASSES = 1797, 10


@dataclass
class PCADigitsConfig:
    """Config of ``pca-digits`` (every field is a ``--field value`` override).

    n_components: an int (components) or a float in (0, 1) (fraction of variance kept).
    """

    n_components: int | float = field(default=0.95, metadata={
        "help": "components kept: a count, or a float in (0, 1) for the share of variance"})
    whiten: bool = field(default=False, metadata={"help": "scale each component to unit variance"})
    solver: str = field(default="auto", metadata={"help": "PCA solver (auto, covariance, svd, randomized)"})
    test_fraction: float = field(default=0.25, metadata={"help": "share of the 1,797 images held out"})
    seed: int = field(default=0, metadata={"help": "seed of the stratified train/test split"})
    logreg_c: float = field(default=1.0, metadata={"help": "inverse L2 strength of the logistic regression"})
    max_iter: int = field(default=2000, metadata={"help": "iterations of the logistic regression's solver"})
    plots: bool = field(default=True, metadata={"help": "write the explained-variance, 2-D projection and whitening figures"})

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"field `test_fraction` must lie in (0, 1); got {self.test_fraction!r}")
        self._check_split()
        if not self.logreg_c > 0:
            raise ValueError(f"field `logreg_c` must be > 0; got {self.logreg_c!r}")
        if self.max_iter < 1:
            raise ValueError(f"field `max_iter` must be >= 1; got {self.max_iter!r}")
        if isinstance(self.n_components, float) and not 0.0 < self.n_components < 1.0:
            raise ValueError(
                "field `n_components` as a float is a fraction of variance in (0, 1); "
                f"got {self.n_components!r}"
            )
        if isinstance(self.n_components, int) and self.n_components < 1:
            raise ValueError(f"field `n_components` must be >= 1; got {self.n_components!r}")


    def _check_split(self) -> None:
        """The stratified split puts every digit on both sides: at least one row per class each."""
        n_test = math.ceil(self.test_fraction * DIGITS_ROWS)  # as train_test_split rounds
        n_train = DIGITS_ROWS - n_test
        if min(n_test, n_train) >= DIGITS_CLASSES:
            return
        # the range, rounded inwards so that both ends work
        low = math.ceil(DIGITS_CLASSES / DIGITS_ROWS * 1e4) / 1e4
        high = math.floor((DIGITS_ROWS - DIGITS_CLASSES) / DIGITS_ROWS * 1e4) / 1e4
        raise ValueError(
            f"field `test_fraction`={self.test_fraction!r} holds out {n_test} of the {DIGITS_ROWS} "
            f"digits and trains on {n_train}; the stratified split needs at least one row of each "
            f"of the {DIGITS_CLASSES} classes on both sides: test_fraction must lie in [{low}, {high}]"
        )


def parse_n_components(text: str | None) -> int | float | None:
    """``"10"`` -> 10 components, ``"0.9"`` -> 90% of the variance, None -> all."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"--n-components must be an int or a fraction of variance in (0, 1); got {text!r}"
        ) from None


@dataclass
class PCAReport:
    """What :func:`analyse` found: the fitted PCA, and the rank it chose when it chose one."""

    pca: Any  # a fitted gicho.decomposition.PCA
    rank_kept: int | None = None  # whitening without n_components: the components of non-zero variance


def analyse(X: Any, n_components: int | float | None = None, *, whiten: bool = False) -> PCAReport:
    """Fit a PCA of ``X`` (n_samples, n_features) as ``gicho pca`` does.

    ``n_components`` is a count, a fraction of variance in (0, 1), or None (all). Whitening
    divides each component by its spread, so with ``whiten`` and no ``n_components`` only the
    components of non-zero variance are kept (the numerical rank of the centred data).

    Raises
    ------
    ValueError
        As :class:`gicho.decomposition.PCA` (an invalid ``n_components``, bad ``X``).
    """
    from gicho.decomposition import PCA
    from gicho.decomposition._solvers import numerical_rank

    rank_kept = None
    if whiten and n_components is None:
        rank_kept = n_components = numerical_rank(PCA(solver="svd").fit(X).singular_values_, *np.shape(X))
    return PCAReport(PCA(n_components, whiten=whiten).fit(X), rank_kept)


def pca_figures(
    X: np.ndarray,
    labels: np.ndarray | None,
    plots_dir: Path | str,
    *,
    n_components: int | float | None = None,
    class_names: tuple[str, ...] | None = None,
    label_name: str = "label",
    feature_names: tuple[str, ...] | None = None,
) -> dict[str, Path]:
    """The three PCA figures of ``X`` (n_samples, n_features) written into ``plots_dir``.

    * ``pca_scatter.png``: the first two principal coordinates, coloured by ``labels`` (classes,
      or a continuous variable such as a target column named ``label_name``);
    * ``explained_variance.png``: per-component and cumulative explained-variance ratio
      (a line after the ``n_components`` kept);
    * ``whitening_covariance.png``: the covariance of ``X`` before, and of its PCA-whitened
      coordinates (the kept components of non-zero variance) after: the identity.

    Returns
    -------
    dict mapping figure name to PNG path.
    """
    from gicho.decomposition import PCA
    from gicho.decomposition._solvers import numerical_rank
    from gicho.plots.pca import (
        plot_component_scatter,
        plot_explained_variance,
        plot_whitening_covariance,
    )

    plots_dir = Path(plots_dir)
    full = PCA(solver="svd").fit(X)
    kept = PCA(n_components).fit(X).n_components_ if n_components is not None else full.n_components_
    paths = {}
    if full.n_components_ >= 2:
        paths["scatter"] = plot_component_scatter(
            full.transform(X)[:, :2], labels, plots_dir / "pca_scatter.png", class_names=class_names,
            label_name=label_name,
        )
    paths["explained_variance"] = plot_explained_variance(
        full.explained_variance_ratio_, plots_dir / "explained_variance.png", n_kept=kept
    )
    # whitening divides by each component's spread: keep only those of non-zero variance
    rank = numerical_rank(full.singular_values_, full.n_samples_, full.n_features_in_)
    k_white = max(1, min(kept, rank))
    Z = PCA(k_white, whiten=True).fit_transform(X)
    paths["whitening"] = plot_whitening_covariance(
        np.cov(X, rowvar=False), np.cov(Z, rowvar=False), plots_dir / "whitening_covariance.png",
        after_title=f"after PCA whitening, {k_white} components", feature_names=feature_names,
    )
    return paths


def run(config: PCADigitsConfig, ctx: RunContext) -> dict[str, float]:
    """Fit PCA + logistic regression and the raw-pixel baseline; write figures and a summary."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from gicho.data.images import load_digits_arrays
    from gicho.decomposition import PCA
    from gicho.metrics import accuracy

    data = load_digits_arrays(normalize=True)
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=config.test_fraction, stratify=data.y, random_state=config.seed
    )

    def classifier() -> Any:
        return LogisticRegression(C=config.logreg_c, max_iter=config.max_iter)

    pca = PCA(config.n_components, whiten=config.whiten, solver=config.solver,
              random_state=config.seed).fit(X_train)
    with_pca = classifier().fit(pca.transform(X_train), y_train)
    acc_pca = accuracy(y_test, with_pca.predict(pca.transform(X_test)))
    raw = classifier().fit(X_train, y_train)
    acc_raw = accuracy(y_test, raw.predict(X_test))
    metrics = {
        "accuracy": float(acc_pca),
        "accuracy_raw": float(acc_raw),
        "n_components": int(pca.n_components_),
    }
    summary = {
        **metrics,
        "n_train": int(X_train.shape[0]),
        "n_test": int(X_test.shape[0]),
        "n_features": int(X_train.shape[1]),
        "explained_variance_ratio_kept": float(np.sum(pca.explained_variance_ratio_)),
        "solver": pca.solver_,
    }
    atomic_write_text(Path(ctx.run_dir) / "pca.json", json.dumps(summary, indent=2) + "\n")
    if config.plots:
        pca_figures(X_train, y_train, ctx.plots_dir, n_components=pca.n_components_,
                    class_names=data.class_names)
    return metrics


register(
    Task(
        name="pca-digits",
        model="PCA + logistic regression",
        data="digits 8x8 (scikit-learn, bundled)",
        metrics=("accuracy", "accuracy_raw", "n_components"),
        config_cls=PCADigitsConfig,
        run=run,
        description="PCA to 95% of the variance, then a linear classifier; vs the same on raw pixels",
        tour={},
        quick={},
    )
)
