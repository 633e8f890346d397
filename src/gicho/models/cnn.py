"""A small convolutional network for small images: the inductive-bias baseline of the ViT study.

``conv3x3 → ReLU → conv3x3 → ReLU → max-pool 2 → conv3x3 → ReLU → global average pool →
linear``. Convolutions share weights across positions (translation equivariance) and see
3x3 neighbourhoods (locality): the priors a ViT lacks. The same contract as every family:
``forward_features → pool → forward_head``, ``forward(pixel_values, labels=None) → {"logits",
"loss", "n_items"}``, ``save_pretrained`` / ``from_pretrained`` (``model_type: "small-cnn"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

from gicho._validation import check_positive
from gicho.models._pretrained import HeadConfig, PretrainedModel
from gicho.nn.losses import classification_loss

__all__ = ["SmallCNN", "SmallCNNConfig"]


@dataclass
class SmallCNNConfig(HeadConfig):
    """``in_channels``, ``channels`` (width of the three convolutions), ``n_labels`` classes and
    their ``label_names``."""

    in_channels: int = 1
    channels: int = 60  # about the parameters of the digits ViT preset (66k vs 69k)
    n_labels: int = 10
    label_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self.check_head()
        for name in ("in_channels", "channels"):
            check_positive(getattr(self, name), name, integer=True)


class SmallCNN(PretrainedModel):
    """Three 3x3 convolutions, one 2x2 max-pool, global average pooling, a linear head."""

    config_class = SmallCNNConfig
    model_type = "small-cnn"
    layer_patterns: ClassVar[dict[str, str]] = {}  # no stack of layers whose depth the config states

    def __init__(self, config: SmallCNNConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.features = nn.Sequential(
            nn.Conv2d(config.in_channels, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(c, config.n_labels)

    def forward_features(self, pixel_values: Tensor) -> Tensor:
        """(B, C, H, W) → feature maps (B, channels, H/2, W/2)."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.in_channels:
            raise ValueError(f"pixel_values must have shape (B, {self.config.in_channels}, H, W); "
                             f"got {tuple(pixel_values.shape)}")
        return self.features(pixel_values)

    def pool(self, features: Tensor) -> Tensor:
        """Global average pooling: (B, c, h, w) → (B, c)."""
        return features.mean(dim=(2, 3))

    def forward_head(self, pooled: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, c) → logits (B, n_labels); ``pre_logits``: the pooled vector itself."""
        return pooled if pre_logits else self.head(pooled)

    def embed(self, pixel_values: Tensor) -> Tensor:
        """The pooled embedding (B, channels) of images: what the head reads."""
        return self.forward_head(self.pool(self.forward_features(pixel_values)), pre_logits=True)

    def forward(self, pixel_values: Tensor, labels: Tensor | None = None) -> dict[str, Any]:
        """(B, C, H, W) → ``logits`` (B, n_labels); ``loss`` and ``n_items`` given ``labels``
        (-100 ignored)."""
        logits = self.forward_head(self.pool(self.forward_features(pixel_values)))  # (B, n_labels)
        out: dict[str, Any] = {"logits": logits}
        if labels is not None:
            out.update(classification_loss(logits, labels))
        return out
