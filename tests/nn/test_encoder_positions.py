"""``TransformerEncoder.forward(positions=...)``: the last layer computes the asked positions
only, and they equal those rows of the full pass (outputs and every gradient), on the padded
path, the unpadded (ragged) path and a path without padding; a padding position is zero as in
the full pass's unpadded output. Tolerances: float32 round-off of two summation orders
(GEMMs of other row counts), as in tests/nn/test_ragged.py.
"""

from __future__ import annotations

import pytest
import torch

from gicho.models.bert import BertConfig, BertForMaskedLM
from gicho.nn.transformer import TransformerEncoder

pytestmark = pytest.mark.usefixtures("single_torch_thread")

D, H, FF = 16, 4, 32


def _encoder(norm_first: bool) -> TransformerEncoder:
    torch.manual_seed(0)
    enc = TransformerEncoder(3, D, H, FF, dropout=0.0, norm_first=norm_first)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return enc.train()


def _run(enc, x, mask, positions):
    """States at ``positions`` and the gradients of a weighted sum of them."""
    enc.zero_grad()
    x = x.clone().requires_grad_(True)
    if positions is None:
        out = enc(x, mask).last_hidden_state
        out = out.reshape(-1, D)[POSITIONS]
    else:
        out = enc(x, mask, positions=positions).last_hidden_state
    w = torch.linspace(-1, 1, out.numel()).view_as(out)
    (out * w).sum().backward()
    return out, x.grad, {n: p.grad.clone() for n, p in enc.named_parameters()}


POSITIONS = torch.tensor([9, 0, 13, 2, 9, 20])  # unordered, repeated; (B·T) = 4 × 6 flat indices


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("kind", ["no padding", "ragged", "padded"])
def test_positions_equal_the_full_pass_rows(kind, norm_first):
    enc = _encoder(norm_first)
    x = torch.randn(4, 6, D, generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([6, 4, 5, 3])
    mask = None if kind == "no padding" else torch.arange(6)[None, :] < lengths[:, None]
    if kind == "padded":  # a (B, T, T) mask always takes the padded path
        mask = mask[:, None, :].expand(-1, 6, -1)
    rows_seen = []
    hook = enc.layers[-1].mlp.fc1.register_forward_hook(lambda m, args, out: rows_seen.append(args[0].shape[0]))
    out, gx, grads = _run(enc, x, mask, POSITIONS)
    hook.remove()
    ref, ref_gx, ref_grads = _run(enc, x, mask, None)
    assert out.shape == (len(POSITIONS), D)
    assert rows_seen == [len(POSITIONS)]  # the last layer's MLP ran on the asked rows only
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(gx, ref_gx, atol=2e-5, rtol=1e-5)
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], atol=5e-5, rtol=1e-4, msg=name)


def test_a_padding_position_is_zero_on_the_unpadded_path():
    enc = _encoder(False).eval()
    x = torch.randn(2, 5, D)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        out = enc(x, mask, positions=torch.tensor([3, 1, 7])).last_hidden_state
        full = enc(x, mask).last_hidden_state.reshape(-1, D)
    assert bool((out[0] == 0).all())
    torch.testing.assert_close(out[1:], full[[1, 7]], atol=2e-5, rtol=1e-5)


def test_positions_with_hidden_states_or_rows():
    enc = _encoder(True).eval()
    x = torch.randn(2, 5, D)
    with torch.no_grad():
        full = enc(x).last_hidden_state.reshape(-1, D)
        both = enc(x, positions=torch.tensor([4, 6]), output_hidden_states=True)
    torch.testing.assert_close(both.last_hidden_state, full[[4, 6]], atol=2e-5, rtol=1e-5)
    assert len(both.hidden_states) == 4 and both.hidden_states[-1].shape == (2, 5, D)
    with pytest.raises(ValueError, match="rows or positions, not both"):
        enc(x, rows=1, positions=torch.tensor([0]))
    with pytest.raises(ValueError, match="1-D int64"):
        enc(x, positions=torch.tensor([[0]]))
    with pytest.raises(ValueError, match=r"flat indices in \[0, B·T = 10\); got values in \[-1, 10\]"):
        enc(x, positions=torch.tensor([3, -1, 10]))


def test_mlm_loss_equals_the_loss_from_every_hidden_state():
    """BERT's MLM head takes the masked positions' states only: the same loss and gradients
    as projecting the full pass's states at those positions."""
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, d_ff=32,
                                       dropout=0.0, attention_dropout=0.0)).train()
    ids = torch.randint(5, 40, (3, 7))
    attention = torch.ones(3, 7, dtype=torch.long)
    attention[1, 5:] = 0
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 4], labels[2, 0], labels[2, 6] = 7, 8, 9, 10
    out = model(ids, attention, labels=labels)
    out["loss"].backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    hidden = model.forward_features(ids, attention).last_hidden_state.reshape(-1, 16)
    flat = labels.reshape(-1)
    where = (flat != -100).nonzero().squeeze(1)
    logits = model.lm_head(hidden[where], model.backbone.stem.word_embeddings.weight)
    ref = torch.nn.functional.cross_entropy(logits, flat[where])
    ref.backward()
    torch.testing.assert_close(out["loss"], ref, atol=1e-5, rtol=1e-5)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, dict(model.named_parameters())[name].grad, atol=2e-5, rtol=1e-4,
                                   msg=name)


def test_positions_of_an_encoder_without_layers():
    enc = TransformerEncoder(0, D, H, FF, norm_first=True).eval()
    x = torch.randn(2, 3, D)
    with torch.no_grad():
        out = enc(x, positions=torch.tensor([5, 0])).last_hidden_state
        full = enc(x).last_hidden_state.reshape(-1, D)
    torch.testing.assert_close(out, full[[5, 0]])


def test_positions_in_a_batch_of_padding_only_are_zero():
    enc = _encoder(False).eval()
    mask = torch.zeros(2, 3, dtype=torch.bool)
    with torch.no_grad():
        out = enc(torch.randn(2, 3, D), mask, positions=torch.tensor([1, 4])).last_hidden_state
        full = enc(torch.randn(2, 3, D), mask).last_hidden_state  # crashed in torch.cat before
    assert out.shape == (2, D) and bool((out == 0).all())
    assert full.shape == (2, 3, D) and bool((full == 0).all())
