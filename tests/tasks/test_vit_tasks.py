"""The ViT tasks: digits-vit (accuracy >= 85% from a small config) and vit over an image folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gicho.cli import main
from gicho.data.image_folder import write_digits_folder
from gicho.data.images import digits_split
from gicho.tasks import RunContext, get
from gicho.tasks.neural import load_predictor

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_registered_with_budgets():
    for name in ("digits-vit", "vit"):
        task = get(name)
        assert task.metrics == ("accuracy",)
        for overrides in (task.tour, task.quick):
            task.make_config(overrides)
    with pytest.raises(ValueError, match=r"must be 8, model\.in_channels 1"):
        task = get("digits-vit")
        config = task.make_config({"model.in_channels": 3})
        task.build_model(config, None)


@pytest.mark.slow
def test_digits_vit_run_evaluate_predict(tmp_path):
    task = get("digits-vit")
    config = task.make_config({"model.d_model": 32, "model.d_ff": 64, "data.max_shift": 0,
                               "train.max_steps": 250, "train.eval_every": 250, "train.warmup_steps": 25,
                               "train.device": "cpu", "train.progress": False})
    ctx = RunContext(run_dir=tmp_path, progress=False)
    metrics = task.run(config, ctx)
    assert metrics["accuracy"] >= 0.85  # chance is 0.1
    assert {f"accuracy_{d}" for d in range(10)} <= set(metrics)
    per_class = [metrics[f"accuracy_{d}"] for d in range(10)]
    assert min(per_class) <= metrics["accuracy"] <= max(per_class)
    for name in ("confusion_matrix.png", "attention_rollout.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 1000
    again = task.evaluate(config, ctx)
    assert again["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-12)

    _, X_test, _, y_test = digits_split()
    rows = [" ".join(str(int(v)) for v in image.ravel()) for image in X_test[:20]]
    answers = load_predictor(task, config, tmp_path).predict_strings(rows)
    top = [a.split(" (")[0] for a in answers]
    predictor = load_predictor(task, config, tmp_path)
    assert predictor.predict(X_test[:20].reshape(20, 8, 8)).tolist() == top  # the array itself, as load_digits
    assert predictor.predict(list(X_test[:20])).tolist() == top  # a list of rows
    assert np.mean([t == str(y) for t, y in zip(top, y_test[:20], strict=True)]) >= 0.7
    assert all(len(a.split(", ")) == 3 for a in answers)  # top 3 with probabilities
    # the same digit as a PNG (upscaled, light on dark) gives the same answer
    png = tmp_path / "digit.png"
    Image.fromarray((X_test[0] / 16 * 255).astype(np.uint8)).resize((32, 32), Image.NEAREST).save(png)
    out = tmp_path / "rollout.png"
    with_image = task.predict(config, ctx, [str(png)], {"attention": out})
    assert with_image[0].split(" (")[0] == top[0] and out.stat().st_size > 1000
    with pytest.raises(ValueError, match="image file not found"):
        task.predict(config, ctx, ["missing.png"], {})
    with pytest.raises(ValueError, match="has 3 numbers; expected 64"):
        task.predict(config, ctx, ["1 2 3"], {})
    with pytest.raises(ValueError, match=r"outside \[0.0, 16.0\]"):
        task.predict(config, ctx, [" ".join(["17"] * 64)], {})


@pytest.mark.slow
def test_vit_on_an_image_folder_through_the_cli(tmp_path, capsys):
    root = write_digits_folder(tmp_path / "images", classes=("0", "1"), size=16)
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "vit", "--data.root", str(root), "--runs-dir", str(runs), "--model.image-size", "16",
              "--model.d-model", "16", "--model.n-layers", "1", "--model.d-ff", "32", "--train.max-steps", "60",
              "--train.eval-every", "60", "--train.device", "cpu", "--train.progress", "false"])
    assert exit_info.value.code in (0, None)
    (run_dir,) = runs.iterdir()
    model_dir = run_dir / "model"
    assert (model_dir / "preprocessor_config.json").is_file()  # Hugging Face's image processor
    assert not (model_dir / "preprocessing.json").exists()  # gicho's earlier file (still read)
    predictor = load_predictor(get("vit"), get("vit").make_config({"data.root": str(root)}), run_dir)
    assert predictor.model.config.label_names == ("0", "1")
    image = next((root / "1").iterdir())
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["predict", str(run_dir), str(image), "--attention", str(tmp_path / "map.png")])
    printed = capsys.readouterr().out
    assert str(image) in printed and "(" in printed and (tmp_path / "map.png").is_file()
    results = (run_dir / "results.json").read_text()
    assert '"accuracy"' in results


def test_vit_folder_errors(tmp_path):
    task = get("vit")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        task.build_data(task.make_config({"data.root": str(tmp_path / "nope")}))
    root = tmp_path / "one"
    write_digits_folder(root, classes=("0",), size=8)
    (root / "1").mkdir()
    Image.new("RGB", (8, 8)).save(root / "1" / "only.png")
    with pytest.raises(ValueError, match="cannot split"):
        task.build_data(task.make_config({"data.root": str(root), "model.image_size": 8,
                                               "model.patch_size": 4}))
    with pytest.raises(ValueError, match="on_error"):
        task.make_config({"data.on_error": "ignore"})


def test_folder_task_refuses_a_class_count_that_contradicts_the_folder(tmp_path):
    from gicho.tasks import RunContext, get

    task = get("vit")
    config = task.make_config({"model.n_labels": 7, "train.max_steps": 1, "train.device": "cpu"})
    with pytest.raises(ValueError, match=r"model.n_labels=7 contradicts the image folder"):
        task.run(config, RunContext(run_dir=tmp_path, progress=False))


def _folder(root, counts, size=8):
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (size, size), (i % 256, 0, 0)).save(root / name / f"{i}.png")
    return root


def _small(root, **extra):
    return get("vit").make_config({"data.root": str(root), "model.image_size": 8, "model.patch_size": 4, **extra})


@pytest.mark.parametrize(("n_images", "batch"), [(10, "32"), (70, "8")])
def test_one_class_folder_is_refused_before_the_batch_check(tmp_path, capsys, n_images, batch):
    """I15 / E2 / E3: one class trained to accuracy 1.0, or failed on the batch size without a word."""
    root = _folder(tmp_path / "oneclass", {"cat": n_images})
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "vit", "--data.root", str(root), "--runs-dir", str(tmp_path / "runs"),
              "--train.batch-size", batch, "--train.device", "cpu", "--train.progress", "false"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: a classifier needs at least 2 classes; {root} has only 'cat'" in err
    assert "batch" not in err


def test_a_class_the_split_leaves_untrained_is_refused(tmp_path):
    root = _folder(tmp_path / "rare", {"common": 100, "rare1": 2, "rare2": 2})
    with pytest.raises(ValueError, match=r"test_fraction=0.9 leaves class\(es\) 'rare1' \(2 images\), 'rare2' "
                                         r"\(2 images\) with no training image, so the model could never predict"):
        get("vit").build_data(_small(root, **{"data.test_fraction": 0.9}))


def test_a_class_with_no_held_out_image_trains_with_a_warning(tmp_path):
    root = _folder(tmp_path / "few", {"many": 20, "few": 2})
    with pytest.warns(UserWarning, match=r"leaves class\(es\) 'few' with no held-out image: their accuracy is NaN"):
        splits = get("vit").build_data(_small(root))
    assert splits.info["classes"] == ("few", "many")


def test_image_channels_are_checked_in_the_config(tmp_path, capsys):
    """O12: --model.in-channels 2 named `channels`, an argument the user never typed."""
    with pytest.raises(ValueError, match=r"^field `model.in_channels` must be 3 \(RGB\) or 1 \(grey\) for image "
                                         r"files; got 2$"):
        get("vit").make_config({"model.in_channels": 2})
    for args, message in ((["--model.in-channels", "2"], "field `model.in_channels` must be 3 (RGB) or 1"),
                          (["--model.dropout", "1.0"], "field `model.dropout` must lie in [0, 1); got 1.0"),
                          (["--model.dropout", "-0.1"], "field `model.dropout` must lie in [0, 1); got -0.1"),
                          (["--model.image-size", "100000"], "field `model.image_size` must be <= 8192")):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", "vit", "--runs-dir", str(tmp_path / "runs"), *args])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"error: {message}" in err and len(err.strip().splitlines()) == 1


def test_the_folder_decides_the_classes_and_the_config_says_so(tmp_path):
    """Newcomer #5: the run's config said n_labels 2 for a 3-class model (the preset's default)."""
    from gicho.tasks import config_to_dict

    task = get("vit")
    config = task.make_config()
    assert config.model.n_labels is None and config.model.label_names is None  # "from the folder"
    assert config_to_dict(config)["model"]["n_labels"] is None
    assert "(3 classes: 0, 1, 2)" in task.tep(config)[1]
    root = _folder(tmp_path / "pets", {"cat": 5, "dog": 5, "eel": 5})
    config = _small(root)
    assert "(3 classes: cat, dog, eel)" in task.tep(config)[1]
    splits = task.build_data(config)
    model = task.build_model(config, splits)
    assert model.config.n_labels == 3 and model.config.label_names == ("cat", "dog", "eel")
    # any value the user gives is checked, the preset's old default 2 included
    for extra, message in (({"model.n_labels": 2}, "model.n_labels=2 contradicts the image folder"),
                           ({"model.label_names": "a,b,c"}, r"model.label_names=\('a', 'b', 'c'\) contradicts")):
        with pytest.raises(ValueError, match=message):
            task.build_model(_small(root, **extra), splits)
    task.build_model(_small(root, **{"model.label_names": "cat,dog,eel"}), splits)


