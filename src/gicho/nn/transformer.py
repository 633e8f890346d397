"""Transformer encoder layer and stack, post-LN (BERT) or pre-LN (ViT).

Post-LN (Vaswani et al. 2017; BERT, Devlin et al. 2019)::

    x = norm1(x + dropout(attn(x)))
    x = norm2(x + dropout(mlp(x)))

Pre-LN (Xiong et al. 2020; ViT, Dosovitskiy et al. 2021)::

    x = x + dropout(attn(norm1(x)))
    x = x + dropout(mlp(norm2(x)))         # and a final LayerNorm after the stack

``mlp(x) = fc2(dropout(gelu(fc1(x))))``. The arithmetic matches
``torch.nn.TransformerEncoderLayer(activation="gelu", batch_first=True, norm_first=...)`` (tested
with copied weights). Parameter names follow timm's ViT ``Block`` (``norm1``, ``attn.qkv``,
``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``); Hugging Face BERT maps as
``attention.self.{query,key,value}`` → ``attn.qkv`` (concatenated), ``attention.output.dense``
→ ``attn.proj``, ``attention.output.LayerNorm`` → ``norm1``, ``intermediate.dense`` →
``mlp.fc1``, ``output.dense`` → ``mlp.fc2``, ``output.LayerNorm`` → ``norm2``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gicho.nn import execution, packed_linear
from gicho.nn.attention import ATTENTION_KINDS, MultiHeadSelfAttention
from gicho.nn.execution import EncoderOutput, run_layers
from gicho.nn.fast_dropout import Dropout
from gicho.nn.ragged import RaggedBatch

__all__ = ["MLP", "EncoderOutput", "TransformerEncoder", "TransformerEncoderLayer"]


class MLP(nn.Module):
    """Position-wise feed-forward network ``fc2(dropout(gelu(fc1(x))))`` (exact erf GELU)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.dropout = Dropout(dropout)  # random-bit masks on the CPU (gicho.nn.fast_dropout)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, D) → (B, T, D)."""
        # CPU float32 inference runs both through oneDNN, GELU fused (gicho.nn.packed_linear)
        h = packed_linear.linear(self.fc1, x, gelu=True)  # (B, T, d_ff)
        return packed_linear.linear(self.fc2, self.dropout(h))  # (B, T, D)


