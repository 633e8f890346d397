"""gicho.nn.packed_linear: oneDNN prepacked CPU inference computes what F.linear computes.

Tolerances come from the float32 GEMM's error bound, not from one machine's output: a dot
product of length K summed in float32 in any order is within K·u·Σ|x_i w_i| of the exact value
(u = 2⁻²⁴), against a float64 reference; GELU (slope ≤ 1.13) carries that error through and
adds a few units in the last place of its own.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gicho.nn import packed_linear
from gicho.nn.transformer import TransformerEncoder

pytestmark = pytest.mark.skipif(not packed_linear.available(), reason="torch built without oneDNN")

U = 2.0**-24


def _bound(x: torch.Tensor, layer: nn.Linear, gelu: bool) -> torch.Tensor:
    """Elementwise bound on |float32 result − exact|, from the GEMM's error model."""
    x64, w64 = x.double(), layer.weight.double()
    magnitude = x64.abs() @ w64.abs().T + (0 if layer.bias is None else layer.bias.double().abs())
    k = x.shape[-1] + 1
    bound = k * U * magnitude
    if gelu:
        exact = _reference(x, layer, gelu=True)
        bound = 1.13 * bound + 8 * U * exact.abs() + 8 * U
    return bound


def _reference(x: torch.Tensor, layer: nn.Linear, gelu: bool) -> torch.Tensor:
    bias = None if layer.bias is None else layer.bias.double()
    out = F.linear(x.double(), layer.weight.double(), bias)
    return F.gelu(out) if gelu else out


def _check(out: torch.Tensor, x: torch.Tensor, layer: nn.Linear, gelu: bool) -> None:
    error = (out.double() - _reference(x, layer, gelu)).abs()
    assert out.dtype == torch.float32 and out.shape == (*x.shape[:-1], layer.out_features)
    assert bool((error <= _bound(x, layer, gelu)).all()), float((error / _bound(x, layer, gelu)).max())


@pytest.mark.parametrize("gelu", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 48), (7, 48), (3, 100, 48)])
def test_packed_path_within_the_float32_gemm_bound(gelu, bias, shape):
    torch.manual_seed(0)
    layer = nn.Linear(48, 80, bias=bias)
    x = torch.randn(*shape)
    with torch.inference_mode():
        _check(packed_linear.linear(layer, x, gelu=gelu), x, layer, gelu)
        with packed_linear.enabled(False):  # and the plain path, within the same bound
            _check(packed_linear.linear(layer, x, gelu=gelu), x, layer, gelu)


def test_the_packed_path_is_taken_and_bypassed_on_request():
    layer = nn.Linear(8, 4)
    x = torch.randn(5, 8)
    with torch.inference_mode():
        packed_linear.linear(layer, x)
        assert layer in packed_linear._packed  # the weight was packed: the oneDNN path ran
        fresh = nn.Linear(8, 4)
        with packed_linear.enabled(False):
            out = packed_linear.linear(fresh, x)
        assert fresh not in packed_linear._packed
        assert torch.equal(out, F.linear(x, fresh.weight, fresh.bias))


def test_non_contiguous_input():
    torch.manual_seed(1)
    layer = nn.Linear(32, 16)
    x = torch.randn(32, 9).T  # (9, 32), strided
    with torch.no_grad():
        _check(packed_linear.linear(layer, x), x, layer, gelu=False)


def test_a_changed_weight_is_packed_again():
    """Inference between training steps: an in-place update (what an optimizer does) or a new
    weight tensor must not leave a stale packed copy."""
    torch.manual_seed(2)
    layer = nn.Linear(16, 8)
    x = torch.randn(4, 16)
    with torch.no_grad():
        packed_linear.linear(layer, x)
        layer.weight.mul_(-2.0)  # in place: same storage, new version
        _check(packed_linear.linear(layer, x), x, layer, gelu=False)
        layer.weight = nn.Parameter(torch.randn(8, 16))  # a new tensor
        _check(packed_linear.linear(layer, x), x, layer, gelu=False)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x).square().sum().backward()
    optimizer.step()
    with torch.no_grad():
        _check(packed_linear.linear(layer, x), x, layer, gelu=False)


