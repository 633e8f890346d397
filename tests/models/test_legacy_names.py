"""Checkpoints written before the stems owned [CLS], positions and the embedding norm still load.

``tests/models/snapshots/before-stems/`` holds each family's tensor names and shapes as the
version of 2026-12-06 saved them (gicho's own layout: training checkpoints, the encoder
classifier's ``model/``); :data:`gicho.models._hf.LEGACY_RENAMES` must map every one of them to
today's snapshot, and a state dict saved under the old names must load into today's model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gicho.models._hf import LEGACY_RENAMES, upgrade_names
from gicho.models._pretrained import LEGACY_CONFIG_FIELDS, config_from_dict
from gicho.models.classifier import ClassifierConfig, SequenceClassifier
from gicho.weights import save_model

SNAPSHOTS = Path(__file__).parent / "snapshots"
OLD = sorted((SNAPSHOTS / "before-stems").glob("*.txt"))


def _read(path: Path) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in path.read_text().splitlines())


@pytest.mark.parametrize("old", OLD, ids=[p.stem for p in OLD])
def test_every_old_name_maps_to_todays(old):
    before, today = _read(old), _read(SNAPSHOTS / old.name)
    renamed = {name: shape for name, shape in zip(upgrade_names(dict.fromkeys(before)), before.values(),
                                                   strict=True)}
    assert renamed == today


def test_the_table_renames_only_what_moved():
    today = set().union(*(_read(p) for p in SNAPSHOTS.glob("*.txt")))
    assert upgrade_names(dict.fromkeys(today)).keys() == today  # today's names pass unchanged
    assert all(old.startswith("backbone.") for old in LEGACY_RENAMES)


def test_an_old_classifier_directory_loads_with_equal_outputs(tmp_path):
    """A ``model/`` of the encoder classifier as the old version wrote it: old tensor names and
    ``n_outputs`` in config.json."""
    torch.manual_seed(0)
    config = ClassifierConfig(vocab_size=20, n_labels=3, pool="cls", d_model=16, n_heads=2, n_layers=1)
    model = SequenceClassifier(config).eval()
    inverse = {new: old for old, new in LEGACY_RENAMES.items()}
    old_state = {}
    for name, t in model.state_dict().items():
        prefix = next((p for p in sorted(inverse, key=len, reverse=True) if name.startswith(p)), None)
        old_state[name if prefix is None else inverse[prefix] + name[len(prefix):]] = t
    assert old_state.keys() != model.state_dict().keys()
    old_config = {**{k: v for k, v in model.config_dict().items() if k != "n_labels"}, "n_outputs": 3}
    save_model(model, tmp_path, state_dict=old_state, config=old_config)
    loaded = SequenceClassifier.from_pretrained(tmp_path)
    ids = torch.randint(1, 20, (2, 5))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids)["logits"], model(input_ids=ids)["logits"], rtol=0, atol=0)


def test_old_config_field_names_read_as_n_labels():
    assert LEGACY_CONFIG_FIELDS == {"n_classes": "n_labels", "n_outputs": "n_labels"}
    config = config_from_dict(ClassifierConfig, {"vocab_size": 9, "n_outputs": 4})
    assert config.n_labels == 4
