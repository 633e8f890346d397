"""The training loop every neural model in gicho goes through.

AdamW (fused on CUDA; no weight decay on 1-D parameters), linear warmup then cosine decay,
gradient clipping and accumulation, bf16 autocast on CUDA, optional ``torch.compile``,
periodic evaluation with the task's metrics, early stopping, atomic checkpoints with exact
resume, and DDP under ``torchrun``.

Data order and its resumption are described in :mod:`gicho.train.data`; a checkpoint holds
everything else that a step depends on (weights, optimizer and scheduler state, every rank's
generator states), so a resumed run repeats an uninterrupted one.

Under DDP, evaluation runs on rank 0 alone over the whole evaluation set, with the unwrapped
model, and the metrics are broadcast to the other ranks. Metrics are then exact (no padded
or duplicated samples, any metric, not only averages) at the cost of an evaluation that is
not parallel; the other ranks wait. Rank 0 alone logs, shows progress and writes checkpoints;
a multi-node resume needs ``run_dir`` on a filesystem all nodes share.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import default_collate
from tqdm import tqdm

from gicho.train import checkpoint as ckpt
from gicho.train._state import (
    MetricsLog,
    capture_rng,
    load_trainer_checkpoint,
    restore_rng,
    save_trainer_checkpoint,
    seed_everything,
)
from gicho.train.config import TrainConfig, warmup_cosine
from gicho.train.data import MicroBatches, batch_len
from gicho.train.distributed import (
    DistributedInfo,
    all_gather_object,
    all_reduce_mean,
    barrier,
    broadcast_object,
    init_distributed,
)
from gicho.train.evaluation import Metrics, evaluate_model, extract_loss

__all__ = ["Metrics", "NonFiniteLossError", "TrainResult", "Trainer"]

# Fields that fix the data order; resuming with other values could not continue exactly.
_RESUME_FIELDS = ("batch_size", "grad_accum_steps", "seed", "drop_last")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; ``step`` and ``checkpoint`` say where."""

    def __init__(self, message: str, *, step: int, value: float, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.step = step
        self.value = value
        self.checkpoint = checkpoint


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes
    ----------
    step : int
        Optimizer steps taken in all (including those before a resume).
    final_metrics : dict
        Evaluation metrics at the last step (empty without evaluation data).
    best_metrics : dict
        Evaluation metrics of the best evaluation (empty without evaluation data).
    best_checkpoint : Path or None
        Directory of the best checkpoint (None without ``run_dir``).
    history : list of dict
        Every logged event, as in ``metrics.jsonl``.
    best_step : int or None
        Step of the best evaluation (of the last checkpoint, without evaluation data).
    stopped_early : bool
        Whether early stopping ended the run before ``max_steps``.
    """

    step: int
    final_metrics: dict[str, float]
    best_metrics: dict[str, float]
    best_checkpoint: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)
    best_step: int | None = None
    stopped_early: bool = False


class _Interval:
    """Losses, samples and time since the last ``"train"`` log line."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.losses: list[torch.Tensor] = []
        self.samples = 0
        self.start = time.perf_counter()


class Trainer:
    """Train any ``nn.Module`` whose ``model(**batch)`` returns a ``loss``.

    Parameters
    ----------
    model : torch.nn.Module
        Returns a dict (or an object with a ``loss`` attribute) holding a scalar ``loss`` when
        the batch has labels. A dataclass ``model.config`` is saved as ``config.json``.
    train_data, eval_data : map-style Dataset
        ``eval_data`` may be None (no evaluation; the best checkpoint is then the latest).
    metrics : callable or None
        ``metrics(model, batches) -> dict[str, float]``, called under ``torch.no_grad()`` with
        the model in eval mode and batches on the device. ``eval_loss`` (the sample-weighted
        mean of the batch losses) is added by the Trainer.
    config : TrainConfig or None
        Settings (defaults when None).
    run_dir : path or None
        Where ``metrics.jsonl`` and ``checkpoints/`` are written; nothing is written when None.
    collate_fn : callable or None
        Builds a ``dict[str, Tensor]`` batch from samples (torch's default collate when None).

    Attributes
    ----------
    optimizer_, scheduler_ : set by :meth:`fit`.
    device_ : torch.device, set by :meth:`fit` or :meth:`evaluate`.
    result_ : TrainResult of the last :meth:`fit`.

    Notes
    -----
    After :meth:`fit` the model holds the weights of the last step, not the best ones; load
    those with ``load_model_weights(model, result.best_checkpoint)``. The non-finite loss check
    runs on every ``"train"`` log line (one device synchronisation per line, not per step), so
    a NaN is reported at its exact step at most ``log_every`` steps later, and always before a
    checkpoint could store it.
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Any,
        eval_data: Any = None,
        metrics: Metrics | None = None,
        config: TrainConfig | None = None,
        run_dir: str | Path | None = None,
        collate_fn: Callable[[list[Any]], dict[str, torch.Tensor]] | None = None,
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
        for name, fn in (("metrics", metrics), ("collate_fn", collate_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"argument `{name}` must be callable or None; got {type(fn).__name__}")
        if config.early_stopping_metric is not None and eval_data is None:
            raise ValueError(f"config.early_stopping_metric is {config.early_stopping_metric!r} "
                             "but `eval_data` is None; give evaluation data or unset the metric")
        self.model = model
        self.train_data = train_data
        self.eval_data = eval_data
        self.metrics = metrics
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.collate_fn = collate_fn if collate_fn is not None else default_collate
        self._info: DistributedInfo | None = None

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
        """Run ``fn`` on rank 0 and give its value (or its error) to every rank."""
        if not self._info.is_distributed:
            return fn()
        outcome: tuple[str, Any] = ("ok", None)
        error: BaseException | None = None
        if self._info.is_main:
            try:
                outcome = ("ok", fn())
            except Exception as exc:
                error = exc
                outcome = ("error", f"{type(exc).__name__}: {exc}")
        outcome = broadcast_object(outcome)
        if error is not None:
            raise error
        if outcome[0] == "error":
            raise RuntimeError(f"rank 0 failed: {outcome[1]}")
        return outcome[1]

    def _build_optimizer(self) -> torch.optim.Optimizer:
        # Biases and normalisation weights (1-D) are not decayed (as in nanoGPT / BERT).
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"{type(self.model).__name__} has no trainable parameters")
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": self.config.weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        kwargs = {"fused": True} if self.device_.type == "cuda" else {}
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=self.config.lr, **kwargs)

    def _build_scheduler(self) -> torch.optim.lr_scheduler.LambdaLR:
        cfg = self.config
        return torch.optim.lr_scheduler.LambdaLR(
            self.optimizer_,
            lambda step: warmup_cosine(step, warmup_steps=cfg.warmup_steps,
                                       max_steps=cfg.max_steps, min_lr_ratio=cfg.min_lr_ratio),
        )

    def _wrap(self) -> nn.Module:
        model = self.model
        self._ddp: nn.parallel.DistributedDataParallel | None = None
        if self._info.is_distributed:
            ids = [self.device_.index] if self.device_.type == "cuda" else None
            model = self._ddp = nn.parallel.DistributedDataParallel(
                model, device_ids=ids, find_unused_parameters=self.config.ddp_find_unused_parameters)
        if self.config.compile:
            model = torch.compile(model)
        return model

    # ----------------------------------------------------------------- run directory

    def _prepare_run_dir(self, resume: bool) -> Path | None:
        if self.run_dir is None:
            return None
        root = self.run_dir / ckpt.CHECKPOINTS_DIR
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.remove_stale_tmp(root)
        for stale in self.run_dir.glob(".tmp-metrics.jsonl-*"):
            stale.unlink(missing_ok=True)
        if resume:
            return ckpt.latest_checkpoint(self.run_dir)
        if ckpt.list_checkpoints(self.run_dir):
            raise FileExistsError(f"run directory {self.run_dir} already has checkpoints; call "
                                  "fit(resume=True) to continue it, or use a new directory")
        return None

    def _load_state(self, directory: Path) -> int:
        expected = {name: getattr(self.config, name) for name in _RESUME_FIELDS}
        state = load_trainer_checkpoint(
            directory, model=self.model, optimizer=self.optimizer_, scheduler=self.scheduler_,
            rank=self._info.rank, expected={**expected, "world_size": self._info.world_size})
        self._stream.epoch, self._stream.position = state["epoch"], state["position"]
        self._best = state.get("best")
        self._bad_evals = int(state.get("bad_evals", 0))
        self._stopped = bool(state.get("stopped_early", False))
        self._pending_rng = (state["rng_local"], state["rng_source"])
        self._last_ckpt = directory
        if self._info.is_main and self._best is not None:
            self._write_best()  # in case the crash came between the rename and best.json
        return state["step"]

    # ------------------------------------------------------------------------ fit

    def fit(self, resume: bool = False) -> TrainResult:
        """Train for ``config.max_steps`` optimizer steps (or until early stopping).

        Parameters
        ----------
        resume : bool
            Continue exactly from the latest checkpoint in ``run_dir``.

        Returns
        -------
        TrainResult

        Raises
        ------
        NonFiniteLossError
            When the training loss becomes NaN or infinite (the message names the step and the
            last good checkpoint, which is kept).
        CheckpointError
            When ``resume`` finds no usable checkpoint.
        FileExistsError
            When starting afresh in a ``run_dir`` that already has checkpoints.
        """
        if not isinstance(resume, bool):
            raise TypeError(f"argument `resume` must be True or False; got {resume!r}")
        if resume and self.run_dir is None:
            raise ValueError("fit(resume=True) needs a run_dir to resume from; none was given")
        cfg = self.config
        info = self._setup()
        self._stream = MicroBatches(
            self.train_data, self.collate_fn, batch_size=cfg.batch_size, seed=cfg.seed,
            drop_last=cfg.drop_last, world_size=info.world_size, rank=info.rank,
            device=self.device_, num_workers=cfg.num_workers)
        self._stream.check_nonempty()
        seed_everything(cfg.seed)
        self.optimizer_ = self._build_optimizer()
        self.scheduler_ = self._build_scheduler()
        self._best: dict[str, Any] | None = None
        self._bad_evals = 0
        self._stopped = False
        self._last_ckpt: Path | None = None
        self._pending_rng: tuple[dict[str, Any], str] | None = None
        resume_dir = self._on_main(lambda: self._prepare_run_dir(resume))
        step = self._load_state(resume_dir) if resume_dir is not None else 0
        self.step_ = step
        log_path = self.run_dir / "metrics.jsonl" if self.run_dir is not None and info.is_main else None
        log = MetricsLog(log_path)
        self.history_ = broadcast_object(log.start(step if resume else None))
        train_model = self._wrap()
        stream = iter(self._stream)
        show = (cfg.progress if cfg.progress is not None else sys.stderr.isatty()) and info.is_main
        bar = tqdm(total=cfg.max_steps, initial=step, desc="train", unit="step", file=sys.stderr,
                   disable=not show, dynamic_ncols=True)
        interval = _Interval()
        try:
            if self._pending_rng is not None:  # last, so nothing above disturbs the generators
                restore_rng(*self._pending_rng)
            self.model.train()
            while step < cfg.max_steps and not self._stopped:
                lr = self.optimizer_.param_groups[0]["lr"]
                interval.losses.append(self._train_step(train_model, stream, interval))
                step = self.step_ = step + 1
                bar.update(1)
                at_eval = step % cfg.eval_every == 0 or step == cfg.max_steps
                if at_eval or step % cfg.log_every == 0:
                    event = self._flush(step, lr, interval)
                    log.write(event)
                    self.history_.append(event)
                    bar.set_postfix(loss=f"{event['loss']:.4f}", lr=f"{lr:.2e}",
                                    samples_s=f"{event['throughput']:.0f}", refresh=False)
                if at_eval:
                    self._eval_and_checkpoint(step, log)
                    interval.reset()  # evaluation time is not training throughput
        finally:
            bar.close()
            log.close()
            stream.close()
        barrier()
        self.result_ = self._result(step)
        return self.result_

    def _train_step(self, model: nn.Module, stream: Iterator[dict[str, Any]], interval: _Interval) -> torch.Tensor:
        cfg = self.config
        total = torch.zeros((), device=self.device_)
        for micro in range(cfg.grad_accum_steps):
            batch = next(stream)
            interval.samples += batch_len(batch)
            # Gradients are all-reduced only on the last micro-batch of the step.
            last = micro == cfg.grad_accum_steps - 1
            sync = self._ddp.no_sync() if self._ddp is not None and not last else contextlib.nullcontext()
            with sync:
                with self._autocast():
                    output = model(**batch)
                loss = extract_loss(output)
                if loss is None:
                    raise TypeError(f"model(**batch) returned no `loss` (batch keys: {sorted(batch)}); "
                                    "training batches must carry labels")
                loss = loss.float() / cfg.grad_accum_steps
                loss.backward()
            total += loss.detach()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer_.step()
        self.scheduler_.step()
        self.optimizer_.zero_grad(set_to_none=True)
        return total

    def _flush(self, step: int, lr: float, interval: _Interval) -> dict[str, Any]:
        """One ``"train"`` event for the steps since the last one; checks every loss is finite."""
        # Losses stay on the device until here: one synchronisation per log line, not per step.
        values = all_reduce_mean(torch.stack(interval.losses)).tolist()
        first = step - len(values) + 1
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                raise self._non_finite(first + offset, value)
        elapsed = time.perf_counter() - interval.start
        samples = interval.samples * self._info.world_size
        event = {"step": step, "split": "train", "loss": sum(values) / len(values), "lr": lr,
                 "throughput": samples / elapsed if elapsed > 0 else 0.0}
        interval.reset()
        return event

    def _non_finite(self, step: int, value: float) -> NonFiniteLossError:
        if self._last_ckpt is not None:
            kept = f"the last good checkpoint is kept: {self._last_ckpt}"
        elif self.run_dir is not None:
            kept = f"no checkpoint had been written yet in {self.run_dir}"
        else:
            kept = "nothing was saved (no run_dir)"
        return NonFiniteLossError(
            f"training loss is {value} at step {step}; training stopped and {kept}. "
            "Lower lr, set grad_clip, or check the data for NaN/inf",
            step=step, value=value, checkpoint=self._last_ckpt)

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
        return evaluate_model(self.model, self.eval_data, self.metrics,
                              batch_size=cfg.effective_eval_batch_size, collate_fn=self.collate_fn,
                              device=self.device_, autocast_bf16=self._amp,
                              num_workers=cfg.num_workers, seed=cfg.seed)

    def _eval_and_checkpoint(self, step: int, log: MetricsLog) -> None:
        metrics = self.evaluate() if self.eval_data is not None else None
        if metrics is not None:
            event = {"step": step, "split": "eval", **metrics}
            log.write(event)
            self.history_.append(event)
        improved = self._update_best(step, metrics)
        if self.run_dir is not None:
            self._save_checkpoint(step, improved)

    def _update_best(self, step: int, metrics: dict[str, float] | None) -> bool:
        cfg = self.config
        name, mode = cfg.early_stopping_metric, cfg.early_stopping_mode
        if name is None:
            name, mode = "eval_loss", "min"
        if metrics is None or (cfg.early_stopping_metric is None and name not in metrics):
            # Nothing to compare (no evaluation data, or no loss on it): the latest is the best.
            self._best = {"step": step, "metric": None, "mode": None, "value": None,
                          "metrics": metrics or {}}
            return True
        if name not in metrics:
            raise ValueError(f"early_stopping_metric {name!r} is not among the evaluation metrics: "
                             f"{', '.join(sorted(metrics))}")
        value = metrics[name]
        best = None if self._best is None else self._best["value"]
        improved = best is None or (math.isfinite(value) and (
            not math.isfinite(best) or (value > best if mode == "max" else value < best)))
        if improved:
            self._best = {"step": step, "metric": name, "mode": mode, "value": value,
                          "metrics": dict(metrics)}
            self._bad_evals = 0
        else:
            self._bad_evals += 1
            if 0 < cfg.early_stopping_patience <= self._bad_evals:
                self._stopped = True
        return improved

    def _write_best(self) -> None:
        name = ckpt.step_dir_name(self._best["step"])
        if (self.run_dir / ckpt.CHECKPOINTS_DIR / name).is_dir():
            ckpt.write_best_record(self.run_dir, {**self._best, "checkpoint": name})

    def _save_checkpoint(self, step: int, improved: bool) -> None:
        cfg, info = self.config, self._info
        rngs = all_gather_object(capture_rng())  # every rank's generators, for an exact resume
        root = self.run_dir / ckpt.CHECKPOINTS_DIR
        if info.is_main:
            state = {"epoch": self._stream.epoch, "position": self._stream.position,
                     "best": self._best, "bad_evals": self._bad_evals,
                     "stopped_early": self._stopped, "world_size": info.world_size,
                     "config": dataclasses.asdict(cfg)}
            save_trainer_checkpoint(root, step, model=self.model, optimizer=self.optimizer_,
                                    scheduler=self.scheduler_, state=state, rngs=rngs)
            if improved:
                self._write_best()
            ckpt.prune_checkpoints(self.run_dir, cfg.keep_last,
                                   root / ckpt.step_dir_name(self._best["step"]))
        self._last_ckpt = root / ckpt.step_dir_name(step)

    def _result(self, step: int) -> TrainResult:
        evals = [e for e in self.history_ if e.get("split") == "eval"]
        final = {k: v for k, v in evals[-1].items() if k not in ("step", "split")} if evals else {}
        best = self._best
        path = None
        if best is not None and self.run_dir is not None:
            path = self.run_dir / ckpt.CHECKPOINTS_DIR / ckpt.step_dir_name(best["step"])
        return TrainResult(step=step, final_metrics=final,
                           best_metrics=dict(best["metrics"]) if best else {}, best_checkpoint=path,
                           history=list(self.history_), best_step=best["step"] if best else None,
                           stopped_early=self._stopped)

