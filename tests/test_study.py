"""Tests for the pooling study (gicho.studies.pooling) on tiny lengths and budgets."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gicho.studies.pooling import (
    FIRST_MARKER_ID,
    PoolingStudyConfig,
    StudyEncoder,
    make_marker_data,
    run_pooling_study,
)
from gicho.train import TrainConfig

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 20),
    length=st.integers(1, 40),
    n_classes=st.integers(1, 6),
    n_markers=st.integers(1, 4),
    noise_vocab=st.integers(1, 10),
    seed=st.integers(0, 1000),
)
def test_marker_data_holds_exactly_the_label_markers(
    n, length, n_classes, n_markers, noise_vocab, seed
):
    if n_markers > length:
        with pytest.raises(
            ValueError, match=f"n_markers={n_markers} does not fit in length={length}"
        ):
            make_marker_data(
                n,
                length,
                n_classes=n_classes,
                n_markers=n_markers,
                noise_vocab=noise_vocab,
                seed=seed,
            )
        return
    ids, labels = make_marker_data(
        n, length, n_classes=n_classes, n_markers=n_markers, noise_vocab=noise_vocab, seed=seed
    )
    assert ids.shape == (n, length) and labels.shape == (n,)
    is_marker = ids < FIRST_MARKER_ID + n_classes
    assert torch.all(ids >= FIRST_MARKER_ID) and torch.all(
        ids < FIRST_MARKER_ID + n_classes + noise_vocab
    )
    assert torch.all(is_marker.sum(1) == n_markers)
    assert torch.all(ids[is_marker].view(n, n_markers) == (FIRST_MARKER_ID + labels)[:, None])
    again, _ = make_marker_data(
        n, length, n_classes=n_classes, n_markers=n_markers, noise_vocab=noise_vocab, seed=seed
    )
    assert torch.equal(ids, again)


def test_marker_positions_are_spread():
    ids, _ = make_marker_data(2000, 16, n_classes=2, n_markers=1, noise_vocab=5, seed=0)
    positions = (ids < FIRST_MARKER_ID + 2).float().argmax(1)
    counts = torch.bincount(positions, minlength=16)
    assert counts.min() > 60  # about 125 per position when uniform


def test_tiny_study_writes_table_and_plot(tmp_path):
    config = PoolingStudyConfig(
        lengths=(8, 16),
        pools=("mean", "cls"),
        seeds=(0,),
        n_classes=2,
        n_test=64,
        model=StudyEncoder(d_model=16),
        train=TrainConfig(max_steps=40, batch_size=16, warmup_steps=5, device="cpu",
                          eval_batch_size=256),
    )
    rows = run_pooling_study(config, out_dir=tmp_path)
    assert [(r["length"], r["pool"]) for r in rows] == [
        (8, "mean"),
        (8, "cls"),
        (16, "mean"),
        (16, "cls"),
    ]
    for row in rows:
        assert 0.0 <= row["accuracy"] <= 1.0 and row["steps"] == 40
    with open(tmp_path / "pooling_study.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [float(r["accuracy"]) for r in table] == [r["accuracy"] for r in rows]
    saved = json.loads((tmp_path / "pooling_study.json").read_text())
    assert saved["config"]["lengths"] == [8, 16] and len(saved["rows"]) == 4
    assert (tmp_path / "pooling_study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_config_errors():
    with pytest.raises(ValueError, match="`pools` must be one of"):
        PoolingStudyConfig(pools=("sum",))
    with pytest.raises(ValueError, match="`lengths` must not be empty"):
        PoolingStudyConfig(lengths=())
    with pytest.raises(ValueError, match="n_markers=5 does not fit in the shortest length 4"):
        PoolingStudyConfig(lengths=(4, 8), n_markers=5)
    with pytest.raises(ValueError, match="`max_steps`"):
        PoolingStudyConfig(train=TrainConfig(max_steps=0))


def test_cli_study_pooling(tmp_path, capsys):
    from gicho.cli import main

    args = [
        "study",
        "pooling",
        "--lengths",
        "6",
        "--pools",
        "mean,cls",
        "--seeds",
        "0,1",
        "--train.max-steps",
        "3",
    ]
    args += ["--n-test", "16", "--model.d-model", "8", "--train.batch-size", "4", "--train.device", "cpu"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--out", str(tmp_path)])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "pooling study" in printed and f"wrote {tmp_path / 'pooling_study.png'}" in printed
    rows = json.loads((tmp_path / "pooling_study.json").read_text())["rows"]
    assert [(r["pool"], r["seed"]) for r in rows] == [
        ("mean", 0),
        ("mean", 1),
        ("cls", 0),
        ("cls", 1),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "pooling", "--pools", "sum", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "`pools` must be one of" in capsys.readouterr().err


@pytest.mark.parametrize(("study", "module", "runner", "expected"), [
    ("pooling", "gicho.studies.pooling", "run_pooling_study",
     {"lengths": (16, 128), "seeds": (0,), "max_steps": 150}),
    ("data-size", "gicho.studies.data_size", "run_data_size_study",
     {"fractions": (0.1, 1.0), "seeds": (0,), "max_shifts": (0,), "max_steps": 150}),
])
def test_quick_studies_get_the_small_budget_and_overrides_still_apply(study, module, runner, expected,
                                                                      tmp_path, monkeypatch):
    """Newcomer 2026-12-06 #36: `gicho study data-size` had no --quick; its default is 75 runs."""
    import importlib

    from typer.testing import CliRunner

    from gicho.cli import app

    seen = {}

    def capture(config, out_dir, **kwargs):
        seen["config"] = config
        raise RuntimeError("stop before training")

    monkeypatch.setattr(importlib.import_module(module), runner, capture)
    result = CliRunner().invoke(app, ["study", study, "--quick", "--out", str(tmp_path / "out"),
                                      "--train.lr", "0.005"])
    assert isinstance(result.exception, RuntimeError), result.output
    config = seen["config"]
    for name, value in expected.items():
        got = config.train.max_steps if name == "max_steps" else getattr(config, name)
        assert got == value, name
    assert config.train.lr == 0.005  # the command line's own overrides come after --quick


