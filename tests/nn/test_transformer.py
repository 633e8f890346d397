"""Tests for gicho.nn.transformer: parity with torch.nn.TransformerEncoderLayer, masks, outputs."""

from __future__ import annotations

import pytest
import torch

from gicho.nn.transformer import TransformerEncoder, TransformerEncoderLayer

D, H, FF = 16, 4, 32


def _torch_layer_from(ours: TransformerEncoderLayer, norm_first: bool) -> torch.nn.Module:
    ref = torch.nn.TransformerEncoderLayer(
        D, H, FF, dropout=0.0, activation="gelu", batch_first=True, norm_first=norm_first
    )
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(ours.attn.qkv.weight)
        ref.self_attn.in_proj_bias.copy_(ours.attn.qkv.bias)
        ref.self_attn.out_proj.weight.copy_(ours.attn.proj.weight)
        ref.self_attn.out_proj.bias.copy_(ours.attn.proj.bias)
        ref.linear1.load_state_dict(ours.mlp.fc1.state_dict())
        ref.linear2.load_state_dict(ours.mlp.fc2.state_dict())
        ref.norm1.load_state_dict(ours.norm1.state_dict())
        ref.norm2.load_state_dict(ours.norm2.state_dict())
    return ref.eval()


def _randomise_norms(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("need_weights", [False, True])
def test_layer_parity_with_torch(norm_first, need_weights):
    torch.manual_seed(0)
    ours = TransformerEncoderLayer(D, H, FF, dropout=0.1, norm_first=norm_first)
    _randomise_norms(ours)
    ours.eval()
    ref = _torch_layer_from(ours, norm_first)
    x = torch.randn(3, 7, D)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    mask[2, 2:] = False
    out, weights = ours(x, mask, need_weights=need_weights)
    with torch.no_grad():
        expected = ref(x, src_key_padding_mask=~mask)
    # torch's fast path leaves padded query rows as zeros when it takes the nested-tensor path;
    # compare the real tokens, where both definitions agree.
    torch.testing.assert_close(out[mask], expected[mask], atol=1e-5, rtol=0)
    assert (weights is not None) == need_weights
    if need_weights:
        assert weights.shape == (3, H, 7, 7)


def test_encoder_outputs_and_final_norm():
    torch.manual_seed(0)
    enc = TransformerEncoder(3, D, H, FF, dropout=0.0, norm_first=True).eval()
    x = torch.randn(2, 5, D)
    out = enc(x, output_attentions=True, output_hidden_states=True)
    assert len(out.hidden_states) == 4 and len(out.attentions) == 3
    assert out.hidden_states[0] is x
    torch.testing.assert_close(out.last_hidden_state, enc.norm(out.hidden_states[-1]))
    # layer by layer equals the stack; fused (no attentions) equals explicit
    h = x
    for layer in enc.layers:
        h, _ = layer(h)
    torch.testing.assert_close(out.hidden_states[-1], h, atol=1e-6, rtol=0)
    plain = enc(x)
    assert plain.attentions is None and plain.hidden_states is None
    torch.testing.assert_close(plain.last_hidden_state, out.last_hidden_state, atol=1e-6, rtol=0)
    post = TransformerEncoder(2, D, H, FF, norm_first=False)
    assert isinstance(post.norm, torch.nn.Identity)


def test_stack_parity_with_torch_encoder():
    torch.manual_seed(1)
    ours = TransformerEncoder(2, D, H, FF, dropout=0.0, norm_first=False).eval()
    _randomise_norms(ours)
    layer = torch.nn.TransformerEncoderLayer(
        D, H, FF, dropout=0.0, activation="gelu", batch_first=True
    )
    ref = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    for ref_layer, our_layer in zip(ref.layers, ours.layers, strict=True):
        ref_layer.load_state_dict(_torch_layer_from(our_layer, False).state_dict())
    x = torch.randn(2, 6, D)
    with torch.no_grad():
        torch.testing.assert_close(ours(x).last_hidden_state, ref(x), atol=1e-5, rtol=0)


def test_dropout_active_only_in_training():
    torch.manual_seed(0)
    enc = TransformerEncoder(1, D, H, FF, dropout=0.5, attention_dropout=0.5)
    x = torch.randn(2, 5, D)
    enc.train()
    a, b = enc(x).last_hidden_state, enc(x).last_hidden_state
    assert not torch.allclose(a, b)
    enc.eval()
    torch.testing.assert_close(enc(x).last_hidden_state, enc(x).last_hidden_state)


def test_padding_tokens_do_not_affect_real_tokens():
    torch.manual_seed(0)
    enc = TransformerEncoder(2, D, H, FF, dropout=0.0).eval()
    x = torch.randn(1, 4, D)
    padded = torch.cat([x, torch.randn(1, 3, D) * 100], dim=1)
    mask = torch.tensor([[True] * 4 + [False] * 3])
    torch.testing.assert_close(
        enc(padded, mask).last_hidden_state[:, :4], enc(x).last_hidden_state, atol=1e-5, rtol=0
    )


def test_errors():
    with pytest.raises(ValueError, match="d_model=10 must be divisible by n_heads=3"):
        TransformerEncoderLayer(10, 3, 20)
    enc = TransformerEncoder(1, D, H, FF)
    with pytest.raises(ValueError, match=r"mask must have shape \(B, Tk\) = \(2, 5\)"):
        enc(torch.randn(2, 5, D), torch.ones(2, 6, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean tensor"):
        enc(torch.randn(2, 5, D), torch.ones(2, 5))


@pytest.mark.parametrize("norm_first", [False, True])
def test_inference_in_place_path_equals_the_autograd_path(norm_first):
    """Without autograd, GELU and the residual adds run in place; the values are the same."""
    torch.manual_seed(0)
    enc = TransformerEncoder(2, D, H, FF, dropout=0.0, norm_first=norm_first)
    _randomise_norms(enc)
    x = torch.randn(3, 6, D)
    tracked = enc(x.clone().requires_grad_(True)).last_hidden_state  # autograd: out-of-place ops
    assert tracked.requires_grad
    with torch.inference_mode():
        fast = enc(x).last_hidden_state
    torch.testing.assert_close(fast, tracked.detach(), atol=1e-6, rtol=0)
    h = torch.randn(4, D)
    with torch.no_grad():
        torch.testing.assert_close(enc.layers[0].mlp(h), enc.layers[0].mlp.fc2(torch.nn.functional.gelu(
            enc.layers[0].mlp.fc1(h))), atol=1e-6, rtol=0)


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("mask_kind", ["none", "padding", "per-query"])
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_last_layer_on_the_first_rows_equals_the_full_stack(norm_first, mask_kind, n_outputs):
    # The [CLS]-only fast path: the last layer computes only the first rows. Its outputs and
    # every gradient must be those of the full stack's first rows.
    torch.manual_seed(0)
    enc = TransformerEncoder(3, 16, 4, 32, dropout=0.0, norm_first=norm_first).eval()
    x = torch.randn(3, 7, 16)
    mask = {"none": None,
            "padding": torch.tensor([[True] * 7, [True] * 4 + [False] * 3, [True] * 6 + [False]]),
            "per-query": torch.rand(3, 7, 7) > 0.3}[mask_kind]
    if mask is not None and mask.ndim == 3:
        mask[:, torch.arange(7), torch.arange(7)] = True  # every query may attend to itself
    weights = torch.randn(3, n_outputs, 16)
    grads = []
    for fast in (False, True):
        enc.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = enc(xi, mask, rows=n_outputs if fast else None).last_hidden_state
        first = out if fast else out[:, :n_outputs]
        assert first.shape == (3, n_outputs, 16)
        (first * weights).sum().backward()  # not a norm: LayerNorm makes that ~constant
        grads.append((first.detach(), xi.grad.clone(),
                      [p.grad.clone() for p in enc.parameters()]))
    (full, gx_full, gp_full), (fast, gx_fast, gp_fast) = grads
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gx_fast, gx_full, rtol=1e-5, atol=1e-6)
    for a, b in zip(gp_fast, gp_full, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the in-place inference path too
        torch.testing.assert_close(enc(x, mask, rows=n_outputs).last_hidden_state, full,
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("mask_kind", ["none", "no-padding", "per-query"])
@pytest.mark.parametrize("outputs", ["last", "hidden+attentions", "first-rows"])
def test_inference_in_chunks_equals_the_whole_batch(monkeypatch, norm_first, mask_kind, outputs):
    # The CPU inference fast path runs the stack over a few sequences at a time. Every output
    # (last state, per-layer states, attention maps, the first rows only) must be that of the
    # whole batch in one pass, which is what autograd mode computes.
    from gicho.nn import transformer

    torch.manual_seed(1)
    enc = TransformerEncoder(2, D, H, FF, dropout=0.0, norm_first=norm_first).eval()
    _randomise_norms(enc)
    x = torch.randn(7, 5, D)
    mask = {"none": None, "no-padding": torch.ones(7, 5, dtype=torch.bool),
            "per-query": torch.rand(7, 5, 5) > 0.3}[mask_kind]
    if mask is not None and mask.ndim == 3:
        mask[:, torch.arange(5), torch.arange(5)] = True
    kwargs = {"last": {}, "first-rows": {"rows": 1},
              "hidden+attentions": {"output_hidden_states": True, "output_attentions": True}}[outputs]
    whole = enc(x, mask, **kwargs)  # grad mode: never chunked
    # a budget for 3 sequences (the widest intermediate is the fused QKV, 3 D floats per
    # token): 7 sequences then run as 3 + 3 + 1
    monkeypatch.setattr(transformer, "INFERENCE_CHUNK_BYTES", 3 * 5 * 3 * D * 4)
    calls = []
    original = TransformerEncoder._padded
    monkeypatch.setattr(TransformerEncoder, "_padded",
                        lambda self, x, *a: calls.append(x.shape[0]) or original(self, x, *a))
    with torch.inference_mode():
        chunked = enc(x, mask, **kwargs)
    assert calls == [3, 3, 1]
    torch.testing.assert_close(chunked.last_hidden_state, whole.last_hidden_state.detach(), rtol=1e-5, atol=1e-6)
    for name in ("hidden_states", "attentions"):
        got, want = getattr(chunked, name), getattr(whole, name)
        assert (got is None) == (want is None)
        for a, b in zip(got or (), want or (), strict=True):
            torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)


def test_inference_chunks_only_without_autograd_on_the_cpu(monkeypatch):
    from gicho.nn import transformer

    enc = TransformerEncoder(1, D, H, FF)
    x = torch.randn(8, 4, D)
    monkeypatch.setattr(transformer, "INFERENCE_CHUNK_BYTES", 2 * 4 * 3 * D * 4)  # 2 sequences (QKV is widest)
    assert transformer.inference_chunk(x, enc.layers[0]) is None  # autograd on
    with torch.no_grad():
        assert transformer.inference_chunk(x, enc.layers[0]) == 2
        assert transformer.inference_chunk(x[:2], enc.layers[0]) is None  # fits in one chunk
        assert transformer.inference_chunk(x.to("meta"), enc.layers[0]) is None  # not the CPU


class _LastState(torch.nn.Module):
    def __init__(self, enc: TransformerEncoder) -> None:
        super().__init__()
        self.enc = enc

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.enc(x, mask).last_hidden_state


def test_a_traced_stack_takes_the_padded_path_for_any_batch_and_padding(monkeypatch):
    # Unpadding and chunking decide from the data (lengths, batch size), which a tracer would
    # record as constants: traced on an unpadded batch, the graph would drop the mask, and
    # traced on a padded one it would keep that batch's lengths. Under tracing (the ONNX
    # export) the stack runs the plain padded pass, whose graph holds for every batch.
    import warnings

    from gicho.nn import transformer

    torch.manual_seed(2)
    enc = TransformerEncoder(2, D, H, FF, dropout=0.0).eval()
    _randomise_norms(enc)
    monkeypatch.setattr(transformer, "INFERENCE_CHUNK_BYTES", 2 * 4 * 3 * D * 4)  # would chunk by 2
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the shape checks, constant here
        traced = torch.jit.trace(_LastState(enc), (torch.randn(3, 4, D), torch.ones(3, 4, dtype=torch.bool)))
        x = torch.randn(5, 6, D)
        mask = torch.arange(6) < torch.tensor([6, 2, 4, 6, 1])[:, None]  # (5, 6), padded
        want = enc(x, mask).last_hidden_state  # eager: unpadded (zeros at padding)
        got = traced(x, mask)
    torch.testing.assert_close(got[mask], want[mask], rtol=1e-5, atol=1e-6)
