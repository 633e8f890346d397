"""An int8 linear layer for CPU inference: int8 weights, int8 activations, int32 accumulation.

``y = x Wᵀ + b`` becomes, per row (token) ``t`` and output channel ``n``::

    s_t = max_k |x_tk / m_k| / 127          (per token, at run time; m: optional smoothing)
    q_t = round(x_t / (m s_t))               int8
    y_tn = s_t · w_n · Σ_k q_tk Q_nk + b_n   Q = round(W_nk m_k / w_n) int8, w_n its per-row scale

The integer product runs in :func:`torch._int_mm` (exact int32 sums; oneDNN's VNNI kernels on an
x86 CPU, about 4.5 times the float32 GEMM's speed on the 2-core development machine). Why per
token and per output channel rather than the one scale per tensor of
``torch.ao.quantization.quantize_dynamic``: a BERT's LayerNorm outputs have a few channels 10-15
times larger than the rest, and one scale for the whole batch (7-bit, as that function's
``reduce_range`` uses) leaves the ordinary channels a handful of levels. ``m`` (SmoothQuant,
Xiao et al. 2023, "SmoothQuant: accurate and efficient post-training quantization for large
language models", eq. 4: ``m_k = max|X_k|^α / max|W_k|^(1-α)``) moves part of those channels'
range into the weights, where it is fixed and cheap; it is folded into ``Q`` once.

Rows are processed in blocks (:data:`BLOCK_BYTES` of int32 products at a time), so the
intermediates (int8 rows, int32 products) stay in the cache and the heap recycles them instead of
mapping fresh pages from the kernel for every layer (see :mod:`gicho.nn.execution`).

The layer is for inference only: it has no parameters (buffers only) and refuses to run in
training mode.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["BLOCK_BYTES", "INT8_MAX", "Bf16Linear", "Int8Linear", "quantize_per_row"]

INT8_MAX = 127  # symmetric int8: levels -127..127 (-128 unused, so that negation is exact)
# int32 products per block of rows, in bytes: small enough to stay in a 1 MiB L2 cache with its
# inputs, large enough that the GEMM is efficient (blocks of 128-256 MiniLM rows timed fastest)
BLOCK_BYTES = 1 << 20
# the smallest per-row scale: an all-zero row quantizes to zeros instead of dividing by zero
_TINY = 1e-12


def quantize_per_row(x: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 quantization of each row of ``x`` (M, K) float.

    Returns
    -------
    q : Tensor, int8, shape (M, K)
        ``round(x / scale)`` in [-127, 127].
    scale : Tensor, float32, shape (M, 1)
        ``max |x_row| / 127`` (at least 1e-12), so ``q * scale`` ≈ ``x`` within ``scale / 2``.
    """
    scale = x.abs().amax(dim=-1, keepdim=True).float().div_(INT8_MAX).clamp_min_(_TINY)  # (M, 1)
    return torch.round(x / scale).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8), scale


