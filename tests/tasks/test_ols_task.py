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
    assert "60 rows used, target 'y'" in out and "qr" in out
    assert f"{ref.params[1]:.6g}" in out and " c " not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ols", "--solver", "lsqr"], "--solver must be one of"),
        (["ols", "--robust", "HC9"], "--robust must be one of 'nonrobust', 'HC0'"),
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


def _run(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_cli_names_the_users_columns_and_rows_used(tmp_path, capsys):
    """The rank-deficiency warning names `area_m2x2`, not `x4`; option values are case-insensitive."""
    rng = np.random.default_rng(0)
    area = rng.uniform(20, 120, 50)
    rooms = rng.integers(1, 6, 50).astype(float)
    price = 3.0 * area + 10.0 * rooms + rng.standard_normal(50)
    csv = tmp_path / "homes.csv"
    np.savetxt(csv, np.column_stack([area, rooms, 2 * area, price]), delimiter=",",
               header="area,rooms,area_m2x2,price", comments="")  # fmt: skip
    code, out, _ = _run(["ols", str(csv), "--robust", "hc1", "--solver", "QR"], capsys)
    assert code == 0
    assert "warning: the design is rank deficient" in out and "column(s) 'area_m2x2' are linear" in out
    assert "'x2'" not in out
    assert "50 rows used" in out and "HC1" in out and "area_m2x2" in out


def test_cli_categorical_and_missing(tmp_path, capsys):
    smf = pytest.importorskip("statsmodels.formula.api")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(1)
    n = 40
    frame = pd.DataFrame({"area": rng.uniform(20, 120, n), "city": rng.choice(["Seoul", "Daegu", "Busan"], n)})
    frame["price"] = 3 * frame["area"] + frame["city"].map({"Seoul": 50.0, "Daegu": 5.0, "Busan": 0.0}) + rng.standard_normal(n)
    frame.loc[[4, 9], "area"] = np.nan
    path = tmp_path / "homes.csv"
    frame.to_csv(path, index=False)
    code, _, err = _run(["ols", str(path)], capsys)
    assert code == 2 and "column(s) 'city' hold text" in err and "--categorical" in err
    code, _, err = _run(["ols", str(path), "--categorical"], capsys)
    assert code == 2 and "2 of 40 row(s) have missing values (column 'area': 2 missing (first in data row 5)" in err
    assert "--missing drop" in err
    code, out, _ = _run(["ols", str(path), "--categorical", "--missing", "DROP"], capsys)
    assert code == 0 and "38 rows used (2 of 40 dropped for missing values)" in out
    ref = smf.ols("price ~ area + city", data=frame.dropna()).fit()
    assert "city[Daegu]" in out and "city[Seoul]" in out
    assert f"{ref.params['city[T.Seoul]']:.6g}" in out and f"{ref.rsquared:.4g}" in out


def test_cli_refuses_a_complex_npy(tmp_path, capsys):
    """Findings row 86: the real parts were fitted, exit 0."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "complex2.npy", rng.standard_normal((30, 3)) + 1j * rng.standard_normal((30, 3)))
    code, out, err = _run(["ols", str(tmp_path / "complex2.npy")], capsys)
    assert code == 2 and "holds complex numbers" in err and out == ""


def test_cli_refuses_a_table_too_wide_for_its_gram_matrix(tmp_path, capsys, monkeypatch):
    """Findings row 79: 200,000 columns ended in numpy's `_ArrayMemoryError` (298 GiB) traceback."""
    import gicho.linear._input as linear_input

    rng = np.random.default_rng(0)
    csv = tmp_path / "wide.csv"
    np.savetxt(csv, rng.standard_normal((5, 201)), delimiter=",",
               header=",".join(f"c{j}" for j in range(201)), comments="")  # fmt: skip
    monkeypatch.setattr(linear_input, "memory_bytes", lambda: 1 << 20)  # a 1 MiB machine
    code, out, err = _run(["ols", str(csv)], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {csv}: 200 feature columns: least squares needs the 202 x 202 Gram")
    assert "(318.8 KiB, held several times), more than 25% of this machine's 1.0 MiB of memory" in err
    assert "--features" in err
    code, out, _ = _run(["ols", str(csv), "--features", "c0,c1"], capsys)  # a few columns fit
    assert code == 0 and "5 rows used" in out
    # and the library says the same of `X`
    from gicho.linear import LinearRegression

    with pytest.raises(ValueError, match=r"argument `X` has 200 columns: least squares needs the 202 x 202"):
        LinearRegression().fit(rng.standard_normal((5, 200)), rng.standard_normal(5))


def test_cli_refuses_200000_columns_before_reading_the_rows(tmp_path, capsys):
    """Row 79 as reported: no machine has the 4 x 298 GiB; the header alone decides."""
    p = 200_000
    row = ",".join("1" for _ in range(p))
    csv = tmp_path / "wide.csv"
    csv.write_text(",".join(f"c{j}" for j in range(p)) + f"\n{row}\n{row}\n", encoding="utf-8")
    code, out, err = _run(["ols", str(csv)], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith(f"error: {csv}: 199,999 feature columns: least squares needs the 200,001 x 200,001 "
                          "Gram matrix of [1, X, y] (298.0 GiB")  # fmt: skip


def test_cli_names_the_file_column_and_row_of_a_number_beyond_float64(tmp_path, capsys):
    """Findings row 80: a 5 MB number became inf and the error named `X`."""
    csv = tmp_path / "longline.csv"
    csv.write_text("a,b,y\n1,2,3\n2,5,1\n" + "4," + "9" * 5_000_000 + ",6\n7,8,9\n", encoding="utf-8")
    code, out, err = _run(["ols", str(csv)], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {csv}: column 'b' holds 1 infinite value(s) (first in data row 3, "
                          "1-based, after the header)")  # fmt: skip
    assert "`X`" not in err


@pytest.mark.parametrize(
    ("fraction", "detail"),
    [("0.999", "holds out 442 of the 442 diabetes rows and trains on 0"),  # N-CLI1: a traceback
     ("0.001", "holds out 1 of the 442 diabetes rows and trains on 441"),  # N-CLI2: named R²
     ("0.98", "holds out 434 of the 442 diabetes rows and trains on 8")],
)  # fmt: skip
def test_train_refuses_a_test_fraction_that_leaves_too_few_rows(fraction, detail, tmp_path, capsys, monkeypatch):
    """Findings N-CLI1 / N-CLI2: the split is checked with the config, before a run starts."""
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(["train", "ols-diabetes", "--test-fraction", fraction], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: field `test_fraction`={float(fraction)!r} {detail}")
    assert "test_fraction must lie in [0.0046, 0.9728]" in err and "run:" not in out + err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_test_fraction_bounds_in_the_message_run(tmp_path):
    """Both ends of the range the message gives run; the data size constants are the table's."""
    from gicho.data.tabular import load_diabetes_table
    from gicho.tasks.ols import DIABETES_FEATURES, DIABETES_ROWS

    assert load_diabetes_table().X.shape == (DIABETES_ROWS, DIABETES_FEATURES)
    task = get("ols-diabetes")
    for fraction, n_test in (("0.0046", 3), ("0.9728", 430)):
        config = task.make_config(["--test-fraction", fraction, "--plots", "false"])
        (tmp_path / fraction).mkdir()
        metrics = task.run(config, RunContext(run_dir=tmp_path / fraction))
        record = json.loads((tmp_path / fraction / "ols.json").read_text())
        assert record["n_test"] == n_test and np.isfinite(metrics["r2"]) and np.all(np.isfinite(record["bse"]))
    with pytest.raises(ValueError, match=r"trains on 10; .* must lie in \[0\.0046, 0\.9751\]"):
        task.make_config(["--test-fraction", "0.976", "--fit-intercept", "false"])
