"""Training configuration and the learning-rate schedule.

:class:`TrainConfig` holds every knob of :class:`gicho.train.Trainer` and checks them in
``__post_init__``, so a bad value fails when the config is built, with a message naming the
field, the value and what is allowed.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from gicho._validation import check_choice, check_positive, check_probability, describe

__all__ = ["LR_SCHEDULES", "TrainConfig", "check_num_threads", "lr_factor", "max_num_threads", "torch_threads",
           "warmup_cosine"]

LR_SCHEDULES = ("cosine", "linear")

_DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
# Seeds go to numpy too, whose legacy seeding accepts only 32-bit unsigned integers.
_MAX_SEED = 2**32 - 1
# Sane bounds, so that an absurd value fails when the config is built, not hours (or a crash)
# later. Step counts: 10^9 steps take 11 days at 1 ms a step, far beyond any run gicho is
# for, and a larger count is a typo. Batch sizes: 2^24 samples a micro-batch is far more than
# memory holds for any model; grad_accum_steps and num_workers likewise.
MAX_STEPS = 10**9
MAX_BATCH_SIZE = 2**24
MAX_GRAD_ACCUM_STEPS = 2**16
MAX_NUM_WORKERS = 1024
# Metrics that are losses: maximising them is almost surely a mistaken `early_stopping_mode`.
_LOSS_METRICS = ("eval_loss", "loss")
LOG_TO = ("none", "tensorboard")
# At least this many torch threads are always allowed, so that a config written on a big machine
# still loads on a small one; above it, MAX_THREADS_PER_CPU per CPU of this machine.
MIN_THREADS_CAP = 64
# More threads than this per CPU only slow a run down; far more make thread creation fail
# (OpenBLAS "pthread_create failed", then a crash).
MAX_THREADS_PER_CPU = 4


@dataclass
class TrainConfig:
    """Settings of one training run.

    Parameters
    ----------
    max_steps : int
        Number of optimizer steps. Step counts (``max_steps``, ``warmup_steps``,
        ``eval_every``, ``log_every``, ``early_stopping_patience``) are at most
        ``MAX_STEPS`` (10^9), batch sizes at most ``MAX_BATCH_SIZE`` (2^24),
        ``grad_accum_steps`` at most 2^16 and ``num_workers`` at most 1024.
    batch_size : int
        Micro-batch size per process. One optimizer step sees
        ``batch_size * grad_accum_steps * world_size`` samples.
    eval_batch_size : int or None
        Batch size for evaluation; ``None`` uses ``batch_size``.
    lr : float
        Peak learning rate of AdamW.
    weight_decay : float
        Decoupled weight decay, applied to parameters with 2 or more dimensions only
        (biases and normalisation weights are not decayed).
    warmup_steps : int
        Steps of linear warmup from ``lr / warmup_steps`` to ``lr``; may exceed ``max_steps``
        (the rate then never reaches its peak).
    min_lr_ratio : float
        The decay ends at ``lr * min_lr_ratio`` on step ``max_steps``.
    lr_schedule : {"cosine", "linear"}
        The decay after warmup: half-cosine (SGDR), or linear (BERT's own; with warmup, the
        one-cycle shape of the compute-limited pretraining recipes).
    grad_clip : float or None
        Maximum global L2 norm of the gradients; ``None`` disables clipping.
    grad_accum_steps : int
        Micro-batches accumulated per optimizer step (each loss is scaled by
        ``1 / grad_accum_steps``).
    eval_every : int
        Evaluate (when there is evaluation data) and write a checkpoint (when there is a
        run directory) every this many steps, and at the last step.
    log_every : int
        Write a ``"train"`` line to ``metrics.jsonl`` every this many steps (and at every
        evaluation step and the last step), with the mean loss since the previous line.
    early_stopping_metric : str or None
        Evaluation metric that selects the best checkpoint and drives early stopping, e.g.
        ``"accuracy"`` or ``"eval_loss"``. ``None``: the best checkpoint is the one with the
        lowest ``eval_loss`` (or the latest one, when there is no evaluation data).
    early_stopping_mode : {"max", "min"}
        Whether a larger or a smaller ``early_stopping_metric`` is better.
    early_stopping_patience : int
        Stop after this many evaluations without improvement; ``0`` disables early stopping.
    mixed_precision : bool
        bf16 autocast on CUDA devices that support it; always fp32 on CPU.
    compile : bool
        Wrap the training model in ``torch.compile``.
    seed : int
        Seed of Python's, NumPy's and torch's generators and of the data order.
    keep_last : int
        Number of most recent checkpoints kept besides the best one.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. Under
        torchrun, ``"auto"`` and ``"cuda"`` mean ``cuda:LOCAL_RANK``.
    progress : bool or None
        ``True``: a progress bar on stderr; ``False``: nothing; ``None``: the bar when stderr
        is a terminal, else one plain line every ``log_every`` steps (step, loss, lr, items/s,
        ETA) and one per evaluation.
    num_workers : int
        DataLoader worker processes (0 loads in the main process).
    drop_last : bool
        Drop the incomplete last micro-batch of each epoch, so that every optimizer step
        sees the same number of samples.
    ddp_find_unused_parameters : bool
        Passed to DDP as ``find_unused_parameters``: needed when some parameters get no
        gradient in a step (e.g. an unused pooler head); it costs an extra graph traversal.
    log_to : {"none", "tensorboard"}
        ``"tensorboard"`` also writes every logged event as TensorBoard scalars into
        ``run_dir/tensorboard/`` (beside ``metrics.jsonl``); it needs the ``tensorboard``
        extra (``pip install 'gicho[tensorboard]'``) and a ``run_dir``.
    num_threads : int
        torch CPU threads while a task runs (``gicho train``, ``evaluate``, ``predict`` and the
        studies set it around the whole run); ``0`` leaves torch's setting alone, the default
        here (the :class:`~gicho.train.Trainer` itself never changes it). At most
        :func:`max_num_threads`. The neural tasks default to 1.

    Every field's ``metadata["help"]`` holds a one-line description (shown by the CLI).
    """

    max_steps: int = field(
        default=500, metadata={"help": "Number of optimizer steps."})
    batch_size: int = field(
        default=32, metadata={"help": "Micro-batch size per process (a step sees batch_size x grad_accum_steps x processes samples)."})
    eval_batch_size: int | None = field(
        default=None, metadata={"help": "Batch size for evaluation (None: batch_size)."})
    lr: float = field(
        default=1e-3, metadata={"help": "Peak learning rate of AdamW (each parameter group may scale it)."})
    weight_decay: float = field(
        default=0.01, metadata={"help": "Decoupled weight decay (by default not on biases and norm weights)."})
    warmup_steps: int = field(
        default=0, metadata={"help": "Steps of linear learning-rate warmup before the decay."})
    min_lr_ratio: float = field(
        default=0.0, metadata={"help": "Final learning rate of the decay, as a fraction of lr."})
    lr_schedule: Literal["cosine", "linear"] = field(
        default="cosine", metadata={"help": "Decay after warmup: cosine or linear."})
    grad_clip: float | None = field(
        default=1.0, metadata={"help": "Maximum global L2 norm of the gradients (None: no clipping)."})
    grad_accum_steps: int = field(
        default=1, metadata={"help": "Micro-batches accumulated per optimizer step."})
    eval_every: int = field(
        default=100, metadata={"help": "Evaluate and write a checkpoint every this many steps (and at the last)."})
    log_every: int = field(
        default=10, metadata={"help": "Log the mean training loss every this many steps."})
    early_stopping_metric: str | None = field(
        default=None, metadata={"help": "Evaluation metric that picks the best checkpoint and drives early stopping (None: lowest eval_loss)."})
    early_stopping_mode: str = field(
        default="max", metadata={"help": "Whether a larger ('max') or smaller ('min') early_stopping_metric is better."})
    early_stopping_patience: int = field(
        default=0, metadata={"help": "Stop after this many evaluations without improvement (0: never)."})
    mixed_precision: bool = field(
        default=True, metadata={"help": "bf16 autocast on CUDA devices that support it (always fp32 on CPU)."})
    compile: bool = field(
        default=False, metadata={"help": "Wrap the training model in torch.compile."})
    seed: int = field(
        default=0, metadata={"help": "Seed of the Python, NumPy and torch generators and of the data order."})
    keep_last: int = field(
        default=2, metadata={"help": "Number of most recent checkpoints kept besides the best one."})
    device: str = field(
        default="auto", metadata={"help": "'auto', 'cpu', 'cuda' or 'cuda:N' (under torchrun, cuda means cuda:LOCAL_RANK)."})
    progress: bool | None = field(
        default=None, metadata={"help": "Progress bar (True), nothing (False), or a bar on a terminal and plain log lines elsewhere (None)."})
    num_workers: int = field(
        default=0, metadata={"help": "DataLoader worker processes (0: load in the main process)."})
    drop_last: bool = field(
        default=True, metadata={"help": "Drop each epoch's incomplete last micro-batch."})
    ddp_find_unused_parameters: bool = field(
        default=False, metadata={"help": "Let DDP handle parameters that get no gradient in a step (slower)."})
    log_to: Literal["none", "tensorboard"] = field(
        default="none", metadata={"help": "Also log events as TensorBoard scalars in run_dir/tensorboard ('tensorboard' needs the tensorboard extra)."})
    num_threads: int = field(
        default=0, metadata={"help": "torch CPU threads while a task runs (0 = torch's default)."})

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "grad_accum_steps", "eval_every", "log_every",
                     "keep_last"):
            check_positive(getattr(self, name), name, integer=True)
        if self.eval_batch_size is not None:
            check_positive(self.eval_batch_size, "eval_batch_size", integer=True)
        for name in ("warmup_steps", "early_stopping_patience", "num_workers"):
            check_positive(getattr(self, name), name, strict=False, integer=True)
        steps = "a step count above 10^9 is a typo: 10^9 steps take 11 days at 1 ms a step"
        for name, limit, why in (
                ("max_steps", MAX_STEPS, steps), ("warmup_steps", MAX_STEPS, steps),
                ("eval_every", MAX_STEPS, steps), ("log_every", MAX_STEPS, steps),
                ("early_stopping_patience", MAX_STEPS, steps),
                ("batch_size", MAX_BATCH_SIZE, "no model fits 2^24 samples at once"),
                ("eval_batch_size", MAX_BATCH_SIZE, "no model fits 2^24 samples at once"),
                ("grad_accum_steps", MAX_GRAD_ACCUM_STEPS, "2^16 micro-batches a step"),
                ("num_workers", MAX_NUM_WORKERS, "one process per worker")):
            value = getattr(self, name)
            if value is not None and value > limit:
                raise ValueError(f"argument `{name}` must be <= {limit} ({why}); got {value!r}")
        check_positive(self.lr, "lr")
        check_positive(self.weight_decay, "weight_decay", strict=False)
        check_probability(self.min_lr_ratio, "min_lr_ratio")
        check_choice(self.lr_schedule, "lr_schedule", LR_SCHEDULES)
        if self.grad_clip is not None:
            check_positive(self.grad_clip, "grad_clip")
        check_positive(self.seed, "seed", strict=False, integer=True)
        if self.seed > _MAX_SEED:
            raise ValueError(f"argument `seed` must be <= {_MAX_SEED}; got {self.seed!r}")
        for name in ("mixed_precision", "compile", "drop_last", "ddp_find_unused_parameters"):
            _check_bool(getattr(self, name), name)
        if self.progress is not None:
            _check_bool(self.progress, "progress")
        if not isinstance(self.device, str) or not _DEVICE_PATTERN.fullmatch(self.device):
            raise ValueError(
                "argument `device` must be 'auto', 'cpu', 'cuda' or 'cuda:N'; "
                f"got {describe(self.device)}"
            )
        check_choice(self.early_stopping_mode, "early_stopping_mode", ("max", "min"))
        check_choice(self.log_to, "log_to", LOG_TO)
        check_num_threads(self.num_threads)
        metric = self.early_stopping_metric
        if metric is not None and (not isinstance(metric, str) or not metric):
            raise ValueError(
                f"argument `early_stopping_metric` must be a metric name or None; got {describe(metric)}"
            )
        if self.early_stopping_patience > 0 and metric is None:
            raise ValueError(
                f"argument `early_stopping_patience` is {self.early_stopping_patience} but "
                "`early_stopping_metric` is None; name the metric to watch (e.g. 'eval_loss')"
            )
        if metric in _LOSS_METRICS and self.early_stopping_mode == "max":
            raise ValueError(
                f"argument `early_stopping_metric` is {metric!r}, a loss, but "
                "`early_stopping_mode` is 'max'; set early_stopping_mode='min'"
            )

    @property
    def effective_eval_batch_size(self) -> int:
        """``eval_batch_size``, or ``batch_size`` when it is None."""
        return self.eval_batch_size if self.eval_batch_size is not None else self.batch_size


def max_num_threads() -> int:
    """The largest ``num_threads`` allowed here: ``max(64, 4 * os.cpu_count())``."""
    return max(MIN_THREADS_CAP, MAX_THREADS_PER_CPU * (os.cpu_count() or 1))


def check_num_threads(n: int) -> None:
    """Validate a thread count such as :attr:`TrainConfig.num_threads`: 0 (torch's default) to
    :func:`max_num_threads`."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"argument `num_threads` must be an integer; got {describe(n)}")
    if n < 0:
        raise ValueError(f"argument `num_threads` must be >= 0 (0 = torch's default); got {n!r}")
    limit = max_num_threads()
    if n > limit:
        raise ValueError(f"argument `num_threads` must be <= {limit} (the larger of {MIN_THREADS_CAP} and "
                         f"{MAX_THREADS_PER_CPU} per CPU, {os.cpu_count() or 1} here: more threads only "
                         f"slow a run down); got {n!r}")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (0: leave torch's setting), then restore it.

    How a neural task applies :attr:`TrainConfig.num_threads` around each of its hooks. Small
    models gain nothing from intra-op threads and lose much when the cores are shared
    (benchmarks/RESULTS.md, "Figures moved out of source comments"), so neural tasks default
    to one thread; ``--train.num-threads 0`` gives torch's default back.
    """
    check_num_threads(n)
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_bool(value: Any, name: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"argument `{name}` must be True or False; got {describe(value)}")


def warmup_cosine(step: int, *, warmup_steps: int, max_steps: int, min_lr_ratio: float) -> float:
    """Learning-rate multiplier for optimizer step ``step`` (0-based).

    Linear warmup over ``warmup_steps`` steps (step 0 uses ``1 / warmup_steps`` of the peak
    rate, so that no step is wasted at a zero rate), then a half-cosine decay from 1 to
    ``min_lr_ratio`` reached at ``step == max_steps`` (Loshchilov & Hutter, SGDR, 2017).

    Parameters
    ----------
    step : int
        Number of optimizer steps already taken (``LambdaLR``'s ``last_epoch``).
    warmup_steps, max_steps : int
        Schedule lengths, as in :class:`TrainConfig`.
    min_lr_ratio : float
        Final multiplier.

    Returns
    -------
    float
        The multiplier in ``[min_lr_ratio, 1]`` (below ``min_lr_ratio`` only during warmup).
    """
    return lr_factor(step, warmup_steps=warmup_steps, max_steps=max_steps, min_lr_ratio=min_lr_ratio)


def lr_factor(step: int, *, warmup_steps: int, max_steps: int, min_lr_ratio: float,
              schedule: str = "cosine") -> float:
    """The learning-rate multiplier of :func:`warmup_cosine`, with the decay after warmup
    ``schedule``: ``"cosine"`` (half-cosine) or ``"linear"`` (a straight line from 1 to
    ``min_lr_ratio``, reached at ``step == max_steps``)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    if schedule == "linear":
        return 1.0 - (1.0 - min_lr_ratio) * progress
    check_choice(schedule, "schedule", LR_SCHEDULES)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
