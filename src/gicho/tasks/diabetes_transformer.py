"""Task ``diabetes-transformer``: the diabetes regression with a Transformer over feature tokens.

* T: :class:`~gicho.models.classifier.SequenceRegressor` with one token per feature
  (FT-Transformer, Gorishniy et al. 2021), pooled by [CLS], mean or max (``--model.pool``);
* E: scikit-learn's diabetes data (442 patients, 10 features), the same 25% held-out split as
  ``ols-diabetes``; features are standardised with the training split's mean and standard
  deviation inside the model (saved with the weights), the target likewise;
* P: MAE, RMSE and R² on the held-out split.

The defaults (a 1-layer, 16-wide encoder, 300 steps) were chosen on a validation split carved
out of the training set, not on the held-out split: with 331 training patients, wider, deeper
or longer-trained models overfit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from gicho.tasks import register
from gicho.tasks.neural import NeuralTask, Predictor, Splits
from gicho.train.config import TrainConfig

__all__ = ["DiabetesData", "DiabetesTransformerConfig", "DiabetesTransformerTask", "diabetes_split"]

N_FEATURES = 10


def _default_model() -> Any:
    from gicho.models.classifier import ClassifierConfig

    return ClassifierConfig(n_features=N_FEATURES, n_labels=1, position="none", pool="cls",
                            max_len=N_FEATURES, d_model=16, n_heads=4, n_layers=1, dropout=0.1,
                            label_names=("progression",))


@dataclass
class DiabetesData:
    """The held-out split (``ols-diabetes``'s by default)."""

    test_fraction: float = field(default=0.25, metadata={"help": "fraction of patients held out"})
    split_seed: int = field(default=0, metadata={"help": "seed of the split"})

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"field `test_fraction` must lie in (0, 1); got {self.test_fraction!r}")


@dataclass
class DiabetesTransformerConfig:
    """Config of ``diabetes-transformer``: ``model`` (ClassifierConfig), ``data``, ``train``."""

    model: Any = field(default_factory=_default_model)
    data: DiabetesData = field(default_factory=DiabetesData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=300, batch_size=32, lr=1e-3, weight_decay=0.01, warmup_steps=50,
        eval_every=100, log_every=25, num_threads=1))


def diabetes_split(test_fraction: float = 0.25, seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """``train_test_split`` of :func:`gicho.data.tabular.load_diabetes_table` (as ``ols-diabetes``).

    Returns float64 ``X_train, X_test, y_train, y_test``.
    """
    from sklearn.model_selection import train_test_split

    from gicho.data.tabular import load_diabetes_table

    data = load_diabetes_table(scaled=True)
    return tuple(train_test_split(data.X, data.y, test_size=test_fraction, random_state=seed))


class DiabetesTransformerTask(NeuralTask):
    """``diabetes-transformer``: the hooks of :class:`~gicho.tasks.neural.NeuralTask` for the diabetes
    regression over feature tokens."""

    name = "diabetes-transformer"
    config_cls = DiabetesTransformerConfig
    model_type = "sequence-regressor"
    model = "FT-Transformer (one token per feature) + [CLS]"
    data = "sklearn diabetes, 25% held out (as ols-diabetes)"
    metrics = ("mae", "rmse", "r2")
    description = "The diabetes regression with a Transformer over feature tokens."
    tour: ClassVar = {}  # the default budget already fits the tour
    quick: ClassVar = {"train.max_steps": 60, "train.eval_every": 60}
    input_kind = ("patients' 10 features, scaled as in sklearn.datasets.load_diabetes(): a NumPy array, "
                  "tensor or DataFrame (N, 10), or a list of such rows")

    def build_data(self, config: DiabetesTransformerConfig, preprocessing: dict[str, Any] | None = None) -> Splits:
        import numpy as np

        from gicho.data.arrays import ArrayDataset

        X_train, X_test, y_train, y_test = diabetes_split(config.data.test_fraction, config.data.split_seed)
        std = X_train.std(axis=0)
        info = {"feature_mean": X_train.mean(axis=0), "feature_std": np.where(std > 0, std, 1.0),
                "target_mean": float(y_train.mean()), "target_std": float(y_train.std())}
        test = ArrayDataset(features=X_test.astype("float32"), labels=y_test.astype("float32"))
        return Splits(ArrayDataset(features=X_train.astype("float32"), labels=y_train.astype("float32")),
                      test, test, info=info)

    def build_model(self, config: DiabetesTransformerConfig, splits: Splits) -> Any:
        import dataclasses

        from gicho.models.classifier import SequenceRegressor

        m = config.model
        if (m.n_features, m.n_labels) != (N_FEATURES, 1):
            raise ValueError(f"the diabetes data has {N_FEATURES} features and one target: model.n_features "
                             f"must be {N_FEATURES} and model.n_labels 1; got {m.n_features}, {m.n_labels}")
        info = splits.info
        model = SequenceRegressor(dataclasses.replace(m, target_mean=info["target_mean"],
                                                      target_std=info["target_std"]))
        model.backbone.stem.set_input_scaling(info["feature_mean"], info["feature_std"])
        return model

    def build_metrics(self, config: DiabetesTransformerConfig, info: dict[str, Any], split: str) -> Any:
        from gicho.metrics import RegressionScores

        return RegressionScores

    def parse_inputs(self, config: DiabetesTransformerConfig, predictor: Predictor, texts: list[str]) -> Any:
        """Each string: the 10 features of ``sklearn.datasets.load_diabetes()`` (scaled as there)."""
        from gicho.tasks._parsing import parse_numbers

        return [parse_numbers(t, N_FEATURES, "features as in sklearn's load_diabetes") for t in texts]

    def encode_inputs(self, config: DiabetesTransformerConfig, predictor: Predictor, inputs: Any) -> dict[str, Any]:
        import torch

        from gicho.tasks._inputs import number_rows

        return {"features": torch.from_numpy(number_rows(inputs, N_FEATURES, self.input_kind))}

    def predict_batch(self, config: DiabetesTransformerConfig, predictor: Predictor, batch: dict[str, Any],
                      options: dict[str, Any]) -> list[Any]:
        """The predicted disease progression of each patient (the target's units)."""
        return [float(p) for p in predictor(batch)["predictions"]]

    def format_outputs(self, config: DiabetesTransformerConfig, predictor: Predictor, batch: dict[str, Any],
                       options: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"output": f"{p:.1f}", "value": p} for p in self.predict_batch(config, predictor, batch, options)]

    def describe(self, config: DiabetesTransformerConfig) -> tuple[str, str]:
        m = config.model
        pool = {"mean": "mean pooling", "max": "max pooling", "cls": "[CLS]"}[m.pool]
        return (f"FT-Transformer ({m.n_layers}x{m.d_model}, one token per feature) + {pool}",
                f"sklearn diabetes, {config.data.test_fraction:.0%} held out (as ols-diabetes)")


TASK = register(DiabetesTransformerTask())
