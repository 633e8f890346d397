"""Helpers for data-parallel training under ``torchrun``.

``torchrun`` starts one process per device and tells each its place through environment
variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
:func:`init_distributed` reads them and joins the process group (gloo on CPU, NCCL on CUDA);
without them (a plain ``python`` run) it returns a single-process description and every other
helper here is a no-op, so the same code runs both ways.

Single node, 2 processes::

    torchrun --nproc_per_node=2 train.py

Two nodes (run on each, with its own ``--node_rank``)::

    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 \\
        --master_addr=10.0.0.1 --master_port=29500 train.py
"""

from __future__ import annotations

import contextlib
import datetime
import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from gicho import _dist

__all__ = [
    "DeviceUnavailableError",
    "DistributedInfo",
    "all_gather_object",
    "all_reduce_max",
    "all_reduce_mean",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "cleanup",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "resolve_device",
    "run_on_main",
]

T = TypeVar("T")


@dataclass(frozen=True)
class DistributedInfo:
    """Where this process stands in the job.

    Attributes
    ----------
    rank : int
        Global index of this process, ``0 <= rank < world_size``.
    world_size : int
        Number of processes in the job.
    local_rank : int
        Index of this process on its node (selects the GPU).
    device : torch.device
        The device this process computes on.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the process that logs and writes checkpoints)."""
        return self.rank == 0



class DeviceUnavailableError(ValueError, RuntimeError):
    """The configured device does not exist here (a setting to change, hence also a ValueError)."""

def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """Turn a device name into a ``torch.device`` that exists on this machine.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:N"}
        ``"auto"`` picks ``cuda:local_rank`` when CUDA is available, else the CPU;
        ``"cuda"`` means ``cuda:local_rank``.
    local_rank : int
        This process's index on its node.

    Raises
    ------
    RuntimeError
        When a CUDA device is asked for but CUDA is not available, or the index is out of range.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if not device.startswith("cuda"):
        raise ValueError(f"argument `device` must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}")
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"device={device!r} was asked for but CUDA is not available in this torch build "
            f"({torch.__version__}); use device='cpu' or 'auto'"
        )
    index = local_rank if device == "cuda" else int(device.split(":", 1)[1])
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceUnavailableError(
            f"device cuda:{index} was asked for but only {count} CUDA device(s) are visible"
        )
    return torch.device("cuda", index)


def is_distributed() -> bool:
    """Whether a process group with more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """Global rank of this process (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Whether this process is rank 0 (always True when not distributed)."""
    return get_rank() == 0


def init_distributed(
    device: str = "auto", backend: str | None = None, timeout_s: float | None = None
) -> DistributedInfo:
    """Join the torchrun process group when there is one; safe to call many times.

    Parameters
    ----------
    device : str
        As in :func:`resolve_device`; under torchrun, ``"auto"`` gives ``cuda:LOCAL_RANK`` on
        GPU machines and the CPU elsewhere.
    backend : str or None
        Process-group backend; ``None`` chooses NCCL for CUDA and gloo for the CPU.
    timeout_s : float or None
        Timeout of collective operations in seconds (torch's default when None).

    Returns
    -------
    DistributedInfo
        ``rank``, ``world_size``, ``local_rank`` and ``device`` of this process. Without
        torchrun's variables: rank 0 of a world of 1, and no process group is created.

    Raises
    ------
    ValueError
        When ``RANK``, ``WORLD_SIZE`` or ``LOCAL_RANK`` is not an integer or out of range.
    """
    world_size, rank, local_rank = _dist.world_size(), _dist.rank(), _dist.local_rank()
    if world_size < 1:
        raise ValueError(f"environment variable WORLD_SIZE must be >= 1; got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(
            f"environment variable RANK must lie in [0, WORLD_SIZE={world_size}); got {rank}"
        )
    if local_rank < 0:
        raise ValueError(f"environment variable LOCAL_RANK must be >= 0; got {local_rank}")
    if dist.is_available() and dist.is_initialized():
        # Already joined (idempotence): trust the live group over the environment.
        rank, world_size = dist.get_rank(), dist.get_world_size()
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
        kwargs: dict[str, Any] = {}
        if timeout_s is not None:
            kwargs["timeout"] = datetime.timedelta(seconds=timeout_s)
        if dev.type == "cuda":
            kwargs["device_id"] = dev
        dist.init_process_group(
            backend=backend or ("nccl" if dev.type == "cuda" else "gloo"),
            rank=rank,
            world_size=world_size,
            **kwargs,
        )
    return DistributedInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def barrier() -> None:
    """Wait until every process reaches this point (no-op when not distributed)."""
    if not is_distributed():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def broadcast_object(obj: T, src: int = 0) -> T:
    """Return rank ``src``'s ``obj`` on every process (``obj`` itself when not distributed).

    The object is pickled by torch; only send plain data between trusted processes.
    """
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: T) -> list[T]:
    """Every process's ``obj``, indexed by rank (``[obj]`` when not distributed)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over processes, in place (unchanged when not distributed)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over processes, in place (unchanged when not distributed)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Maximum of ``tensor`` over processes, in place (unchanged when not distributed)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def run_on_main(fn: Callable[[], T], info: DistributedInfo) -> T:
    """Run ``fn`` on rank 0 alone and give its value, or its failure, to every rank.

    Rank 0 re-raises its own exception; the other ranks raise ``RuntimeError("rank 0 failed:
    ...")``, so no rank waits forever in a later collective. The value is pickled: keep it
    small and plain.
    """
    if not info.is_distributed:
        return fn()
    outcome: tuple[str, Any] = ("ok", None)
    error: BaseException | None = None
    if info.is_main:
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


def cleanup() -> None:
    """Leave and destroy the process group, if one is active.

    Every rank first frees what no longer has a name (a finished Trainer's DDP wrapper and its
    gradient reducer, kept alive only by reference cycles) while the group is still up, then waits
    for the others. Either left to interpreter exit can abort a rank ("terminate called without
    an active exception"): a DDP reducer destroyed after its group, or a rank destroying its gloo
    group while another still talks to it; both were seen now and then at the end of two-process
    runs on a loaded machine.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        with contextlib.suppress(RuntimeError):  # a peer already gone: nothing left to wait for
            barrier()
        dist.destroy_process_group()
