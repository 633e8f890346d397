"""A toy neural task, registered from outside gicho (``GICHO_EXTRA_TASKS=toy_task``) as a user would:
a small MLP regressing a noisy linear target. ``model.step_sleep`` slows training down so that a
test can kill the process mid-run. The whole task is a declaration; gicho's runner does the rest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from gicho.data.arrays import ArrayDataset
from gicho.models._pretrained import PretrainedModel
from gicho.tasks import register
from gicho.tasks._parsing import parse_numbers
from gicho.tasks.neural import NeuralSpec, Splits, neural_task
from gicho.train import RegressionScores, TrainConfig


@dataclass
class ToyModelConfig:
    hidden: int = 16
    step_sleep: float = 0.0


class ToyModel(PretrainedModel):
    config_class, model_type = ToyModelConfig, "toy-mlp"

    def __init__(self, config: ToyModelConfig) -> None:
        super().__init__()
        self.config = config
        self.net = nn.Sequential(nn.Linear(4, config.hidden), nn.Tanh(), nn.Linear(config.hidden, 1))

    def forward(self, x, labels=None):
        if self.training and self.config.step_sleep:
            time.sleep(self.config.step_sleep)
        out = {"predictions": self.net(x).squeeze(-1)}
        if labels is not None:
            out["loss"] = nn.functional.mse_loss(out["predictions"], labels)
        return out


@dataclass
class ToyData:
    n_samples: int = 256


@dataclass
class ToyConfig:
    model: ToyModelConfig = field(default_factory=ToyModelConfig)
    data: ToyData = field(default_factory=ToyData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=40, batch_size=16, lr=0.05, weight_decay=0.0, eval_every=10, log_every=1, progress=False))


def build_data(config: ToyConfig) -> Splits:
    g, n = torch.Generator().manual_seed(1234), config.data.n_samples
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(n, generator=g)
    test = ArrayDataset(x=x[n * 3 // 4:], labels=y[n * 3 // 4:])
    return Splits(ArrayDataset(x=x[: n * 3 // 4], labels=y[: n * 3 // 4]), test, test)


TOY = register(neural_task(
    name="toy", config_cls=ToyConfig, model="MLP 4-16-1", data="synthetic linear (256 rows)",
    metrics=("r2", "mae"), tour={"train.max_steps": 20}, quick={"train.max_steps": 10},
    spec=NeuralSpec(
        build_data=build_data, build_model=lambda config, splits: ToyModel(config.model),
        metrics=lambda config, info, split: RegressionScores, model_type=ToyModel, select="best",
        read_inputs=lambda config, p, texts: {"x": torch.tensor([parse_numbers(t, 4, "x1,x2,x3,x4") for t in texts])},
        write_outputs=lambda config, p, batch, options: [f"{v:.4f}" for v in p(batch)["predictions"].tolist()]),
))
