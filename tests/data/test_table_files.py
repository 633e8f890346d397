"""load_table on real, messy and hostile files (findings 2026-11-30, rows 79-87), and its
categorical and missing-value handling."""

from __future__ import annotations

import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gicho.data.tabular import load_table


def _csv(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_wide_header_and_long_line_are_read(tmp_path):
    """Rows 79-80: a 200,000-column header and a 5 MB line exceeded pyarrow's probe block."""
    p = 200_000
    header = ",".join(f"c{j}" for j in range(p))
    row = ",".join("1" for _ in range(p))
    wide = _csv(tmp_path / "wide.csv", f"{header}\n{row}\n{row}\n")
    table = load_table(wide, features=["c0", "c7"], target="c199999")
    assert table.X.shape == (2, 2) and table.feature_names == ("c0", "c7")
    long_text = "x" * 5_000_000
    long = _csv(tmp_path / "long.csv", f"a,note,y\n1,{long_text},2\n2,b,3\n")
    table = load_table(long, features=["a"], target="y")
    np.testing.assert_array_equal(table.X[:, 0], [1.0, 2.0])


def test_duplicate_column_names_are_refused(tmp_path):
    """Row 81: KeyError traceback before."""
    dup = _csv(tmp_path / "dup.csv", "a,b,a\n1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match=r"dup\.csv: duplicate column name\(s\) 'a'"):
        load_table(dup)


def test_non_utf8_file_is_named(tmp_path):
    """Row 82: 'utf-8 codec can't decode' without the file's name before."""
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("ville,y\nSéoul,1\nBusan,2\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.csv: column 'ville' is not UTF-8 text \(byte b'\\xe9' in data row 1, 1-based\)"):
        load_table(bad, target="y", categorical=True)
    header = tmp_path / "header.csv"
    header.write_bytes(b"a\xff,y\n1,2\n")
    with pytest.raises(ValueError, match=r"header\.csv: is not UTF-8 text .* first line"):
        load_table(header)


def test_npy_header_claiming_more_than_the_file_holds(tmp_path):
    """Row 84: a header claiming (10^12, 10) made numpy try to allocate 72.8 TiB."""
    path = tmp_path / "huge.npy"
    np.save(path, np.zeros((10, 10)))
    raw = path.read_bytes()
    fake = raw.replace(b"(10, 10)", b"(1000000000000, 10)".ljust(len(b"(10, 10)")), 1)
    if fake == raw:  # header padding differs: rebuild the header with numpy's writer
        header = {"descr": "<f8", "fortran_order": False, "shape": (10**12, 10)}
        with path.open("wb") as handle:
            np.lib.format.write_array_header_1_0(handle, header)
            handle.write(np.zeros(100).tobytes())
    else:
        path.write_bytes(fake)
    with pytest.raises(ValueError, match=r"huge\.npy: the header claims shape \(1000000000000, 10\)"):
        load_table(path, require_target=False)


def test_npz_renamed_npy_and_complex_npy_are_refused(tmp_path):
    """Rows 85-86: AttributeError for the zip; the complex file was fitted on its real parts."""
    npz = tmp_path / "zip_as.npy"
    with zipfile.ZipFile(npz, "w") as archive:
        archive.writestr("x.npy", b"not really")
    with pytest.raises(ValueError, match=r"zip_as\.npy: is a zip archive \(an \.npz file\?\)"):
        load_table(npz)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "complex.npy", rng.standard_normal((20, 3)) + 1j * rng.standard_normal((20, 3)))
    with pytest.raises(ValueError, match=r"complex\.npy: holds complex numbers"):
        load_table(tmp_path / "complex.npy")


def test_headerless_csv_gets_index_names_like_npy(tmp_path):
    X = np.arange(12.0).reshape(4, 3)
    np.savetxt(tmp_path / "plain.csv", X, delimiter=",")
    table = load_table(tmp_path / "plain.csv", require_target=False)
    assert table.feature_names == ("0", "1", "2") and table.y is None
    np.testing.assert_array_equal(table.X, X)
    np.savetxt(tmp_path / "spaces.txt", X)
    np.testing.assert_array_equal(load_table(tmp_path / "spaces.txt", require_target=False).X, X)


def test_categorical_columns_are_one_hot_encoded_like_statsmodels_formulas(tmp_path):
    pd = pytest.importorskip("pandas")
    smf = pytest.importorskip("statsmodels.formula.api")
    rng = np.random.default_rng(0)
    n = 60
    city = rng.choice(["Seoul", "Busan", "Daegu"], n)
    area = rng.uniform(20, 120, n)
    price = 3.0 * area + np.select([city == "Seoul", city == "Busan"], [50.0, 10.0], 0.0) + rng.standard_normal(n)
    frame = pd.DataFrame({"area": area, "city": city, "price": price})
    frame.to_csv(tmp_path / "homes.csv", index=False)
    with pytest.raises(ValueError, match=r"column\(s\) 'city' hold text \(e\.g\. '.*'\); pass categorical=True \(gicho ols: --categorical\)"):
        load_table(tmp_path / "homes.csv")
    table = load_table(tmp_path / "homes.csv", categorical=True)
    assert table.feature_names == ("area", "city[Daegu]", "city[Seoul]")  # Busan: the reference level
    from gicho.linear import LinearRegression

    ours = LinearRegression().fit(table.features_frame(), table.y)
    ref = smf.ols("price ~ area + city", data=frame).fit()
    expected = ref.params[["Intercept", "area", "city[T.Daegu]", "city[T.Seoul]"]].to_numpy()
    np.testing.assert_allclose(ours.params_, expected, rtol=1e-10)
    assert list(ours.feature_names_in_) == ["area", "city[Daegu]", "city[Seoul]"]
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "homes.parquet")
    np.testing.assert_array_equal(load_table(tmp_path / "homes.parquet", categorical=True).X, table.X)