def test_training_with_the_path_off_is_f_linear():
    torch.manual_seed(3)
    layer = nn.Linear(12, 6)
    x = torch.randn(5, 12, requires_grad=True)
    with packed_linear.enabled(False):
        out = packed_linear.linear(layer, x, gelu=True)
    expected = F.gelu(F.linear(x, layer.weight, layer.bias))
    assert torch.equal(out, expected)
    out.sum().backward()
    grad = x.grad.clone()
    x.grad = None
    expected.sum().backward()
    assert torch.equal(grad, x.grad)
    assert layer not in packed_linear._packed  # training never packs


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_other_dtypes_take_f_linear(dtype):
    layer = nn.Linear(8, 4).to(dtype)
    x = torch.randn(3, 8, dtype=dtype)
    with torch.no_grad():
        assert torch.equal(packed_linear.linear(layer, x), F.linear(x, layer.weight, layer.bias))
    assert layer not in packed_linear._packed


def test_a_weight_made_in_inference_mode_takes_f_linear():
    """Such a weight has no version counter: a change to it could not be noticed."""
    with torch.inference_mode():
        layer = nn.Linear(8, 4)
        x = torch.randn(3, 8)
        assert torch.equal(packed_linear.linear(layer, x), F.linear(x, layer.weight, layer.bias))
    assert layer not in packed_linear._packed


def test_a_hooked_layer_is_called_so_its_hooks_run():
    """Forward hooks (a probe, int8 calibration's activation record) must see every call."""
    layer = nn.Linear(8, 4)
    seen = []
    handle = layer.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    x = torch.randn(3, 8)
    with torch.no_grad():
        assert torch.equal(packed_linear.linear(layer, x), F.linear(x, layer.weight, layer.bias))
    x.requires_grad_()
    packed_linear.linear(layer, x, gelu=True)
    assert seen == [(3, 8), (3, 8)] and layer not in packed_linear._packed
    handle.remove()
    global_handle = nn.modules.module.register_module_forward_hook(lambda module, args, out: seen.append("global"))
    try:
        with torch.no_grad():
            packed_linear.linear(layer, x)
    finally:
        global_handle.remove()
    assert seen[-1] == "global"


def test_a_subclass_keeps_its_own_forward():
    class Doubled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    layer = Doubled(8, 4)
    x = torch.randn(3, 8)
    with torch.no_grad():
        assert torch.equal(packed_linear.linear(layer, x), 2 * F.linear(x, layer.weight, layer.bias))


def test_a_traced_graph_holds_no_onednn_op():
    """ONNX export traces the model: the graph must hold the portable linear."""
    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(8, 4)

        def forward(self, x):
            return packed_linear.linear(self.layer, x, gelu=True)

    with torch.no_grad():
        traced = torch.jit.trace(Wrapped().eval(), torch.randn(2, 8))
    graph = str(traced.graph)
    assert "mkldnn" not in graph and "linear" in graph


def test_deepcopy_after_packing():
    """The packed copy lives beside the module, not in it: copies and state dicts are unchanged."""
    layer = nn.Linear(8, 4)
    with torch.no_grad():
        packed_linear.linear(layer, torch.randn(2, 8))
    clone = copy.deepcopy(layer)
    assert set(clone.state_dict()) == {"weight", "bias"}
    x = torch.randn(3, 8)
    with torch.no_grad():
        _check(packed_linear.linear(clone, x), x, clone, gelu=False)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_inference_matches_the_plain_path(norm_first):
    """A whole stack (QKV, output projection, MLP with the fused GELU) against the same stack
    with the packed path off; both are float32 runs of the same arithmetic in another order."""
    torch.manual_seed(4)
    encoder = TransformerEncoder(2, 32, 4, 64, dropout=0.0, norm_first=norm_first).eval()
    x = torch.randn(3, 10, 32)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, 6:] = False
    with torch.inference_mode():
        fast = encoder(x, mask).last_hidden_state
        with packed_linear.enabled(False):
            plain = encoder(x, mask).last_hidden_state
        reference = encoder.double()(x.double(), mask).last_hidden_state
    # both float32 passes are within the same distance of the float64 pass
    plain_error = (plain.double() - reference).abs().max()
    assert (fast.double() - reference).abs().max() <= 4 * plain_error + 1e-6