def test_rollout_examples_are_spread_over_the_classes():
    """Newcomer 2026-12-06 #34: every 'ok' example of the figure came from the first class."""
    from gicho.tasks._image_classification import spread_over_classes

    labels = [0, 0, 0, 0, 1, 1, 2, 2, 2]
    assert spread_over_classes(list(range(9)), labels, 4) == [0, 4, 6, 1]
    assert spread_over_classes([0, 1, 2], labels, 6) == [0, 1, 2]
    assert spread_over_classes([], labels, 3) == []


def test_a_vit_run_is_a_transformers_pipeline_and_an_older_model_dir_still_loads(tmp_path):
    """``pipeline("image-classification", model=RUN/model)`` (newcomer finding #44) gives gicho's
    labels; the task's crop_pct=0.875 resizes (Pillow on 8-bit pixels vs torch in float32), so the
    probabilities agree within 0.01 (exact agreement: tests/models/test_vit.py, crop_pct=1.0)."""
    import json
    import os
    import warnings

    import torch

    transformers = pytest.importorskip("transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = write_digits_folder(tmp_path / "images", classes=("0", "1"), size=16)
    task = get("vit")
    config = task.make_config({"data.root": str(root), "model.image_size": 16, "model.d_model": 16,
                               "model.n_layers": 1, "model.d_ff": 32, "train.max_steps": 20,
                               "train.warmup_steps": 2, "train.eval_every": 20, "train.device": "cpu", "train.progress": False})
    run_dir = tmp_path / "run"
    task.run(config, RunContext(run_dir=run_dir, progress=False))
    model_dir = run_dir / "model"
    paths = [str(p) for name in ("0", "1") for p in sorted((root / name).iterdir())[:3]]

    def gicho_probs():
        predictor = load_predictor(task, config, run_dir)
        with torch.no_grad():
            return torch.from_numpy(predictor.predict_proba(paths)).float()

    probs = gicho_probs()
    # the same images as PIL images (a grey one among them), as decoded arrays, as one array
    from PIL import Image

    predictor = load_predictor(task, config, run_dir)
    images = [Image.open(p) for p in paths]
    images[0] = images[0].convert("L")  # converted to the model's channels as read_image does
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    for native in (images, arrays, np.stack(arrays), [a / 255.0 for a in arrays]):
        torch.testing.assert_close(torch.from_numpy(predictor.predict_proba(native)).float(), probs,
                                   atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"input 0 is a int; this task accepts images: a list of PIL images"):
        predictor.predict([3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "ViTImageProcessor requires torchvision ... falling back"
        pipe = transformers.pipeline("image-classification", model=str(model_dir), device="cpu")
    rows = pipe(paths, top_k=2)
    hf = torch.tensor([[{r["label"]: r["score"] for r in row}[name] for name in ("0", "1")] for row in rows])
    assert torch.equal(hf.argmax(-1), probs.argmax(-1))
    torch.testing.assert_close(hf, probs, atol=1e-2, rtol=0)

    # a model/ written before preprocessor_config.json (gicho's preprocessing.json) gives the same answers
    processor = json.loads((model_dir / "preprocessor_config.json").read_text())
    (model_dir / "preprocessor_config.json").unlink()
    (model_dir / "preprocessing.json").write_text(json.dumps(
        {"mean": processor["image_mean"], "std": processor["image_std"], "crop_pct": processor["crop_pct"]}))
    torch.testing.assert_close(gicho_probs(), probs, atol=0, rtol=0)
    assert task.load_extras(run_dir / "preprocessing")["processor"].crop_pct == 0.875
    # run_dir/preprocessing/ of a run started before: no image size beside it, nothing to read
    # (build_data gives the same values again on resume)
    (run_dir / "preprocessing" / "preprocessor_config.json").rename(run_dir / "preprocessing" / "preprocessing.json")
    assert task.load_extras(run_dir / "preprocessing") == {}


def test_digits_vit_reads_its_normalisation_from_the_saved_processor(tmp_path):
    from gicho.models.vit import ViTImageProcessor
    from gicho.tasks._image_classification import to_display

    task = get("digits-vit")
    config = task.make_config({})
    model = task.build_model(config, None)
    model.save_pretrained(tmp_path)
    info = task.load_extras(tmp_path)
    assert info["processor"] == ViTImageProcessor.for_model(8, 1, crop_pct=1.0) == model.image_processor
    (tmp_path / "preprocessor_config.json").unlink()  # a model/ from before: the task's own values
    assert task.load_extras(tmp_path) == info
    pixels = np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 8, 8)
    import torch

    shown = to_display(torch.from_numpy(pixels), info)
    np.testing.assert_allclose(shown, to_display(torch.from_numpy(pixels), {"mean": (0.5,), "std": (0.5,)}))
    np.testing.assert_allclose(shown[..., 0], (pixels[0] + 1) / 2, atol=1e-7)


class _CountingReads(torch.utils.data.Dataset):
    """A dataset that counts its reads."""

    def __init__(self, data):
        self.data, self.reads = data, 0

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        self.reads += 1
        return self.data[i]


@pytest.mark.slow
def test_the_figures_come_from_the_scores_one_pass_over_the_test_split(tmp_path, monkeypatch):
    """P5 (issue 20): the confusion matrix ran the test split a second time after the score had; now
    the score's own pass feeds it (and picks the rollout images, the only ones read again)."""
    import gicho.plots.classification
    from gicho.tasks._image_classification import N_ROLLOUTS
    from gicho.tasks.digits_vit import DigitsViTTask

    class CountingDigitsViT(DigitsViTTask):
        def build_data(self, config, preprocessing=None):
            splits = super().build_data(config, preprocessing)
            self.test = splits.test = _CountingReads(splits.test)  # the Trainer's valid split stays plain
            return splits

    drawn = []
    plot = gicho.plots.classification.plot_confusion_matrix
    monkeypatch.setattr(gicho.plots.classification, "plot_confusion_matrix",
                        lambda matrix, names, path: drawn.append(matrix) or plot(matrix, names, path))
    task = CountingDigitsViT()
    config = task.make_config({**task.quick, "train.max_steps": 30, "train.eval_every": 30, "train.warmup_steps": 3, "train.device": "cpu",
                               "train.progress": False})
    scores = task.run(config, RunContext(run_dir=tmp_path, progress=False))
    n = len(task.test)
    assert n < task.test.reads <= n + N_ROLLOUTS  # one pass; twice would be 2n
    assert (tmp_path / "plots" / "attention_rollout.png").stat().st_size > 1000

    # the figure's counts and the per-class scores equal a pass of its own, as the figure made before
    model = load_predictor(task, config, tmp_path).model
    labels, preds = [], []
    with torch.no_grad():
        for batch in torch.utils.data.DataLoader(task.test.data, batch_size=config.train.effective_eval_batch_size):
            preds.append(model(batch["pixel_values"])["logits"].argmax(-1))
            labels.append(batch["labels"])
    labels, preds = torch.cat(labels), torch.cat(preds)
    matrix = torch.bincount(labels * 10 + preds, minlength=100).view(10, 10).numpy()
    (figure,) = drawn
    np.testing.assert_array_equal(figure, matrix)
    assert scores["accuracy"] == np.trace(matrix) / n
    for d in range(10):
        assert scores[f"accuracy_{d}"] == matrix[d, d] / matrix[d].sum()
