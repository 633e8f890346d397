"""ViT's small-data options (``ViTConfig.stem``, ``attention``, ``distillation``): off, the model
is today's (names, draws, outputs, files); on, shapes, gradients, exact save/load round trips,
and ``config.json`` files that ``transformers`` refuses, naming the option."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

from gicho.models import from_pretrained
from gicho.models.vit import MAX_PATCH_INPUTS, ViTConfig, ViTForImageClassification, ViTModel
from gicho.nn import EncoderBackbone, PatchStem, TransformerEncoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytestmark = pytest.mark.usefixtures("single_torch_thread")

TINY = {"image_size": 8, "patch_size": 2, "in_channels": 1, "d_model": 16, "n_layers": 2, "n_heads": 2,
        "d_ff": 32, "n_labels": 3}
OPTIONS = {
    "conv": {"stem": "conv"},
    "shifted": {"stem": "shifted"},
    "lsa": {"attention": "lsa"},
    "all-mean": {"stem": "shifted", "attention": "lsa", "distillation": True, "pool": "mean"},
    "conv-lsa-deit": {"stem": "conv", "attention": "lsa", "distillation": True},
}
# what transformers' refusal names, per option
NAMED = {"conv": "the convolutional stem (stem='conv')", "shifted": "Shifted Patch Tokenization (stem='shifted')",
         "lsa": "Locality Self-Attention (attention='lsa')"}


def _pixels(batch=3):
    return torch.randn(batch, 1, 8, 8, generator=torch.Generator().manual_seed(2))


def _model(cls=ViTForImageClassification, **fields):
    torch.manual_seed(0)
    model = cls(ViTConfig(**{**TINY, **fields}))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # every parameter off its initial value (LSA's scales too)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def _todays_vit(c: ViTConfig) -> tuple[EncoderBackbone, torch.nn.Linear]:
    """The ViT classifier as it was built before the options, from the shared blocks."""
    stem = PatchStem(c.image_size, c.patch_size, c.in_channels, c.d_model, cls="learned", position="learned",
                     dropout=c.dropout)
    encoder = TransformerEncoder(c.n_layers, c.d_model, c.n_heads, c.ff_dim, dropout=c.dropout,
                                 attention_dropout=c.attention_dropout, norm_first=True,
                                 layer_norm_eps=c.layer_norm_eps)
    backbone = EncoderBackbone(stem, encoder)
    torch.nn.init.trunc_normal_(stem.pos_embed.weight, std=0.02)
    return backbone, torch.nn.Linear(c.d_model, c.n_labels)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_with_every_option_off_the_model_is_todays(pool, tmp_path):
    config = ViTConfig(**TINY, pool=pool, dropout=0.1)
    assert config == ViTConfig(**TINY, pool=pool, dropout=0.1, stem="patch", attention="standard",
                               distillation=False)
    torch.manual_seed(0)
    model = ViTForImageClassification(config).train()
    torch.manual_seed(0)
    backbone, head = _todays_vit(config)
    expected = {**{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
                **{f"head.{k}": v for k, v in head.state_dict().items()}}
    state = model.state_dict()
    assert list(state) == list(expected)
    assert all(torch.equal(state[k], v) for k, v in expected.items())  # the same draws, bitwise
    x = _pixels()
    torch.manual_seed(3)  # the same dropout draws too
    logits = model(x)["logits"]
    torch.manual_seed(3)
    pooled, _ = backbone.train().forward_pooled(pool, pixel_values=x)
    assert torch.equal(logits, head(pooled))
    model.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["model_type"] == "vit" and (data["hidden_act"] == "gelu") == (pool == "cls")
    assert not {"stem", "attention", "distillation"} & set(data)  # the file it always was


@pytest.mark.parametrize("name", OPTIONS)
def test_shapes_and_a_gradient_for_every_parameter(name):
    model = _model(**OPTIONS[name]).train()
    p = model.config.num_prefix_tokens
    x = _pixels()
    assert model.forward_features(x).last_hidden_state.shape == (3, p + 16, 16)
    out = model(x, labels=torch.tensor([0, 1, 2]))
    assert out["logits"].shape == (3, 3) and torch.isfinite(out["loss"])
    out["loss"].backward()
    missing = [n for n, t in model.named_parameters() if t.grad is None or not t.grad.abs().sum() > 0]
    assert not missing
    names = dict(model.named_parameters())
    if model.config.attention == "lsa":
        assert all(f"backbone.encoder.layers.{i}.attn.scale" in names for i in range(2))
    if model.config.stem == "conv":
        assert names["backbone.stem.patch_embed.conv.0.weight"].shape == (8, 1, 3, 3)
    if model.config.stem == "shifted":
        assert names["backbone.stem.patch_embed.proj.weight"].shape == (16, 5 * 1 * 2 * 2)


@pytest.mark.parametrize("name", OPTIONS)
def test_save_pretrained_round_trips_exactly(name, tmp_path):
    for cls in (ViTForImageClassification, ViTModel):
        model = _model(cls, **OPTIONS[name])
        model.save_pretrained(tmp_path / cls.__name__)
        again = from_pretrained(tmp_path / cls.__name__)
        assert type(again) is cls and again.config == model.config
        key = "logits" if cls is ViTForImageClassification else "last_hidden_state"
        with torch.no_grad():
            assert torch.equal(again(_pixels())[key], model(_pixels())[key])


@pytest.mark.parametrize("name", OPTIONS)
def test_transformers_refuses_the_options_naming_them(name, tmp_path):
    transformers = pytest.importorskip("transformers")
    options = OPTIONS[name]
    model = _model(**options)
    model.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert {k: data[k] for k in ("stem", "attention") if k in data} == {
        k: v for k, v in options.items() if k in ("stem", "attention")}
    named = [text for key, text in NAMED.items() if key in (options.get("stem"), options.get("attention"))]
    architecture = model.hf_architecture
    for cls in (transformers.AutoModelForImageClassification, getattr(transformers, architecture)):
        with pytest.raises(KeyError) as caught:
            cls.from_pretrained(tmp_path)
        message = str(caught.value)
        assert all(text in message for text in named), message
        assert f"transformers' {architecture} would compute something else" in message
        assert "pass hidden_act='gelu'" not in message  # its encoder is no transformers encoder either
    encoder = _model(ViTModel, **options)
    encoder.save_pretrained(tmp_path / "base")
    with pytest.raises(KeyError, match=named[0].replace("(", r"\(").replace(")", r"\)")):
        transformers.AutoModel.from_pretrained(tmp_path / "base")


def test_lsa_masks_the_diagonal_and_its_fast_path_agrees():
    model = _model(attention="lsa", distillation=True)
    x = _pixels()
    with torch.no_grad():
        explicit = model(x, output_attentions=True)
        fast = model(x)  # fused kernel, and the last layer computes the prefix rows only
    for weights in explicit["attentions"]:
        assert weights.shape == (3, 2, 18, 18) and weights.diagonal(dim1=-2, dim2=-1).abs().max() == 0
    for key in ("logits", "cls_logits", "distillation_logits"):
        torch.testing.assert_close(fast[key], explicit[key], atol=1e-5, rtol=0)
    maps = model.rollout_maps(x)
    assert maps.shape == (3, 4, 4)


@pytest.mark.parametrize("stem", ["conv", "shifted"])
def test_a_stem_option_works_at_another_image_size(stem):
    model = _model(stem=stem)
    large = model.with_image_size(16)
    assert large.config.stem == stem and large(torch.randn(2, 1, 16, 16))["logits"].shape == (2, 3)


@pytest.mark.parametrize(("fields", "message"), [
    ({"stem": "overlapping"}, r"argument `stem` must be one of 'patch', 'conv', 'shifted'; got 'overlapping'"),
    ({"attention": "local"}, r"argument `attention` must be one of 'standard', 'lsa'; got 'local'"),
    ({"stem": "shifted", "patch_size": 1}, r"`stem`='shifted' .* needs patch_size >= 2; got patch_size=1"),
    ({"stem": "shifted", "image_size": 256, "patch_size": 128, "in_channels": 1},
     rf"5 \* in_channels \* patch_size\*\*2 inputs per patch, which must be <= {MAX_PATCH_INPUTS}"),
])
def test_config_errors_name_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        ViTConfig(**{**TINY, **fields})


def test_a_config_json_with_an_unknown_option_is_refused(tmp_path):
    _model(stem="conv").save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, "stem": "dilated"}))
    with pytest.raises(Exception, match="argument `stem` must be one of"):
        from_pretrained(tmp_path)
    assert dataclasses.replace(ViTConfig(**TINY), stem="conv").stem == "conv"