@pytest.mark.parametrize("gelu", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("length", [30, 1100])  # 60 rows: MKL's input gradient; 2200: oneDNN's
def test_training_path_matches_f_linear_values_and_gradients(gelu, bias, length):
    """With autograd on, the oneDNN forward and input gradient (and MKL's weight gradient) are
    float32 GEMMs of the same products: each within the GEMM bound of a float64 autograd pass."""
    torch.manual_seed(5)
    layer = nn.Linear(40, 24, bias=bias)
    x = torch.randn(2, length, 40, requires_grad=True)
    rows = 2 * length
    assert (rows >= packed_linear._ONEDNN_GRAD_ROWS) == (length == 1100)
    out = packed_linear.linear(layer, x, gelu=gelu)
    assert out.requires_grad and out.grad_fn is not None
    _check(out.detach(), x.detach(), layer, gelu)
    upstream = torch.randn(out.shape)
    out.backward(upstream)
    # float64 autograd reference
    x64 = x.detach().double().requires_grad_()
    w64 = layer.weight.detach().double().requires_grad_()
    b64 = None if layer.bias is None else layer.bias.detach().double().requires_grad_()
    ref = F.linear(x64, w64, b64)
    (F.gelu(ref) if gelu else ref).backward(upstream.double())
    # each gradient is a float32 sum of products whose magnitudes bound its error
    g = upstream.double().abs()
    if gelu:
        g = 1.13 * g
    grad_x_bound = (24 + 1) * U * (g @ w64.detach().abs()) + 1e-7
    grad_w_bound = (rows + 1) * U * (g.reshape(-1, 24).T @ x64.detach().abs().reshape(-1, 40)) + 1e-7
    assert bool(((x.grad.double() - x64.grad).abs() <= grad_x_bound + 8 * U * x64.grad.abs()).all())
    assert bool(((layer.weight.grad.double() - w64.grad).abs() <= grad_w_bound + 8 * U * w64.grad.abs()).all())
    if bias:
        assert torch.allclose(layer.bias.grad.double(), b64.grad, rtol=0, atol=float((rows + 1) * U * g.sum(dim=(0, 1)).max()) + 1e-7)


def test_tied_weight_trains_through_linear_weight():
    """A decoder tied to an embedding matrix (no nn.Linear) gets its gradient on the shared
    weight, within the GEMM bound of a float64 pass."""
    torch.manual_seed(6)
    embedding = nn.Embedding(50, 16)
    bias = nn.Parameter(torch.randn(50))
    h = torch.randn(7, 16, requires_grad=True)
    logits = packed_linear.linear_weight(h, embedding.weight, bias)
    assert logits.grad_fn is not None
    w64 = embedding.weight.detach().double().requires_grad_()
    reference = F.linear(h.detach().double(), w64, bias.detach().double())
    bound = 17 * U * (h.detach().double().abs() @ w64.detach().abs().T + bias.detach().double().abs())
    assert bool(((logits.detach().double() - reference).abs() <= bound).all())
    upstream = torch.randn(7, 50)
    logits.backward(upstream)
    reference.backward(upstream.double())
    grad_bound = 8 * U * (upstream.double().abs().T @ h.detach().double().abs())
    assert bool(((embedding.weight.grad.double() - w64.grad).abs() <= grad_bound).all())
    with torch.no_grad():  # inference: the same op, no autograd
        again = packed_linear.linear_weight(h, embedding.weight, bias)
    assert bool(((again.double() - reference.detach()).abs() <= bound).all())


def test_autocast_keeps_f_linear():
    layer = nn.Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = packed_linear.linear(layer, x)
    assert out.dtype == torch.bfloat16  # what F.linear gives under autocast
