"""What :meth:`gicho.train.Trainer.fit` returns, and the error it raises on a non-finite loss."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gicho.train import checkpoint as ckpt
from gicho.train.state import TrainState

__all__ = ["NonFiniteLossError", "TrainResult", "make_result", "non_finite_error"]


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


def make_result(state: TrainState, history: list[dict[str, Any]], run_dir: Path | None) -> TrainResult:
    """The :class:`TrainResult` of a run that ended in ``state`` after logging ``history``."""
    evals = [e for e in history if e.get("split") == "eval"]
    final = {k: v for k, v in evals[-1].items() if k not in ("step", "split")} if evals else {}
    best = state.best
    path = None
    if best is not None and run_dir is not None:
        path = run_dir / ckpt.CHECKPOINTS_DIR / ckpt.step_dir_name(best["step"])
    return TrainResult(step=state.step, final_metrics=final,
                       best_metrics=dict(best["metrics"]) if best else {}, best_checkpoint=path,
                       history=list(history), best_step=best["step"] if best else None,
                       stopped_early=state.stopped_early)


def non_finite_error(step: int, value: float, last_checkpoint: Path | None,
                     run_dir: Path | None) -> NonFiniteLossError:
    """The error for a non-finite training loss at ``step``, naming what was kept."""
    if last_checkpoint is not None:
        kept = f"the last good checkpoint is kept: {last_checkpoint}"
    elif run_dir is not None:
        kept = f"no checkpoint had been written yet in {run_dir}"
    else:
        kept = "nothing was saved (no run_dir)"
    return NonFiniteLossError(
        f"training loss is {value} at step {step}; training stopped and {kept}. "
        "Lower lr, set grad_clip, or check the data for NaN/inf",
        step=step, value=value, checkpoint=last_checkpoint)
