"""Transformer-encoder tasks: ``digits-rows`` (classification) and ``diabetes-transformer``.

* ``digits-rows`` — T: Transformer encoder + mean/[CLS] pooling + linear classifier;
  E: scikit-learn's 8x8 digits (1,797 images, embedded in scikit-learn), each image read as a
  sequence of its 8 rows (8 tokens of 8 pixels); P: accuracy on a stratified 20% held-out split.
* ``diabetes-transformer`` — T: Transformer encoder over one token per feature
  (FT-Transformer) + pooling + linear regressor; E: scikit-learn's diabetes data (442
  patients, 10 features); P: MAE, RMSE, R² on the same 25% held-out split as ``ols-diabetes``.

Both train with :class:`gicho.train.Trainer`. The held-out split is evaluated during training
for the learning curves, but it never selects a checkpoint: the reported metrics are those of
the model after the last step, and ``evaluate`` reloads that (latest) checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gicho.tasks import RunContext, Task, register
from gicho.tasks._training import check_num_threads, train_config_from, with_config_threads

__all__ = [
    "DiabetesTransformerConfig",
    "DigitsRowsConfig",
    "diabetes_split",
    "dict_dataset",
    "digits_split",
    "encoder_config",
]

DIGITS_ROWS = 8  # an 8x8 digits image is 8 tokens of 8 pixels
DIGITS_MAX_PIXEL = 16.0  # pixel values are integers in [0, 16]
# The fields of a task's Config that size its Transformer encoder (see encoder_config).
ENCODER_FIELDS = ("d_model", "n_heads", "n_layers", "dropout", "norm_first")


@dataclass
class DigitsRowsConfig:
    """Config of ``digits-rows`` (model, data split and the Trainer fields it uses)."""

    pool: Literal["mean", "cls", "max"] = "mean"
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    dropout: float = 0.1
    norm_first: bool = True
    position: Literal["learned", "sinusoidal", "none"] = "learned"
    test_fraction: float = 0.2
    split_seed: int = 0
    max_steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    eval_every: int = 250
    log_every: int = 50
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    compile: bool = False
    num_threads: int = 1  # torch CPU threads while the task runs; 0 = torch's default

    def __post_init__(self) -> None:
        check_num_threads(self.num_threads)


@dataclass
class DiabetesTransformerConfig:
    """Config of ``diabetes-transformer`` (model, data split and the Trainer fields it uses).

    The defaults (a 1-layer, 16-wide encoder, 300 steps) were chosen on a validation split
    carved out of the training set (not on the held-out split): with 353 training patients
    wider, deeper or longer-trained models overfit.
    """

    pool: Literal["mean", "cls", "max"] = "cls"
    d_model: int = 16
    n_heads: int = 4
    n_layers: int = 1
    dropout: float = 0.1
    norm_first: bool = True
    test_fraction: float = 0.25
    split_seed: int = 0
    max_steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    eval_every: int = 100
    log_every: int = 25
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    compile: bool = False
    num_threads: int = 1  # torch CPU threads while the task runs; 0 = torch's default

    def __post_init__(self) -> None:
        check_num_threads(self.num_threads)


# --------------------------------------------------------------------------- data


def digits_split(test_fraction: float = 0.2, seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """Digits images as row sequences: ``X`` float32 (N, 8, 8) in [0, 1], ``y`` int64 (N,).

    Returns ``X_train, X_test, y_train, y_test`` from a stratified ``train_test_split``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = (digits.images / DIGITS_MAX_PIXEL).astype("float32")  # (N, 8 rows, 8 pixels)
    y = digits.target.astype("int64")
    return tuple(train_test_split(X, y, test_size=test_fraction, random_state=seed, stratify=y))


