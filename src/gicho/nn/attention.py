"""Transformer attention: dot-product, scaled dot-product and multi-head self-attention.

Mask polarity (everywhere in :mod:`gicho.nn`): a boolean mask is ``True`` where a query **may
attend** to a key and ``False`` where the key is masked out. This is the polarity of the
boolean ``attn_mask`` of :func:`torch.nn.functional.scaled_dot_product_attention` and of
Hugging Face's ``attention_mask == 1``; it is the *opposite* of ``key_padding_mask`` in
:class:`torch.nn.MultiheadAttention` (there ``True`` means "ignore").

A query row whose keys are all masked out gets zero weights and a zero output, never NaN, and
its gradients are zero too.

The single-head score modules of sequence-to-sequence models (Luong's dot and general scores,
Bahdanau's additive score) are in :mod:`gicho.nn.score_attention`, re-exported here.

Locality Self-Attention (LSA; Lee, Lee & Song 2021, "Vision Transformer for Small-Size
Datasets", §3.2) is an option of :class:`MultiHeadSelfAttention` (``locality=True``): a learned
temperature replaces the fixed ``1/√d_k`` and each token's score with itself is masked out, which
sharpens the attention over the other tokens.

References
----------
Vaswani et al. (2017),
"Attention is all you need", eq. (1): ``softmax(Q Kᵀ / √d_k) V`` and multi-head attention.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gicho.nn import fast_dropout, packed_linear
from gicho.nn._masks import module_mask
from gicho.nn.ragged import RaggedBatch
from gicho.nn.score_attention import AdditiveAttention, DotAttention, GeneralAttention
from gicho.numerics import softmax

__all__ = [
    "ATTENTION_KINDS",
    "AdditiveAttention",
    "AttentionKind",
    "DotAttention",
    "GeneralAttention",
    "MultiHeadSelfAttention",
    "check_attention_mask",
    "dot_product_attention",
    "masked_softmax",
    "ragged_attention",
    "scaled_dot_product_attention",
]


# What an encoder layer's attention is: "standard" (Vaswani et al.) or "lsa" (Lee et al. 2021)
AttentionKind = Literal["standard", "lsa"]
ATTENTION_KINDS: tuple[str, ...] = get_args(AttentionKind)


def check_attention_mask(
    mask: Tensor | None, scores_shape: tuple[int, ...], name: str = "mask"
) -> None:
    """Check that ``mask`` is boolean and broadcastable to ``scores_shape`` ``(..., Tq, Tk)``.

    Raises
    ------
    TypeError
        If ``mask`` is not a boolean tensor.
    ValueError
        If ``mask`` cannot be broadcast to ``scores_shape``.
    """
    if mask is None:
        return
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = f"tensor of dtype {mask.dtype}" if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(
            f"{name} must be a boolean tensor (True = may attend, False = masked out); got {got}"
        )
    try:
        shape = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        shape = None
    if shape != torch.Size(scores_shape):
        raise ValueError(
            f"{name} of shape {tuple(mask.shape)} cannot be broadcast to the attention scores' "
            f"shape {tuple(scores_shape)} (..., Tq, Tk)"
        )


def masked_softmax(scores: Tensor, mask: Tensor | None = None, dim: int = -1) -> Tensor:
    """Softmax of ``scores`` over ``dim`` where ``mask`` is True; fully masked rows give zeros.

    A thin wrapper over :func:`gicho.numerics.softmax` (``where=mask``): masked entries get
    weight 0, and a row with no unmasked entry gets all-zero weights and zero gradients,
    never NaN. Half-precision scores are accumulated in float32.

    Parameters
    ----------
    scores : Tensor, float, shape (..., Tq, Tk)
    mask : Tensor, bool, broadcastable to ``scores``, optional
        True where the entry takes part in the softmax.
    dim : int
        Axis of the softmax.

    Returns
    -------
    Tensor, same shape and dtype as ``scores``; each row sums to 1 (or 0 if fully masked).
    """
    return softmax(scores, axis=dim, where=mask)


def _explicit_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None,
    scale: float,
    dropout_p: float,
    training: bool,
) -> tuple[Tensor, Tensor]:
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale  # (..., Tq, Tk)
    check_attention_mask(mask, tuple(scores.shape))
    weights = masked_softmax(scores, mask)  # (..., Tq, Tk)
    attended = fast_dropout.dropout(weights, dropout_p, training)
    return torch.matmul(attended, v), weights  # (..., Tq, Dv), (..., Tq, Tk)


def _attention_with_dropout(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float,
                            dropout_p: float) -> Tensor:
    """What torch's CPU kernel computes with dropout (its math path: the same products, softmax
    and dropout of the probabilities), the mask drawn by :mod:`gicho.nn.fast_dropout` instead
    of ``bernoulli_``. ``mask`` leaves every row a key (the caller's ``row_has_key``)."""
    scores = torch.matmul(q * scale, k.transpose(-2, -1))  # (..., Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill_(~mask, float("-inf"))
    weights = fast_dropout.dropout(torch.softmax(scores, dim=-1), dropout_p)
    return torch.matmul(weights, v)  # (..., Tq, Dv)


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(
            f"q, k and v must have at least 2 dimensions (..., T, D); got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    dtypes = (q.dtype, k.dtype, v.dtype)
    if len(set(dtypes)) > 1 or not q.dtype.is_floating_point:
        raise TypeError(
            f"q, k and v must have one floating dtype; got q {q.dtype}, k {k.dtype}, v {v.dtype} "
            f"(cast them first, e.g. k.to(q.dtype))"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same last dimension D; got {q.shape[-1]} and {k.shape[-1]}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of keys Tk; got {k.shape[-2]} and {v.shape[-2]}"
        )


def dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    *,
    dropout_p: float = 0.0,
    training: bool = False,
) -> tuple[Tensor, Tensor]:
    """Unscaled dot-product attention ``softmax(q kᵀ) v`` (Luong's dot score).

    Parameters
    ----------
    q : Tensor, float, shape (..., Tq, D)
    k : Tensor, float, shape (..., Tk, D)
    v : Tensor, float, shape (..., Tk, Dv)
    mask : Tensor, bool, broadcastable to (..., Tq, Tk), optional
        True = may attend, False = masked out.
    dropout_p : float
        Dropout on the attention weights, applied only when ``training``.
    training : bool

    Returns
    -------
    output : Tensor, shape (..., Tq, Dv)
    weights : Tensor, shape (..., Tq, Tk)
        Rows sum to 1 over unmasked keys (0 for fully masked rows); before dropout.
    """
    _check_qkv(q, k, v)
    return _explicit_attention(q, k, v, mask, 1.0, dropout_p, training)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    *,
    dropout_p: float = 0.0,
    training: bool = False,
    need_weights: bool = True,
    scale: float | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Scaled dot-product attention ``softmax(q kᵀ / √D) v`` (Vaswani et al. 2017, eq. 1).

    With ``need_weights=False`` the fused kernel
    :func:`torch.nn.functional.scaled_dot_product_attention` runs and no weights are returned;
    with ``need_weights=True`` an explicit path computes and returns the weights. Both agree
    to 1e-6 in float32 (tested), including masks and fully masked rows (zero output).

    Parameters
    ----------
    q : Tensor, float, shape (..., Tq, D)
    k : Tensor, float, shape (..., Tk, D)
    v : Tensor, float, shape (..., Tk, Dv)
    mask : Tensor, bool, broadcastable to (..., Tq, Tk), optional
        True = may attend, False = masked out.
    dropout_p : float
        Dropout on the attention weights, applied only when ``training``.
    training : bool
    need_weights : bool
        Return the attention weights (explicit path) or ``None`` (fused path).
    scale : float, optional
        Score scale; default ``1 / sqrt(D)``.

    Returns
    -------
    output : Tensor, shape (..., Tq, Dv)
    weights : Tensor, shape (..., Tq, Tk), or None when ``need_weights`` is False
    """
    _check_qkv(q, k, v)
    if scale is None:
        if q.shape[-1] == 0:
            raise ValueError("q and k have head dimension D = 0; the scale 1/sqrt(D) is undefined "
                             "(give `scale` explicitly, or use D >= 1)")
        scale = 1.0 / math.sqrt(q.shape[-1])
    if need_weights:
        return _explicit_attention(q, k, v, mask, scale, dropout_p, training)
    scores_shape = (*torch.broadcast_shapes(q.shape[:-2], k.shape[:-2]), q.shape[-2], k.shape[-2])
    check_attention_mask(mask, scores_shape)
    row_has_key = None
    if mask is not None:
        # The fused kernel may return NaN for a row with no key to attend to: let such rows
        # attend everywhere (finite), then zero their output, which also zeroes their gradient.
        row_has_key = mask.any(dim=-1, keepdim=True)  # (..., Tq, 1)
        mask = mask | ~row_has_key
    if training and dropout_p > 0 and fast_dropout.applies(q, dropout_p):
        out = _attention_with_dropout(q, k, v, mask, scale, dropout_p)
    else:
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout_p if training else 0.0, scale=scale
        )  # (..., Tq, Dv)
    if row_has_key is not None:
        out = out.masked_fill(~row_has_key, 0.0)
    return out, None


def ragged_attention(qkv: Tensor, ragged: RaggedBatch, *, dropout_p: float = 0.0,
                     training: bool = False, locality_scale: Tensor | None = None) -> Tensor:
    """Self-attention of packed sequences: each attends to itself only (block-diagonal).

    Parameters
    ----------
    qkv : Tensor, shape (N, 3, H, Dh)
        Queries, keys and values of the N packed tokens (:class:`~gicho.nn.ragged.RaggedBatch`
        order).
    ragged : RaggedBatch
        Its ``groups`` give the runs of equal-length sequences; each run is one call of the
        fused kernel with no mask (g, H, L, Dh), so no score is ever computed for padding.
    locality_scale : Tensor, shape (H,), optional
        Locality Self-Attention's learned per-head scale (see :class:`MultiHeadSelfAttention`):
        scores ``scale_h · q kᵀ``, each token's score with itself masked out.

    Returns
    -------
    Tensor, shape (N, H·Dh)
        Equal to the padded computation with a key-padding mask at every real token (tested).
    """
    _, _, H, Dh = qkv.shape
    outs = []
    # split, not a slice per group: the backward of one split concatenates the groups'
    # gradients once, where each slice's backward would zero-fill and add a whole (N, 3, H, Dh)
    runs = qkv.split([n_seq * length for n_seq, length in ragged.groups])
    for (n_seq, length), run in zip(ragged.groups, runs, strict=True):
        chunk = run.view(n_seq, length, 3, H, Dh)
        q, k, v = chunk.permute(2, 0, 3, 1, 4).unbind(0)  # 3 × (g, H, L, Dh)
        mask, scale = None, None
        if locality_scale is not None:
            q, mask = _locality(q, locality_scale, None, length, length)
            scale = 1.0
        out, _ = scaled_dot_product_attention(q, k, v, mask, dropout_p=dropout_p, training=training,
                                              need_weights=False, scale=scale)
        outs.append(out.transpose(1, 2).reshape(n_seq * length, H * Dh))  # (g·L, D)
    if not outs:  # no real token in the batch (every row padding): nothing attends
        return qkv.new_zeros(0, H * Dh)
    return outs[0] if len(outs) == 1 else torch.cat(outs)  # (N, D)


def _locality(q: Tensor, scale: Tensor, mask: Tensor | None, tq: int, tk: int) -> tuple[Tensor, Tensor]:
    """LSA's two changes, ready for a kernel with ``scale=1``: ``q`` (B, H, Tq, Dh) times the
    learned per-head ``scale`` (H,) (so the scores are ``scale_h · q kᵀ``), and ``mask`` with the
    diagonal masked out (query ``i`` is key ``i``: a token does not attend to itself)."""
    q = q * scale.to(q.dtype)[:, None, None]  # (B, H, Tq, Dh)
    positions = torch.arange(max(tq, tk), device=q.device)  # (not torch.eye: ONNX Runtime has no bool EyeLike)
    off_diagonal = positions[:tq, None] != positions[None, :tk]  # (Tq, Tk)
    return q, off_diagonal if mask is None else mask & off_diagonal  # (..., Tq, Tk)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection (Vaswani et al. 2017, §3.2.2).

    Parameter layout (mappable to torch, timm and Hugging Face checkpoints):

    * ``qkv`` : ``nn.Linear(d_model, 3 * d_model)``; rows ``[0, D)`` project the queries,
      ``[D, 2D)`` the keys and ``[2D, 3D)`` the values (the layout of
      ``torch.nn.MultiheadAttention.in_proj_weight`` and timm's ``attn.qkv``); within each
      block head ``h`` owns rows ``[h·Dh, (h+1)·Dh)``. Hugging Face BERT's separate
      ``query``/``key``/``value`` weights are concatenated in that order.
    * ``proj`` : ``nn.Linear(d_model, d_model)``, the output projection (torch ``out_proj``,
      timm ``attn.proj``, HF ``attention.output.dense``).

    Parameters
    ----------
    d_model : int
        Model width D; must be divisible by ``n_heads``.
    n_heads : int
        Number of heads H; head width ``Dh = D // H``.
    dropout : float
        Dropout on the attention weights (training only).
    bias : bool
        Whether the projections have biases.
    locality : bool
        Locality Self-Attention (Lee, Lee & Song 2021, §3.2): a learned temperature, one per
        head (as the authors' code), replaces ``1/√Dh``, and the diagonal of the score matrix is
        masked out (a token attends to the others only). The parameter ``scale`` (H,) is the
        inverse temperature ``1/τ_h``, initialised to ``1/√Dh`` (the standard scale: LSA starts
        where standard attention is, the diagonal aside); the scores are ``scale_h · q kᵀ``.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True,
                 locality: bool = False) -> None:
        super().__init__()
        for name, value in (("d_model", d_model), ("n_heads", n_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"argument `{name}` must be an integer >= 1; got {value!r}")
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"argument `dropout` must lie in [0, 1); got {dropout!r}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        # drawn from no generator: a seeded model draws the same numbers with or without it
        self.scale = nn.Parameter(torch.full((n_heads,), self.head_dim**-0.5)) if locality else None

    def forward(
        self, x: Tensor, mask: Tensor | RaggedBatch | None = None, need_weights: bool = False,
        n_queries: int | None = None, positions: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Self-attention over ``x``.

        Parameters
        ----------
        x : Tensor, float, shape (B, T, D)
        mask : Tensor, bool, shape (B, T) or (B, T, T), or RaggedBatch, optional
            True = may attend. A (B, T) mask marks real tokens (key padding); a (B, T, T)
            mask gives, per query, the keys it may attend to. With a
            :class:`~gicho.nn.ragged.RaggedBatch`, ``x`` is (1, N, D), the packed real tokens
            of a padded batch, and each sequence attends to itself (:func:`ragged_attention`).
        need_weights : bool
            Use the explicit path and return per-head weights; otherwise the fused kernel.
        n_queries : int, optional
            Compute the output of the first ``n_queries`` positions only (every position is
            still a key and a value): what a [CLS]-pooled model needs from its last layer.

        positions : Tensor, int64, shape (K,), optional
            Project the attention output of these positions only, indices into the flattened
            (B·T) positions (see :meth:`gicho.nn.transformer.TransformerEncoder.forward`);
            every position is still a query, key and value of the attention itself.

        Returns
        -------
        output : Tensor, shape (B, T, D), (B, n_queries, D), or (K, D) with ``positions``
        weights : Tensor, shape (B, H, T, T), or None when ``need_weights`` is False
        """
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (B, T, {self.d_model}); got {tuple(x.shape)}")
        B, T, D = x.shape
        if isinstance(mask, RaggedBatch):
            if need_weights or B != 1:
                raise ValueError("with a RaggedBatch, x must be the packed tokens (1, N, D) and "
                                 "need_weights False")
            qkv = packed_linear.linear(self.qkv, x).view(T, 3, self.n_heads, self.head_dim)  # (N, 3, H, Dh)
            out = ragged_attention(qkv, mask, dropout_p=self.dropout, training=self.training,
                                   locality_scale=self.scale)
            if positions is not None:
                return packed_linear.linear(self.proj, out.index_select(0, positions)), None  # (K, D)
            return packed_linear.linear(self.proj, out)[None], None  # (1, N, D)
        attn_mask = module_mask(mask, B, T, T)
        if attn_mask is not None:
            attn_mask = attn_mask[:, None]  # (B, 1, T|1, T): broadcast over heads
        if n_queries is not None and positions is not None:
            raise ValueError("give n_queries or positions, not both")
        if n_queries is not None and not need_weights:
            return self._first_queries(x, attn_mask, n_queries), None
        qkv = packed_linear.linear(self.qkv, x).view(B, T, 3, self.n_heads, self.head_dim)  # (B, T, 3, H, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 × (B, H, T, Dh)
        scale = None  # the default 1/√Dh
        if self.scale is not None:
            q, attn_mask = _locality(q, self.scale, attn_mask, T, T)
            scale = 1.0  # the learned scale is in q already
        out, weights = scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask,
            dropout_p=self.dropout,
            training=self.training,
            need_weights=need_weights,
            scale=scale,
        )  # (B, H, T, Dh)
        out = out.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        if positions is not None:  # the rows asked for, before the projection (K, D)
            return packed_linear.linear(self.proj, out.view(B * T, D).index_select(0, positions)), weights
        if n_queries is not None:  # the explicit path computed every row; keep the asked ones
            out = out[:, :n_queries]
        return packed_linear.linear(self.proj, out), weights

    def _first_queries(self, x: Tensor, attn_mask: Tensor | None, n: int) -> Tensor:
        """Attention output at the first ``n`` positions only: queries for those rows, keys and
        values for all (rows ``[0, D)`` of ``qkv`` project queries, ``[D, 3D)`` keys and values:
        the weights of the full path, so the same numbers)."""
        B, T, D = x.shape
        H, Dh = self.n_heads, self.head_dim
        q = _output_slice(self.qkv, x[:, :n], 0, D)  # (B, n, D)
        kv = _output_slice(self.qkv, x, D, 3 * D)  # (B, T, 2D)
        q = q.view(B, n, H, Dh).transpose(1, 2)  # (B, H, n, Dh)
        k, v = kv.view(B, T, 2, H, Dh).permute(2, 0, 3, 1, 4).unbind(0)  # 2 × (B, H, T, Dh)
        if attn_mask is not None and attn_mask.shape[-2] == T:
            attn_mask = attn_mask[..., :n, :]  # a per-query mask: the rows of the asked queries
        if self.scale is not None:  # LSA: the learned scale, and query i does not see key i
            q, attn_mask = _locality(q, self.scale, attn_mask, n, T)
            out, _ = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p=self.dropout,
                                                  training=self.training, need_weights=False, scale=1.0)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                                 dropout_p=self.dropout if self.training else 0.0)
        return packed_linear.linear(self.proj, out.transpose(1, 2).reshape(B, n, D))  # (B, n, D)


def _output_slice(linear: nn.Module, x: Tensor, start: int, stop: int) -> Tensor:
    """Output channels ``[start, stop)`` of ``linear`` at ``x``: an ``nn.Linear``'s rows of weights,
    or the layer's own ``forward_outputs`` (an int8 layer, :mod:`gicho.nn.quantized`)."""
    if isinstance(linear, nn.Linear):
        b = linear.bias
        return F.linear(x, linear.weight[start:stop], None if b is None else b[start:stop])
    return linear.forward_outputs(x, start, stop)
