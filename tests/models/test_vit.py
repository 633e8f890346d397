"""ViT: parity with Hugging Face transformers (both directions), timm's layout, interpolation, rollout."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import save_file

from gicho.models import from_pretrained
from gicho.models.vit import (
    ViTConfig,
    ViTForImageClassification,
    ViTModel,
    ViTPretrained,
    attention_rollout,
    interpolate_pos_embed,
)
from gicho.weights import CheckpointError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("single_torch_thread")

# (image_size, patch_size, channels, hidden, layers, heads, intermediate, labels)
SHAPES = [(8, 4, 3, 16, 2, 2, 32, 3), (12, 2, 1, 24, 1, 4, 40, 5)]
ATOL = 1e-5


def _hf_config(shape, **extra):
    image, patch, channels, hidden, layers, heads, inter, labels = shape
    return transformers.ViTConfig(image_size=image, patch_size=patch, num_channels=channels,
                                  hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                  intermediate_size=inter, num_labels=labels, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0, attn_implementation="eager", **extra)


def _randomise(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # LayerNorms and biases off their defaults too
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


def _pixels(shape, batch=3):
    image, _, channels = shape[:3]
    return torch.randn(batch, channels, image, image, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("shape", SHAPES)
def test_hf_to_gicho_parity(shape, tmp_path):
    torch.manual_seed(0)
    hf_cls = _randomise(transformers.ViTForImageClassification(_hf_config(shape)))
    hf_base = _randomise(transformers.ViTModel(_hf_config(shape)))
    hf_cls.save_pretrained(tmp_path / "cls")
    hf_base.save_pretrained(tmp_path / "base")
    x = _pixels(shape)
    ours = from_pretrained(tmp_path / "cls")
    assert type(ours) is ViTForImageClassification and ours.config.layer_norm_eps == 1e-12
    base = ViTPretrained.from_pretrained(tmp_path / "base")
    assert type(base) is ViTModel
    with torch.no_grad():
        ref = hf_cls(pixel_values=x, output_attentions=True)
        got = ours(x, output_attentions=True)
        torch.testing.assert_close(got["logits"], ref.logits, atol=ATOL, rtol=0)
        for a, b in zip(got["attentions"], ref.attentions, strict=True):
            torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
        torch.testing.assert_close(base(x)["last_hidden_state"],
                                   hf_base(pixel_values=x).last_hidden_state, atol=ATOL, rtol=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_gicho_to_hf_parity(shape, tmp_path):
    image, patch, channels, hidden, layers, heads, inter, labels = shape
    config = ViTConfig(image_size=image, patch_size=patch, in_channels=channels, d_model=hidden,
                       n_layers=layers, n_heads=heads, d_ff=inter, n_labels=labels,
                       label_names=tuple(f"c{i}" for i in range(labels)))
    torch.manual_seed(0)
    ours = _randomise(ViTForImageClassification(config))
    ours.save_pretrained(tmp_path)
    hf = transformers.ViTForImageClassification.from_pretrained(tmp_path).eval()
    assert hf.config.id2label[1] == "c1"
    x = _pixels(shape)
    with torch.no_grad():
        torch.testing.assert_close(hf(pixel_values=x).logits, ours(x)["logits"], atol=ATOL, rtol=0)
        # the encoder alone: transformers' ViTModel reads the classifier's directory
        hf_base = transformers.ViTModel.from_pretrained(tmp_path, add_pooling_layer=False).eval()
        torch.testing.assert_close(hf_base(pixel_values=x).last_hidden_state,
                                   ours.forward_features(x).last_hidden_state, atol=ATOL, rtol=0)
    again = from_pretrained(tmp_path)
    assert again.config == ours.config


def _timm_state(model: ViTForImageClassification) -> dict[str, torch.Tensor]:
    """gicho's names → timm's (by renaming only: timm is not imported in the tests)."""
    out = {}
    for k, v in model.state_dict().items():
        k = k.removeprefix("backbone.").replace("encoder.layers.", "blocks.").replace("stem.", "")
        k = {"encoder.norm.weight": "norm.weight", "encoder.norm.bias": "norm.bias",
             "pos_embed.weight": "pos_embed"}.get(k, k)
        out[k] = v[None] if k == "pos_embed" else v
    return out


def test_timm_state_dict_round_trips(tmp_path):
    config = ViTConfig(image_size=8, patch_size=4, d_model=16, n_layers=2, n_heads=2, n_labels=4)
    torch.manual_seed(0)
    model = _randomise(ViTForImageClassification(config))
    state = _timm_state(model)
    assert {"cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.1.attn.qkv.weight", "norm.bias",
            "head.weight"} <= set(state)
    assert state["pos_embed"].shape == (1, 5, 16)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "timm.safetensors"))
    loaded = ViTForImageClassification.from_pretrained(tmp_path / "timm.safetensors", config=config)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["logits"], model(x)["logits"], atol=0, rtol=0)
    bad = dict(state, **{"fc_norm.weight": torch.ones(16)})
    save_file({k: v.contiguous() for k, v in bad.items()}, str(tmp_path / "avg.safetensors"))
    with pytest.raises(CheckpointError, match="fc_norm"):
        ViTForImageClassification.from_pretrained(tmp_path / "avg.safetensors", config=config)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        ViTForImageClassification.from_pretrained(tmp_path / "timm.safetensors",
                                                  config=ViTConfig(image_size=16, patch_size=4, d_model=16,
                                                                   n_layers=2, n_heads=2, n_labels=4))


def test_vit_base_parameter_count():
    with torch.device("meta"):
        model = ViTForImageClassification(ViTConfig.from_preset("base"))
    assert sum(p.numel() for p in model.parameters()) == 86_567_656
    assert ViTConfig.from_preset("large").n_layers == 24 and ViTConfig.from_preset("tiny").d_model == 192


def test_interpolation_matches_transformers():
    shape = SHAPES[0]
    torch.manual_seed(0)
    hf = _randomise(transformers.ViTForImageClassification(_hf_config(shape)))
    ours = ViTForImageClassification(ViTConfig(image_size=8, patch_size=4, d_model=16, n_layers=2, n_heads=2,
                                               d_ff=32, n_labels=3, layer_norm_eps=1e-12))
    ours.load_state_dict(ViTPretrained.import_state_dict(hf.state_dict(), ours.config))
    big = ours.eval().with_image_size(16)
    assert big.backbone.stem.pos_embed.weight.shape == (17, 16) and big.config.image_size == 16
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ref = hf(pixel_values=x, interpolate_pos_encoding=True).logits
        torch.testing.assert_close(big(x)["logits"], ref, atol=ATOL, rtol=0)
    pos = torch.randn(5, 4)
    torch.testing.assert_close(interpolate_pos_embed(pos, 2), pos)
    with pytest.raises(ValueError, match="not a square grid"):
        interpolate_pos_embed(torch.randn(6, 4), 3)


def test_reset_head_and_config_errors():
    model = ViTForImageClassification(ViTConfig(image_size=8, patch_size=4, d_model=16, n_layers=1, n_heads=2,
                                                n_labels=3))
    model.reset_head(7)
    assert model.head.out_features == 7 and model.config.n_labels == 7
    assert model(torch.randn(1, 3, 8, 8))["logits"].shape == (1, 7)
    with pytest.raises(ValueError, match="image_size=10 must be divisible by patch_size=4"):
        ViTConfig(image_size=10, patch_size=4)
    with pytest.raises(ValueError, match="pool"):
        ViTConfig(pool="sum")
    with pytest.raises(ValueError, match="preset"):
        ViTConfig.from_preset("huge")
    with pytest.raises(ValueError, match="must be 8x8; got 16x16"):
        model(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"shape \(B, 3, H, W\)"):
        model(torch.randn(1, 1, 8, 8))  # grey images into an RGB model


@pytest.mark.parametrize(("fields", "message"), [
    ({"image_size": 100_000, "patch_size": 8}, r"argument `image_size` must be <= 8192 \(MAX_IMAGE_SIZE\) pixels; got 100000"),
    ({"image_size": 8192, "patch_size": 8}, r"argument `patch_size` must leave at most 16384 \(MAX_PATCHES\) patches; "
                                            r"got patch_size=8, which cuts image_size=8192 into 1024x1024"),
    ({"image_size": 4096, "patch_size": 4096}, r"argument `in_channels` \* patch_size\*\*2 must be <= 65536"),
    ({"in_channels": 100_000}, r"argument `in_channels` \* patch_size\*\*2 must be <= 65536"),
])
def test_sizes_are_bounded_before_allocation(fields, message):
    """O2: an image side of 100,000 px was a MemoryError; now the config refuses it, naming the field."""
    with pytest.raises(ValueError, match=message):
        ViTConfig(**fields)
    ViTConfig(image_size=4096, patch_size=32)  # 128 x 128 patches: the largest grid allowed


def test_n_labels_none_is_decided_later():
    """None: the data decides (the vit task); label_names give the count; a classifier needs one."""
    config = ViTConfig(image_size=8, patch_size=4, d_model=16, n_layers=1, n_heads=2, n_labels=None)
    assert config.n_labels is None
    assert ViTConfig(n_labels=None, label_names=["a", "b"]).n_labels == 2
    ViTModel(config)  # the encoder needs no class count
    with pytest.raises(ValueError, match=r"argument `n_labels` is None \(not decided yet\)"):
        ViTForImageClassification(config)
    with pytest.raises(ValueError, match="argument `label_names` has 2 names; n_labels=3"):
        ViTConfig(n_labels=3, label_names=["a", "b"])


def test_hf_config_options_refused(tmp_path):
    hf = transformers.ViTForImageClassification(_hf_config(SHAPES[0], hidden_act="gelu_new"))
    hf.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="hidden_act='gelu_new'"):
        from_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data.update(hidden_act="gelu", model_type="bert")
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="holds a 'bert' model, not a 'vit'"):
        ViTForImageClassification.from_pretrained(tmp_path)


def test_attention_rollout():
    uniform = [torch.full((1, 2, 3, 3), 1 / 3)] * 2
    rolled = attention_rollout(uniform)
    torch.testing.assert_close(rolled.sum(-1), torch.ones(1, 3))
    # identity attention: rollout is the identity
    eye = [torch.eye(3).expand(1, 2, 3, 3)] * 3
    torch.testing.assert_close(attention_rollout(eye), torch.eye(3)[None])
    # one layer, no residual: the head-averaged attention itself
    a = torch.softmax(torch.randn(2, 4, 5, 5), -1)
    torch.testing.assert_close(attention_rollout([a], residual=False), a.mean(1))
    model = ViTForImageClassification(ViTConfig.from_preset("digits")).eval()
    maps = model.rollout_maps(torch.randn(2, 1, 8, 8))
    assert maps.shape == (2, 4, 4)
    torch.testing.assert_close(maps.sum((1, 2)), torch.ones(2))
    with pytest.raises(ValueError, match="empty"):
        attention_rollout([])


def test_legacy_bin_and_unprefixed_classifier(tmp_path):
    """A ``pytorch_model.bin`` (read with weights_only) whose classifier keys lack ``vit.``."""
    from safetensors.torch import load_file

    shape = SHAPES[1]
    torch.manual_seed(0)
    hf = _randomise(transformers.ViTForImageClassification(_hf_config(shape)))
    hf.save_pretrained(tmp_path)
    state = {k.removeprefix("vit."): v for k, v in load_file(str(tmp_path / "model.safetensors")).items()}
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / "model.safetensors").unlink()
    ours = from_pretrained(tmp_path)
    x = _pixels(shape)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)["logits"], hf(pixel_values=x).logits, atol=ATOL, rtol=0)


def test_cls_classifier_computes_the_last_layer_for_cls_only_with_the_same_logits():
    # ViTForImageClassification(pool="cls") asks the encoder for row 0 only; the logits must be
    # those of the head on the full forward's [CLS] state.
    from gicho.models.vit import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig.from_preset("tiny", image_size=32, n_labels=5)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        full = model.forward_features(x)
        assert full.last_hidden_state.shape[1] == 1 + (32 // 16) ** 2
        expected = model.forward_head(full.last_hidden_state[:, 0])
        torch.testing.assert_close(model(x)["logits"], expected, rtol=1e-5, atol=1e-6)
        assert model.forward_features(x, rows=1).last_hidden_state.shape == (2, 1, 192)


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_transformers_refuses_a_mean_pooled_classifier_and_reads_its_encoder(pool, tmp_path):
    """transformers' ViTForImageClassification reads [CLS] only: a pool="mean" classifier would
    load there with other logits, so its directory is refused, saying why (the [CLS] one gives
    gicho's logits: test_gicho_to_hf_parity)."""
    shape = SHAPES[0]
    image, patch, channels, hidden, layers, heads, inter, labels = shape
    config = ViTConfig(image_size=image, patch_size=patch, in_channels=channels, d_model=hidden, n_layers=layers,
                       n_heads=heads, d_ff=inter, n_labels=labels, pool=pool)
    torch.manual_seed(0)
    ours = _randomise(ViTForImageClassification(config))
    ours.save_pretrained(tmp_path / "cls")
    for cls in (transformers.AutoModelForImageClassification, transformers.ViTForImageClassification):
        with pytest.raises(KeyError, match=rf"{pool} pooling of the patch tokens \(pool='{pool}'\): transformers' "
                                           r"ViTForImageClassification would compute something else"):
            cls.from_pretrained(tmp_path / "cls")
    x = _pixels(shape)
    with torch.no_grad():
        encoder = transformers.ViTModel.from_pretrained(tmp_path / "cls", hidden_act="gelu",
                                                        add_pooling_layer=False).eval()
        torch.testing.assert_close(encoder(pixel_values=x).last_hidden_state,
                                   ours.forward_features(x).last_hidden_state, atol=ATOL, rtol=0)
        again = from_pretrained(tmp_path / "cls")
        assert again.config == ours.config
        torch.testing.assert_close(again(x)["logits"], ours(x)["logits"], atol=0, rtol=0)
        # a mean-pooled ViTModel has no head: transformers' ViTModel gives its hidden states
        base = ViTModel(config).eval()
        base.save_pretrained(tmp_path / "base")
        theirs = transformers.ViTModel.from_pretrained(tmp_path / "base", add_pooling_layer=False).eval()
        torch.testing.assert_close(theirs(pixel_values=x).last_hidden_state, base(x)["last_hidden_state"],
                                   atol=ATOL, rtol=0)


def test_a_mis_shaped_query_tensor_and_a_deeper_config_are_named(tmp_path):
    from safetensors.torch import load_file

    shape = SHAPES[0]
    torch.manual_seed(0)
    _randomise(transformers.ViTForImageClassification(_hf_config(shape))).save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    good = dict(state)
    state["vit.encoder.layer.0.attention.attention.value.bias"] = torch.zeros(8)
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"shape mismatch: vit.encoder.layer.0.attention.attention.value.bias "
                                              r"has shape \(8,\) in the file, \(16,\) in the model$"):
        from_pretrained(tmp_path)
    save_file(good, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, "num_hidden_layers": 10**6}))
    with pytest.raises(CheckpointError, match=r"n_layers=1000000 \(num_hidden_layers in a Hugging Face "
                                              r"config.json\), but weights file .* holds 2 layer\(s\)"):
        from_pretrained(tmp_path)