def test_missing_values_raise_by_default_or_are_dropped(tmp_path):
    path = _csv(tmp_path / "gaps.csv", "age,city,y\n30,Seoul,1\n,Busan,2\n41,,3\n50,Seoul,4\n61,Busan,5\n")
    with pytest.raises(
        ValueError,
        match=r"2 of 5 row\(s\) have missing values \(column 'age': 1 missing \(first in data row 2\); "
        r"column 'city': 1 missing \(first in data row 3\); .*--missing drop",
    ):
        load_table(path, categorical=True)
    table = load_table(path, categorical=True, missing="drop")
    assert table.n_rows == 5 and table.n_dropped == 2 and table.X.shape == (3, 2)
    np.testing.assert_array_equal(table.y, [1.0, 4.0, 5.0])
    with pytest.raises(ValueError, match=r"argument `missing` must be one of 'raise', 'drop'; got 'skip'"):
        load_table(path, missing="skip")


def test_streaming_npy_reader_checks_the_header_against_the_file(tmp_path):
    """Findings row 84 (ols): "mmap length is greater than file size", without the file's name."""
    from gicho.data.tabular import iter_npy_chunks

    path = tmp_path / "short.npy"
    np.save(path, np.zeros((100, 4)))
    path.write_bytes(path.read_bytes()[:-800])  # truncated: the header still says 100 rows
    with pytest.raises(ValueError, match=r"short\.npy: the header claims shape \(100, 4\)"):
        next(iter_npy_chunks(path))


def test_a_number_beyond_float64_names_the_file_column_and_row(tmp_path):
    """Findings row 80: a 5,000,000-digit number became inf and the error named `X`."""
    huge = "9" * 5_000_000
    path = _csv(tmp_path / "longline.csv", f"a,b,y\n1,2,3\n4,{huge},6\n7,8,9\n")
    with pytest.raises(ValueError, match=r"longline\.csv: column 'b' holds 1 infinite value\(s\) "
                                         r"\(first in data row 2, 1-based, after the header\)"):
        load_table(path, target="y")
    # a column that is not used is not read, so it cannot fail
    assert load_table(path, features=["a"], target="y").X.shape == (3, 1)
    neg = _csv(tmp_path / "neg.csv", "a,y\n1,1e999\n2,-inf\n3,1\n")
    with pytest.raises(ValueError, match=r"column 'y' holds 2 infinite value\(s\) \(first in data row 1"):
        load_table(neg, target="y")
    headerless = _csv(tmp_path / "headerless.csv", "1,2\n3,1e999\n")
    with pytest.raises(ValueError, match=r"column '1' holds 1 infinite value\(s\) \(first in row 2, 1-based\)"):
        load_table(headerless)
    pq.write_table(pa.table({"a": [1.0, 2.0], "y": [float("inf"), 0.0]}), tmp_path / "inf.parquet")
    with pytest.raises(ValueError, match=r"inf\.parquet: column 'y' holds 1 infinite value\(s\) \(first in row 1"):
        load_table(tmp_path / "inf.parquet")
    np.save(tmp_path / "inf.npy", np.array([[1.0, 2.0], [np.inf, 3.0]]))
    with pytest.raises(ValueError, match=r"inf\.npy: column '0' holds 1 infinite value\(s\) \(first in row 2, 1-based\)"):
        load_table(tmp_path / "inf.npy")
