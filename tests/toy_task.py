"""A toy task for the spine's end-to-end tests: a small MLP regressing a noisy linear target.

Registered through ``GICHO_EXTRA_TASKS=toy_task`` (with ``tests/`` on ``PYTHONPATH``), the
same way a user registers a task of their own. ``step_sleep`` slows each step down so a test
can kill the process while it is training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from gicho.tasks import RunContext, Task, register
from gicho.tasks._training import train_config_from


@dataclass
class ToyConfig:
    max_steps: int = 40
    batch_size: int = 16
    lr: float = 0.05
    eval_every: int = 10
    log_every: int = 1
    seed: int = 0
    n_samples: int = 256
    hidden: int = 16
    step_sleep: float = 0.0
    progress: bool = False


def _parts(config: ToyConfig):
    import torch
    from torch import nn
    from torch.utils.data import Dataset

    class Pairs(Dataset):
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {"x": self.x[i], "labels": self.y[i]}

    class ToyModel(nn.Module):
        def __init__(self, hidden: int, step_sleep: float):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, 1))
            self.step_sleep = step_sleep

        def forward(self, x, labels=None):
            if self.training and self.step_sleep:
                time.sleep(self.step_sleep)
            predictions = self.net(x).squeeze(-1)
            out = {"predictions": predictions}
            if labels is not None:
                out["loss"] = torch.nn.functional.mse_loss(predictions, labels)
            return out

    generator = torch.Generator().manual_seed(1234)
    x = torch.randn(config.n_samples, 4, generator=generator)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(config.n_samples, generator=generator)
    split = config.n_samples * 3 // 4
    torch.manual_seed(config.seed)
    model = ToyModel(config.hidden, config.step_sleep)
    return model, Pairs(x[:split], y[:split]), Pairs(x[split:], y[split:])


def _metrics():
    from gicho.train import RegressionScores

    return RegressionScores()


def _train_config(config: ToyConfig):
    # max_steps, batch_size, lr, eval_every, log_every, seed and progress come from the config
    return train_config_from(config, weight_decay=0.0, keep_last=2)


def run(config: ToyConfig, ctx: RunContext) -> dict[str, float]:
    from gicho.train import Trainer

    model, train, evaluation = _parts(config)
    trainer = Trainer(model, train, evaluation, _metrics, _train_config(config), run_dir=ctx.run_dir)
    result = trainer.fit(resume=ctx.resume)
    return {k: result.final_metrics[k] for k in ("r2", "mae")}


def evaluate(config: ToyConfig, ctx: RunContext) -> dict[str, float]:
    from gicho.train import Trainer
    from gicho.train.checkpoint import best_checkpoint, load_model_weights

    model, train, evaluation = _parts(config)
    load_model_weights(model, best_checkpoint(ctx.run_dir))
    trainer = Trainer(model, train, evaluation, _metrics, _train_config(config))
    metrics = trainer.evaluate()
    return {k: metrics[k] for k in ("r2", "mae")}


def predict(config: ToyConfig, ctx: RunContext, inputs, options):
    import torch

    from gicho.train.checkpoint import best_checkpoint, load_model_weights

    model, _, _ = _parts(config)
    load_model_weights(model, best_checkpoint(ctx.run_dir))
    model.eval()
    answers = []
    for text in inputs:
        values = [float(v) for v in text.split(",")]
        if len(values) != 4:
            raise ValueError(f"toy input must be 4 comma-separated numbers; got {text!r}")
        with torch.no_grad():
            answers.append(f"{model(x=torch.tensor([values]))['predictions'].item():.4f}")
    return answers


TOY = register(Task(
    name="toy", model="MLP 4-16-1", data="synthetic linear (256 rows)", metrics=("r2", "mae"),
    config_cls=ToyConfig, run=run, evaluate=evaluate, predict=predict,
    tour={"max_steps": 20}, quick={"max_steps": 10},
))
