"""Dropout whose mask comes from 32 random bits per element, for the encoder on the CPU.

:func:`dropout` and :class:`Dropout` are ``F.dropout`` and ``nn.Dropout`` (same scaling
``1 / (1 - p)`` of the kept elements, same module interface). Eager on the CPU, they draw the
mask as raw 64-bit words from torch's default generator (``Tensor.random_`` over the whole
int64 range, two elements per word) and keep an element when its 32 bits, read as an unsigned
integer, are at least ``round(p · 2**32)``: the drop probability is ``p`` to within 2**-33.
Elsewhere (GPU, a compiled or traced pass, ``p`` at 0 or too near 1) they are torch's.

Why: torch's CPU dropout draws each element by ``bernoulli_``, which measured 6.4 ms per
million float32 elements on this project's machine (AMD EPYC, two threads), ~110 ms of a
900 ms mini-BERT training step (13 dropouts: the embeddings, two per layer, the attention
probabilities); the raw words take ~1.7 ms per million, the mask and its application ~0.6 ms
more (issue 24 item 3, ``benchmarks/RESULTS.md``).

Seeding: ``torch.manual_seed`` fixes the masks as before, and the generator's state (what a
checkpoint saves to resume exactly) covers them; the masks are other than ``F.dropout``'s for
the same seed. The backward multiplies by the same saved mask and scale, as torch's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gicho.nn.execution import static_shapes

__all__ = ["Dropout", "applies", "dropout"]

_ENABLED = True  # the tests and benchmarks compare against torch's dropout by turning this off
_MAX_P = 1.0 - 2.0 ** -20  # above: round(p · 2**32) could reach 2**32, outside int32's range


def applies(x: Tensor, p: float) -> bool:
    """Whether dropout of ``x`` at ``p`` (in training) takes the random-bit path here, not torch's."""
    return (_ENABLED and x.device.type == "cpu" and x.dtype.is_floating_point and 0.0 < p <= _MAX_P
            and not static_shapes())


def _keep_mask(x: Tensor, p: float) -> Tensor:
    """Bool mask of ``x``'s shape, each element True with probability ``1 - p`` (±2**-33)."""
    n = x.numel()
    words = torch.empty((n + 1) // 2, dtype=torch.int64).random_(-(2 ** 63), None)  # 64 random bits each
    bits = words.view(torch.int32)[:n].view(x.shape)  # uniform over int32, i.e. u - 2**31 for u in [0, 2**32)
    return bits >= round(p * 2 ** 32) - 2 ** 31  # u >= round(p · 2**32)


def _apply(x: Tensor, keep: Tensor, scale: float) -> Tensor:
    """``x · keep · scale`` in torch's order (``x · scale`` rounded once where kept, else 0, in
    any dtype). The mask goes through uint8 to ``x``'s dtype first: mixing a bool tensor into
    the product measured ~7x slower (an unvectorised cast inside the multiplication)."""
    return torch.mul(x, keep.view(torch.uint8).to(x.dtype)).mul_(scale)


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, p: float) -> Tensor:
        keep = _keep_mask(x, p)
        ctx.save_for_backward(keep)  # bool, 1 byte an element, as torch's dropout keeps
        ctx.scale = 1.0 / (1.0 - p)
        return _apply(x, keep, ctx.scale)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (keep,) = ctx.saved_tensors
        return _apply(grad, keep, ctx.scale), None


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``F.dropout(x, p, training)``, with the mask drawn as the module docstring says on the CPU.

    Raises
    ------
    ValueError
        ``p`` outside [0, 1] (as ``F.dropout``).
    """
    if not training or not applies(x, p):
        return F.dropout(x, p, training)  # also p = 0 (x itself) and its check of p
    if torch.is_grad_enabled() and x.requires_grad:
        return _Dropout.apply(x, p)
    return _apply(x, _keep_mask(x, p), 1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same ``p`` and interface) computing :func:`dropout`; with
    ``inplace=True`` it is torch's in-place dropout."""

    def forward(self, x: Tensor) -> Tensor:
        if self.inplace:
            return super().forward(x)
        return dropout(x, self.p, self.training)