class Int8Linear(nn.Module):
    """A ``nn.Linear`` (``in_features`` K → ``out_features`` N) with int8 weights, dynamic
    per-token int8 activations and a few outlier input channels in float32 (see the module
    docstring for the arithmetic and why).

    Build it with :meth:`from_linear`. Buffers: ``weight`` (N, K) int8 (zero in the outlier
    columns), ``weight_scale`` (N,) float32, ``bias`` (N,) float32 or None, ``input_multiplier``
    (K,) float32 (``1 / m``, 0 in the outlier channels), ``outlier_index`` (k,) int64 and
    ``outlier_weight`` (k, N) float32 (their weights' columns, transposed).
    """

    def __init__(self, weight: Tensor, weight_scale: Tensor, bias: Tensor | None, input_multiplier: Tensor,
                 outlier_index: Tensor, outlier_weight: Tensor) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight)
        self.register_buffer("weight_scale", weight_scale)
        self.register_buffer("bias", bias)
        self.register_buffer("input_multiplier", input_multiplier)
        self.register_buffer("outlier_index", outlier_index)
        self.register_buffer("outlier_weight", outlier_weight)
        self.train(False)  # inference only (see forward)

    @classmethod
    def from_linear(cls, linear: nn.Linear, input_absmax: Tensor | None = None, *, n_outliers: int = 0,
                    alpha: float | None = None) -> Int8Linear:
        """Quantize ``linear``'s weight per output channel (symmetric, absmax).

        Parameters
        ----------
        linear : nn.Linear
        input_absmax : Tensor, shape (in_features,), optional
            The largest |input| seen per input channel (on calibration inputs). Without it the
            layer has no outlier channels and no smoothing.
        n_outliers : int
            How many input channels (those of largest ``input_absmax``) stay in float32.
        alpha : float, optional
            SmoothQuant's migration strength in [0, 1] for the other channels; None: no smoothing.

        Raises
        ------
        ValueError
            ``alpha`` outside [0, 1], ``n_outliers`` outside [0, in_features), or
            ``input_absmax`` of another shape than (in_features,).
        """
        K = linear.in_features
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"argument `alpha` must lie in [0, 1]; got {alpha!r}")
        if not 0 <= n_outliers < K or (n_outliers and input_absmax is None):
            raise ValueError(f"argument `n_outliers` must lie in [0, {K}) (the input width), and needs "
                             f"`input_absmax`; got {n_outliers!r}")
        weight = linear.weight.detach().float()  # (N, K)
        multiplier = torch.ones(K)
        if input_absmax is not None:
            if input_absmax.shape != (K,):
                raise ValueError(f"argument `input_absmax` must have shape ({K},); got {tuple(input_absmax.shape)}")
            if alpha is not None:
                column_max = weight.abs().amax(dim=0).clamp_min(_TINY)  # (K,)
                m = input_absmax.float().clamp_min(_TINY) ** alpha / column_max ** (1 - alpha)  # (K,)
                multiplier = 1.0 / m.clamp_min(_TINY)
        index = (torch.empty(0, dtype=torch.long) if not n_outliers
                 else input_absmax.float().topk(n_outliers).indices.sort().values)  # (k,)
        outlier_weight = weight[:, index].t().contiguous()  # (k, N)
        multiplier[index] = 0.0  # those channels bypass the int8 product
        scaled = weight / multiplier.masked_fill(multiplier == 0, 1.0)  # (N, K): W m
        scaled[:, index] = 0.0
        q, scale = quantize_per_row(scaled)
        bias = None if linear.bias is None else linear.bias.detach().float().clone()
        return cls(q, scale.flatten(), bias, multiplier, index, outlier_weight)

    def forward(self, x: Tensor) -> Tensor:
        """(..., K) float → (..., N) float32."""
        if self.training:
            raise RuntimeError("Int8Linear is for inference only: call .eval() (an int8 model cannot be "
                               "trained; train the float32 model and convert it)")
        shape = x.shape
        x = x.reshape(-1, self.in_features)
        out = torch.empty(x.shape[0], self.out_features, dtype=torch.float32, device=x.device)
        rows = max(1, BLOCK_BYTES // (4 * max(self.out_features, self.in_features)))
        weight_t = self.weight.t()  # (K, N): the layout _int_mm expects (a view; timed as fast)
        for start in range(0, x.shape[0], rows):
            block = x[start:start + rows]
            q, scale = quantize_per_row(block * self.input_multiplier)  # (rows, K) int8, (rows, 1)
            y = torch.mul(torch._int_mm(q, weight_t), scale, out=out[start:start + rows])  # (rows, N)
            y.mul_(self.weight_scale)
            if self.bias is not None:
                y.add_(self.bias)
            if len(self.outlier_index):
                y.addmm_(block.index_select(1, self.outlier_index).float(), self.outlier_weight)
        return out.view(*shape[:-1], self.out_features)

    def forward_outputs(self, x: Tensor, start: int, stop: int) -> Tensor:
        """Output channels ``[start, stop)`` only (a fused projection's queries, say): (..., K) →
        (..., stop - start)."""
        part = Int8Linear(self.weight[start:stop], self.weight_scale[start:stop],
                          None if self.bias is None else self.bias[start:stop], self.input_multiplier,
                          self.outlier_index, self.outlier_weight[:, start:stop])
        return part(x)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, float32_channels={len(self.outlier_index)}")


class Bf16Linear(nn.Module):
    """A ``nn.Linear`` computed in bfloat16 (weights, bias and product), float32 in and out.

    What an int8 model keeps out of int8 where int8 costs too much accuracy (the MLP's second
    layer: see :mod:`gicho.models.precision`); only where the CPU has native bf16 arithmetic, since
    emulated bf16 is slower than float32. Inference only, like :class:`Int8Linear`.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.out_features, self.in_features = linear.weight.shape
        self.register_buffer("weight", linear.weight.detach().to(torch.bfloat16).clone())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().to(torch.bfloat16).clone())
        self.train(False)

    def forward(self, x: Tensor) -> Tensor:
        """(..., K) float → (..., N) float32."""
        if self.training:
            raise RuntimeError("Bf16Linear is for inference only: call .eval()")
        return nn.functional.linear(x.to(torch.bfloat16), self.weight, self.bias).float()

    def forward_outputs(self, x: Tensor, start: int, stop: int) -> Tensor:
        """Output channels ``[start, stop)`` only: (..., K) → (..., stop - start)."""
        bias = None if self.bias is None else self.bias[start:stop]
        return nn.functional.linear(x.to(torch.bfloat16), self.weight[start:stop], bias).float()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
