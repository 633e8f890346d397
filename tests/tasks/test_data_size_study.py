"""gicho study data-size on a tiny budget: every (model, fraction, shift, seed) row, table and plot."""

from __future__ import annotations

import json

import pytest

from gicho.cli import main
from gicho.studies.data_size import DataSizeStudyConfig

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.mark.slow
def test_study_through_the_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "data-size", "--out", str(tmp_path), "--fractions", "0.1,1", "--seeds", "0",
              "--max-shifts", "0,1", "--train.max-steps", "5", "--train.device", "cpu",
              "--vit.d-model", "16", "--vit.n-layers", "1", "--vit.d-ff", "32", "--cnn-channels", "8"])
    assert exit_info.value.code in (0, None)
    rows = json.loads((tmp_path / "data_size_study.json").read_text())["rows"]
    # vit and cnn: 2 fractions x 2 shifts; pca-logreg: 2 fractions, no augmentation
    assert sorted((r["model"], r["fraction"], r["max_shift"]) for r in rows) == sorted(
        [(m, f, s) for m in ("vit", "cnn") for f in (0.1, 1.0) for s in (0, 1)]
        + [("pca-logreg", f, 0) for f in (0.1, 1.0)])
    small, full = (next(r for r in rows if r["model"] == "pca-logreg" and r["fraction"] == f) for f in (0.1, 1.0))
    assert small["n_train"] < full["n_train"] == 1437 and full["accuracy"] > 0.9
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    assert (tmp_path / "data_size_study.png").stat().st_size > 1000
    assert "data-size study" in capsys.readouterr().out


def test_config_errors():
    with pytest.raises(ValueError, match=r"fractions` must lie in \(0, 1\]"):
        DataSizeStudyConfig(fractions=(0.0, 1.0))
    with pytest.raises(ValueError, match="models"):
        DataSizeStudyConfig(models=("vit", "resnet"))
    with pytest.raises(ValueError, match="must not be empty"):
        DataSizeStudyConfig(seeds=())
