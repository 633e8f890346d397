"""The data-size study: does a ViT need more data than a CNN of similar size?

On the digits (the ``digits-vit`` split), three models are trained on growing stratified
fractions of the training split, with several seeds, without and with shift augmentation
(``max_shifts``): the ViT of ``digits-vit`` (:class:`~gicho.models.vit.ViTForImageClassification`),
a small CNN with about the same number of parameters (:class:`~gicho.models.cnn.SmallCNN`:
locality and weight sharing built in) and PCA + logistic regression (classical; no
augmentation). Every neural run takes the same number of optimizer steps, whatever the
fraction. :func:`run_data_size_study` returns one row per run and writes
``data_size_study.csv``, ``.json`` and ``.png`` (held-out accuracy vs training images, one panel
per augmentation setting: :func:`gicho.plots.studies.plot_data_size_study`). The study reports what it measures; it asserts nothing.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gicho._validation import check_choice, check_positive
from gicho.plots.studies import plot_data_size_study
from gicho.studies._tables import require_nonempty, write_study_tables
from gicho.train.config import torch_threads

__all__ = ["DataSizeStudyConfig", "run_data_size_study"]

MODELS = ("vit", "cnn", "pca-logreg")


def _vit() -> Any:
    from gicho.models.vit import ViTConfig

    return ViTConfig.from_preset("digits")


def _train() -> Any:
    from gicho.train.config import TrainConfig

    return TrainConfig(max_steps=800, batch_size=64, lr=3e-3, weight_decay=0.05, warmup_steps=50,
                       eval_batch_size=512, num_threads=1)


# `gicho study data-size --quick`: 6 runs, about a quarter of a minute on 2 cores
QUICK = {"fractions": (0.1, 1.0), "seeds": (0,), "max_shifts": (0,), "train.max_steps": 150}


@dataclass
class DataSizeStudyConfig:
    """Settings of ``gicho study data-size`` (every field is an option ``--field value``).

    Parameters
    ----------
    fractions : tuple of float in (0, 1]
        Fractions of the training split (stratified subsets, nested per seed).
    seeds : tuple of int
        Each seed draws its own subsets and initialisations.
    models : tuple of str
        Among ``"vit"``, ``"cnn"``, ``"pca-logreg"``.
    max_shifts : tuple of int
        Augmentation settings: random shifts of up to this many pixels (0 = none).
    cnn_channels : int
        Width of the CNN (60: about the digits ViT's parameter count).
    pca_components : int
        Components kept before the logistic regression (fewer when there are fewer images).
    test_fraction, split_seed : the held-out split (as ``digits-vit``).
    save_models : bool
        Save each trained ViT and CNN under ``OUT/models/<model>-n<images>-shift<s>-seed<seed>/``
        (``save_pretrained``; reload any with ``gicho.models.from_pretrained``).
    vit : ViTConfig
    train : TrainConfig
        For the ViT and the CNN; ``seed`` is taken from ``seeds``. Its ``num_threads`` holds
        torch's CPU threads during the whole study (0: torch's default; 1, the default, is
        fastest for these small models on shared cores).
    """

    fractions: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    models: tuple[str, ...] = MODELS
    max_shifts: tuple[int, ...] = (0, 1)
    cnn_channels: int = 60
    pca_components: int = 30
    test_fraction: float = 0.2
    split_seed: int = 0
    save_models: bool = False
    vit: Any = field(default_factory=_vit)
    train: Any = field(default_factory=_train)

    def __post_init__(self) -> None:
        require_nonempty(self, "fractions", "seeds", "models", "max_shifts")
        for f in self.fractions:
            if not 0 < f <= 1:
                raise ValueError(f"argument `fractions` must lie in (0, 1]; got {f!r}")
        for m in self.models:
            check_choice(m, "models", MODELS)
        for s in self.max_shifts:
            check_positive(s, "max_shifts", strict=False, integer=True)
        check_positive(self.cnn_channels, "cnn_channels", integer=True)
        check_positive(self.pca_components, "pca_components", integer=True)


def _neural(config: DataSizeStudyConfig, model_name: str, train_set: Any, test_set: Any,
            seed: int, save_to: Path | None) -> tuple[float, int]:
    import torch

    from gicho.models.cnn import SmallCNN, SmallCNNConfig
    from gicho.models.vit import ViTForImageClassification
    from gicho.train import ClassificationAccuracy, Trainer

    torch.manual_seed(seed)
    model = (ViTForImageClassification(config.vit) if model_name == "vit"
             else SmallCNN(SmallCNNConfig(channels=config.cnn_channels)))
    steps = config.train.max_steps
    train_config = dataclasses.replace(config.train, eval_every=steps, log_every=max(1, steps // 4),
                                       seed=seed, progress=False)
    result = Trainer(model, train_set, test_set, ClassificationAccuracy, train_config).fit()
    if save_to is not None:
        model.save_pretrained(save_to)  # every family's format: the CNN reloads like the ViT
    return result.final_metrics["accuracy"], sum(p.numel() for p in model.parameters())


def _pca_logreg(config: DataSizeStudyConfig, X: Any, y: Any, X_test: Any, y_test: Any) -> tuple[float, int]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from gicho.decomposition import PCA

    k = min(config.pca_components, len(X) - 1, X.shape[1])
    model = make_pipeline(PCA(n_components=k), LogisticRegression(max_iter=5000)).fit(X, y)
    n_params = k * X.shape[1] + (k + 1) * len(set(y.tolist()))
    return float((model.predict(X_test) == y_test).mean()), n_params


def run_data_size_study(config: DataSizeStudyConfig | None = None, out_dir: str | Path | None = None,
                        on_run_start: Any = None) -> list[dict[str, Any]]:
    """Train every (model, fraction, augmentation, seed) and return one row each.

    Returns
    -------
    list of dict
        Keys ``model, fraction, n_train, max_shift, seed, accuracy, params, seconds``
        (``accuracy`` on the held-out split; PCA + logistic regression has no augmentation and
        appears with ``max_shift`` 0 only).
    """
    config = DataSizeStudyConfig() if config is None else config
    if config.save_models and out_dir is None:
        raise ValueError("argument `out_dir` is None, but save_models=True needs a directory to save the models in")
    models_dir = Path(out_dir) / "models" if config.save_models else None
    with torch_threads(config.train.num_threads):
        rows = _run_all(config, on_run_start, models_dir)
    if out_dir is not None:
        out = write_study_tables(out_dir, "data_size_study", dataclasses.asdict(config), rows)
        plot_data_size_study(rows, out / "data_size_study.png")
    return rows


def _run_all(config: DataSizeStudyConfig, on_run_start: Any, models_dir: Path | None) -> list[dict[str, Any]]:
    from gicho.data.arrays import ArrayDataset
    from gicho.data.images import RandomShift, digits_pixel_values, digits_split, stratified_subset

    X_train, X_test, y_train, y_test = digits_split(config.test_fraction, config.split_seed)
    test_set = ArrayDataset(pixel_values=digits_pixel_values(X_test), labels=y_test)
    runs = [(m, f, s, seed) for seed in config.seeds for f in config.fractions for m in config.models
            for s in config.max_shifts if not (m == "pca-logreg" and s != config.max_shifts[0])]
    rows = []
    for i, (model_name, fraction, shift, seed) in enumerate(runs, start=1):
        if on_run_start is not None:
            on_run_start(i, len(runs), model_name, fraction, shift, seed)
        keep = stratified_subset(y_train, fraction, seed)
        start = time.perf_counter()
        if model_name == "pca-logreg":
            accuracy, params = _pca_logreg(config, X_train[keep].reshape(len(keep), -1), y_train[keep],
                                           X_test.reshape(len(X_test), -1), y_test)
            shift = 0
        else:
            data = ArrayDataset(pixel_values=digits_pixel_values(X_train[keep]), labels=y_train[keep])
            save_to = (None if models_dir is None
                       else models_dir / f"{model_name}-n{len(keep)}-shift{shift}-seed{seed}")
            accuracy, params = _neural(config, model_name, RandomShift(data, shift), test_set, seed, save_to)
        rows.append({"model": model_name, "fraction": fraction, "n_train": len(keep), "max_shift": shift,
                     "seed": seed, "accuracy": accuracy, "params": params,
                     "seconds": round(time.perf_counter() - start, 2)})
    return rows
