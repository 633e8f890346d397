"""The patch embeddings of the ViT stem options: the convolutional stem (Xiao et al. 2021) and
Shifted Patch Tokenization (Lee, Lee & Song 2021) — shapes, the SPT patch vectors by hand,
gradients, and ``PatchStem``'s choice between them (the plain one unchanged)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gicho.nn import ConvPatchEmbedding, PatchEmbedding, PatchStem, ShiftedPatchEmbedding

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _images(channels: int = 2, size: int = 8) -> torch.Tensor:
    return torch.randn(3, channels, size, size, generator=torch.Generator().manual_seed(0))


def test_the_shifted_copies_move_the_image_towards_each_corner():
    spt = ShiftedPatchEmbedding(8, 4, 1, 16)
    assert spt.shift == 2
    image = torch.arange(64.0).reshape(1, 1, 8, 8)
    five = spt.shifted(image)  # (1, 5, 8, 8)
    assert five.shape == (1, 5, 8, 8)
    torch.testing.assert_close(five[:, 0], image[:, 0])
    padded = F.pad(image, (2, 2, 2, 2))[0, 0]  # zeros around
    # pixel (i, j) of each copy is pixel (i + dy, j + dx) of the image, zero outside it
    for copy, (dy, dx) in zip(five[0, 1:], ((-2, -2), (-2, 2), (2, -2), (2, 2)), strict=True):
        expected = padded[2 + dy:2 + dy + 8, 2 + dx:2 + dx + 8]
        torch.testing.assert_close(copy, expected)
    assert five[0, 1, 0, 0] == 0 and five[0, 1, 2, 2] == image[0, 0, 0, 0]  # top-left copy: moved down-right


def test_spt_patch_vectors_by_hand():
    C, P = 2, 2
    spt = ShiftedPatchEmbedding(8, P, C, 16).eval()
    assert spt.norm.normalized_shape == (5 * C * P * P,) and spt.proj.in_features == 5 * C * P * P
    x = _images(C)
    with torch.no_grad():
        tokens = spt(x)  # (B, N, D)
    assert tokens.shape == (3, 16, 16)
    five = spt.shifted(x)  # (B, 5C, H, W)
    assert five.shape == (3, 5 * C, 8, 8)
    # patch (row 1, column 2) is token 1 * 4 + 2; its vector: the 5C channels' P x P crops, channel-major
    vector = five[:, :, 2:4, 4:6].reshape(3, -1)  # (B, 5C·P²)
    with torch.no_grad():
        torch.testing.assert_close(tokens[:, 6], spt.proj(spt.norm(vector)), atol=1e-6, rtol=0)


def test_spt_needs_a_shift_of_a_pixel():
    with pytest.raises(ValueError, match="patch_size must be >= 2; got 1"):
        ShiftedPatchEmbedding(8, 1, 1, 16)


def test_the_conv_stem_keeps_the_grid_and_the_token_count():
    conv = ConvPatchEmbedding(8, 4, 2, 16)
    assert [m.kernel_size for m in conv.conv if isinstance(m, torch.nn.Conv2d)] == [(3, 3), (3, 3)]
    assert conv.conv[0].in_channels == 2 and conv.conv[2].out_channels == 8  # width d_model // 2
    assert conv.proj.in_channels == 8 and conv.proj.stride == (4, 4)
    x = _images(2)
    assert conv.conv(x).shape == (3, 8, 8, 8)  # stride 1, padding 1: H x W kept
    tokens = conv(x)
    assert tokens.shape == (3, 4, 16) and conv.n_patches == 4
    with torch.no_grad():
        expected = conv.proj(conv.conv(x)).flatten(2).transpose(1, 2)
    torch.testing.assert_close(tokens.detach(), expected)
    with pytest.raises(ValueError, match=r"images must have shape \(B, 2, H, W\)"):
        conv(_images(3))
    assert ConvPatchEmbedding(8, 4, 1, 16, width=5).conv[0].out_channels == 5


@pytest.mark.parametrize("kind", ["conv", "shifted"])
def test_every_stem_parameter_gets_a_gradient(kind):
    stem = PatchStem(8, 2, 1, 16, patch_embedding=kind, distillation=True)
    tokens, mask = stem(pixel_values=_images(1))
    assert mask is None and tokens.shape == (3, 2 + 16, 16)
    tokens.square().sum().backward()
    missing = [n for n, p in stem.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_the_plain_stem_is_unchanged_and_unknown_kinds_are_named():
    torch.manual_seed(0)
    stem = PatchStem(8, 4, 3, 16)
    assert type(stem.patch_embed) is PatchEmbedding
    assert list(stem.state_dict()) == ["cls_token", "patch_embed.proj.weight", "patch_embed.proj.bias",
                                       "pos_embed.weight"]
    with pytest.raises(ValueError, match=r"argument `patch_embedding` must be one of \('patch', 'conv', 'shifted'\)"):
        PatchStem(8, 4, 3, 16, patch_embedding="overlapping")
    with pytest.raises(ValueError, match="argument `distillation` needs a learned \\[CLS\\]"):
        PatchStem(8, 4, 3, 16, cls="none", distillation=True)
