"""gicho.data.tabular: the bundled diabetes table and chunked .npy / CSV / Parquet readers."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_diabetes

from gicho.data.tabular import (
    iter_csv_chunks,
    iter_npy_chunks,
    iter_parquet_chunks,
    iter_xy_chunks,
    load_diabetes_table,
    load_table,
    npy_shape,
)
from gicho.linear import LinearRegression


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 3))
    y = X @ [1.0, -2.0, 0.5] + 4.0 + rng.standard_normal(1000)
    np.save(tmp_path / "t.npy", np.column_stack([X, y]))
    arrow = pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": y})
    pq.write_table(arrow, tmp_path / "t.parquet", row_group_size=300)
    pcsv.write_csv(arrow, tmp_path / "t.csv")
    return tmp_path, X, y


def test_diabetes_table_is_scikit_learns():
    data = load_diabetes_table()
    ref = load_diabetes()
    np.testing.assert_array_equal(data.X, ref.data)
    np.testing.assert_array_equal(data.y, ref.target)
    assert data.feature_names == tuple(ref.feature_names) and data.X.shape == (442, 10)
    raw = load_diabetes_table(scaled=False)
    assert raw.X[:, 0].max() > 50  # age in years
    sub = load_table(None, "progression", ["bmi", "s5"])
    np.testing.assert_array_equal(sub.X, ref.data[:, [2, 8]])


@pytest.mark.parametrize("name, target", [("t.npy", None), ("t.npy", 3), ("t.parquet", "y"), ("t.csv", None)])
def test_chunked_fit_equals_in_memory_fit(table, name, target):
    path, X, y = table
    ref = LinearRegression().fit(X, y)
    model = LinearRegression().fit_chunks(iter_xy_chunks(path / name, target, chunk_rows=128))
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-12)
    np.testing.assert_allclose(model.intercept_, ref.intercept_, rtol=1e-12)
    loaded = load_table(path / name, target)
    np.testing.assert_allclose(loaded.X, X, rtol=1e-15)
    np.testing.assert_allclose(loaded.y, y, rtol=1e-15)


def test_feature_selection_and_readers(table):
    path, X, y = table
    chunks = list(iter_xy_chunks(path / "t.parquet", "y", ["c", "a"], chunk_rows=400))
    assert [c[0].shape for c in chunks] == [(400, 2), (400, 2), (200, 2)]
    np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), X[:, [2, 0]])
    npy = list(iter_npy_chunks(path / "t.npy", chunk_rows=333))
    assert [len(c) for c in npy] == [333, 333, 333, 1] and isinstance(npy[0], np.memmap)
    assert npy_shape(path / "t.npy") == (1000, 4)
    csv_values = np.concatenate([v for v, names in iter_csv_chunks(path / "t.csv", chunk_bytes=4096)])
    np.testing.assert_allclose(csv_values, np.column_stack([X, y]), rtol=1e-15)
    parquet = list(iter_parquet_chunks(path / "t.parquet", ["y"], chunk_rows=1000))
    assert parquet[0][1] == ("y",)
    npy_cols = load_table(path / "t.npy", "0", ["2"])  # .npy columns are named by index
    np.testing.assert_array_equal(npy_cols.X[:, 0], X[:, 2])


# Linux carries the parent's peak RSS into a forked child's ru_maxrss; a tiny launcher process
# in between gives the measured process a fresh high-water mark.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def test_streaming_a_memory_map_keeps_resident_memory_small(tmp_path):
    # 128 MB on disk, fitted in 4 MB chunks in a fresh process: its resident memory may grow
    # by far less than the file (the benchmark does the same at 8 GB)
    path = tmp_path / "big.npy"
    rows = 320_000
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(rows, 50))
    rng = np.random.default_rng(0)
    for start in range(0, rows, 40_000):
        out[start : start + 40_000] = rng.standard_normal((40_000, 50))
    out.flush()
    del out
    script = textwrap.dedent(f"""
        import resource
        from gicho.data.tabular import iter_xy_chunks
        from gicho.linear import LinearRegression
        LinearRegression().fit([[0.0], [1.0], [3.0]], [0.0, 1.0, 2.0])  # warm up lazy imports
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        m = LinearRegression().fit_chunks(iter_xy_chunks({str(path)!r}, chunk_rows=10_000))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(base, peak, m.coef_.shape[0])
    """)
    result = subprocess.run([sys.executable, "-c", _LAUNCHER, sys.executable, "-c", script],
                            capture_output=True, text=True, check=True)  # fmt: skip
    base_kb, peak_kb, p = map(int, result.stdout.split())
    assert p == 49
    assert base_kb < 400_000  # a fresh measurement, not the parent's high-water mark
    assert (peak_kb - base_kb) * 1024 < 48e6, (base_kb, peak_kb)  # the file is 128 MB


def test_reader_errors(table):
    path, _, _ = table
    with pytest.raises(FileNotFoundError, match="data file not found"):
        load_table(path / "missing.csv")
    (path / "t.xlsx").write_text("x")
    with pytest.raises(ValueError, match=r"suffix '.xlsx'; allowed: .npy"):
        load_table(path / "t.xlsx")
    with pytest.raises(ValueError, match=r"`target`: no column 'z'"):
        load_table(path / "t.csv", "z")
    with pytest.raises(ValueError, match=r"`features`: no column\(s\) \['q'\]"):
        load_table(path / "t.parquet", "y", ["a", "q"])
    with pytest.raises(ValueError, match="contains the target column 'y'"):
        load_table(path / "t.parquet", "y", ["a", "y"])
    with pytest.raises(ValueError, match="is not a column of the diabetes data"):
        load_table(None, "bmi")
    (path / "s.csv").write_text("a,b\n1,x\n2,y\n")
    with pytest.raises(ValueError, match="the target column 'b' holds text; the target must be numeric"):
        load_table(path / "s.csv")
    np.save(path / "f.npy", np.asfortranarray(np.ones((5, 3))))
    with pytest.raises(ValueError, match="Fortran"):
        next(iter_npy_chunks(path / "f.npy"))
    np.save(path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="Python objects"):
        next(iter_npy_chunks(path / "o.npy"))
    with pytest.raises(ValueError, match=r"`chunk_rows` must be a finite integer > 0"):
        next(iter_npy_chunks(path / "t.npy", chunk_rows=0))
    (path / "n.csv").write_text("a,y\n1,2\n,3\n4,5\n")
    with pytest.raises(ValueError, match=r"`X` contains 1 NaN"):
        LinearRegression().fit_chunks(iter_xy_chunks(path / "n.csv"))
