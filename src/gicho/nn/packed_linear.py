"""The encoder's float32 linear layers on the CPU through oneDNN: prepacked in inference.

:func:`linear` is what the encoder layers call for ``qkv``, ``proj``, ``fc1`` and ``fc2`` (and
the MLM head for its transform; :func:`linear_weight` for its tied decoder). On the CPU in
float32 it runs the layer through oneDNN (``torch.ops.mkldnn._linear_pointwise``, the op
``torch.compile`` emits for a frozen linear):

* **inference** (autograd off): the weight is reordered once into oneDNN's blocked layout and
  kept, and the MLP's GELU is fused into the GEMM;
* **training**: a small autograd Function computes the forward and the input gradient with
  oneDNN on the plain weight, and the weight gradient with torch's ``mm`` (MKL), which measured
  faster for that shape (its reduction runs over the batch's rows).

Everywhere else (GPU, other dtypes, CPU autocast, a compiled or traced pass, a quantized layer
or any ``nn.Linear`` subclass) it is ``F.linear``.

Why: torch's default float32 GEMM on the CPU is MKL's, and on an AMD EPYC (Zen 4, the machine
of ``benchmarks/RESULTS.md``) it ran the encoders' shapes at 120-170 GFLOP/s on two threads,
oneDNN's prepacked kernels at 190-210 (1.25-1.66x per layer, measured on the MiniLM and
ViT-S/16 shapes; ~1.15-1.3x on one thread, where both are nearer the core's peak). The GEMMs
are ~72% of a fixed-length encoder pass, the same calls in gicho and in ``transformers``, so
no other change could make fixed-length inference substantially faster than the peer (issue
24 item 4); in training they are ~68% of a step.

What it costs: one packed copy of each weight, kept beside the module (in a weak-keyed table,
not in its ``state_dict``, so deep copies and checkpoints are unchanged) for as long as the
module lives: the encoder linears' size again, e.g. +42 MB for MiniLM-L6, +340 MB for
BERT-base. It is packed on the first inference call and again whenever the weight changes (its
version counter or storage), so inference between training steps stays correct. A weight
created under ``torch.inference_mode`` has no version counter and is not packed
(``_linear_pointwise`` on the plain weight would do, but then a change could not be noticed:
``F.linear``). :func:`enabled` switches the path off (``with packed_linear.enabled(False):
...``), which is how the tests compare it with ``F.linear``. The numbers differ from
``F.linear``'s in the last bits only (another summation order; tested against float64 within
the float32 GEMM's error bound).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gicho.nn.execution import static_shapes

__all__ = ["available", "enabled", "linear", "linear_weight"]

_state = threading.local()
# module → (weight key, packed weight). Weak keys: a deep copy or a freed module carries nothing.
_packed: weakref.WeakKeyDictionary[nn.Linear, tuple[tuple[int, int, int], Tensor]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def available() -> bool:
    """Whether this torch build runs oneDNN's packed linear op and it computes ``F.linear``
    (the x86 wheels do). Probed once on a tiny layer: a build whose op is missing, has another
    signature or fails takes ``F.linear`` everywhere."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        with torch.no_grad():
            x, weight, bias = torch.randn(3, 5), torch.randn(4, 5), torch.randn(4)
            packed = torch.ops.mkldnn._reorder_linear_weight(weight, 3)
            fused = torch.ops.mkldnn._linear_pointwise(x, packed, bias, "gelu", [], "none")
            plain = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
        reference = F.linear(x, weight, bias)
        return bool(torch.allclose(plain, reference, rtol=1e-4, atol=1e-4)
                    and torch.allclose(fused, F.gelu(reference), rtol=1e-4, atol=1e-4))
    except (RuntimeError, AttributeError, TypeError):
        return False


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


def _route(weight: Tensor, bias: Tensor | None, x: Tensor) -> str | None:
    """"inference", "autograd" (training through oneDNN) or None (``F.linear``)."""
    # compiling/tracing first: dynamo cannot trace is_inference(), and need not get that far.
    # Traced or compiled passes keep F.linear, which every exporter and compiler knows.
    if (not _AVAILABLE or static_shapes()
            or not getattr(_state, "enabled", True)
            or x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32
            or (bias is not None and bias.dtype != torch.float32)):
        return None
    tracked = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                           or (bias is not None and bias.requires_grad))
    if not tracked:
        return "inference"
    if torch.is_autocast_enabled("cpu") or x.ndim < 2:
        return None  # autocast chooses its own dtype for F.linear; a custom Function skips it
    return "autograd"


_ONEDNN_GRAD_ROWS = 2048  # rows from which the input gradient goes through oneDNN (see backward)


class _LinearFunction(torch.autograd.Function):
    """``F.linear`` with oneDNN's forward and input gradient (MKL's weight gradient, which
    measured faster for that shape: the reduction runs over the batch's rows)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        rows = grad.reshape(-1, grad.shape[-1])  # (M, out)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0] and rows.shape[0] >= _ONEDNN_GRAD_ROWS:
            # grad @ W as a linear layer whose weight is W^T: that copy of W is paid back only
            # over enough rows (the tied MLM decoder's ~600 masked rows x 30522: MKL 52 ms,
            # oneDNN 59 ms with the copy; the encoder's 4096 rows: oneDNN 5-10% faster)
            grad_x = torch.ops.mkldnn._linear_pointwise(grad, weight.t().contiguous(), None, "none", [], "")
        elif ctx.needs_input_grad[0]:
            grad_x = grad @ weight
        if ctx.needs_input_grad[1]:
            grad_w = rows.t() @ x.reshape(-1, x.shape[-1])  # (out, in)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = rows.sum(0)
        return grad_x, grad_w, grad_b


def _hooked(layer: nn.Module) -> bool:
    """Whether calling ``layer`` would run hooks (its own or global ones) besides its forward."""
    from torch.nn.modules import module as torch_module

    return bool(layer._forward_hooks or layer._forward_pre_hooks or layer._backward_hooks
                or layer._backward_pre_hooks
                or torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks
                or torch_module._global_backward_hooks or torch_module._global_backward_pre_hooks)


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
    # type(...) is nn.Linear: an int8/bf16 layer (gicho.nn.quantized) or a user's subclass has
    # its own forward; a layer with hooks (a user's probe, int8 calibration) is called, so they run
    route = _route(layer.weight, layer.bias, x) if type(layer) is nn.Linear and not _hooked(layer) else None
    # a weight made under inference_mode has no version counter to notice changes by: not packed
    if route == "inference" and not layer.weight.is_inference():
        rows = x.numel() // max(x.shape[-1], 1)
        return torch.ops.mkldnn._linear_pointwise(
            x, _packed_weight(layer, rows), layer.bias,
            "gelu" if gelu else "none", [], "none" if gelu else "")
    out = _LinearFunction.apply(x, layer.weight, layer.bias) if route == "autograd" else layer(x)
    if not gelu:
        return out
    if out.requires_grad:
        return F.gelu(out)
    return torch.ops.aten.gelu_(out)  # nothing differentiates through it: in place saves a tensor


def linear_weight(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear(x, weight, bias)`` for a weight that belongs to no ``nn.Linear`` (a decoder
    tied to the embeddings): through oneDNN when training on the CPU in float32, else
    ``F.linear``. Nothing is packed (the weight has no module to keep a packed copy beside);
    oneDNN measured as fast on a plain weight for a single large GEMM."""
    route = _route(weight, bias, x)
    if route == "autograd":
        return _LinearFunction.apply(x, weight, bias)
    if route == "inference":
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)
