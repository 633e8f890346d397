"""Training for every neural model in gicho: one loop, safe checkpoints, torchrun/DDP.

Example
-------
>>> from gicho.train import ClassificationAccuracy, TrainConfig, Trainer
>>> result = Trainer(model, train_data, eval_data, ClassificationAccuracy, TrainConfig(max_steps=200),
...                  run_dir="runs/demo").fit()  # doctest: +SKIP

See :class:`Trainer` for the contract a model and its data follow,
:class:`StreamingMetric` for metrics (the ready accumulators are :mod:`gicho.metrics`'
torch ones, re-exported here), :mod:`gicho.train.optim` for parameter groups,
:mod:`gicho.train.checkpoint` for checkpoint I/O and :mod:`gicho.train.distributed` for
torchrun helpers.
"""

from gicho.metrics import (  # the torch accumulators (gicho.metrics._torch), re-exported
    ClassificationAccuracy,
    ConfusionMatrix,
    MaskedLMScores,
    RegressionScores,
    SequenceMatchScores,
)
from gicho.train.checkpoint import CheckpointError, best_checkpoint, latest_checkpoint
from gicho.train.config import TrainConfig, warmup_cosine
from gicho.train.evaluation import EvalForward, MetricsFactory, StreamingMetric, evaluate_model
from gicho.train.optim import default_param_groups, no_decay_param_groups
from gicho.train.progress import ProgressReporter
from gicho.train.signals import TrainingInterrupted
from gicho.train.state import TrainState
from gicho.train.trainer import NonFiniteLossError, Trainer, TrainResult
from gicho.weights import load_model_weights, save_model  # model files: gicho.weights

__all__ = [
    "CheckpointError",
    "ClassificationAccuracy",
    "ConfusionMatrix",
    "EvalForward",
    "MaskedLMScores",
    "MetricsFactory",
    "NonFiniteLossError",
    "ProgressReporter",
    "RegressionScores",
    "SequenceMatchScores",
    "StreamingMetric",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "Trainer",
    "TrainingInterrupted",
    "best_checkpoint",
    "default_param_groups",
    "evaluate_model",
    "latest_checkpoint",
    "load_model_weights",
    "no_decay_param_groups",
    "save_model",
    "warmup_cosine",
]
