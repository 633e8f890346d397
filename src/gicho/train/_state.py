"""Trainer state that a checkpoint saves and restores, and the ``metrics.jsonl`` log."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gicho.train import checkpoint as ckpt
from gicho.train.checkpoint import CheckpointError

__all__ = [
    "MetricsLog",
    "capture_rng",
    "load_trainer_checkpoint",
    "restore_rng",
    "save_trainer_checkpoint",
    "seed_everything",
]

STATE_FORMAT = 1


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
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"random-generator state in {source} is invalid: {exc!r}") from None


def save_trainer_checkpoint(
    root: Path, step: int, *, model: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: Any, state: dict[str, Any], rngs: list[dict[str, Any]],
) -> Path:
    """Write ``root/step-XXXXXXXX`` atomically: weights, optimizer, generators, plain state.

    ``rngs`` holds :func:`capture_rng` of every rank, indexed by rank.
    """
    state = {**state, "format": STATE_FORMAT, "step": step,
             "rng": [{"python": r["python"], "numpy": r["numpy"]} for r in rngs]}

    def write(tmp: Path) -> None:
        ckpt.save_model(model, tmp)
        ckpt.save_tensors({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                          tmp / ckpt.OPTIMIZER_NAME)
        ckpt.save_tensors({"torch": [r["torch"] for r in rngs], "cuda": [r["cuda"] for r in rngs]},
                          tmp / ckpt.RNG_NAME)
        text = json.dumps(state, indent=1) + "\n"
        (tmp / ckpt.STATE_NAME).write_text(text, encoding="utf-8")

    return ckpt.write_checkpoint_dir(root, step, write)


def load_trainer_checkpoint(
    directory: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
    rank: int, expected: dict[str, Any],
) -> dict[str, Any]:
    """Load weights, optimizer and scheduler state from ``directory``; return the plain state.

    ``expected`` maps the settings that fix the data order (batch size, seed, world size...)
    to their current values; a checkpoint written with others cannot be resumed exactly and
    raises :class:`CheckpointError`. The returned state has this rank's generator states under
    ``"rng_local"`` (restore them with :func:`restore_rng` just before training resumes).
    """
    state_path = directory / ckpt.STATE_NAME
    state = ckpt.read_json(state_path, "trainer state")
    try:
        saved = {name: (state["world_size"] if name == "world_size" else state["config"][name])
                 for name in expected}
        for name in ("step", "epoch", "position"):
            state[name] = int(state[name])
        rng_plain = state["rng"][rank]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CheckpointError(f"trainer state {state_path} is incomplete: {exc!r}") from None
    diff = [f"{k}={saved[k]!r} in the checkpoint but {v!r} now" for k, v in expected.items()
            if saved[k] != v]
    if diff:
        raise CheckpointError(f"cannot resume {directory} exactly: " + "; ".join(diff))
    ckpt.load_model_weights(model, directory)
    opt_path = directory / ckpt.OPTIMIZER_NAME
    opt = ckpt.load_tensors(opt_path, "optimizer state")
    try:
        optimizer.load_state_dict(opt["optimizer"])
        scheduler.load_state_dict(opt["scheduler"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"optimizer state {opt_path} does not match this model: {exc}") from None
    rng_path = directory / ckpt.RNG_NAME
    rng = ckpt.load_tensors(rng_path, "random-generator state")
    try:
        state["rng_local"] = {**rng_plain, "torch": rng["torch"][rank], "cuda": rng["cuda"][rank]}
    except (KeyError, IndexError, TypeError) as exc:
        raise CheckpointError(f"random-generator state {rng_path} is incomplete: {exc!r}") from None
    state["rng_source"] = str(rng_path)
    return state


def _json_line(event: dict[str, Any]) -> str:
    # NaN/inf are kept (Python's json reads them back) so that a bad value is never hidden.
    return json.dumps(event, allow_nan=True) + "\n"


class MetricsLog:
    """Append-only ``metrics.jsonl``: one JSON object per event, flushed as it is written.

    Parameters
    ----------
    path : Path or None
        The file; ``None`` writes nothing (non-main ranks, no run directory).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh: Any = None

    def start(self, resume_step: int | None) -> list[dict[str, Any]]:
        """Open the log: afresh (``resume_step`` None) or keeping events up to ``resume_step``.

        A resumed run rewrites the file without the events after its checkpoint (the crashed
        run logged them, the resumed run logs them again) and without a torn last line.
        Returns the kept events.
        """
        if self.path is None:
            return []
        kept: list[dict[str, Any]] = []
        if resume_step is not None and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by the crash
                if isinstance(event, dict) and event.get("step", math.inf) <= resume_step:
                    kept.append(event)
        ckpt.atomic_write_text(self.path, "".join(_json_line(e) for e in kept))
        self._fh = open(self.path, "a", encoding="utf-8")  # closed in close()
        return kept

    def write(self, event: dict[str, Any]) -> None:
        """Append one event and flush it to the operating system (a SIGKILL cannot lose it)."""
        if self._fh is not None:
            self._fh.write(_json_line(event))
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
