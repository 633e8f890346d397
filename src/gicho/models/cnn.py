"""A small convolutional network for small images: the inductive-bias baseline of the ViT studies.

``conv3x3 → ReLU → conv3x3 → ReLU → max-pool 2 → conv3x3 → ReLU → global average pool →
linear`` (``stages=1``, the default). With ``stages=k`` the pair of convolutions and the pool
repeat k times, the width doubling at each stage, before the last convolution: a global average
over a 14x14 map of 7-pixel receptive fields (one stage on 28x28 MNIST) forgets where strokes
are, two stages see 16 pixels. ``batch_norm`` puts a BatchNorm after every convolution (the
usual way to train such a net fast; it keeps running statistics, so evaluation runs in eval mode). Convolutions share weights across positions (translation equivariance) and see
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
    """Configuration of :class:`SmallCNN`.

    Parameters
    ----------
    in_channels : int
        Colour channels of the input images: 1 for grey, 3 for RGB.
    channels : int
        Width of the first stage's convolutions (each further stage doubles it).
    n_labels : int
        Classes of the linear head.
    label_names : tuple of str or None
        ``n_labels`` names of the classes, saved with the model.
    stages : int
        Conv-conv-max-pool stages before the last convolution (1: the three-convolution net).
    batch_norm : bool
        A BatchNorm after every convolution (whose bias it makes redundant, so there is none).
    """

    in_channels: int = 1
    channels: int = 60  # about the parameters of the digits ViT preset (66k vs 69k)
    n_labels: int = 10
    label_names: tuple[str, ...] | None = None
    stages: int = 1
    batch_norm: bool = False

    def __post_init__(self) -> None:
        self.check_head()
        for name in ("in_channels", "channels", "stages"):
            check_positive(getattr(self, name), name, integer=True)
        if not isinstance(self.batch_norm, bool):
            raise ValueError(f"argument `batch_norm` must be True or False; got {self.batch_norm!r}")

    @property
    def out_channels(self) -> int:
        """Width of the last convolution (what the head reads): ``channels * 2 ** (stages - 1)``."""
        return self.channels * 2 ** (self.stages - 1)


class SmallCNN(PretrainedModel):
    """Stages of two 3x3 convolutions and a 2x2 max-pool, one more 3x3 convolution, global
    average pooling, a linear head (see the module)."""

    config_class = SmallCNNConfig
    model_type = "small-cnn"
    layer_patterns: ClassVar[dict[str, str]] = {}  # no stack of layers whose depth the config states

    def __init__(self, config: SmallCNNConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []

        def conv(c_in: int, c_out: int) -> None:
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1, bias=not config.batch_norm))
            if config.batch_norm:  # the conv's bias would only shift what the norm removes
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU())

        c_in, c = config.in_channels, config.channels
        for stage in range(config.stages):
            conv(c_in, c)
            conv(c, c)
            layers.append(nn.MaxPool2d(2))
            c_in, c = c, c * 2 if stage < config.stages - 1 else c
        conv(c_in, c)  # stages=1: conv(in, c), conv(c, c), pool, conv(c, c), as before stages existed
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(config.out_channels, config.n_labels)

    def forward_features(self, pixel_values: Tensor) -> Tensor:
        """(B, C, H, W) → feature maps (B, out_channels, H / 2**stages, W / 2**stages)."""
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
        """The pooled embedding (B, out_channels) of images: what the head reads."""
        return self.forward_head(self.pool(self.forward_features(pixel_values)), pre_logits=True)

    def forward(self, pixel_values: Tensor, labels: Tensor | None = None) -> dict[str, Any]:
        """(B, C, H, W) → ``logits`` (B, n_labels); ``loss`` and ``n_items`` given ``labels``
        (-100 ignored)."""
        logits = self.forward_head(self.pool(self.forward_features(pixel_values)))  # (B, n_labels)
        out: dict[str, Any] = {"logits": logits}
        if labels is not None:
            out.update(classification_loss(logits, labels))
        return out
