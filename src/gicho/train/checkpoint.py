"""The trainer checkpoint: its format, one :func:`save` and one :func:`load`, atomic and safe.

:func:`save` writes every file of a step; :func:`load` reads and checks them all into a
:class:`LoadedCheckpoint`, which :meth:`~LoadedCheckpoint.apply` loads into the live model,
optimizer and scheduler (the state, :class:`~gicho.train.state.TrainState`, and the
generators go back to the trainer); :func:`load_latest` falls back from a damaged newest
checkpoint to the previous intact one, with a warning naming the damage. This is Lightning
Fabric's shape (one ``save(path, state)``, one ``load(path, state)``), with stricter checks.

A run directory holds ``checkpoints/step-XXXXXXXX/`` directories and a ``checkpoints/best.json``
record. Each checkpoint directory contains:

* ``model.safetensors`` and ``config.json``: for a gicho model (a
  :class:`~gicho.models._pretrained.PretrainedModel`), exactly what its ``save_pretrained``
  writes into ``model/`` (exported tensor names, Hugging Face's for BERT and ViT, and the
  family's ``config.json``, plus a family's own files such as a ViT's
  ``preprocessor_config.json``), so ``gicho.models.from_pretrained`` loads a step directory;
  for any other module, its own ``state_dict`` (tied weights stored once) and its dataclass
  ``config``, when it has one (see :func:`gicho.weights.save_model_files`);
* ``trainer_state.json``: the :class:`~gicho.train.TrainState` (step, data position, best
  metric, early-stopping counter, Python and NumPy generator states, the TrainConfig), read
  back as one unit with every key and value checked;
* ``optimizer.pt`` (optimizer and scheduler state) and ``rng_state.pt`` (torch generator
  states, and the collate function's own generator state where it has one): tensors
  written by ``torch.save`` and read back only with ``torch.load(..., weights_only=True)``,
  which refuses arbitrary pickled objects.

A checkpoint is written into ``checkpoints/.tmp-step-XXXXXXXX-<pid>/`` and renamed into place,
so a crash leaves either the whole checkpoint or a stray temporary directory, which
:func:`latest_checkpoint` ignores and :func:`remove_stale_tmp` deletes. Every read failure
raises :class:`CheckpointError` naming the file and what is wrong; a failed write (a full disk)
removes its temporary files and :func:`write_error` names the checkpoint that stays intact.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gicho._io import TMP_PREFIX, atomic_write_dir, atomic_write_text, read_json
from gicho.rundir import CHECKPOINTS_DIR, METRICS_LOG, RunDir
from gicho.train.state import TrainState
from gicho.weights import (  # model I/O lives below both models/ and train/
    CheckpointError,
    load_saved_state,
    read_state_dict,
    save_model_files,
    weights_file,
)

__all__ = [
    "CheckpointError",
    "LoadedCheckpoint",
    "best_checkpoint",
    "json_text",
    "latest_checkpoint",
    "list_checkpoints",
    "load",
    "load_latest",
    "open_run_dir",
    "save",
    "write_bytes",
    "write_error",
]

STATE_NAME = "trainer_state.json"
OPTIMIZER_NAME = "optimizer.pt"
RNG_NAME = "rng_state.pt"
BEST_NAME = "best.json"
_STEP_DIR = re.compile(r"step-(\d{8,})")


def step_dir_name(step: int) -> str:
    """Directory name of the checkpoint at ``step`` (``step-00000040``)."""
    return f"step-{step:08d}"


# ---------------------------------------------------------------------------- atomic writes
# (single files: gicho._io.atomic_write_text)


def json_text(obj: Any) -> str:
    """``obj`` as indented JSON text ending in a newline (NaN and inf kept, as Python reads them)."""
    return json.dumps(obj, indent=1) + "\n"


def write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` and flush it to disk, with Python's file I/O.

    Every trainer-state file goes through here, so that a full disk surfaces as an
    ``OSError`` with ``errno.ENOSPC`` (torch's own writer reports it as an opaque
    ``RuntimeError``), which :func:`write_error` turns into a clear message.
    """
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    # safetensors and torch wrap the OS error in their own types; their messages keep its text.
    return "No space left on device" in text or "Disk quota exceeded" in text


def write_error(exc: BaseException, what: str, where: str | os.PathLike,
                intact: Path | None) -> CheckpointError:
    """One clear :class:`CheckpointError` for a failed write of ``what`` in ``where``.

    Says whether the disk is full and which checkpoint on disk is intact (``intact``), so the
    user knows what a resume will start from.
    """
    kept = f"the last intact checkpoint is {intact}" if intact is not None else \
        "no intact checkpoint has been written yet"
    if _disk_full(exc):
        return CheckpointError(f"disk full while writing {what} in {where}; {kept}. Free some "
                               "space and resume")
    return CheckpointError(f"could not write {what} in {where} ({type(exc).__name__}: {exc}); {kept}")