def diabetes_split(test_fraction: float = 0.25, seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """The diabetes regression split of ``ols-diabetes`` (same data, fraction and seed).

    ``train_test_split(X, y, test_size=test_fraction, random_state=seed)`` on
    :func:`gicho.data.tabular.load_diabetes_table` (features as shipped by scikit-learn).
    Returns float64 ``X_train, X_test, y_train, y_test``.
    """
    from sklearn.model_selection import train_test_split

    from gicho.data.tabular import load_diabetes_table

    data = load_diabetes_table(scaled=True)
    return tuple(train_test_split(data.X, data.y, test_size=test_fraction, random_state=seed))


def dict_dataset(**arrays: Any) -> Any:
    """A map-style dataset of dict samples over equally long tensors."""
    import torch
    from torch.utils.data import Dataset

    tensors = {k: torch.as_tensor(v) for k, v in arrays.items()}

    class DictDataset(Dataset):
        def __len__(self) -> int:
            return len(next(iter(tensors.values())))

        def __getitem__(self, i: int) -> dict[str, Any]:
            return {k: v[i] for k, v in tensors.items()}

    return DictDataset()


def encoder_config(config: Any, **fields: Any) -> Any:
    """A :class:`~gicho.models.classifier.ClassifierConfig` for a task's encoder.

    The encoder fields (``d_model, n_heads, n_layers, dropout, norm_first``) come from the
    task's ``config``; ``fields`` give the rest (input kind, ``n_outputs``, ``pool``, ...).
    """
    from gicho.models.classifier import ClassifierConfig

    return ClassifierConfig(**{name: getattr(config, name) for name in ENCODER_FIELDS}, **fields)


def _classification_metrics() -> Any:
    from gicho.train import ClassificationAccuracy

    return ClassificationAccuracy()


def _regression_metrics() -> Any:
    from gicho.train import RegressionScores

    return RegressionScores()


def _fit(
    model: Any, train: Any, test: Any, metrics: Any, config: Any, ctx: RunContext
) -> dict[str, float]:
    from gicho.train import Trainer

    train_config = train_config_from(config, progress=ctx.progress)
    trainer = Trainer(model, train, test, metrics, train_config, run_dir=ctx.run_dir)
    trainer.fit(resume=ctx.resume)
    return trainer.evaluate()  # the model after the last step


def _reload(model: Any, ctx: RunContext) -> Any:
    from gicho.train import latest_checkpoint, load_model_weights

    load_model_weights(model, latest_checkpoint(ctx.run_dir))
    return model.eval()


def _evaluate_on(model: Any, data: Any, metrics: Any) -> dict[str, float]:
    from gicho.train import evaluate_model

    out = evaluate_model(model, data, metrics, batch_size=256)
    return {k: v for k, v in out.items() if k != "eval_loss"}


def _parse_numbers(text: str, n: int, what: str) -> list[float]:
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(
            f"input {text!r} must be {n} numbers ({what}), separated by commas or spaces"
        ) from None
    if len(values) != n:
        raise ValueError(f"input {text!r} has {len(values)} numbers; expected {n} ({what})")
    return values


# --------------------------------------------------------------------------- digits-rows


def _digits_model(config: DigitsRowsConfig) -> Any:
    import torch

    from gicho.models.classifier import SequenceClassifier

    torch.manual_seed(config.seed)
    return SequenceClassifier(
        encoder_config(
            config,
            token_dim=DIGITS_ROWS,
            n_outputs=10,
            position=config.position,
            pool=config.pool,
            max_len=DIGITS_ROWS,
        )
    )


def _digits_data(config: DigitsRowsConfig) -> tuple[Any, Any]:
    X_train, X_test, y_train, y_test = digits_split(config.test_fraction, config.split_seed)
    return dict_dataset(features=X_train, labels=y_train), dict_dataset(
        features=X_test, labels=y_test
    )


def run_digits(config: DigitsRowsConfig, ctx: RunContext) -> dict[str, float]:
    train, test = _digits_data(config)
    metrics = _fit(_digits_model(config), train, test, _classification_metrics, config, ctx)
    return {"accuracy": metrics["accuracy"]}


def evaluate_digits(config: DigitsRowsConfig, ctx: RunContext) -> dict[str, float]:
    _, test = _digits_data(config)
    return _evaluate_on(_reload(_digits_model(config), ctx), test, _classification_metrics)


def predict_digits(
    config: DigitsRowsConfig, ctx: RunContext, inputs: Any, options: dict[str, Any]
) -> list[str]:
    """Each input: 64 pixel values in [0, 16] (row by row) → the predicted digit."""
    import torch

    model = _reload(_digits_model(config), ctx)
    pixels = [
        _parse_numbers(text, DIGITS_ROWS * DIGITS_ROWS, "pixels in [0, 16], row by row")
        for text in inputs
    ]
    x = (
        torch.tensor(pixels, dtype=torch.float32).view(-1, DIGITS_ROWS, DIGITS_ROWS)
        / DIGITS_MAX_PIXEL
    )
    with torch.no_grad():
        return [str(int(k)) for k in model(features=x)["logits"].argmax(-1)]


# --------------------------------------------------------------------------- diabetes-transformer


def _diabetes_parts(config: DiabetesTransformerConfig) -> tuple[Any, Any, Any, Any]:
    """Model, train and test datasets, and the feature standardiser (mean, std)."""
    import numpy as np
    import torch

    from gicho.models.classifier import SequenceRegressor

    X_train, X_test, y_train, y_test = diabetes_split(config.test_fraction, config.split_seed)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    scale = (mean, np.where(std > 0, std, 1.0))

    def standardise(X: Any) -> Any:
        return ((X - scale[0]) / scale[1]).astype("float32")

    torch.manual_seed(config.seed)
    model = SequenceRegressor(
        encoder_config(
            config,
            n_features=X_train.shape[1],
            n_outputs=1,
            position="none",
            pool=config.pool,
            max_len=X_train.shape[1],
            target_mean=float(y_train.mean()),
            target_std=float(y_train.std()),
        )
    )
    train = dict_dataset(features=standardise(X_train), labels=y_train.astype("float32"))
    test = dict_dataset(features=standardise(X_test), labels=y_test.astype("float32"))
    return model, train, test, standardise


def run_diabetes(config: DiabetesTransformerConfig, ctx: RunContext) -> dict[str, float]:
    model, train, test, _ = _diabetes_parts(config)
    metrics = _fit(model, train, test, _regression_metrics, config, ctx)
    return {k: metrics[k] for k in ("mae", "rmse", "r2")}


def evaluate_diabetes(config: DiabetesTransformerConfig, ctx: RunContext) -> dict[str, float]:
    model, _, test, _ = _diabetes_parts(config)
    return _evaluate_on(_reload(model, ctx), test, _regression_metrics)


def predict_diabetes(
    config: DiabetesTransformerConfig, ctx: RunContext, inputs: Any, options: dict[str, Any]
) -> list[str]:
    """Each input: the 10 features of ``load_diabetes()`` (scaled as there) → disease progression."""
    import numpy as np
    import torch

    model, _, _, standardise = _diabetes_parts(config)
    model = _reload(model, ctx)
    n = model.config.n_features
    x = [_parse_numbers(text, n, "features as in sklearn's load_diabetes") for text in inputs]
    with torch.no_grad():
        preds = model(features=torch.from_numpy(standardise(np.asarray(x, dtype=np.float64))))
    return [f"{float(p):.1f}" for p in preds["predictions"]]


register(
    Task(
        name="digits-rows",
        model="Transformer encoder (8 row tokens) + mean pooling",
        data="sklearn digits 8x8, 20% held out",
        metrics=("accuracy",),
        config_cls=DigitsRowsConfig,
        run=with_config_threads(run_digits),
        evaluate=with_config_threads(evaluate_digits),
        predict=with_config_threads(predict_digits),
        description="Digits images as sequences of 8 row-tokens, classified by a Transformer encoder.",
        tour={"max_steps": 600, "eval_every": 200},
        quick={"max_steps": 150, "eval_every": 150, "d_model": 32, "n_layers": 1},
    )
)

register(
    Task(
        name="diabetes-transformer",
        model="FT-Transformer (one token per feature) + [CLS]",
        data="sklearn diabetes, 25% held out (as ols-diabetes)",
        metrics=("mae", "rmse", "r2"),
        config_cls=DiabetesTransformerConfig,
        run=with_config_threads(run_diabetes),
        evaluate=with_config_threads(evaluate_diabetes),
        predict=with_config_threads(predict_diabetes),
        description="The diabetes regression with a Transformer over feature tokens.",
        tour={},  # the default budget already fits the tour
        quick={"max_steps": 60, "eval_every": 60},
    )
)
