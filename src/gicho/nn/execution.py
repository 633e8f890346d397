"""How a Transformer stack runs over a batch: unpadded, in CPU inference chunks, or padded.

:class:`~gicho.nn.transformer.TransformerEncoder` defines the stack and its plain padded pass
(every layer over the whole (B, T, D) batch, padding included: the reference path). This
module chooses how to execute that stack, and every strategy computes the same numbers as the
padded pass (tested):

* **ragged** — a (B, T) padding mask is unpadded first (:class:`~gicho.nn.ragged.RaggedBatch`):
  the layers run on the packed real tokens only, and the output is zero at padding positions.
  Not with attention maps or hidden states (whole-sequence outputs), nor when the pass is
  compiled or traced (:func:`static_shapes`).
* **chunked** — on the CPU with autograd off (inference), a large padded batch runs through
  the whole stack a few sequences at a time (:func:`inference_chunk`). Why: glibc maps every
  allocation above its mmap threshold (at most 32 MiB) fresh from the kernel and unmaps it on
  free, so a whole-batch pass page-faults its large activations in again in every layer, while
  chunk-sized buffers are recycled by the heap. The budget and its measurements (faster in a
  fresh process, within noise in one whose heap is already large) are in
  ``benchmarks/RESULTS.md`` ("transformers on the CPU": Run D and the chunk ablation).
* **padded** — the reference pass, given by the stack.

Under ``torch.compile``, ``torch.export`` and ``torch.jit.trace`` (which the ONNX export uses)
only the padded pass runs (:func:`static_shapes`): unpadding reads the lengths on the host and
chunking reads the batch size, so a traced graph would bake in the example's lengths and batch
(a graph recorded on an unpadded example would even drop the attention mask).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gicho.nn.ragged import RaggedBatch

__all__ = ["EncoderOutput", "inference_chunk", "run_layers", "static_shapes"]


@dataclass
class EncoderOutput:
    """What :class:`~gicho.nn.TransformerEncoder` returns.

    Attributes
    ----------
    last_hidden_state : Tensor, shape (B, T, D)
        Output of the last layer (after the final LayerNorm in a pre-LN stack).
    hidden_states : tuple of Tensor, each (B, T, D), or None
        The input to the stack followed by each layer's output (n_layers + 1 tensors, as in
        Hugging Face); the last one is before the final LayerNorm.
    attentions : tuple of Tensor, each (B, H, T, T), or None
        Per-layer attention weights.
    mask : Tensor, bool, shape (B, T), or None
        Which positions are real tokens (set by :class:`gicho.nn.EncoderBackbone`; None = all).
    """

    last_hidden_state: Tensor
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None
    mask: Tensor | None = None


# padded(x, mask, output_attentions, output_hidden_states, rows, positions): the stack's
# reference pass
PaddedPass = Callable[[Tensor, "Tensor | None", bool, bool, "int | None", "Tensor | None"], EncoderOutput]


def run_layers(
    layers: nn.ModuleList,
    norm: nn.Module,
    x: Tensor,
    mask: Tensor | None,
    *,
    padded: PaddedPass,
    chunk_bytes: int,
    output_attentions: bool = False,
    output_hidden_states: bool = False,
    rows: int | None = None,
    positions: Tensor | None = None,
) -> EncoderOutput:
    """Run ``layers`` (then ``norm``) over ``x`` (B, T, D) by the fastest strategy that applies.

    Parameters
    ----------
    layers, norm : the stack's encoder layers and its final norm (``nn.Identity`` if none).
    x : Tensor, float, shape (B, T, D)
    mask : Tensor, bool, shape (B, T) or (B, T, T), optional
        True = may attend. A (B, T) mask with no padding is dropped (the fused kernel needs none).
    padded : the stack's reference pass over a whole padded batch (or one chunk of it).
    chunk_bytes : the CPU inference budget: the widest intermediate of one chunk, in bytes.
    output_attentions, output_hidden_states, rows, positions : as in ``TransformerEncoder.forward``.
    """
    if (isinstance(mask, Tensor) and mask.dtype == torch.bool and mask.shape == x.shape[:2]
            and not output_attentions and not output_hidden_states
            and not static_shapes()):
        ragged = RaggedBatch.from_mask(mask)  # one host sync (see gicho.nn.ragged)
        if ragged is not None:
            tokens = ragged.pack(x)  # (1, N, D)
            if positions is not None and len(layers) and ragged.n_tokens:
                return _ragged_positions(layers, norm, tokens, ragged, positions)
            for layer in layers:
                tokens, _ = layer(tokens, ragged)
            hidden = ragged.unpack(norm(tokens))  # (B, T, D)
            if positions is not None:
                return EncoderOutput(last_hidden_state=hidden.view(-1, hidden.shape[-1])[positions])
            return EncoderOutput(last_hidden_state=hidden[:, :rows])
        mask = None  # nothing is padding: the fused kernel needs no mask
    chunk = inference_chunk(x, layers[0], chunk_bytes) if len(layers) and positions is None else None
    if chunk is not None:
        return _concatenate([
            padded(x[i:i + chunk], None if mask is None else mask[i:i + chunk],
                   output_attentions, output_hidden_states, rows, None)
            for i in range(0, x.shape[0], chunk)
        ])
    return padded(x, mask, output_attentions, output_hidden_states, rows, positions)


def _ragged_positions(layers: nn.ModuleList, norm: nn.Module, tokens: Tensor, ragged: RaggedBatch,
                      positions: Tensor) -> EncoderOutput:
    """The unpadded pass when only ``positions`` (flat B·T indices) are wanted: the last layer
    computes those tokens only; a padding position gets zeros, as in the full pass's output."""
    packed_at = torch.full((ragged.batch * ragged.length,), -1, dtype=torch.int64, device=tokens.device)
    packed_at[ragged.index] = torch.arange(ragged.index.shape[0], device=tokens.device)
    wanted = packed_at.index_select(0, positions)  # (K,) packed indices, -1 at padding
    for layer in layers[:-1]:
        tokens, _ = layer(tokens, ragged)
    hidden, _ = layers[-1](tokens, ragged, positions=wanted.clamp(min=0))  # (K, D)
    hidden = norm(hidden)
    return EncoderOutput(last_hidden_state=hidden.masked_fill((wanted < 0)[:, None], 0.0))