def write_checkpoint_dir(root: str | os.PathLike, step: int, write: Callable[[Path], None]) -> Path:
    """Create ``root/step-XXXXXXXX`` atomically: ``write(tmp_dir)`` fills it, then it is renamed.

    If ``write`` fails the temporary directory is removed and the error propagates; an existing
    checkpoint of the same step is replaced only once the new one is complete.
    """
    return atomic_write_dir(Path(root) / step_dir_name(step), write)


def remove_stale_tmp(root: str | os.PathLike) -> list[Path]:
    """Delete temporary directories and files left in ``root`` by a crash; return them."""
    root = Path(root)
    removed = []
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name.startswith(TMP_PREFIX):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


# ------------------------------------------------------------------ finding checkpoints


def step_of(directory: str | os.PathLike) -> int | None:
    """The step a checkpoint directory's name gives (``step-00000040`` -> 40), or None."""
    match = _STEP_DIR.fullmatch(Path(directory).name)
    return int(match.group(1)) if match else None


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints of ``run_dir`` as ``(step, directory)``, oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = _STEP_DIR.fullmatch(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path:
    """The most recent checkpoint directory of ``run_dir``.

    Temporary directories left by a crash are ignored.

    Raises
    ------
    CheckpointError
        When ``run_dir`` holds no checkpoint.
    """
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(
            f"run directory {run_dir} has no checkpoint: no {CHECKPOINTS_DIR}/step-XXXXXXXX "
            "directory was found"
        )
    return found[-1][1]


def best_checkpoint(run_dir: str | os.PathLike) -> Path:
    """The checkpoint directory named by ``run_dir/checkpoints/best.json``.

    Raises
    ------
    CheckpointError
        When the record is missing or unreadable, or names a directory that does not exist.
    """
    record_path = Path(run_dir) / CHECKPOINTS_DIR / BEST_NAME
    if not record_path.is_file():
        raise CheckpointError(
            f"run directory {run_dir} has no best-checkpoint record ({CHECKPOINTS_DIR}/{BEST_NAME} "
            "is missing)"
        )
    record = read_json(record_path, "best-checkpoint record", error=CheckpointError)
    name = record.get("checkpoint") if isinstance(record, dict) else None
    if not isinstance(name, str) or not _STEP_DIR.fullmatch(name):
        raise CheckpointError(
            f"best-checkpoint record {record_path} has no valid 'checkpoint' entry; got {name!r}"
        )
    path = record_path.parent / name
    if not path.is_dir():
        raise CheckpointError(f"best-checkpoint record {record_path} names {name}, which is missing")
    return path


def write_best_record(run_dir: str | os.PathLike, record: dict[str, Any]) -> None:
    """Write ``checkpoints/best.json`` atomically (``record['checkpoint']`` names the directory)."""
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    atomic_write_text(Path(run_dir) / CHECKPOINTS_DIR / BEST_NAME, text)


def prune_checkpoints(run_dir: str | os.PathLike, keep_last: int, keep: Path | None) -> list[Path]:
    """Delete all checkpoints but the ``keep_last`` most recent and ``keep``; return the deleted."""
    found = list_checkpoints(run_dir)
    recent = {path for _, path in found[-keep_last:]}
    removed = []
    for _, path in found:
        if path not in recent and (keep is None or path.resolve() != keep.resolve()):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


# ---------------------------------------------------------------- tensors of trainer state


def save_tensors(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` a nest of tensors, dicts, lists and numbers (readable by :func:`load_tensors`).

    Serialised in memory, then written by :func:`write_bytes` (a full disk raises ``OSError``).
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getbuffer())


def load_tensors(path: str | os.PathLike, what: str) -> Any:
    """Read a file written by :func:`save_tensors` with ``torch.load(weights_only=True)``.

    Raises
    ------
    CheckpointError
        When the file is missing, corrupt, or holds anything but plain tensors and containers.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} is missing")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{what} {path} cannot be loaded safely: {first_line}") from None


# ----------------------------------------------------------- the trainer checkpoint


def save(
    root: Path, state: TrainState, *, model: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: Any, rngs: list[dict[str, Any]],
) -> Path:
    """Write ``root/step-XXXXXXXX`` (``state.step``) atomically: weights, optimizer, generators,
    ``trainer_state.json``.

    ``rngs`` holds :func:`capture_rng` of every rank, indexed by rank; their Python and NumPy
    parts go into ``state.rng``. A ``"collate"`` entry (the state of a collate function that
    draws from its own generator, such as the MLM masks; None otherwise) goes with the torch
    states into ``rng_state.pt``.
    """
    state.rng = [{"python": r["python"], "numpy": r["numpy"]} for r in rngs]
    text = json_text(state.to_dict())

    def write(tmp: Path) -> None:
        save_model_files(model, tmp)  # what the model's save_pretrained writes
        save_tensors({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                     tmp / OPTIMIZER_NAME)
        save_tensors({"torch": [r["torch"] for r in rngs], "cuda": [r["cuda"] for r in rngs],
                      "collate": [r.get("collate") for r in rngs]},
                     tmp / RNG_NAME)
        write_bytes(tmp / STATE_NAME, text.encode("utf-8"))

    return write_checkpoint_dir(root, state.step, write)


@dataclass
class LoadedCheckpoint:
    """Every file of one checkpoint, read and checked, not yet applied to a model."""

    directory: Path
    state: TrainState
    weights: dict[str, torch.Tensor]
    weights_file: Path
    optimizer: dict[str, Any]
    rng: dict[str, Any]  # this rank's generator states, ready for restore_rng
    rng_source: str

    def apply(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        """Load the weights, optimizer and scheduler states into the live objects.

        A gicho model's weights go through its class's ``import_state_dict`` (see
        :func:`gicho.weights.load_saved_state`), which reads the exported names that step
        directories hold and the internal names that earlier gicho versions wrote.

        Raises
        ------
        CheckpointError
            When they do not fit (another model, other parameter groups), or a gicho model's
            weights hold NaN: checked only here, so a resume does not fall back on it.
        """
        load_saved_state(model, self.weights, source=f"weights file {self.weights_file}")
        path = self.directory / OPTIMIZER_NAME
        try:
            optimizer.load_state_dict(self.optimizer["optimizer"])
            scheduler.load_state_dict(self.optimizer["scheduler"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"optimizer state {path} does not match this model: {exc}") from None


def load(directory: Path, rank: int) -> LoadedCheckpoint:
    """Read and check every file of ``directory`` for process ``rank``.

    Raises
    ------
    CheckpointError
        When a file is missing, unreadable, truncated or inconsistent (the checkpoint is
        damaged), naming the file.
    """
    state_path = directory / STATE_NAME
    state = TrainState.from_dict(read_json(state_path, "trainer state", error=CheckpointError), state_path)
    named_step = step_of(directory)
    if named_step is not None and named_step != state.step:
        # resuming would continue another run than the one this directory is a step of
        raise CheckpointError(f"trainer state {state_path} says step {state.step}, but its directory "
                              f"is the checkpoint of step {named_step}")
    if rank >= state.world_size:
        raise CheckpointError(f"trainer state {state_path} was written by {state.world_size} "
                              f"process(es); there is no state for rank {rank}")
    file = weights_file(directory)
    tensors = read_state_dict(file)
    opt_path = directory / OPTIMIZER_NAME
    opt = load_tensors(opt_path, "optimizer state")
    if not isinstance(opt, dict) or not {"optimizer", "scheduler"} <= set(opt):
        raise CheckpointError(f"optimizer state {opt_path} is incomplete: it must hold "
                              "'optimizer' and 'scheduler'")
    rng_path = directory / RNG_NAME
    rng = load_tensors(rng_path, "random-generator state")
    try:
        local = {**state.rng[rank], "torch": rng["torch"][rank], "cuda": rng["cuda"][rank],
                 # checkpoints written before the collate state was saved have none
                 "collate": rng["collate"][rank] if "collate" in rng else None}
    except (KeyError, IndexError, TypeError) as exc:
        raise CheckpointError(f"random-generator state {rng_path} is incomplete: {exc!r}") from None
    return LoadedCheckpoint(directory, state, tensors, file, opt, local, str(rng_path))


def load_latest(run_dir: Path, rank: int = 0) -> LoadedCheckpoint:
    """The newest intact checkpoint of ``run_dir``, read (see :func:`load`).

    A damaged checkpoint is skipped with a warning naming it, the damage and the checkpoint
    used instead.

    Raises
    ------
    CheckpointError
        When ``run_dir`` has no checkpoint, or none is intact (naming each one's damage).
    """
    found = list_checkpoints(run_dir)
    if not found:
        latest_checkpoint(run_dir)  # raises the "has no checkpoint" error
    damaged: list[tuple[Path, CheckpointError]] = []
    for _, directory in reversed(found):
        try:
            loaded = load(directory, rank)
        except CheckpointError as exc:
            damaged.append((directory, exc))
            continue
        for path, exc in damaged:
            warnings.warn(f"checkpoint {path} is damaged ({exc}); resuming from the previous "
                          f"intact checkpoint {directory} instead", UserWarning, stacklevel=3)
        return loaded
    if len(damaged) == 1:
        raise damaged[0][1]
    raise CheckpointError(f"no intact checkpoint in {run_dir}: " + "; ".join(
        f"{path.name}: {exc}" for path, exc in damaged))


def open_run_dir(run_dir: Path, resume: bool) -> LoadedCheckpoint | None:
    """Prepare ``run_dir`` for a run (on rank 0): remove what a crash left, and on ``resume``
    read the checkpoint to continue from (:func:`load_latest`).

    Raises
    ------
    FileExistsError
        When starting afresh (``resume`` False) where checkpoints exist.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(RunDir(run_dir).checkpoints)
    for stale in run_dir.glob(f"{TMP_PREFIX}{METRICS_LOG}-*"):
        stale.unlink(missing_ok=True)
    if resume:
        return load_latest(run_dir, rank=0)
    if list_checkpoints(run_dir):
        raise FileExistsError(f"run directory {run_dir} already has checkpoints; call "
                              "fit(resume=True) to continue it, or use a new directory")
    return None
