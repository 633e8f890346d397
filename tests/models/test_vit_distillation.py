"""ViT with DeiT's distillation token (``ViTConfig(distillation=True)``): shapes, pooling, the
loss, checkpoints in Hugging Face's DeiT layout (parity with ``transformers`` both ways), the
refusal of a mean-pooled one, timm's names, rollout and position interpolation."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.nn.functional as F

from gicho.models import from_pretrained
from gicho.models._hf import VIT_TIMM
from gicho.models.vit import ViTConfig, ViTForImageClassification, ViTModel, interpolate_pos_embed

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytestmark = pytest.mark.usefixtures("single_torch_thread")

TINY = {"image_size": 8, "patch_size": 2, "in_channels": 1, "d_model": 16, "n_layers": 2, "n_heads": 2,
        "d_ff": 32, "n_labels": 3}
ATOL = 1e-5


def _model(cls=ViTForImageClassification, **fields):
    torch.manual_seed(0)
    model = cls(ViTConfig(**{**TINY, "distillation": True, **fields}))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # LayerNorms and biases off their defaults too
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


def _pixels(batch=3):
    return torch.randn(batch, 1, 8, 8, generator=torch.Generator().manual_seed(2))


def _transformers():
    return pytest.importorskip("transformers")


def test_two_prefix_tokens_and_the_outputs():
    model = _model()
    stem = model.backbone.stem
    assert stem.num_prefix_tokens == model.config.num_prefix_tokens == 2
    assert stem.dist_token.shape == (1, 1, 16) and stem.pos_embed.weight.shape == (16 + 2, 16)
    x = _pixels()
    with torch.no_grad():
        hidden = model.forward_features(x).last_hidden_state  # (B, 2 + N, D)
        out = model(x, output_attentions=True)
        fast = model(x)  # pool="cls": the last layer computes the two prefix rows only
    assert hidden.shape == (3, 18, 16)
    cls_logits = model.head(hidden[:, 0])
    dist_logits = model.head_dist(hidden[:, 1])
    torch.testing.assert_close(out["cls_logits"], cls_logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(out["distillation_logits"], dist_logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(out["logits"], (cls_logits + dist_logits) / 2, atol=1e-6, rtol=0)
    for key in ("logits", "cls_logits", "distillation_logits"):
        torch.testing.assert_close(fast[key], out[key], atol=1e-6, rtol=0)
    assert [a.shape for a in out["attentions"]] == [(3, 2, 18, 18)] * 2
    encoder = ViTModel(model.config)
    assert encoder.head_dist is None and "head_dist.weight" not in encoder.state_dict()


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_pooling_skips_both_prefix_tokens(pool):
    model = _model(pool=pool)
    x = _pixels()
    with torch.no_grad():
        hidden = model.forward_features(x).last_hidden_state
        patches = hidden[:, 2:]
        expected = patches.mean(1) if pool == "mean" else patches.amax(1)
        torch.testing.assert_close(model.embed(x), expected, atol=1e-6, rtol=0)
        out = model(x)
        torch.testing.assert_close(out["cls_logits"], model.head(expected), atol=1e-6, rtol=0)
        torch.testing.assert_close(out["distillation_logits"], model.head_dist(hidden[:, 1]), atol=1e-6, rtol=0)


def test_the_hard_distillation_loss_by_hand():
    model = _model()
    x = _pixels(4)
    labels = torch.tensor([0, 2, -100, 1])
    teacher = torch.tensor([1, 2, 0, -100])
    out = model(x, labels=labels, teacher_labels=teacher)
    cls, dist = out["cls_logits"].detach(), out["distillation_logits"].detach()

    def ce(logits, y):  # mean over the scored rows, by hand
        keep = y != -100
        return -torch.log_softmax(logits[keep], -1)[torch.arange(int(keep.sum())), y[keep]].mean()

    torch.testing.assert_close(out["loss"].detach(), 0.5 * ce(cls, labels) + 0.5 * ce(dist, teacher))
    assert int(out["n_items"]) == 3  # the scored labels
    # without a teacher, both heads learn the labels
    plain = model(x, labels=labels)
    torch.testing.assert_close(plain["loss"].detach(), 0.5 * ce(cls, labels) + 0.5 * ce(dist, labels))
    torch.testing.assert_close(plain["loss"].detach(),
                               0.5 * F.cross_entropy(cls, labels) + 0.5 * F.cross_entropy(dist, labels))


def test_every_parameter_gets_a_gradient():
    model = _model().train()
    out = model(_pixels(), labels=torch.tensor([0, 1, 2]), teacher_labels=torch.tensor([2, 1, 0]))
    out["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    assert {"backbone.stem.dist_token", "head_dist.weight", "head_dist.bias"} <= dict(model.named_parameters()).keys()


def test_errors_name_the_argument():
    model = _model()
    with pytest.raises(ValueError, match=r"`teacher_labels` was given, but labels are missing"):
        model(_pixels(), teacher_labels=torch.tensor([0, 1, 2]))
    plain = ViTForImageClassification(ViTConfig(**TINY))
    with pytest.raises(ValueError, match=r"no distillation token \(distillation=False\)"):
        plain(_pixels(), labels=torch.tensor([0, 1, 2]), teacher_labels=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="argument `distillation` must be True or False; got 'yes'"):
        ViTConfig(**TINY, distillation="yes")


def test_reset_head_replaces_both_heads():
    model = _model()
    model.reset_head(5)
    assert model.head.out_features == model.head_dist.out_features == 5
    assert model(_pixels())["logits"].shape == (3, 5)


def test_rollout_and_interpolation_keep_both_prefix_tokens():
    model = _model()
    maps = model.rollout_maps(_pixels(2))
    assert maps.shape == (2, 4, 4)
    torch.testing.assert_close(maps.sum((1, 2)), torch.ones(2))
    table = model.backbone.stem.pos_embed.weight.detach()  # (2 + 16, D)
    bigger = interpolate_pos_embed(table, 8, num_prefix_tokens=2)
    assert bigger.shape == (2 + 64, 16)
    torch.testing.assert_close(bigger[:2], table[:2], atol=0, rtol=0)
    with pytest.raises(ValueError, match="17 patch positions after 1 prefix token"):
        interpolate_pos_embed(table, 8)  # a ViT table has one prefix row: 17 is no square
    large = model.with_image_size(16)
    assert large.config.image_size == 16 and large(torch.randn(1, 1, 16, 16))["logits"].shape == (1, 3)


def test_round_trip_and_timm_names(tmp_path):
    for pool in ("cls", "mean"):
        model = _model(pool=pool)
        model.save_pretrained(tmp_path / pool)
        again = from_pretrained(tmp_path / pool)
        assert type(again) is ViTForImageClassification and again.config == model.config
        with torch.no_grad():
            torch.testing.assert_close(again(_pixels())["logits"], model(_pixels())["logits"], atol=0, rtol=0)
    # timm's deit_*_distilled_* names: dist_token and head_dist
    names = {theirs: ours for theirs, ours in {**VIT_TIMM.encoder, **VIT_TIMM.heads}.items()}
    assert names["dist_token"] == "backbone.stem.dist_token" and names["head_dist."] == "head_dist."


def test_config_json_says_deit_and_a_plain_one_says_vit(tmp_path):
    _model().save_pretrained(tmp_path / "deit")
    data = json.loads((tmp_path / "deit" / "config.json").read_text())
    assert data["model_type"] == "deit" and data["architectures"] == ["DeiTForImageClassificationWithTeacher"]
    ViTForImageClassification(ViTConfig(**TINY)).save_pretrained(tmp_path / "vit")
    data = json.loads((tmp_path / "vit" / "config.json").read_text())
    assert data["model_type"] == "vit" and data["architectures"] == ["ViTForImageClassification"]
    assert "distillation" not in data  # a plain ViT's config.json is what it always was


# ---------------------------------------------------------------------------- transformers' DeiT
def test_gicho_to_transformers_deit_parity(tmp_path):
    transformers = _transformers()
    model = _model()
    model.save_pretrained(tmp_path / "cls")
    hf = transformers.DeiTForImageClassificationWithTeacher.from_pretrained(tmp_path / "cls").eval()
    x = _pixels()
    with torch.no_grad():
        ours, theirs = model(x), hf(pixel_values=x)
        torch.testing.assert_close(theirs.logits, ours["logits"], atol=ATOL, rtol=0)
        torch.testing.assert_close(theirs.cls_logits, ours["cls_logits"], atol=ATOL, rtol=0)
        torch.testing.assert_close(theirs.distillation_logits, ours["distillation_logits"], atol=ATOL, rtol=0)
    encoder = _model(ViTModel)
    encoder.save_pretrained(tmp_path / "base")
    assert json.loads((tmp_path / "base" / "config.json").read_text())["architectures"] == ["DeiTModel"]
    hf_base = transformers.DeiTModel.from_pretrained(tmp_path / "base", add_pooling_layer=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(hf_base(pixel_values=x).last_hidden_state, encoder(x)["last_hidden_state"],
                                   atol=ATOL, rtol=0)


def test_transformers_deit_to_gicho_parity(tmp_path):
    transformers = _transformers()
    config = transformers.DeiTConfig(image_size=8, patch_size=2, num_channels=1, hidden_size=16,
                                     num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                                     num_labels=3, attn_implementation="eager")
    torch.manual_seed(0)
    hf = transformers.DeiTForImageClassificationWithTeacher(config)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    hf.eval().save_pretrained(tmp_path)
    ours = from_pretrained(tmp_path)
    assert type(ours) is ViTForImageClassification and ours.config.distillation
    assert ours.config.layer_norm_eps == 1e-12
    x = _pixels()
    with torch.no_grad():
        ref, got = hf(pixel_values=x, output_attentions=True), ours(x, output_attentions=True)
        torch.testing.assert_close(got["logits"], ref.logits, atol=ATOL, rtol=0)
        torch.testing.assert_close(got["distillation_logits"], ref.distillation_logits, atol=ATOL, rtol=0)
        for a, b in zip(got["attentions"], ref.attentions, strict=True):
            torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    encoder = ViTModel.from_pretrained(tmp_path)  # the encoder of the classifier's directory
    assert encoder.config.distillation and encoder.head_dist is None


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_transformers_refuses_a_mean_pooled_distilled_classifier(pool, tmp_path):
    transformers = _transformers()
    model = _model(pool=pool)
    model.save_pretrained(tmp_path)
    for cls in (transformers.AutoModelForImageClassification, transformers.DeiTForImageClassificationWithTeacher):
        with pytest.raises(KeyError, match=rf"{pool} pooling of the patch tokens \(pool='{pool}'\): transformers' "
                                           r"DeiTForImageClassificationWithTeacher would compute something else"):
            cls.from_pretrained(tmp_path)
    # its encoder is DeiT's: transformers computes it when told to use GELU
    hf_base = transformers.DeiTModel.from_pretrained(tmp_path, hidden_act="gelu", add_pooling_layer=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(hf_base(pixel_values=_pixels()).last_hidden_state,
                                   model.forward_features(_pixels()).last_hidden_state, atol=ATOL, rtol=0)
