"""CPU float32 inference through oneDNN with prepacked weights: the encoder's linear layers.

:func:`linear` is what the encoder layers call for ``qkv``, ``proj``, ``fc1`` and ``fc2``. On
the CPU in float32 with autograd off (inference) it runs the layer through oneDNN
(``torch.ops.mkldnn._linear_pointwise``, the op ``torch.compile`` emits for a frozen linear)
with the weight reordered once into oneDNN's blocked layout, and fuses the MLP's GELU into
the GEMM. Everywhere else (training, GPU, other dtypes, a compiled or traced pass, a
quantized layer) it is ``F.linear``.

Why: torch's default float32 GEMM on the CPU is MKL's, and on an AMD EPYC (Zen 4, the machine
of ``benchmarks/RESULTS.md``) it ran the encoders' shapes at 120-170 GFLOP/s on two threads,
oneDNN's prepacked kernels at 190-210 (1.25-1.66x per layer, measured on the MiniLM and
ViT-S/16 shapes). The GEMMs are ~72% of a fixed-length encoder pass, the same calls in
gicho and in ``transformers``, so no other change could make fixed-length inference
substantially faster than the peer (issue 24 item 4).

What it costs: one packed copy of each weight, kept beside the module (not in its
``state_dict``) for as long as the module lives, e.g. +90 MB for a MiniLM, +340 MB for
BERT-base. It is packed on the first inference call and again whenever the weight changes
(its version counter or storage), so inference between training steps stays correct. A
weight created under ``torch.inference_mode`` has no version counter and takes ``F.linear``.
:func:`enabled` switches the path off (``with packed_linear.enabled(False): ...``), which is
how the tests compare it with ``F.linear``. The numbers differ from ``F.linear``'s in the last
bits only (another summation order; tested against float64 within the float32 GEMM's error
bound).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["available", "enabled", "linear"]

_state = threading.local()
# module → (weight key, packed weight). Weak keys: a deep copy or a freed module carries nothing.
_packed: weakref.WeakKeyDictionary[nn.Linear, tuple[tuple[int, int, int], Tensor]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def available() -> bool:
    """Whether this torch build has oneDNN's packed linear op (x86 and ARM builds do)."""
    return (torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))


_AVAILABLE = available()


@contextlib.contextmanager
def enabled(flag: bool) -> Iterator[None]:
    """Use (True, the default) or bypass (False) the packed path in this thread, within the block."""
    before = getattr(_state, "enabled", True)
    _state.enabled = bool(flag)
    try:
        yield
    finally:
        _state.enabled = before


def _applies(layer: nn.Module, x: Tensor) -> bool:
    # type(...) is nn.Linear: an int8/bf16 layer (gicho.nn.quantized) or a user's subclass has
    # its own forward. Traced or compiled passes keep F.linear, which every exporter knows.
    # compiling/tracing first: dynamo cannot trace is_inference(), and need not get that far
    return (_AVAILABLE and not torch.compiler.is_compiling() and not torch.jit.is_tracing()
            and getattr(_state, "enabled", True)
            and type(layer) is nn.Linear
            and x.device.type == "cpu" and x.dtype == torch.float32
            and layer.weight.dtype == torch.float32
            # a weight made under inference_mode has no version counter to notice changes by
            and not layer.weight.is_inference()
            and not (torch.is_grad_enabled() and (x.requires_grad or layer.weight.requires_grad)))


def _packed_weight(layer: nn.Linear, rows: int) -> Tensor:
    weight = layer.weight
    key = (weight.data_ptr(), weight._version, weight.shape[1])
    cached = _packed.get(layer)
    if cached is not None and cached[0] == key:
        return cached[1]
    with torch.no_grad():
        # the row count is oneDNN's hint for choosing a blocking; any count runs on the result
        packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), max(rows, 1))
    with _lock:
        _packed[layer] = (key, packed)
    return packed


def linear(layer: nn.Module, x: Tensor, *, gelu: bool = False) -> Tensor:
    """``layer(x)``, then the exact (erf) GELU if ``gelu``: through oneDNN when it applies.

    Parameters
    ----------
    layer : nn.Module
        Usually an ``nn.Linear``; any other module is simply called.
    x : Tensor, shape (..., in_features)
    gelu : bool
        Apply ``F.gelu`` (exact) to the output. Outside the packed path it runs in place when
        autograd does not track the output (inference), else out of place.
    """
    if _applies(layer, x):
        rows = x.numel() // max(x.shape[-1], 1)
        return torch.ops.mkldnn._linear_pointwise(
            x, _packed_weight(layer, rows), layer.bias,
            "gelu" if gelu else "none", [], "none" if gelu else "")
    out = layer(x)
    if not gelu:
        return out
    if out.requires_grad:
        return F.gelu(out)
    return torch.ops.aten.gelu_(out)  # nothing differentiates through it: in place saves a tensor
