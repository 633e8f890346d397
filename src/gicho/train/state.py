"""The training loop's state as one object, and the random generators' states.

:class:`TrainState` is everything :class:`~gicho.train.Trainer` needs, besides the weights,
optimizer and generator tensors, to continue a run exactly: the step, the data position, the
best evaluation, the early-stopping counter. It is written to ``trainer_state.json`` and read
back as one unit, in the manner of Lightning Fabric's ``state`` mapping: a key the code does
not know, or one it needs that is missing, is refused by name, and every value is checked
before it is used (a tampered ``"step": -5`` must not resume into a different run).

:func:`seed_everything`, :func:`capture_rng` and :func:`restore_rng` seed, save and restore
the Python, NumPy and torch generators. The checkpoint that holds both, and its ``save`` and
``load``, are in :mod:`gicho.train.checkpoint`.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gicho.weights import CheckpointError

__all__ = ["STATE_FORMAT", "TrainState", "capture_rng", "restore_rng", "seed_everything"]

STATE_FORMAT = 2
# Keys each older format lacks, with the value they mean there.
_ADDED_IN_FORMAT_2 = {"pending_losses": []}
_BEST_KEYS = ("step", "metric", "mode", "value", "metrics")


@dataclass
class TrainState:
    """Where a training run stands; saved to and loaded from ``trainer_state.json`` whole.

    Attributes
    ----------
    step : int
        Optimizer steps taken.
    epoch, position : int
        Epoch of the next training micro-batch, and micro-batches of it already consumed
        (see :class:`gicho.train.data.MicroBatches`).
    best : dict or None
        The best evaluation so far: ``step``, ``metric``, ``mode``, ``value`` (None when the
        latest checkpoint counts as best) and its ``metrics``.
    bad_evals : int
        Evaluations since the best one (early-stopping patience).
    stopped_early : bool
        Whether early stopping ended the run.
    pending_losses : list of float
        Per-step training losses since the last ``"train"`` log line; non-empty only in a
        checkpoint written on an interrupt, so that the resumed run logs the same line.
    world_size : int
        Processes of the run that wrote the state.
    config : dict
        The :class:`~gicho.train.TrainConfig` as a dict.
    rng : list of dict
        Every rank's Python and NumPy generator states (torch's, and the collate function's
        own generator state when it has one, are in ``rng_state.pt``).
    """

    step: int = 0
    epoch: int = 0
    position: int = 0
    best: dict[str, Any] | None = None
    bad_evals: int = 0
    stopped_early: bool = False
    pending_losses: list[float] = field(default_factory=list)
    world_size: int = 1
    config: dict[str, Any] = field(default_factory=dict)
    rng: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready mapping written to ``trainer_state.json`` (with its ``format``)."""
        return {"format": STATE_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Any, source: str | Path) -> TrainState:
        """Check and convert what :meth:`to_dict` wrote; ``source`` names the file in errors.

        Raises
        ------
        CheckpointError
            Naming the file and the offending key or field: unknown keys ("unused checkpoint
            values"), missing ones, and values of the wrong type or out of range.
        """
        if not isinstance(data, dict):
            raise CheckpointError(f"trainer state {source} must hold a JSON object; got "
                                  f"{type(data).__name__}")
        data = dict(data)
        fmt = data.pop("format", None)
        if fmt not in (1, STATE_FORMAT) or isinstance(fmt, bool):
            raise CheckpointError(f"trainer state {source}: field `format` must be 1 or "
                                  f"{STATE_FORMAT}; got {fmt!r}")
        if fmt == 1:
            data = {**_ADDED_IN_FORMAT_2, **data}
        names = [f.name for f in fields(cls)]
        unused = sorted(set(data) - set(names))
        missing = [name for name in names if name not in data]
        if unused:
            raise CheckpointError(f"trainer state {source} has unused checkpoint values: "
                                  f"{', '.join(unused)}")
        if missing:
            raise CheckpointError(f"trainer state {source} lacks checkpoint values: "
                                  f"{', '.join(missing)}")
        state = cls(**data)
        state._validate(source)
        return state

    def _validate(self, source: str | Path) -> None:
        def bad(name: str, allowed: str, value: Any) -> CheckpointError:
            return CheckpointError(f"trainer state {source}: field `{name}` must be {allowed}; "
                                   f"got {_short(value)}")

        def integer(name: str, value: Any, low: int, high: int | None = None) -> None:
            if not _is_int(value) or value < low or (high is not None and value > high):
                allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
                raise bad(name, allowed, value)

        integer("step", self.step, 0)
        integer("world_size", self.world_size, 1)
        if not isinstance(self.config, dict):
            raise bad("config", "a JSON object (the TrainConfig)", self.config)
        accum = self.config.get("grad_accum_steps", 1)
        if not _is_int(accum) or accum < 1:
            raise bad("config.grad_accum_steps", "an integer >= 1", accum)
        # Each epoch holds at least one micro-batch, so neither can exceed those consumed.
        consumed = self.step * accum
        integer("epoch", self.epoch, 0, consumed)
        integer("position", self.position, 0, consumed)
        integer("bad_evals", self.bad_evals, 0, self.step)
        if not isinstance(self.stopped_early, bool):
            raise bad("stopped_early", "true or false", self.stopped_early)
        if not isinstance(self.pending_losses, list) or len(self.pending_losses) > self.step or not all(
                _is_number(v) and math.isfinite(v) for v in self.pending_losses):
            raise bad("pending_losses", f"a list of at most step={self.step} finite numbers",
                      self.pending_losses)
        if not isinstance(self.rng, list) or len(self.rng) != self.world_size or not all(
                isinstance(r, dict) for r in self.rng):
            raise bad("rng", f"a list of world_size={self.world_size} generator states", self.rng)
        if self.best is not None:
            best = self.best
            if not isinstance(best, dict) or sorted(best) != sorted(_BEST_KEYS):
                raise bad("best", f"null or an object with keys {', '.join(_BEST_KEYS)}", best)
            integer("best.step", best["step"], 0, self.step)
            if not isinstance(best["metrics"], dict) or not all(
                    isinstance(k, str) and _is_number(v) for k, v in best["metrics"].items()):
                raise bad("best.metrics", "an object of numbers", best["metrics"])
            if best["value"] is not None and not _is_number(best["value"]):
                raise bad("best.value", "a number or null", best["value"])

    def record_evaluation(self, step: int, metrics: dict[str, float] | None, *, metric: str | None,
                          mode: str, patience: int) -> bool:
        """Update ``best``, ``bad_evals`` and ``stopped_early`` with an evaluation at ``step``.

        ``metric``/``mode``/``patience`` are the TrainConfig's ``early_stopping_*`` fields;
        without a metric the lowest ``eval_loss`` is best, and without ``metrics`` (no
        evaluation data, or no loss on it) the latest step is. Returns whether it improved.

        Raises
        ------
        ValueError
            When ``metric`` is not among ``metrics``.
        """
        name = metric if metric is not None else "eval_loss"
        mode = mode if metric is not None else "min"
        if metrics is None or (metric is None and name not in metrics):
            self.best = {"step": step, "metric": None, "mode": None, "value": None,
                         "metrics": metrics or {}}
            return True
        if name not in metrics:
            raise ValueError(f"early_stopping_metric {name!r} is not among the evaluation metrics: "
                             f"{', '.join(sorted(metrics))}")
        value = metrics[name]
        best = None if self.best is None else self.best["value"]
        improved = best is None or (math.isfinite(value) and (
            not math.isfinite(best) or (value > best if mode == "max" else value < best)))
        if improved:
            self.best = {"step": step, "metric": name, "mode": mode, "value": value,
                         "metrics": dict(metrics)}
            self.bad_evals = 0
        else:
            self.bad_evals += 1
            if 0 < patience <= self.bad_evals:
                self.stopped_early = True
        return improved

    def check_resumable(self, expected: dict[str, Any], directory: Path) -> None:
        """Refuse to resume when a setting that fixes the data order has changed.

        ``expected`` maps names of :class:`~gicho.train.TrainConfig` fields (and
        ``world_size``) to their current values.
        """
        saved = {name: self.world_size if name == "world_size" else self.config.get(name)
                 for name in expected}
        diff = [f"{k}={saved[k]!r} in the checkpoint but {v!r} now" for k, v in expected.items()
                if saved[k] != v]
        if diff:
            raise CheckpointError(f"cannot resume {directory} exactly: " + "; ".join(diff))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------ generators


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and all CUDA devices) global generators."""
    random.seed(seed)
    # NumPy's legacy global generator is seeded and saved on purpose: user code may draw from it.
    np.random.seed(seed)  # noqa: NPY002
    torch.manual_seed(seed)


def capture_rng() -> dict[str, Any]:
    """This process's generator states; ``python``/``numpy`` are JSON-ready, ``torch`` are tensors."""
    version, internal, gauss = random.getstate()
    key, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return {
        "python": [version, list(internal), gauss],
        "numpy": {"key": key, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any], source: str) -> None:
    """Inverse of :func:`capture_rng`; ``source`` names the file for error messages."""
    try:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        saved = state["numpy"]
        keys = np.asarray(saved["keys"], dtype=np.uint32)
        np_state = (saved["key"], keys, saved["pos"], saved["has_gauss"], saved["cached_gaussian"])
        np.random.set_state(np_state)  # noqa: NPY002
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            if len(state["cuda"]) != torch.cuda.device_count():
                raise ValueError(f"{len(state['cuda'])} CUDA generator states saved, "
                                 f"{torch.cuda.device_count()} devices visible")
            torch.cuda.set_rng_state_all(state["cuda"])
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise CheckpointError(f"random-generator state in {source} is invalid: {exc!r}") from None
