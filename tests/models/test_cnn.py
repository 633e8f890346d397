"""SmallCNN: the default is the architecture the data-size study measured; stages and BatchNorm
widen it for 28x28 images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gicho.models.cnn import SmallCNN, SmallCNNConfig


def test_default_is_the_three_convolution_net():
    """stages=1 without BatchNorm: conv, conv, pool, conv (the names and the initialisation draws
    of the net before stages existed, so seeded studies are unchanged)."""
    torch.manual_seed(0)
    ours = SmallCNN(SmallCNNConfig(channels=8))
    torch.manual_seed(0)
    c = 8
    before = nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                           nn.MaxPool2d(2), nn.Conv2d(c, c, 3, padding=1), nn.ReLU())
    head = nn.Linear(c, 10)
    assert list(ours.features.state_dict()) == list(before.state_dict())
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(ours(x)["logits"], head(before(x).mean(dim=(2, 3))), rtol=0, atol=0)


def test_stages_double_the_width_and_halve_the_map():
    model = SmallCNN(SmallCNNConfig(channels=4, stages=2, batch_norm=True))
    x = torch.randn(5, 1, 28, 28)
    assert model.forward_features(x).shape == (5, 8, 7, 7)
    assert model.config.out_channels == 8 and model.embed(x).shape == (5, 8)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 5
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))  # the norm shifts
    out = model(x, labels=torch.arange(5))
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_save_and_load_keep_stages_and_batch_norm(tmp_path):
    model = SmallCNN(SmallCNNConfig(channels=4, stages=2, batch_norm=True))
    model(torch.randn(8, 1, 28, 28))  # training mode: running statistics move
    model.eval()
    model.save_pretrained(tmp_path)
    again = SmallCNN.from_pretrained(tmp_path)
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(again(x)["logits"], model(x)["logits"], rtol=0, atol=0)


@pytest.mark.parametrize(("field", "value"), [("stages", 0), ("batch_norm", "yes")])
def test_bad_sizes_are_refused(field, value):
    with pytest.raises(ValueError, match=f"`{field}`"):
        SmallCNN(SmallCNNConfig(**{field: value}))
