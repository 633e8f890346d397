"""Tests for the Transformer-encoder tasks digits-rows and diabetes-transformer."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from gicho.data.images import digits_split
from gicho.data.tabular import load_diabetes_table
from gicho.tasks import RunContext, get
from gicho.tasks.diabetes_transformer import DiabetesTransformerConfig, diabetes_split
from gicho.tasks.neural import load_predictor
from gicho.tasks.ols import OLSDiabetesConfig

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_registered_with_metrics_and_budgets():
    digits, diabetes = get("digits-rows"), get("diabetes-transformer")
    assert digits.metrics == ("accuracy",)
    assert diabetes.metrics == ("mae", "rmse", "r2")
    for task in (digits, diabetes):
        for overrides in (task.tour, task.quick):
            task.make_config(overrides)  # every override names a real field with a valid value


def test_splits():
    X_train, X_test, y_train, y_test = digits_split(normalize=True)
    assert X_train.shape[1:] == (8, 8) and X_train.dtype == np.float32
    assert len(X_test) == int(np.ceil(0.2 * 1797)) and len(X_train) + len(X_test) == 1797
    assert X_train.max() <= 1.0 and X_train.min() >= 0.0
    images = load_digits().images / 16.0
    assert any(np.array_equal(X_test[0], img) for img in images)  # rows of a real image
    np.testing.assert_allclose(
        np.bincount(y_test) / len(y_test), np.bincount(y_train) / len(y_train), atol=0.01
    )
    # diabetes-transformer's default held-out split is ols-diabetes's default split
    ols = OLSDiabetesConfig()
    data = load_diabetes_table(scaled=ols.scaled)
    expected = train_test_split(data.X, data.y, test_size=ols.test_fraction, random_state=ols.seed)
    config = DiabetesTransformerConfig()
    got = diabetes_split(config.data.test_fraction, config.data.split_seed)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_digits_rows_run_evaluate_predict(tmp_path):
    task = get("digits-rows")
    config = task.make_config({**task.quick, "train.max_steps": 80, "train.eval_every": 40,
                               "train.device": "cpu"})
    ctx = RunContext(run_dir=tmp_path, progress=False)
    metrics = task.run(config, ctx)
    assert list(metrics) == ["accuracy"]
    assert metrics["accuracy"] > 0.3  # chance is 0.1
    assert (tmp_path / "metrics.jsonl").exists()
    again = task.evaluate(config, ctx)
    assert again["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-12)
    _, X_test, _, _ = digits_split()
    pixels = X_test[:3].reshape(3, 64)  # raw pixels in [0, 16]: the model scales them itself
    answers = task.predict(config, ctx, [", ".join(str(int(v)) for v in row) for row in pixels], {})
    assert len(answers) == 3 and all(re.fullmatch(r"\d \(\d\.\d{3}\)", a) for a in answers), answers
    # raw pixels in, digits out: the /16 scaling is saved with the model; the array is the native input
    predictor = load_predictor(task, config, tmp_path)
    labels = predictor.predict(pixels)
    assert labels.tolist() == [a.split(" (")[0] for a in answers]
    assert predictor.predict(X_test[:3].reshape(3, 8, 8)).tolist() == labels.tolist()  # as load_digits().images
    assert predictor.predict(torch.tensor(pixels)).tolist() == labels.tolist()
    probs = predictor.predict_proba(pixels)
    assert probs.shape == (3, 10) and probs.dtype == np.float64 and np.allclose(probs.sum(1), 1, atol=1e-12)
    assert predictor.classes_[probs.argmax(1)].tolist() == labels.tolist()
    assert [top[0][0] for top in predictor.top_k(pixels, k=2)] == labels.tolist()
    with pytest.raises(ValueError, match=r"one row of 64 values .*x\.reshape\(1, -1\)"):
        predictor.predict(pixels[0])
    with pytest.raises(ValueError, match=r"shape \(3, 63\); expected \(N, 64\) or \(N, 8, 8\)"):
        predictor.predict(pixels[:, :63])
    with pytest.raises(ValueError, match=r"input 1 holds the value 17 outside \[0, 16\]"):
        predictor.predict(np.vstack([pixels[:1], np.full((1, 64), 17.0)]))
    with pytest.raises(ValueError, match=r"is one str, not a batch.*accepts digit images as numbers"):
        predictor.predict(" ".join(["1"] * 64))
    with pytest.raises(ValueError, match=r"outside \[0.0, 16.0\]"):
        task.predict(config, ctx, [" ".join(["17"] * 64)], {})
    with pytest.raises(ValueError, match="has 3 numbers; expected 64"):
        task.predict(config, ctx, ["1, 2, 3"], {})
    with pytest.raises(ValueError, match="must be 64 numbers"):
        task.predict(config, ctx, ["a " * 64], {})


def test_diabetes_transformer_run_evaluate_predict(tmp_path):
    task = get("diabetes-transformer")
    config = task.make_config({"train.max_steps": 100, "train.eval_every": 50, "train.device": "cpu"})
    ctx = RunContext(run_dir=tmp_path, progress=False)
    metrics = task.run(config, ctx)
    assert list(metrics) == ["mae", "rmse", "r2"]
    _, _, y_train, y_test = diabetes_split()
    baseline_mae = np.abs(y_test - y_train.mean()).mean()  # predicting the training mean
    assert metrics["mae"] < baseline_mae
    assert metrics["rmse"] >= metrics["mae"]
    again = task.evaluate(config, ctx)
    for key in metrics:
        assert again[key] == pytest.approx(metrics[key], rel=1e-6)
    _, X_test, _, _ = diabetes_split()
    answers = task.predict(config, ctx, [" ".join(map(str, X_test[0]))], {})
    assert float(answers[0]) > 0
    # the features' standardisation travels with the model (gicho.load does this for a run dir)
    predictor = load_predictor(task, config, tmp_path)
    values = predictor.predict(X_test[:5])
    assert values.dtype == np.float64 and values.shape == (5,) and f"{values[0]:.1f}" == answers[0]
    assert predictor.predict(pd.DataFrame(X_test[:5])).tolist() == values.tolist()
    with pytest.raises(ValueError, match="no probabilities"):
        predictor.predict_proba(X_test[:5])
    assert not hasattr(predictor, "classes_")  # a regression: duck typing as scikit-learn's
    with pytest.raises(ValueError, match=r"input 0 holds non-finite values"):
        predictor.predict(np.full((1, 10), np.nan))
    with pytest.raises(ValueError, match="expected 10"):
        task.predict(config, ctx, ["0.1 0.2"], {})
