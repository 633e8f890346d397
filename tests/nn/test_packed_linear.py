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


def test_training_keeps_autograd_and_f_linear():
    torch.manual_seed(3)
    layer = nn.Linear(12, 6)
    x = torch.randn(5, 12, requires_grad=True)
    out = packed_linear.linear(layer, x, gelu=True)
    expected = F.gelu(F.linear(x, layer.weight, layer.bias))
    assert out.requires_grad and layer not in packed_linear._packed
    assert torch.equal(out, expected)
    out.sum().backward()
    grad = x.grad.clone()
    x.grad = None
    expected.sum().backward()
    assert torch.equal(grad, x.grad)


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
