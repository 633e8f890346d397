"""CPU inference precisions for the Transformer families (BERT, ViT): ``fp32``, ``bf16``, ``int8``.

:func:`to_precision` converts a loaded model in place (``from_pretrained(..., precision=...)``
calls it). Only the encoder stack changes (its layers and final norm); the stem and the heads
stay float32, and the outputs are float32 in every mode.

* ``bf16``: the encoder's weights and activations in bfloat16, where the CPU has native bf16
  arithmetic (AVX512-BF16 or AMX-BF16; refused otherwise, with the reason: emulated bf16 is
  slower than float32).
* ``int8``: every linear layer of the encoder but the MLP's second (``FLOAT_LAYERS``) becomes a
  :class:`gicho.nn.quantized.Int8Linear` (int8 weights per output channel, int8 activations per
  token, int32 sums in :func:`torch._int_mm`), with the ``N_OUTLIERS`` input channels of largest
  magnitude kept in float32 and SmoothQuant (``ALPHA``) on the others; the MLP's second layer
  runs in bf16 (:class:`gicho.nn.quantized.Bf16Linear`) where the CPU has native bf16, else in
  float32.

Why this int8 recipe (measured on all-MiniLM-L6-v2, minimum cosine of the sentence embeddings
with float32's over 256 Rotten Tomatoes rows (every 53rd from offset 0); in brackets the worst of
four such disjoint samples and of the 128 rows of ``tests/models/test_precision.py``):

====================================================================  ================
scheme                                                                min cos
====================================================================  ================
``torch.ao.quantization.quantize_dynamic`` (per tensor, 7-bit inputs)  0.846
int8 weights per channel, float inputs (weight-only)                  0.9989
per-channel weights, per-token inputs                                 0.985
  + SmoothQuant α = 0.5 on every layer                                0.995
  + 32 float32 outlier channels, no smoothing                         0.9990
  + 32 float32 outlier channels, SmoothQuant on qkv and fc1           0.9990 (0.9980)
    + fc2 with 256 float32 channels                                   0.9992 (0.9985)
    + fc2: per-token scales per group of 384 channels, none float32   0.9991 (0.9973)
    + fc2 in float32 in the last 3 layers only                        0.9993 (0.9989)
    + fc2 in float32                                                  0.9997 (0.9995)
    + fc2 in bf16 (this)                                              0.9997 (0.9995)
bf16 (for comparison)                                                 0.9999
====================================================================  ================

(Mean cosine of this recipe: 0.9999, against 0.9996 with fc2 in int8. fc2's inputs are GELU
outputs, 1536 wide, whose large values move from token to token: there are no fixed channels to
keep in float32, and one scale per token leaves the rest few levels. fc2 is a third of the
encoder's multiply-adds; bf16 runs it at about 1.8 times float32's speed where the CPU has it. Speed:
``benchmarks/cpu_inference_deploy.py``.)

MiniLM's LayerNorm outputs carry a few channels 10-15 times larger than the median (the same
channels whatever the text): one scale per token leaves the other channels a few levels, and
those channels' weight columns also set each weight row's scale. Computing them in float32 (a
(rows, 32) × (32, N) product added to the int8 one, after LLM.int8(), Dettmers et al. 2022)
removes both problems; SmoothQuant then evens out the rest. Which channels: the largest |input|
over a calibration pass on *random* inputs (token ids drawn from the vocabulary; uniform pixels),
because outlier channels are a property of the weights, not of the text: random and real
sentences pick nearly the same channels and give the same cosine (0.9990 both, k = 16). So the
conversion needs no data. Bias correction from the calibration means made it worse (0.9989).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from gicho.nn.quantized import Bf16Linear, Int8Linear
from gicho.nn.stems import PatchStem, TokenStem

__all__ = ["ALPHA", "FLOAT_LAYERS", "N_OUTLIERS", "PRECISIONS", "SMOOTHED", "Precision", "bf16_refusal",
           "check_precision", "to_precision"]

Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
N_OUTLIERS = 32  # input channels per linear layer kept in float32 (at most a quarter of its inputs)
ALPHA = 0.5  # SmoothQuant's migration strength for the int8 channels of SMOOTHED layers
# the layers whose inputs are LayerNorm outputs (outlier channels); smoothing the others (the
# attention's output projection, the MLP's second layer) measured worse on MiniLM
SMOOTHED = ("qkv", "fc1")
# the layers kept out of int8 (bf16 where the CPU has native bf16, else float32): the MLP's second
# layer, whose inputs (GELU outputs, 4x wider) have no fixed outlier channels to keep in float32;
# it held the minimum cosine under 0.999 (see the module docstring)
FLOAT_LAYERS = ("fc2",)
# the calibration pass: random inputs, this many sequences (images) of this many tokens
CALIBRATION_BATCH, CALIBRATION_TOKENS = 32, 64
_CALIBRATION_SEED = 0


def check_precision(precision: Any) -> str:
    """``precision`` itself if it is one of :data:`PRECISIONS`; else a ``ValueError`` naming it."""
    if precision not in PRECISIONS:
        raise ValueError(f"argument `precision` must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision


def bf16_refusal() -> str | None:
    """Why this CPU cannot run ``bf16`` fast (None: it can).

    PyTorch runs bfloat16 on any x86 CPU, but without AVX512-BF16 or AMX-BF16 each product is
    emulated (widened to float32 and rounded back), which is slower than float32 itself.
    """
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    if caps.get("avx512_bf16") or caps.get("amx_bf16"):
        return None
    found = caps.get("cpu_name") or "this CPU"
    return (f"precision 'bf16' needs a CPU with native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16); "
            f"{found} has neither, so bf16 would be emulated and slower than fp32: use 'fp32' or 'int8'")


def to_precision(model: nn.Module, precision: str, *, calibration: list[dict[str, Tensor]] | None = None) -> nn.Module:
    """Convert ``model`` (a gicho BERT or ViT, in eval mode) to ``precision`` in place; returns it.

    Parameters
    ----------
    model : PretrainedModel
        A BERT or ViT (a family whose ``precisions`` lists ``precision``).
    precision : {"fp32", "bf16", "int8"}
    calibration : list of dict, optional
        ``int8`` only: batches of the stem's inputs (``input_ids``, ``pixel_values``) whose
        per-channel maxima choose the outlier channels; default: random inputs (see the module
        docstring).

    Raises
    ------
    ValueError
        An unknown ``precision``, or one that the model's family does not list in its
        ``precisions`` (bf16 and int8: BERT and ViT); a model already converted.
    RuntimeError
        ``bf16`` on a CPU without native bf16 (the message says why).
    """
    check_precision(precision)
    if precision == "fp32":
        return model
    allowed = getattr(type(model), "precisions", ("fp32",))
    if precision not in allowed:
        raise ValueError(f"argument `precision` is {precision!r}, but a {type(model).__name__} runs in "
                         f"{', '.join(allowed)} only (bf16 and int8: the BERT and ViT families)")
    backbone = model.backbone
    if getattr(model, "precision", "fp32") != "fp32":
        raise ValueError(f"this {type(model).__name__} is already in precision {model.precision!r}; "
                         f"convert a float32 model")
    model.eval()
    if precision == "bf16":
        reason = bf16_refusal()
        if reason is not None:
            raise RuntimeError(reason)
        _to_bf16(backbone.encoder)
    else:
        _to_int8(backbone, calibration)
    model.precision = precision
    return model


def _to_bf16(encoder: nn.Module) -> None:
    """The encoder's weights in bf16; its input cast to bf16, its outputs back to float32."""
    encoder.to(torch.bfloat16)

    def cast_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (args[0].to(torch.bfloat16), *args[1:])

    def cast_output(module: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
        out.last_hidden_state = out.last_hidden_state.float()
        if out.hidden_states is not None:
            out.hidden_states = tuple(h.float() for h in out.hidden_states)
        if out.attentions is not None:
            out.attentions = tuple(a.float() for a in out.attentions)
        return out

    encoder.register_forward_pre_hook(cast_input)
    encoder.register_forward_hook(cast_output)


def _to_int8(backbone: nn.Module, calibration: list[dict[str, Tensor]] | None) -> None:
    """Each ``nn.Linear`` of the encoder → :class:`Int8Linear`, outliers from a calibration pass."""
    linears = {name: module for name, module in backbone.encoder.named_modules() if isinstance(module, nn.Linear)}
    absmax = _input_absmax(backbone, linears, calibration or _random_inputs(backbone.stem))
    native_bf16 = bf16_refusal() is None
    for name, linear in linears.items():
        parent_name, _, child = name.rpartition(".")
        parent = backbone.encoder.get_submodule(parent_name)
        if child in FLOAT_LAYERS:
            if native_bf16:
                setattr(parent, child, Bf16Linear(linear))
            continue
        k = min(N_OUTLIERS, linear.in_features // 4)
        alpha = ALPHA if child in SMOOTHED else None
        setattr(parent, child, Int8Linear.from_linear(linear, absmax[name], n_outliers=k, alpha=alpha))


def _input_absmax(backbone: nn.Module, linears: dict[str, nn.Linear],
                  batches: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The largest |input| per channel of each linear layer over ``batches``: (in_features,) each."""
    absmax = {name: torch.zeros(linear.in_features) for name, linear in linears.items()}

    def record(name: str):
        def hook(module: nn.Module, args: tuple[Tensor, ...]) -> None:
            x = args[0].detach().reshape(-1, module.in_features).abs().amax(dim=0).float()
            torch.maximum(absmax[name], x, out=absmax[name])
        return hook

    handles = [linear.register_forward_pre_hook(record(name)) for name, linear in linears.items()]
    try:
        with torch.inference_mode():
            for batch in batches:
                backbone.forward_features(**batch)
    finally:
        for handle in handles:
            handle.remove()
    return absmax


def _random_inputs(stem: nn.Module) -> list[dict[str, Tensor]]:
    """One batch of random inputs for ``stem``: token ids from the vocabulary, or uniform pixels."""
    g = torch.Generator().manual_seed(_CALIBRATION_SEED)
    if isinstance(stem, TokenStem):
        vocab = stem.word_embeddings.num_embeddings
        low = min(1000, vocab // 2)  # past BERT's special and unused tokens when there are that many
        T = min(CALIBRATION_TOKENS, stem.max_len)
        return [{"input_ids": torch.randint(low, vocab, (CALIBRATION_BATCH, T), generator=g)}]
    if isinstance(stem, PatchStem):
        embed = stem.patch_embed
        shape = (CALIBRATION_BATCH // 2, embed.in_channels, embed.image_size, embed.image_size)
        return [{"pixel_values": torch.rand(shape, generator=g) * 2 - 1}]  # the processor's [-1, 1]
    raise ValueError(f"no random calibration inputs for a {type(stem).__name__}; pass `calibration` batches")
