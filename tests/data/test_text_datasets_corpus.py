"""gicho.data.text.datasets_corpus: Parquet / JSON-lines / Arrow corpora through ``datasets``,
their errors, and the held-out split by a seeded hash of the row index (issue 21, item 5)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gicho.data.text.datasets_corpus import (
    DatasetsCorpus,
    HeldOutRows,
    datasets_format,
)

datasets = pytest.importorskip("datasets")

TEXTS = [f"Document {i}: the break statement exits the innermost loop {i} times." for i in range(23)]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _write_arrow(path, table, stream=True):
    with pa.OSFile(str(path), "wb") as sink:
        writer = pa.ipc.new_stream(sink, table.schema) if stream else pa.ipc.new_file(sink, table.schema)
        with writer:
            writer.write_table(table, max_chunksize=5)  # several record batches
    return path


def _table(texts=TEXTS):
    return pa.table({"id": list(range(len(texts))), "text": texts})


@pytest.fixture
def files(tmp_path):
    """One corpus of TEXTS in each format (the JSON one with an extra column)."""
    out = {"jsonl": _write_jsonl(tmp_path / "c.jsonl", [{"text": t, "n": i} for i, t in enumerate(TEXTS)]),
           "json": _write_jsonl(tmp_path / "c.json", [{"text": t} for t in TEXTS]),
           "arrow-stream": _write_arrow(tmp_path / "s.arrow", _table()),
           "arrow-file": _write_arrow(tmp_path / "f.arrow", _table(), stream=False)}
    pq.write_table(_table(), tmp_path / "c.parquet", row_group_size=7)
    out["parquet"] = tmp_path / "c.parquet"
    return out


@pytest.mark.parametrize("kind", ["jsonl", "json", "parquet", "arrow-stream", "arrow-file"])
def test_each_format_reads_every_row_in_order(files, kind, tmp_path):
    corpus = DatasetsCorpus(files[kind], batch_rows=4, cache_dir=tmp_path / "cache")
    assert corpus.format == {"jsonl": "json", "json": "json", "parquet": "parquet"}.get(kind, "arrow")
    assert len(corpus) == len(TEXTS)
    assert list(corpus) == TEXTS
    assert list(corpus) == TEXTS  # re-iterable
    batches = list(corpus.batches())
    assert [first for first, _ in batches] == list(range(0, len(TEXTS), 4))
    assert all(len(texts) <= 4 for _, texts in batches)
    assert [t for _, texts in batches for t in texts] == TEXTS
    assert [t for _, texts in corpus.batches(5, 11) for t in texts] == TEXTS[5:11]


def test_a_directory_and_a_glob_of_shards_read_in_sorted_order(tmp_path):
    shards = tmp_path / "shards"
    (shards / "b").mkdir(parents=True)
    pq.write_table(_table(TEXTS[:10]), shards / "a-0.parquet")
    pq.write_table(_table(TEXTS[10:]), shards / "b" / "a-1.parquet")
    (shards / "README").write_text("not a shard")  # other files of the directory are ignored
    assert datasets_format(shards) == "parquet"
    assert list(DatasetsCorpus(shards)) == TEXTS
    assert list(DatasetsCorpus(str(shards / "**" / "*.parquet"))) == TEXTS
    assert list(DatasetsCorpus(str(shards / "a-*.parquet"))) == TEXTS[:10]
    literal = shards / "b" / "a[1].parquet"  # a file whose name looks like a pattern is itself
    (shards / "b" / "a-1.parquet").rename(literal)
    assert datasets_format(literal) == "parquet" and list(DatasetsCorpus(literal)) == TEXTS[10:]


def test_a_directory_saved_by_datasets_reads_its_arrow_files(tmp_path):
    datasets.Dataset.from_dict({"text": TEXTS, "n": list(range(len(TEXTS)))}).save_to_disk(
        str(tmp_path / "saved"), num_shards=2)
    assert {"state.json", "dataset_info.json"} <= {p.name for p in (tmp_path / "saved").iterdir()}
    assert datasets_format(tmp_path / "saved") == "arrow"
    corpus = DatasetsCorpus(tmp_path / "saved")
    assert [f.suffix for f in corpus.files] == [".arrow", ".arrow"] and list(corpus) == TEXTS


def test_text_field_names_the_column(tmp_path):
    path = _write_jsonl(tmp_path / "c.jsonl", [{"body": t, "title": "x"} for t in TEXTS])
    assert list(DatasetsCorpus(path, text_field="body")) == TEXTS


def test_null_and_blank_rows_are_no_documents_but_keep_their_index(tmp_path):
    rows = [{"text": "first one"}, {"text": None}, {"text": "   \n"}, {"text": "last one"}]
    corpus = DatasetsCorpus(_write_jsonl(tmp_path / "c.jsonl", rows))
    assert len(corpus) == 4 and list(corpus) == ["first one", "last one"]
    assert [texts for _, texts in corpus.batches()] == [["first one", None, "   \n", "last one"]]
    assert list(corpus.texts(keep=lambda a, b: np.arange(a, b) >= 2)) == ["last one"]


def test_datasets_format_detects_tables_and_leaves_text_corpora_alone(tmp_path, files):
    assert datasets_format(files["jsonl"]) == "json" and datasets_format(files["parquet"]) == "parquet"
    assert datasets_format(files["arrow-file"]) == "arrow"
    assert datasets_format(str(tmp_path / "*.parquet")) == "parquet"
    assert datasets_format(tmp_path / "missing.jsonl") == "json"  # by name: opening it says it is missing
    assert datasets_format(tmp_path / "notes.txt") is None and datasets_format(tmp_path / "README") is None
    texts = tmp_path / "docs"
    texts.mkdir()
    (texts / "a.txt").write_text("text\n")
    (texts / "meta.json").write_text("{}\n")
    assert datasets_format(texts) is None  # a directory of text files stays a TextCorpus


def test_the_cache_is_a_temporary_directory_removed_on_close(files):
    corpus = DatasetsCorpus(files["jsonl"])
    cache = corpus.cache_dir
    assert cache.is_dir() and any(cache.rglob("*.arrow"))
    corpus.close()
    assert not cache.exists()
    with pytest.raises(ValueError, match="is closed"):
        len(corpus)


def test_offline_mode_is_set_while_reading_and_restored(files, monkeypatch):
    seen = []
    load = datasets.load_dataset

    def spy(*args, **kwargs):
        seen.append((datasets.config.HF_HUB_OFFLINE, kwargs["cache_dir"]))
        return load(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", spy)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    corpus = DatasetsCorpus(files["jsonl"])
    assert seen == [(True, str(corpus.cache_dir))]
    assert datasets.config.HF_HUB_OFFLINE is False


# ------------------------------------------------------------------------------ errors

def test_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"argument `path`: file not found: .*nope\.jsonl"):
        DatasetsCorpus(tmp_path / "nope.jsonl")
    with pytest.raises(FileNotFoundError, match=r"argument `path`: no file matches the pattern .*\*\.parquet"):
        DatasetsCorpus(str(tmp_path / "*.parquet"))
    with pytest.raises(ValueError, match=r"argument `path`: directory .* holds no .parquet, .jsonl, .json, .arrow"):
        DatasetsCorpus(tmp_path)


def test_unknown_suffix_and_mixed_formats(tmp_path, files):
    csv = tmp_path / "c.csv"
    csv.write_text("text\nhello\n")
    with pytest.raises(ValueError, match=r"argument `path` .*c\.csv\): unknown file suffix \.csv; a table corpus "
                                         r"is \.parquet, \.jsonl, \.json, \.arrow files"):
        DatasetsCorpus(csv)
    with pytest.raises(ValueError, match=r"mixes file formats \(\.arrow, \.json, \.jsonl, \.parquet\)"):
        DatasetsCorpus(tmp_path)


def test_missing_column_lists_the_columns(files):
    with pytest.raises(ValueError, match=r"argument `text_field`: .*c\.jsonl has no column 'body'; its columns: "
                                         r"'text', 'n'"):
        DatasetsCorpus(files["jsonl"], text_field="body")
    with pytest.raises(ValueError, match=r"argument `text_field` must be a non-empty column name"):
        DatasetsCorpus(files["jsonl"], text_field="")


def test_a_column_that_is_not_text(files):
    with pytest.raises(ValueError, match=r"argument `text_field`: column 'n' of .*c\.jsonl holds int64, not text"):
        DatasetsCorpus(files["jsonl"], text_field="n")
    with pytest.raises(ValueError, match=r"column 'id' of .*c\.parquet holds int64, not text"):
        DatasetsCorpus(files["parquet"], text_field="id")


def test_an_unreadable_file_names_it(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": broken\n')
    with pytest.raises(ValueError, match=r"argument `path`: cannot read .*bad\.jsonl as json through `datasets`"):
        DatasetsCorpus(bad)


def test_without_datasets_the_error_names_the_extra(files, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    with pytest.raises(ImportError, match=r"needs the `datasets` package.*pip install 'gicho\[datasets\]'"):
        DatasetsCorpus(files["jsonl"])


def test_importing_gicho_and_its_text_data_does_not_import_datasets():
    code = ("import sys, gicho, gicho.data.text, gicho.data.text.datasets_corpus, gicho.tasks.mlm_bert; "
            "print('datasets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------------------ held-out rows

def _splitmix64(seed: int, n: int) -> list[int]:
    """The reference generator (Steele, Lea and Flood, 2014) in plain Python integers."""
    mask, state, out = (1 << 64) - 1, seed & ((1 << 64) - 1), []
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(z ^ (z >> 31))
    return out


@pytest.mark.parametrize("seed", [0, 1, 12345, -3])
def test_held_out_rows_are_splitmix64_below_the_fraction(seed):
    rows = HeldOutRows(500, 0.1, seed)
    expected = np.array([h < int(0.1 * 2.0**64) for h in _splitmix64(seed, 500)])
    assert np.array_equal(rows.mask(0, 500), expected)  # the same on every platform and process
    assert rows.n_held_out == expected.sum() and 25 <= rows.n_held_out <= 80
    assert np.array_equal(rows.mask(120, 131), expected[120:131])
    assert np.array_equal(rows.training(0, 500), ~expected)
    # a longer table keeps the held-out rows of a shorter one
    assert np.array_equal(HeldOutRows(2000, 0.1, seed).mask(0, 500), expected)


def test_held_out_rows_depend_on_the_seed_and_always_hold_one_out():
    assert not np.array_equal(HeldOutRows(200, 0.1, 0).mask(0, 200), HeldOutRows(200, 0.1, 1).mask(0, 200))
    for seed in range(20):  # 5 rows at 5%: usually none falls below; the smallest hash is taken
        rows = HeldOutRows(5, 0.05, seed)
        assert rows.n_held_out == rows.mask(0, 5).sum() >= 1
    with pytest.raises(ValueError, match=r"holding 50% out of 1 row\(s\) leaves none to train on"):
        HeldOutRows(1, 0.5)
    with pytest.raises(ValueError, match=r"argument `fraction` must lie in \(0, 1\); got 1.0"):
        HeldOutRows(10, 1.0)
    with pytest.raises(ValueError, match=r"0 <= start <= stop <= 10"):
        HeldOutRows(10, 0.5).mask(3, 11)


def test_split_is_deterministic_disjoint_and_covers_every_document(tmp_path):
    texts = [f"row {i} has its own words" for i in range(400)]
    path = _write_jsonl(tmp_path / "c.jsonl", [{"text": t} for t in texts])
    train, valid = DatasetsCorpus(path, batch_rows=64).split(0.1, seed=3)
    train, valid = list(train), list(valid)
    assert sorted(train + valid) == sorted(texts) and not set(train) & set(valid)
    assert 20 <= len(valid) <= 60
    again = DatasetsCorpus(path, batch_rows=7).split(0.1, seed=3)  # another batching, another object
    assert (list(again[0]), list(again[1])) == (train, valid)
    assert list(DatasetsCorpus(path).split(0.1, seed=4)[1]) != valid
    # max_rows: the first rows only, split the same way
    head_train, head_valid = (list(t) for t in DatasetsCorpus(path).split(0.1, seed=3, max_rows=100))
    assert sorted(head_train + head_valid) == sorted(texts[:100])
    assert set(head_valid) == set(valid) & set(texts[:100])
    with pytest.raises(ValueError, match=r"has 400 row\(s\); using 1: too few"):
        DatasetsCorpus(path).split(0.1, max_rows=1)