class TransformerEncoderLayer(nn.Module):
    """One encoder block: multi-head self-attention and an MLP, each with a residual.

    Parameters
    ----------
    d_model : int
        Model width D (divisible by ``n_heads``).
    n_heads : int
    d_ff : int
        Hidden width of the MLP (usually 4·D).
    dropout : float
        Dropout on the two residual branches and inside the MLP.
    attention_dropout : float
        Dropout on the attention weights.
    norm_first : bool
        Pre-LN (True, ViT) or post-LN (False, BERT).
    layer_norm_eps : float
        LayerNorm epsilon (torch 1e-5, BERT 1e-12, ViT 1e-6).
    mlp_dropout : float, optional
        Dropout between the MLP's two layers; default ``dropout`` (torch, timm). BERT has none
        there (0.0).
    attention : {"standard", "lsa"}
        Scaled dot-product attention, or Locality Self-Attention (Lee, Lee & Song 2021: a
        learned temperature per head, no attention of a token to itself; see
        :class:`~gicho.nn.attention.MultiHeadSelfAttention`'s ``locality``).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
        mlp_dropout: float | None = None,
        attention: str = "standard",
    ) -> None:
        super().__init__()
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"argument `attention` must be one of {ATTENTION_KINDS}; got {attention!r}")
        self.norm_first = norm_first
        self.attn = MultiHeadSelfAttention(d_model, n_heads, dropout=attention_dropout,
                                           locality=attention == "lsa")
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.mlp = MLP(d_model, d_ff, dropout if mlp_dropout is None else mlp_dropout)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    def forward(
        self, x: Tensor, mask: Tensor | RaggedBatch | None = None, need_weights: bool = False,
        n_queries: int | None = None, positions: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Apply the block.

        Parameters
        ----------
        x : Tensor, float, shape (B, T, D)
        mask : Tensor, bool, shape (B, T) or (B, T, T), or RaggedBatch, optional
            True = may attend (see :mod:`gicho.nn.attention`). With a RaggedBatch, ``x`` is
            the packed real tokens (1, N, D) (see :mod:`gicho.nn.ragged`).
        need_weights : bool
            Return the per-head attention weights (explicit attention path).
        n_queries : int, optional
            Compute the first ``n_queries`` positions only (all positions still serve as keys
            and values); the output is then (B, n_queries, D).
        positions : Tensor, int64, shape (K,), optional
            Compute these positions only, indices into the flattened (B·T) positions (all
            positions still serve as queries, keys and values of the attention); the output is
            then (K, D). An MLM head needs only its masked tokens' states.

        Returns
        -------
        x : Tensor, shape (B, T, D), (B, n_queries, D) or (K, D)
        weights : Tensor, shape (B, H, T, T), or None
        """
        if positions is not None:
            kept = x.reshape(-1, x.shape[-1]).index_select(0, positions)  # (K, D): their residuals
        else:
            kept = x[:, :n_queries]
        if self.norm_first:
            attended, weights = self.attn(self.norm1(x), mask, need_weights, n_queries, positions)
            x = _residual(kept, self.dropout1(attended))
            x = _residual(x, self.dropout2(self.mlp(self.norm2(x))))
        else:
            attended, weights = self.attn(x, mask, need_weights, n_queries, positions)
            x = self.norm1(_residual(kept, self.dropout1(attended)))
            x = self.norm2(_residual(x, self.dropout2(self.mlp(x))))
        return x, weights


def _check_positions(positions: Tensor, n: int) -> None:
    """ValueError unless ``positions`` is a 1-D int64 tensor of indices in ``[0, n)``. The range
    is checked eager on the CPU only: no device synchronisation (a GPU index fails in its own
    kernel) and no data-dependent guard for a compiler or tracer."""
    if positions.ndim != 1 or positions.dtype != torch.int64:
        raise ValueError(f"positions must be a 1-D int64 tensor of flat (B·T) indices; got "
                         f"{positions.dtype} of shape {tuple(positions.shape)}")
    if positions.device.type != "cpu" or not positions.numel() or execution.static_shapes():
        return
    low, high = int(positions.min()), int(positions.max())
    if low < 0 or high >= n:
        raise ValueError(f"positions must be flat indices in [0, B·T = {n}); got values in [{low}, {high}]")


def _residual(x: Tensor, branch: Tensor) -> Tensor:
    """``x + branch``; in place into ``branch`` (a fresh tensor) when autograd does not track it."""
    if branch.requires_grad or x.requires_grad or branch.shape != x.shape:
        return x + branch
    return branch.add_(x)


