"""A small convolutional network for small images: the inductive-bias baseline of the ViT study.

``conv3x3 → ReLU → conv3x3 → ReLU → max-pool 2 → conv3x3 → ReLU → global average pool →
linear``. Convolutions share weights across positions (translation equivariance) and see
3x3 neighbourhoods (locality): the priors a ViT lacks. Same contract as gicho's classifiers:
``forward(pixel_values, labels=None) → {"logits", "loss", "n_items"}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from gicho._validation import check_positive

__all__ = ["SmallCNN", "SmallCNNConfig"]


@dataclass
class SmallCNNConfig:
    """``in_channels``, ``channels`` (width of the three convolutions), ``n_classes``."""

    in_channels: int = 1
    channels: int = 60  # about the parameters of the digits ViT preset (66k vs 69k)
    n_classes: int = 10

    def __post_init__(self) -> None:
        for name in ("in_channels", "channels", "n_classes"):
            check_positive(getattr(self, name), name, integer=True)


class SmallCNN(nn.Module):
    """Three 3x3 convolutions, one 2x2 max-pool, global average pooling, a linear head."""

    def __init__(self, config: SmallCNNConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.features = nn.Sequential(
            nn.Conv2d(config.in_channels, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(c, config.n_classes)

    def forward(self, pixel_values: Tensor, labels: Tensor | None = None) -> dict[str, Any]:
        """(B, C, H, W) → ``logits`` (B, n_classes); ``loss`` and ``n_items`` given ``labels``."""
        x = self.features(pixel_values)  # (B, c, H/2, W/2)
        logits = self.head(x.mean(dim=(2, 3)))  # (B, n_classes)
        out: dict[str, Any] = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits, labels.long())
            out["n_items"] = labels.numel()
        return out
