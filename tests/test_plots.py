"""Figures draw what they are given: checks of the pixel values a figure shows."""

from __future__ import annotations

import numpy as np
import pytest

from gicho.plots.rollout import _as_display, plot_rollout


def test_rollout_images_keep_their_brightness_with_a_value_range(tmp_path):
    """A dark and a bright grey image (a model told them apart) looked the same in the rollout
    figure: each was stretched to its own min..max."""
    dark, bright = np.full((4, 4), 0.2), np.full((4, 4), 0.8)
    dark[0, 0], bright[0, 0] = 0.25, 0.85  # not constant, so a per-image stretch spans 0..1
    shown = [_as_display(img, (0.0, 1.0))[0] for img in (dark, bright)]
    assert shown[0].max() == pytest.approx(0.25) and shown[1].min() == pytest.approx(0.8)
    stretched = [_as_display(img, None)[0] for img in (dark, bright)]
    assert np.allclose(stretched[0], stretched[1])  # the old display: indistinguishable
    rgb = np.stack([dark, dark, bright], axis=-1)
    assert _as_display(rgb, (0.0, 1.0))[0][1, 1].tolist() == pytest.approx([0.2, 0.2, 0.8])
    path = plot_rollout([dark, bright], [np.ones((2, 2))] * 2, tmp_path / "r.png", value_range=(0.0, 1.0))
    assert path.is_file() and path.stat().st_size > 0
