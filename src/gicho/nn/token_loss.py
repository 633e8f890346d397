"""Summed cross-entropy over a vocabulary, computed in row blocks on the CPU.

:func:`summed_cross_entropy` is ``F.cross_entropy(logits, labels, ignore_index=-100,
reduction="sum")``: what the MLM head scores its masked tokens with. Eager on the CPU in
float32 it runs a small autograd Function instead of torch's ``log_softmax`` + ``nll_loss``:

* the forward keeps only the rows' log-sum-exp (K,), computed a block of rows at a time, where
  torch writes the whole (K, V) log-softmax and keeps it for the backward;
* the backward writes the gradient ``w·(softmax - onehot)`` straight into one (K, V) tensor, a
  block at a time while the block is in cache, where torch zero-fills a (K, V) gradient of the
  log-probabilities, scatters into it, then reads it and the log-softmax to write a third.

Why: with BERT's 30522-word vocabulary and ~600 masked tokens a batch, each (K, V) float32
tensor is 75 MB, above glibc's largest mmap threshold (32 MB), so each is fresh memory the
kernel maps page by page (~18,000 page faults). Two such tensors and three passes fewer took
~40 ms off a 900 ms mini-BERT training step on two threads (``benchmarks/RESULTS.md``, issue 24
item 3). The numbers are those of ``F.cross_entropy`` to float32 rounding (another order of
summation; tested against float64).

Everywhere else (GPU, other dtypes, a compiled or traced pass) it is ``F.cross_entropy``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gicho._validation import IGNORE_INDEX
from gicho.nn.execution import static_shapes

__all__ = ["summed_cross_entropy"]

# rows per block: 32 x 30522 x 4 B = 3.9 MB, held in cache across the block's passes; freed
# block temporaries stay under glibc's mmap threshold, so they reuse the heap without faults
_BLOCK_ROWS = 32


def _blocked_path(logits: Tensor, labels: Tensor) -> bool:
    return (logits.device.type == "cpu" and logits.dtype == torch.float32 and logits.ndim == 2
            and labels.ndim == 1 and labels.dtype == torch.int64 and labels.shape[0] == logits.shape[0]
            and not static_shapes())


def _row_logsumexp(logits: Tensor) -> Tensor:
    """``torch.logsumexp(logits, 1)`` (K,), a block of rows at a time (block-sized temporaries)."""
    out = torch.empty(logits.shape[0], dtype=logits.dtype)
    for start in range(0, logits.shape[0], _BLOCK_ROWS):
        torch.logsumexp(logits[start:start + _BLOCK_ROWS], dim=1, out=out[start:start + _BLOCK_ROWS])
    return out


def _scored(labels: Tensor, n_classes: int) -> tuple[Tensor, Tensor]:
    """(labels other than IGNORE_INDEX, a label usable as an index everywhere); IndexError, as
    ``F.cross_entropy``'s, for a label outside ``[0, n_classes)`` that is not ignored."""
    scored = labels != IGNORE_INDEX
    if bool((scored & ((labels < 0) | (labels >= n_classes))).any()):
        raise IndexError(f"Target out of bounds: labels must lie in [0, {n_classes}) or be {IGNORE_INDEX}")
    return scored, labels.masked_fill(~scored, 0)


def _loss(logits: Tensor, lse: Tensor, scored: Tensor, index: Tensor) -> Tensor:
    picked = logits.gather(1, index[:, None]).squeeze(1)  # (K,)
    return torch.where(scored, lse - picked, 0.0).sum()


class _SummedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, labels: Tensor) -> Tensor:
        scored, index = _scored(labels, logits.shape[1])
        lse = _row_logsumexp(logits)
        ctx.save_for_backward(logits, lse, scored, index)
        return _loss(logits, lse, scored, index)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        logits, lse, scored, index = ctx.saved_tensors
        weight = torch.where(scored, grad, 0.0)  # (K,): d loss / d row's loss
        out = torch.empty_like(logits)  # (K, V)
        for start in range(0, logits.shape[0], _BLOCK_ROWS):
            rows = slice(start, start + _BLOCK_ROWS)
            block = out[rows]
            torch.sub(logits[rows], lse[rows, None], out=block)
            block.exp_().mul_(weight[rows, None])  # w · softmax
        out.index_put_((torch.arange(logits.shape[0]), index), -weight, accumulate=True)  # - w · onehot
        ignored = (~scored).nonzero().squeeze(1)
        if ignored.numel():
            out.index_fill_(0, ignored, 0.0)  # exactly 0, also where the row's softmax is not finite
        return out, None


def summed_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """``F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")``.

    Parameters
    ----------
    logits : Tensor, shape (K, V)
    labels : Tensor, int64, shape (K,)
        Class indices in ``[0, V)``, or :data:`IGNORE_INDEX` (the row is not scored).

    Returns
    -------
    Tensor
        The summed loss (a scalar of the logits' dtype); 0 when no row is scored.

    Raises
    ------
    IndexError
        A label outside ``[0, V)`` that is not :data:`IGNORE_INDEX` (as ``F.cross_entropy``).
    """
    if not _blocked_path(logits, labels):
        return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
    if torch.is_grad_enabled() and logits.requires_grad:
        return _SummedCrossEntropy.apply(logits, labels)
    scored, index = _scored(labels, logits.shape[1])
    return _loss(logits, _row_logsumexp(logits), scored, index)
