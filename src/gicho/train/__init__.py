"""Training for every neural model in gicho: one loop, safe checkpoints, torchrun/DDP.

Example
-------
>>> from gicho.train import Trainer, TrainConfig
>>> result = Trainer(model, train_data, eval_data, metrics, TrainConfig(max_steps=200),
...                  run_dir="runs/demo").fit()  # doctest: +SKIP

See :class:`Trainer` for the contract a model and its data follow, :mod:`gicho.train.checkpoint`
for checkpoint I/O and :mod:`gicho.train.distributed` for torchrun helpers.
"""

from gicho.train.checkpoint import (
    CheckpointError,
    best_checkpoint,
    latest_checkpoint,
    load_model_weights,
    save_model,
)
from gicho.train.config import TrainConfig, warmup_cosine
from gicho.train.evaluation import Metrics, evaluate_model
from gicho.train.trainer import NonFiniteLossError, Trainer, TrainResult

__all__ = [
    "CheckpointError",
    "Metrics",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "best_checkpoint",
    "evaluate_model",
    "latest_checkpoint",
    "load_model_weights",
    "save_model",
    "warmup_cosine",
]