# ------------------------------------------------------------------ the image processor (HF's format)

def _images(sizes, seed=0):
    """8-bit RGB images of the given (height, width): smooth blobs plus mild noise (a photo's
    spectrum rather than white noise, which no resize reproduces to the pixel)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for h, w in sizes:
        coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        noisy = np.asarray(coarse, dtype=np.int16) + rng.integers(-8, 9, (h, w, 3))
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return out


def _classifier_with(processor, n_classes=3):
    from gicho.models.vit import ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig.from_preset("mini", n_labels=n_classes, label_names=("cat", "dog", "owl")[:n_classes],
                              dropout=0.0, d_model=32, n_layers=2, d_ff=64)
    model = ViTForImageClassification(config).eval()
    _randomise(model)
    model.image_processor = ViTImageProcessor.for_model(config.image_size, 3, **processor)
    return model


def _gicho_probs(model, images):
    from gicho.data.image_folder import ImageTransform

    transform = ImageTransform.from_processor(model.image_processor)
    with torch.no_grad():
        return model(torch.stack([transform(a) for a in images]))["logits"].softmax(-1)  # (B, C)


def _pipeline_probs(directory, images, names):
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "ViTImageProcessor requires torchvision ... falling back"
        pipe = transformers.pipeline("image-classification", model=str(directory), device="cpu")
    rows = pipe([Image.fromarray(a) for a in images], top_k=len(names))
    return torch.tensor([[{r["label"]: r["score"] for r in row}[n] for n in names] for row in rows])


@pytest.mark.parametrize("crop_pct", [0.875, 1.0, None])
def test_save_pretrained_writes_hugging_faces_image_processor_and_reads_it_back(crop_pct, tmp_path):
    from gicho.models.vit import ViTImageProcessor

    model = _classifier_with({"crop_pct": crop_pct})
    model.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert data["image_processor_type"] == "ViTImageProcessor" and data["resample"] == 2
    assert data["image_mean"] == [0.5] * 3 and data["rescale_factor"] == pytest.approx(1 / 255)
    back = from_pretrained(tmp_path)
    assert back.image_processor == model.image_processor
    # transformers reads the same geometry: the shorter side to round(32 / crop_pct), a 32 px centre crop
    hf = transformers.AutoImageProcessor.from_pretrained(tmp_path)
    if crop_pct is None:
        assert dict(hf.size) == {"height": 32, "width": 32} and not hf.do_center_crop
    else:
        assert dict(hf.size)["shortest_edge"] == round(32 / crop_pct) and hf.do_center_crop
        assert dict(hf.crop_size) == {"height": 32, "width": 32}
    # Hugging Face's own ViT processor (size height/width, no crop) reads as crop_pct=None
    own = transformers.ViTImageProcessor(size={"height": 32, "width": 32}).to_dict()
    assert ViTImageProcessor.from_dict(own) == ViTImageProcessor.for_model(32, 3, crop_pct=None)
    assert model.with_image_size(64).image_processor.image_size == 64


def test_transformers_pipeline_classifies_as_gicho(tmp_path):
    """crop_pct=1.0 on images of the model's size: no resampling on either side, equal to 1e-5.
    Other sizes and crop_pct=0.875 (square images): Pillow resizes on 8-bit pixels, gicho in
    float32; one grey level at most, the same labels, probabilities within 0.01 (about 2e-3 seen).
    Non-square images with crop_pct < 1 may crop one pixel apart (int vs round of the longer
    side): see gicho.models._vit_processor."""
    names = ["cat", "dog", "owl"]
    exact = _classifier_with({"crop_pct": 1.0})
    exact.save_pretrained(tmp_path / "exact")
    images = _images([(32, 32)] * 4)
    gicho, hf = _gicho_probs(exact, images), _pipeline_probs(tmp_path / "exact", images, names)
    assert torch.equal(gicho.argmax(-1), hf.argmax(-1))
    torch.testing.assert_close(hf, gicho, atol=1e-5, rtol=0)

    cropped = _classifier_with({"crop_pct": 0.875})
    cropped.save_pretrained(tmp_path / "cropped")
    for model, directory, sizes in ((exact, "exact", [(40, 40), (64, 64), (300, 300)]),
                                    (cropped, "cropped", [(32, 32), (48, 48), (200, 200)])):
        images = _images(sizes, seed=1)
        gicho, hf = _gicho_probs(model, images), _pipeline_probs(tmp_path / directory, images, names)
        assert torch.equal(gicho.argmax(-1), hf.argmax(-1))
        torch.testing.assert_close(hf, gicho, atol=1e-2, rtol=0)


def test_image_processor_errors_and_the_legacy_file(tmp_path):
    from gicho.data.image_folder import DEFAULT_CROP_PCT
    from gicho.models._vit_processor import DEFAULT_CROP_PCT as PROCESSOR_CROP_PCT
    from gicho.models.vit import ViTImageProcessor

    assert PROCESSOR_CROP_PCT == DEFAULT_CROP_PCT  # one evaluation crop in the model and the data
    with pytest.raises(ValueError, match="resample"):
        ViTImageProcessor(32, resample=3)
    with pytest.raises(ValueError, match="crop_pct"):
        ViTImageProcessor(32, crop_pct=1.5)
    with pytest.raises(ValueError, match="one finite value per channel"):
        ViTImageProcessor(32, image_mean=(0.5,), image_std=(0.5, 0.5))
    with pytest.raises(ValueError, match="do_rescale"):
        ViTImageProcessor(32, do_rescale=False)
    with pytest.raises(CheckpointError, match="shorter side and crops"):
        ViTImageProcessor.from_dict({"size": {"height": 32, "width": 48}})
    model = _classifier_with({"crop_pct": 1.0})
    model.image_processor = ViTImageProcessor.for_model(16, 3)
    with pytest.raises(ValueError, match="images of 16 px; the model takes 3-channel images of 32 px"):
        model.save_pretrained(tmp_path / "bad")
    # a directory written before preprocessor_config.json: gicho's preprocessing.json is read
    model = _classifier_with({"crop_pct": 0.5})
    model.save_pretrained(tmp_path / "old")
    (tmp_path / "old" / "preprocessor_config.json").unlink()
    (tmp_path / "old" / "preprocessing.json").write_text(json.dumps(
        {"mean": [0.5] * 3, "std": [0.25] * 3, "crop_pct": 0.5}))
    back = ViTForImageClassification.from_pretrained(tmp_path / "old")
    assert back.image_processor == ViTImageProcessor(32, (0.5,) * 3, (0.25,) * 3, 0.5)
    (tmp_path / "old" / "config.json").rename(tmp_path / "elsewhere.json")
    with pytest.raises(CheckpointError, match="does not name its image size"):
        ViTImageProcessor.load(tmp_path / "old")
    assert ViTImageProcessor.load(tmp_path / "old", image_size=32) == back.image_processor
    assert ViTImageProcessor.load(tmp_path) is None  # no processor file at all