def inference_chunk(x: Tensor, layer: nn.Module, chunk_bytes: int) -> int | None:
    """Sequences per chunk for an inference pass over ``x`` (B, T, D), or None: one pass.

    Only on the CPU with autograd off (a backward pass needs every activation anyway; a GPU's
    caching allocator has no page faults to save and prefers large kernels) and never in a
    compiled or traced pass (:func:`static_shapes`). Each layer treats sequences
    independently, so running the stack chunk by chunk computes the same numbers. Padded batches only: an unpadded one
    (:class:`~gicho.nn.ragged.RaggedBatch`) is already smaller, and chunking it measured slower.
    ``layer`` is an encoder layer (its ``mlp.fc1`` width sets the widest intermediate, with the
    fused QKV's 3·D); ``chunk_bytes`` bounds that intermediate per chunk.
    """
    if x.device.type != "cpu" or torch.is_grad_enabled() or static_shapes():
        return None
    B, T, D = x.shape
    widest = max(layer.mlp.fc1.out_features, 3 * D) * x.element_size()
    most = max(1, chunk_bytes // (widest * max(T, 1)))
    if most >= B:
        return None
    return -(-B // -(-B // most))  # the fewest chunks, of near-equal size (reusable buffers)


def static_shapes() -> bool:
    """Whether the pass is being compiled or traced (``torch.compile``, ``torch.export``,
    ``torch.jit.trace``, hence ``torch.onnx.export``): then only the plain padded pass runs,
    whose graph computes the same numbers for every batch size, length and padding. Why: the
    fast paths decide from the data (unpadding: the lengths; chunking: the batch size), and a
    tracer records such a decision as a constant."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def _concatenate(parts: list[EncoderOutput]) -> EncoderOutput:
    """The outputs of consecutive batch chunks as one output (concatenated along the batch)."""

    def cat_each(tuples: list[tuple[Tensor, ...] | None]) -> tuple[Tensor, ...] | None:
        return None if tuples[0] is None else tuple(torch.cat(list(ts)) for ts in zip(*tuples, strict=True))

    return EncoderOutput(
        last_hidden_state=torch.cat([p.last_hidden_state for p in parts]),
        hidden_states=cat_each([p.hidden_states for p in parts]),
        attentions=cat_each([p.attentions for p in parts]),
    )
