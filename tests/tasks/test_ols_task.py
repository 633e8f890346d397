"""The ``ols-diabetes`` tour task, its figures, and the ``gicho ols`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import statsmodels.api as sm
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression as SkLinearRegression
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

from gicho.cli import main
from gicho.tasks import RunContext, get

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_task_runs_and_matches_an_independent_pipeline(tmp_path):
    task = get("ols-diabetes")
    assert task.metrics == ("r2", "mae", "mse", "rmse")
    config = task.make_config([])
    metrics = task.run(config, RunContext(run_dir=tmp_path))
    assert list(metrics) == list(task.metrics)
    # the same seeded split with scikit-learn end to end: the same held-out numbers
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=config.test_fraction, random_state=config.seed
    )
    pred = SkLinearRegression().fit(X_train, y_train).predict(X_test)
    assert metrics["r2"] == pytest.approx(r2_score(y_test, pred), rel=1e-10)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(y_test, pred), rel=1e-10)
    assert metrics["mse"] == pytest.approx(mean_squared_error(y_test, pred), rel=1e-10)
    assert metrics["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y_test, pred)), rel=1e-10)
    record = json.loads((tmp_path / "ols.json").read_text())
    ref = sm.OLS(y_train, sm.add_constant(X_train)).fit()
    np.testing.assert_allclose(record["bse"], ref.bse, rtol=1e-8)
    assert record["n_test"] == len(y_test) and record["feature_names"][2] == "bmi"
    assert "bmi" in (tmp_path / "ols_summary.txt").read_text()
    for name in ("residuals_vs_fitted.png", "observed_vs_predicted.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == PNG_SIGNATURE


def test_config_overrides_and_validation():
    task = get("ols-diabetes")
    assert task.make_config(["--solver", "qr", "--cov-type", "HC3"]).cov_type == "HC3"
    with pytest.raises(ValueError, match=r"`test_fraction` must lie in \(0, 1\)"):
        task.make_config(["--test-fraction", "0"])
    with pytest.raises(ValueError, match="`solver` must be one of"):
        task.make_config(["--solver", "lsqr"])
    with pytest.raises(ValueError, match="`cov_type` must be one of"):
        task.make_config(["--cov-type", "HC9"])


def test_cli_prints_the_summary_with_robust_errors(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["ols", "--robust", "HC3", "--plot", "--out", str(tmp_path / "fig")])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    X, y = load_diabetes(return_X_y=True)
    ref = sm.OLS(y, sm.add_constant(X)).fit(cov_type="HC3")
    assert "442 rows" in out and "HC3" in out and "bmi" in out
    assert f"{ref.bse[3]:.4g}" in out and f"{ref.rsquared:.4g}" in out
    for name in ("residuals_vs_fitted.png", "observed_vs_predicted.png"):
        path = tmp_path / "fig" / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE and f"figure: {path}" in out


def test_cli_on_a_csv_with_target_and_features(capsys, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = X @ [1.0, 2.0, 0.0] + rng.standard_normal(60)
    csv = tmp_path / "data.csv"
    np.savetxt(csv, np.column_stack([y, X]), delimiter=",", header="y,a,b,c", comments="")
    with pytest.raises(SystemExit) as exit_info:
        main(["ols", str(csv), "--target", "y", "--features", "a,b", "--solver", "qr"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    ref = sm.OLS(y, sm.add_constant(X[:, :2])).fit()
    assert "60 rows, target 'y'" in out and "qr" in out
    assert f"{ref.params[1]:.6g}" in out and " c " not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ols", "--solver", "lsqr"], "`solver` must be one of"),
        (["ols", "--robust", "HC9"], "`cov_type` must be one of"),
        (["ols", "missing.csv"], "data file not found: missing.csv"),
        (["ols", "--features", "bmi,nope"], "no column(s) ['nope']"),
        (["ols", "--target", "bmi"], "not a column of the diabetes data"),
    ],
)
def test_cli_bad_input(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
