"""The unpadded encoder path (gicho.nn.ragged) computes what the padded path computes.

``TransformerEncoder`` unpacks a (B, T) padding mask into a :class:`RaggedBatch` and runs its
layers on the real tokens only. The padded reference is the same encoder given the same mask
as a (B, T, T) mask (which always takes the padded path): outputs at real tokens and every
gradient must agree to float32 tolerance.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gicho.nn.ragged import RaggedBatch
from gicho.nn.transformer import TransformerEncoder

pytestmark = pytest.mark.usefixtures("single_torch_thread")

D, H, FF = 16, 4, 32


def _mask(lengths: list[int], T: int) -> torch.Tensor:
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)


def _encoder(norm_first: bool, seed: int = 0) -> TransformerEncoder:
    torch.manual_seed(seed)
    enc = TransformerEncoder(2, D, H, FF, dropout=0.0, norm_first=norm_first)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return enc.train()


def _run(enc: TransformerEncoder, x: torch.Tensor, mask: torch.Tensor, padded: bool):
    """Output and the gradients of a weighted sum over the real tokens."""
    enc.zero_grad()
    x = x.clone().requires_grad_(True)
    given_mask = mask[:, None, :].expand(-1, mask.shape[1], -1) if padded else mask  # (B, T, T) → padded path
    out = enc(x, given_mask).last_hidden_state  # (B, T, D)
    w = torch.linspace(-1, 1, out.numel()).view_as(out)
    (out * w)[mask].sum().backward()
    grads = {name: p.grad.clone() for name, p in enc.named_parameters()}
    return out, x.grad, grads


def _check_same(lengths: list[int], T: int, norm_first: bool, mask: torch.Tensor | None = None) -> None:
    enc = _encoder(norm_first)
    mask = _mask(lengths, T) if mask is None else mask
    x = torch.randn(len(lengths), T, D, generator=torch.Generator().manual_seed(1))
    out, gx, grads = _run(enc, x, mask, padded=False)
    ref, ref_gx, ref_grads = _run(enc, x, mask, padded=True)
    torch.testing.assert_close(out[mask], ref[mask], atol=2e-5, rtol=1e-5)
    assert (out[~mask] == 0).all()  # padding positions are zeros on the unpadded path
    torch.testing.assert_close(gx, ref_gx, atol=2e-5, rtol=1e-5)
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], atol=5e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("lengths", [[7, 3, 5, 1], [4, 7, 4, 2, 7, 4], [6, 0, 2]])
def test_unpadded_equals_padded(lengths, norm_first):
    """Mixed lengths, runs of equal lengths, a full row, a row with no real token."""
    _check_same(lengths, 7, norm_first)


@given(st.lists(st.integers(1, 12), min_size=1, max_size=5))
def test_unpadded_equals_padded_any_lengths(lengths):
    _check_same(lengths, max(12, max(lengths)), norm_first=False)


def test_mask_with_holes_and_left_padding():
    """Real tokens need not be a prefix: each row's real tokens attend to each other."""
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 0, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    _check_same([0, 0, 0], 6, norm_first=True, mask=mask)


def test_each_sequence_is_encoded_as_if_alone():
    """An independent reference: each sequence run by itself, with no padding and no mask."""
    enc = _encoder(norm_first=False).eval()
    lengths = [5, 2, 8, 5]
    x = torch.randn(4, 8, D)
    with torch.no_grad():
        out = enc(x, _mask(lengths, 8)).last_hidden_state
        for b, n in enumerate(lengths):
            alone = enc(x[b:b + 1, :n]).last_hidden_state[0]
            torch.testing.assert_close(out[b, :n], alone, atol=2e-5, rtol=1e-5)


def test_ragged_batch_packing():
    mask = _mask([3, 1, 3, 2], 4)
    ragged = RaggedBatch.from_mask(mask)
    assert ragged.groups == ((1, 1), (1, 2), (2, 3)) and ragged.n_tokens == 9
    # sorted by length (stable): row 1, row 3, rows 0 and 2; flattened positions b·T + t
    assert ragged.index.tolist() == [4, 12, 13, 0, 1, 2, 8, 9, 10]
    x = torch.randn(4, 4, 3)
    packed = ragged.pack(x)
    assert packed.shape == (1, 9, 3)
    back = ragged.unpack(packed)
    torch.testing.assert_close(back[mask], x[mask])
    assert (back[~mask] == 0).all()
    assert RaggedBatch.from_mask(torch.ones(2, 3, dtype=torch.bool)) is None  # nothing to unpad


def test_mask_without_padding_is_dropped():
    """An all-True mask takes the mask-free kernel: same output as no mask."""
    enc = _encoder(norm_first=True).eval()
    x = torch.randn(2, 5, D)
    with torch.no_grad():
        torch.testing.assert_close(enc(x, torch.ones(2, 5, dtype=torch.bool)).last_hidden_state,
                                   enc(x).last_hidden_state, atol=1e-6, rtol=0)