class TransformerEncoder(nn.Module):
    """A stack of :class:`TransformerEncoderLayer`; pre-LN stacks end with a LayerNorm ``norm``.

    Parameters
    ----------
    n_layers : int
    d_model, n_heads, d_ff, dropout, attention_dropout, norm_first, layer_norm_eps
        As in :class:`TransformerEncoderLayer`.
    final_norm : bool, optional
        Apply a LayerNorm after the stack; default: ``norm_first`` (ViT has one, BERT not).
    mlp_dropout, attention : optional
        As in :class:`TransformerEncoderLayer`.
    """

    def __init__(
        self,
        n_layers: int,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
        final_norm: bool | None = None,
        mlp_dropout: float | None = None,
        attention: str = "standard",
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(
                d_model, n_heads, d_ff, dropout, attention_dropout, norm_first, layer_norm_eps,
                mlp_dropout=mlp_dropout, attention=attention,
            )
            for _ in range(n_layers)
        )
        final_norm = norm_first if final_norm is None else final_norm
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps) if final_norm else nn.Identity()

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        *,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        rows: int | None = None,
        positions: Tensor | None = None,
    ) -> EncoderOutput:
        """Run the stack over ``x`` (B, T, D) with an optional bool ``mask`` (True = attend).

        Attentions are computed on the explicit path only when ``output_attentions``; otherwise
        every layer uses the fused kernel. A (B, T) padding mask is unpadded first
        (:class:`~gicho.nn.ragged.RaggedBatch`): the layers run on the real tokens only, and
        ``last_hidden_state`` is zero at padding positions. A mask with no padding is dropped.

        With ``rows``, ``last_hidden_state`` is (B, rows, D): the first positions
        only. The last layer then computes just those rows (queries, residuals, MLP; keys and
        values over every position), as a [CLS]-pooled head needs: the same numbers as the
        full computation's first rows (tested), for about one layer's token-wise work less.
        With ``positions`` (K,) int64, indices into the flattened (B·T) positions, instead:
        ``last_hidden_state`` is (K, D), the states of those positions, in that order (zeros
        at padding positions, as the full output), the last layer computing only them (its
        attention still over every position): what an MLM head needs, ~15% of the tokens.

        On the CPU without autograd (inference), a large batch runs through the whole stack a
        few sequences at a time (:func:`inference_chunk`): the same numbers (tested), faster.
        How the stack is run is :func:`gicho.nn.execution.run_layers`; :meth:`_padded` is the
        plain reference pass.
        """
        if positions is not None:
            if rows is not None:
                raise ValueError("give rows or positions, not both")
            _check_positions(positions, x.shape[0] * x.shape[1])
        return run_layers(self.layers, self.norm, x, mask, padded=self._padded,
                          chunk_bytes=INFERENCE_CHUNK_BYTES, output_attentions=output_attentions,
                          output_hidden_states=output_hidden_states, rows=rows, positions=positions)

    def _padded(self, x: Tensor, mask: Tensor | None, output_attentions: bool,
                output_hidden_states: bool, rows: int | None,
                positions: Tensor | None = None) -> EncoderOutput:
        """Every layer over the whole (B, T, D) batch, padding included: the reference pass.

        The faster strategies of :func:`gicho.nn.execution.run_layers` compute its numbers.
        """
        hidden_states: list[Tensor] = [x]
        attentions: list[Tensor] = []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            # Only the last layer can skip rows: every earlier row is a key of the next layer.
            # (Hidden states and attention maps are whole-sequence outputs: all rows then.)
            partial = i == last and not output_hidden_states
            x, weights = layer(x, mask, need_weights=output_attentions, n_queries=rows if partial else None,
                               positions=positions if partial else None)
            hidden_states.append(x)
            if weights is not None:
                attentions.append(weights)
        if positions is not None and (output_hidden_states or not self.layers):  # every row computed
            x = x.reshape(-1, x.shape[-1]).index_select(0, positions)  # (K, D)
        return EncoderOutput(
            last_hidden_state=self.norm(x if positions is not None else x[:, :rows]),
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )


# The CPU inference budget: the widest intermediate (the MLP's hidden layer or the fused QKV)
# of one chunk of sequences, in bytes. Chunks let the heap recycle buffers that a whole-batch
# pass would page-fault in again in every layer (see gicho.nn.execution); 12 MiB lies within
# the range of budgets that timed fastest (benchmarks/RESULTS.md, "transformers on the CPU":
# Run D and the chunk ablation; re-check it on a new machine with
# benchmarks/cpu_inference_chunks.py).
INFERENCE_CHUNK_BYTES = 12 << 20


def inference_chunk(x: Tensor, layer: TransformerEncoderLayer) -> int | None:
    """Sequences per chunk for an inference pass over ``x`` (B, T, D) under this module's
    ``INFERENCE_CHUNK_BYTES``, or None: one pass (see :func:`gicho.nn.execution.inference_chunk`).
    """
    return execution.inference_chunk(x, layer, INFERENCE_CHUNK_BYTES)