def test_data_size_study_saves_the_cnn_and_the_vit_for_reloading(tmp_path):
    """Both the study's models reload through gicho.models.from_pretrained (SmallCNN joined the
    model contract) and give the accuracy the study reported."""
    import torch

    from gicho.data.images import digits_pixel_values, digits_split
    from gicho.models import from_pretrained
    from gicho.studies.data_size import DataSizeStudyConfig, run_data_size_study
    from gicho.tasks import apply_overrides

    config = apply_overrides(DataSizeStudyConfig(), {
        "fractions": (0.1,), "seeds": (0,), "models": ("vit", "cnn"), "max_shifts": (0,), "cnn_channels": 8,
        "save_models": True, "train.max_steps": 5, "vit.d_model": 16, "vit.d_ff": 32, "vit.n_layers": 1})
    rows = run_data_size_study(config, out_dir=tmp_path)
    _, X_test, _, y_test = digits_split(config.test_fraction, config.split_seed)
    for row in rows:
        model = from_pretrained(tmp_path / "models" / f"{row['model']}-n{row['n_train']}-shift0-seed0")
        assert type(model).__name__ == {"vit": "ViTForImageClassification", "cnn": "SmallCNN"}[row["model"]]
        with torch.no_grad():
            logits = model(pixel_values=torch.from_numpy(digits_pixel_values(X_test)))["logits"]
        assert float((logits.argmax(-1).numpy() == y_test).mean()) == pytest.approx(row["accuracy"], abs=1e-9)
    with pytest.raises(ValueError, match=r"argument `out_dir` is None, but save_models=True"):
        run_data_size_study(config)
