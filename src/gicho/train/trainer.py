"""The training loop every neural model in gicho goes through.

AdamW over parameter groups (fused on CUDA; by default no weight decay on 1-D parameters),
linear warmup then cosine decay, gradient clipping and accumulation, bf16 autocast on CUDA,
optional ``torch.compile``, periodic evaluation with streaming metrics in one pass, early
stopping, atomic checkpoints with exact resume, clean stops on SIGINT/SIGTERM, and DDP under
``torchrun``.

Losses are weighted by the items they average over (a model output's ``n_items``, the batch
size when absent): a step's gradient is that of one big batch holding all its micro-batches
on all ranks, even when they hold different numbers of target tokens.

Data order and its resumption are described in :mod:`gicho.train.data`; a checkpoint holds
everything else that a step depends on (weights, optimizer and scheduler state,
:class:`~gicho.train.state.TrainState`, every rank's generator states), so a resumed run
repeats an uninterrupted one.

Under DDP, evaluation runs on rank 0 alone over the whole evaluation set, with the unwrapped
model, and the metrics are broadcast to the other ranks. Metrics are then exact (no padded
or duplicated samples) at the cost of an evaluation that is not parallel; the other ranks
wait. Rank 0 alone logs, shows progress and writes checkpoints; a multi-node resume needs
``run_dir`` on a filesystem all nodes share.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import default_collate

from gicho.rundir import METRICS_LOG
from gicho.train import checkpoint as ckpt
from gicho.train.checkpoint import CheckpointError
from gicho.train.config import TrainConfig, lr_factor
from gicho.train.data import MicroBatches
from gicho.train.distributed import (
    DistributedInfo,
    all_gather_object,
    all_reduce_max,
    barrier,
    broadcast_object,
    init_distributed,
    run_on_main,
)
from gicho.train.evaluation import (
    EvalForward,
    MetricsFactory,
    evaluate_model,
    make_metrics,
)
from gicho.train.logs import TENSORBOARD_DIR, MetricsLog, TensorBoardLog, summary_writer
from gicho.train.optim import ParamGroups, build_optimizer, build_scheduler
from gicho.train.progress import ProgressReporter
from gicho.train.result import NonFiniteLossError, TrainResult, make_result
from gicho.train.signals import InterruptGuard, TrainingInterrupted
from gicho.train.state import TrainState, capture_rng, restore_rng, seed_everything
from gicho.train.step import Interval, flush, interval_losses, train_step

__all__ = ["NonFiniteLossError", "TrainResult", "Trainer"]

# Fields that fix the data order; resuming with other values could not continue exactly.
_RESUME_FIELDS = ("batch_size", "grad_accum_steps", "seed", "drop_last")


class Trainer:
    """Train any ``nn.Module`` whose ``model(**batch)`` returns a ``loss``.

    Parameters
    ----------
    model : torch.nn.Module
        Returns a dict (or an object with attributes) holding a scalar ``loss`` when the batch
        has labels, and optionally ``n_items`` (int or one-element tensor): the number of items
        (e.g. non-ignored target tokens) the loss averages over; the batch size when absent.
        Checkpoints hold what a gicho model's ``save_pretrained`` writes; another module's
        ``state_dict``, and its dataclass ``model.config`` as ``config.json``.
    train_data, eval_data : map-style Dataset
        ``eval_data`` may be None (no evaluation; the best checkpoint is then the latest).
    metrics : factory, list of factories, or None
        Each factory returns a fresh :class:`~gicho.train.StreamingMetric` per evaluation
        (e.g. :class:`~gicho.train.ClassificationAccuracy`). ``eval_loss`` (the loss over all
        items) is added by the Trainer.
    config : TrainConfig or None
        Settings (defaults when None).
    run_dir : path or None
        Where ``metrics.jsonl`` and ``checkpoints/`` are written; nothing is written when None.
    collate_fn : callable or None
        Builds a ``dict[str, Tensor]`` batch from samples (torch's default collate when None).
        One that draws from a generator of its own (fresh MLM masks at every batch) exposes
        ``state_dict()`` / ``load_state_dict(state)``; checkpoints then save that state, so a
        resumed run draws what the interrupted one would have (with ``num_workers=0``: the
        collate of DataLoader workers runs in other processes).
    train_collate_fn : callable or None
        Builds the training micro-batches instead of ``collate_fn`` (which then builds the
        evaluation batches only): a batch-level augmentation such as MixUp
        (:class:`gicho.data.augment.MixBatch`), which evaluation must not see. Its generator
        state, not ``collate_fn``'s, is the one checkpoints save. None: ``collate_fn``.
    eval_forward : callable or None
        ``eval_forward(model, batch) -> outputs`` for evaluation, when metrics need more than
        ``model(**batch)`` gives (e.g. greedy decoding); see :func:`evaluate_model`.
    param_groups : callable or None
        ``param_groups(model, config) -> list[dict]``: the optimizer's parameter groups, each
        with ``"params"`` and optionally ``"weight_decay"`` and ``"lr_scale"``
        (see :mod:`gicho.train.optim`); :func:`~gicho.train.default_param_groups` when None.

    Attributes
    ----------
    state_ : TrainState, set by :meth:`fit`: step, data position, best evaluation, ...
    optimizer_, scheduler_ : set by :meth:`fit`.
    device_ : torch.device, set by :meth:`fit` or :meth:`evaluate`.
    history_ : list of dict, every event logged by :meth:`fit`.
    result_ : TrainResult of the last :meth:`fit`.

    Notes
    -----
    After :meth:`fit` the model holds the weights of the last step, not the best ones; load
    those with ``gicho.weights.load_model_weights(model, result.best_checkpoint)`` (or
    ``gicho.models.from_pretrained(result.best_checkpoint)``). The non-finite loss check
    runs on every ``"train"`` log line (one device synchronisation per line, not per step), so
    a NaN is reported at its exact step at most ``log_every`` steps later, and always before a
    checkpoint could store it. On SIGINT/SIGTERM, :meth:`fit` finishes the step, writes a
    checkpoint and raises :class:`~gicho.train.TrainingInterrupted` (under torchrun, at the
    next ``log_every`` boundary, where the ranks agree).
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Any,
        eval_data: Any = None,
        metrics: MetricsFactory | Sequence[MetricsFactory] | None = None,
        config: TrainConfig | None = None,
        run_dir: str | Path | None = None,
        collate_fn: Callable[[list[Any]], dict[str, torch.Tensor]] | None = None,
        *,
        train_collate_fn: Callable[[list[Any]], dict[str, torch.Tensor]] | None = None,
        eval_forward: EvalForward | None = None,
        param_groups: ParamGroups | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"argument `model` must be a torch.nn.Module; got {type(model).__name__}")
        config = TrainConfig() if config is None else config
        if not isinstance(config, TrainConfig):
            raise TypeError(f"argument `config` must be a TrainConfig; got {type(config).__name__}")
        for name, data in (("train_data", train_data), ("eval_data", eval_data)):
            if data is None and name == "eval_data":
                continue
            if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
                raise TypeError(f"argument `{name}` must be a map-style Dataset (with __len__ and "
                                f"__getitem__); got {type(data).__name__}")
            if len(data) == 0:
                raise ValueError(f"argument `{name}` is empty; at least one sample is required")
        if metrics is not None and not callable(metrics) and not isinstance(metrics, (list, tuple)):
            raise TypeError(f"argument `metrics` must be callable or None; got {type(metrics).__name__}")
        make_metrics(metrics)  # fail now, not at the first evaluation
        for name, fn in (("collate_fn", collate_fn), ("train_collate_fn", train_collate_fn),
                         ("eval_forward", eval_forward),
                         ("param_groups", param_groups)):
            if fn is not None and not callable(fn):
                raise TypeError(f"argument `{name}` must be callable or None; got {type(fn).__name__}")
        if config.early_stopping_metric is not None and eval_data is None:
            raise ValueError(f"config.early_stopping_metric is {config.early_stopping_metric!r} "
                             "but `eval_data` is None; give evaluation data or unset the metric")
        if config.log_to == "tensorboard" and run_dir is None:
            raise ValueError("config.log_to is 'tensorboard' but `run_dir` is None; TensorBoard "
                             "events go to run_dir/tensorboard, so give a run_dir")
        if config.log_to == "tensorboard":
            summary_writer()  # on every rank, so that none waits for a rank that cannot log
        self.model = model
        self.train_data = train_data
        self.eval_data = eval_data
        self.metrics = metrics
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.collate_fn = collate_fn if collate_fn is not None else default_collate
        self.train_collate_fn = train_collate_fn if train_collate_fn is not None else self.collate_fn
        self.eval_forward = eval_forward
        self.param_groups = param_groups
        # Run-time machinery (not parameters): set up by _setup, fit and _wrap.
        self._info: DistributedInfo | None = None
        self._amp = False
        self._ddp: nn.parallel.DistributedDataParallel | None = None
        self._stream: MicroBatches | None = None
        self._last_ckpt: Path | None = None  # the newest checkpoint known intact

    # ------------------------------------------------------------------------ setup

    def _setup(self) -> DistributedInfo:
        if self._info is None:
            self._info = init_distributed(self.config.device)
            self.device_ = self._info.device
            self.model.to(self.device_)
            self._amp = (self.config.mixed_precision and self.device_.type == "cuda"
                         and torch.cuda.is_bf16_supported())
        return self._info

    def _autocast(self) -> Any:
        return torch.autocast(self.device_.type, dtype=torch.bfloat16, enabled=self._amp)

    def _on_main(self, fn: Callable[[], Any]) -> Any:
        return run_on_main(fn, self._info)

    def _wrap(self) -> nn.Module:
        model = self.model
        self._ddp = None
        if self._info.is_distributed:
            ids = [self.device_.index] if self.device_.type == "cuda" else None
            model = self._ddp = nn.parallel.DistributedDataParallel(
                model, device_ids=ids, find_unused_parameters=self.config.ddp_find_unused_parameters)
        if self.config.compile:
            model = torch.compile(model)
        return model

    # ----------------------------------------------------------------- run directory

    def _restore(self, loaded: ckpt.LoadedCheckpoint) -> tuple[dict[str, Any], str]:
        """Load a checkpoint into the model, optimizer, scheduler, state and data stream."""
        info, cfg = self._info, self.config
        state = loaded.state
        expected = {name: getattr(cfg, name) for name in _RESUME_FIELDS}
        state.check_resumable({**expected, "world_size": info.world_size}, loaded.directory)
        per_epoch = self._stream.batches_per_epoch
        if state.position > per_epoch:
            raise CheckpointError(f"trainer state {loaded.directory / ckpt.STATE_NAME}: field "
                                  f"`position` must be <= {per_epoch} (micro-batches per epoch); "
                                  f"got {state.position}")
        loaded.apply(self.model, self.optimizer_, self.scheduler_)
        state.config, state.world_size = dataclasses.asdict(cfg), info.world_size
        self.state_ = state
        self._stream.epoch, self._stream.position = state.epoch, state.position
        self._last_ckpt = loaded.directory
        if info.is_main and state.best is not None:
            self._write_best()  # in case the crash came between the rename and best.json
        return loaded.rng, loaded.rng_source

    def _collate_state(self) -> Any:
        """The collate function's own generator state (None when it has none to save)."""
        state_dict = getattr(self.train_collate_fn, "state_dict", None)
        return state_dict() if callable(state_dict) else None

    def _restore_collate(self, rng: dict[str, Any], source: str) -> None:
        load = getattr(self.train_collate_fn, "load_state_dict", None)
        if not callable(load):
            return
        saved = rng.get("collate")
        if saved is None:
            warnings.warn(f"{source} holds no state of the collate function (a checkpoint from an "
                          "older gicho): the resumed run draws other random masks than the "
                          "interrupted one would have", UserWarning, stacklevel=3)
            return
        try:
            load(saved)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"collate state in {source} is invalid: {exc}") from None

    # ------------------------------------------------------------------------ fit

    def fit(self, resume: bool = False) -> TrainResult:
        """Train for ``config.max_steps`` optimizer steps (or until early stopping).

        Parameters
        ----------
        resume : bool
            Continue exactly from the newest intact checkpoint in ``run_dir`` (a damaged newer
            one is skipped with a warning).

        Returns
        -------
        TrainResult

        Raises
        ------
        NonFiniteLossError
            When the training loss becomes NaN or infinite (the message names the step and the
            last good checkpoint, which is kept).
        TrainingInterrupted
            On SIGINT or SIGTERM, after the current step and its checkpoint.
        CheckpointError
            When ``resume`` finds no usable checkpoint, or a checkpoint cannot be written
            (e.g. the disk is full; the message names the last intact checkpoint).
        FileExistsError
            When starting afresh in a ``run_dir`` that already has checkpoints.
        """
        if not isinstance(resume, bool):
            raise TypeError(f"argument `resume` must be True or False; got {resume!r}")
        if resume and self.run_dir is None:
            raise ValueError("fit(resume=True) needs a run_dir to resume from; none was given")
        cfg = self.config
        if cfg.warmup_steps >= cfg.max_steps:
            warnings.warn(f"train.warmup_steps={cfg.warmup_steps} >= train.max_steps={cfg.max_steps}: the "
                          "learning rate warms up for the whole run and never decays; lower "
                          "warmup_steps (a tenth of max_steps is usual)", UserWarning, stacklevel=2)
        info = self._setup()
        self._stream = MicroBatches(
            self.train_data, self.train_collate_fn, batch_size=cfg.batch_size, seed=cfg.seed,
            drop_last=cfg.drop_last, world_size=info.world_size, rank=info.rank,
            device=self.device_, num_workers=cfg.num_workers)
        self._stream.check_nonempty()
        seed_everything(cfg.seed)
        self.optimizer_ = build_optimizer(self.model, cfg, self.param_groups, self.device_)
        self.scheduler_ = build_scheduler(self.optimizer_, cfg)
        self.state_ = TrainState(world_size=info.world_size, config=dataclasses.asdict(cfg))
        self._last_ckpt = None
        found: dict[str, ckpt.LoadedCheckpoint | None] = {}

        def prepare() -> Path | None:  # on rank 0: clean the run directory, pick the checkpoint
            found["loaded"] = ckpt.open_run_dir(self.run_dir, resume) if self.run_dir is not None else None
            return found["loaded"].directory if found["loaded"] is not None else None

        resume_dir = self._on_main(prepare)
        pending_rng = None
        if resume_dir is not None:
            loaded = found.pop("loaded", None) or ckpt.load(resume_dir, info.rank)
            pending_rng = self._restore(loaded)
            del loaded  # its CPU copies of the weights and optimizer state
        state = self.state_
        main_dir = self.run_dir if self.run_dir is not None and info.is_main else None
        logs: list[Any] = []
        if cfg.log_to == "tensorboard" and main_dir is not None:
            logs.append(TensorBoardLog(main_dir / TENSORBOARD_DIR,
                                       purge_step=state.step + 1 if resume else None))
        log = MetricsLog(main_dir / METRICS_LOG if main_dir is not None else None)
        self.history_ = broadcast_object(log.start(state.step if resume else None))
        logs.insert(0, log)
        train_model = self._wrap()
        stream = iter(self._stream)
        reporter = ProgressReporter.choose(cfg.progress, is_main=info.is_main, total=cfg.max_steps,
                                           initial=state.step)
        interval = Interval(state.pending_losses)
        state.pending_losses = []
        try:
            with InterruptGuard() as guard:
                if pending_rng is not None:  # last, so nothing above disturbs the generators
                    restore_rng(*pending_rng)
                    self._restore_collate(*pending_rng)
                self.model.train()
                while state.step < cfg.max_steps and not state.stopped_early:
                    lr = cfg.lr * lr_factor(state.step, warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps,
                                            min_lr_ratio=cfg.min_lr_ratio, schedule=cfg.lr_schedule)
                    self._train_step(train_model, stream, interval)
                    state.step += 1
                    step = state.step
                    reporter.step(step)
                    at_eval = step % cfg.eval_every == 0 or step == cfg.max_steps
                    at_log = at_eval or step % cfg.log_every == 0
                    if at_log:
                        event, items_per_s = self._flush(step, lr, interval)
                        self._log(event, logs)
                        reporter.train(event, items_per_s)
                    if at_eval:
                        self._eval_and_checkpoint(step, logs, reporter)
                        interval.reset()  # evaluation time is not training throughput
                    if self._interrupted(guard, at_log):
                        raise self._stop(step, at_eval, interval, guard)
        finally:
            reporter.close()
            for sink in logs:
                sink.close()
            stream.close()
        barrier()
        self.result_ = make_result(state, self.history_, self.run_dir)
        return self.result_

    def _train_step(self, model: nn.Module, stream: Iterator[dict[str, Any]], interval: Interval) -> None:
        """One optimizer step (see :func:`gicho.train.step.train_step`)."""
        train_step(self.model, model, stream, interval, config=self.config, optimizer=self.optimizer_,
                   scheduler=self.scheduler_, ddp=self._ddp, world_size=self._info.world_size,
                   device=self.device_, autocast=self._autocast)

    def _step_losses(self, interval: Interval) -> tuple[list[float], float]:
        """Every step's loss since the last log line (checked finite) and the items seen."""
        return interval_losses(interval, self.state_.step, last_checkpoint=self._last_ckpt,
                               run_dir=self.run_dir)

    def _flush(self, step: int, lr: float, interval: Interval) -> tuple[dict[str, Any], float]:
        """One ``"train"`` event for the steps since the last one, and the items per second."""
        return flush(interval, step, lr, world_size=self._info.world_size,
                     last_checkpoint=self._last_ckpt, run_dir=self.run_dir)

    def _log(self, event: dict[str, Any], logs: list[Any]) -> None:
        for sink in logs:
            sink.write(event)
        self.history_.append(event)

    # ------------------------------------------------------------------- interrupts

    def _interrupted(self, guard: InterruptGuard, at_log: bool) -> bool:
        if not self._info.is_distributed:
            return guard.received is not None
        if not at_log:  # the ranks agree at log lines only (no extra synchronisation per step)
            return False
        flag = torch.tensor(float(guard.received is not None), device=self.device_)
        return bool(all_reduce_max(flag).item())

    def _stop(self, step: int, checkpointed: bool, interval: Interval,
              guard: InterruptGuard) -> TrainingInterrupted:
        """Checkpoint the step just finished (unless done already) and build the exception."""
        if self.run_dir is not None and not checkpointed:
            # The losses of the steps since the last log line go into the state, so that the
            # resumed run logs the same line an uninterrupted one would.
            self.state_.pending_losses = self._step_losses(interval)[0]
            improved = self.eval_data is None and self._update_best(step, None)
            self._save_checkpoint(step, improved)
            self.state_.pending_losses = []
        where = self._last_ckpt if self.run_dir is not None else None
        saved = (f"checkpoint {where} holds it; continue with fit(resume=True)" if where is not None
                 else "nothing was saved (no run_dir)")
        return TrainingInterrupted(
            f"training interrupted by {guard.signal_name} after step {step}; {saved}",
            step=step, checkpoint=where, signal_name=guard.signal_name)

    # ----------------------------------------------------------- evaluate / checkpoint

    def evaluate(self) -> dict[str, float]:
        """Metrics of the current model on ``eval_data``: ``eval_loss`` plus the task's metrics.

        Under DDP, rank 0 evaluates the whole set and every rank gets its result: every rank
        must call this method (it is a collective operation).
        """
        if self.eval_data is None:
            raise ValueError("no eval_data was given to this Trainer; there is nothing to evaluate")
        self._setup()
        return self._on_main(self._evaluate_local)

    def _evaluate_local(self) -> dict[str, float]:
        cfg = self.config
        return evaluate_model(self.model, self.eval_data, self.metrics, eval_forward=self.eval_forward,
                              batch_size=cfg.effective_eval_batch_size, collate_fn=self.collate_fn,
                              device=self.device_, autocast_bf16=self._amp,
                              num_workers=cfg.num_workers, seed=cfg.seed)

    def _eval_and_checkpoint(self, step: int, logs: list[Any], reporter: ProgressReporter) -> None:
        metrics = self.evaluate() if self.eval_data is not None else None
        if metrics is not None:
            event = {"step": step, "split": "eval", **metrics}
            self._log(event, logs)
            reporter.evaluation(event)
        improved = self._update_best(step, metrics)
        if self.run_dir is not None:
            self._save_checkpoint(step, improved)

    def _update_best(self, step: int, metrics: dict[str, float] | None) -> bool:
        cfg = self.config
        return self.state_.record_evaluation(step, metrics, metric=cfg.early_stopping_metric,
                                             mode=cfg.early_stopping_mode,
                                             patience=cfg.early_stopping_patience)

    def _write_best(self) -> None:
        name = ckpt.step_dir_name(self.state_.best["step"])
        root = self.run_dir / ckpt.CHECKPOINTS_DIR
        if (root / name).is_dir():
            try:
                ckpt.write_best_record(self.run_dir, {**self.state_.best, "checkpoint": name})
            except OSError as exc:
                raise ckpt.write_error(exc, ckpt.BEST_NAME, root, self._last_ckpt) from None

    def _save_checkpoint(self, step: int, improved: bool) -> None:
        cfg, state = self.config, self.state_
        rng = capture_rng()
        rng["collate"] = self._collate_state()
        rngs = all_gather_object(rng)  # every rank's generators, for an exact resume
        root = self.run_dir / ckpt.CHECKPOINTS_DIR
        state.epoch, state.position = self._stream.epoch, self._stream.position

        def write() -> None:
            try:
                ckpt.save(root, state, model=self.model, optimizer=self.optimizer_,
                          scheduler=self.scheduler_, rngs=rngs)
            except Exception as exc:
                raise ckpt.write_error(exc, f"checkpoint {ckpt.step_dir_name(step)}", root,
                                       self._last_ckpt) from None
            self._last_ckpt = root / ckpt.step_dir_name(step)
            if improved:
                self._write_best()
            best = root / ckpt.step_dir_name(state.best["step"]) if state.best else None
            ckpt.prune_checkpoints(self.run_dir, cfg.keep_last, best)

        self._on_main(write)  # every rank learns of rank 0's failure (a full disk, say)
        self._last_ckpt = root / ckpt.step_dir_name(step)
