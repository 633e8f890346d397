"""A user's neural task (GICHO_EXTRA_TASKS=toy_task): an MLP on a linear target; step_sleep slows it,
build_sleep holds the run before training (while its data are built) and final_sleep in its
after-training phase (to signal it there)."""

import time
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from gicho.data.arrays import ArrayDataset
from gicho.models import PretrainedModel
from gicho.tasks import register
from gicho.tasks._parsing import parse_numbers
from gicho.tasks.neural import NeuralTask, Splits
from gicho.train import RegressionScores, TrainConfig


@dataclass
class ToyModelConfig:
    hidden: int = 16
    step_sleep: float = 0.0

class ToyModel(PretrainedModel):
    config_class, model_type = ToyModelConfig, "toy-mlp"

    def __init__(self, config: ToyModelConfig) -> None:
        super().__init__()
        self.config, self.net = config, nn.Sequential(nn.Linear(4, config.hidden), nn.Tanh(), nn.Linear(config.hidden, 1))

    def forward(self, x, labels=None):
        time.sleep(self.config.step_sleep if self.training else 0.0)
        out = {"predictions": self.net(x).squeeze(-1)}
        return out if labels is None else {**out, "loss": nn.functional.mse_loss(out["predictions"], labels)}


@dataclass
class ToyData:
    n_samples: int = 256
    build_sleep: float = 0.0
    final_sleep: float = 0.0

@dataclass
class ToyConfig:
    model: ToyModelConfig = field(default_factory=ToyModelConfig)
    data: ToyData = field(default_factory=ToyData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=40, batch_size=16, lr=0.05, weight_decay=0.0, eval_every=10, log_every=1, progress=False))


class ToyTask(NeuralTask):  # NeuralTask's runner trains, scores and predicts through these hooks
    name, config_cls, model_type, select = "toy", ToyConfig, ToyModel, "best"
    model, data, metrics = "MLP 4-16-1", "synthetic linear (256 rows)", ("r2", "mae")  # T, E, P
    tour: ClassVar = {"train.max_steps": 20}
    quick: ClassVar = {"train.max_steps": 10}

    def build_data(self, config, preprocessing=None):
        time.sleep(config.data.build_sleep)
        g, n = torch.Generator().manual_seed(1234), config.data.n_samples
        x = torch.randn(n, 4, generator=g)
        y, cut = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(n, generator=g), n * 3 // 4
        return Splits(ArrayDataset(x=x[:cut], labels=y[:cut]), test := ArrayDataset(x=x[cut:], labels=y[cut:]), test)

    def build_model(self, config, splits):
        return ToyModel(config.model)

    def build_metrics(self, config, info, split):
        return RegressionScores

    def parse_inputs(self, config, predictor, texts):  # the command line's strings → rows
        return [parse_numbers(t, 4, "x1,x2,x3,x4") for t in texts]

    def encode_inputs(self, config, predictor, inputs):  # rows (an array or a list) → a batch
        return {"x": torch.as_tensor(inputs, dtype=torch.float32)}

    def predict_batch(self, config, predictor, batch, options):
        return predictor(batch)["predictions"].tolist()

    def format_outputs(self, config, predictor, batch, options):
        return [f"{v:.4f}" for v in self.predict_batch(config, predictor, batch, options)]

    def after_fit(self, config, predictor, splits, ctx, scores, accumulators):
        time.sleep(config.data.final_sleep)  # model/ is saved by now: a test signals the run here
        return {}


TOY = register(ToyTask())
