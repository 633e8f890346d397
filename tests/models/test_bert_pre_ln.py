"""A pre-LN BERT (``BertConfig(norm_first=True)``, for pretraining recipes): each layer equals
``torch.nn.TransformerEncoderLayer(norm_first=True)``, the stack ends with a LayerNorm, gicho
saves and reloads it exactly, and ``transformers`` (whose BERT is post-LN) refuses the
directory for every head, saying why, instead of computing something else."""

from __future__ import annotations

import json
import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"

from gicho.models import from_pretrained
from gicho.models.bert import BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel
from gicho.weights import read_config

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SIZES = {"vocab_size": 40, "d_model": 16, "n_layers": 2, "n_heads": 4, "d_ff": 32, "max_len": 24,
         "dropout": 0.0, "attention_dropout": 0.0}


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(1)
    with torch.no_grad():  # away from unit LayerNorms and zero biases
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(5, 40, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def test_pre_ln_layers_equal_torchs_norm_first_layer_and_end_with_a_layernorm():
    model = _perturbed(BertModel(BertConfig(**SIZES, norm_first=True)))
    backbone = model.backbone
    assert isinstance(backbone.encoder.norm, torch.nn.LayerNorm)
    assert all(layer.norm_first for layer in backbone.encoder.layers)
    ids = _batch()["input_ids"]
    with torch.no_grad():
        x, _ = backbone.stem(input_ids=ids)  # no padding: every position attends to every other
        for ours in backbone.encoder.layers:
            ref = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation="gelu", batch_first=True,
                                                   norm_first=True, layer_norm_eps=ours.norm1.eps).eval()
            ref.self_attn.in_proj_weight.copy_(ours.attn.qkv.weight)
            ref.self_attn.in_proj_bias.copy_(ours.attn.qkv.bias)
            ref.self_attn.out_proj.load_state_dict(ours.attn.proj.state_dict())
            ref.linear1.load_state_dict(ours.mlp.fc1.state_dict())
            ref.linear2.load_state_dict(ours.mlp.fc2.state_dict())
            ref.norm1.load_state_dict(ours.norm1.state_dict())
            ref.norm2.load_state_dict(ours.norm2.state_dict())
            x = ref(x)
        expected = backbone.encoder.norm(x)
        got = model.forward_features(ids).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    post = BertModel(BertConfig(**SIZES))
    assert isinstance(post.backbone.encoder.norm, torch.nn.Identity)


@pytest.mark.parametrize("cls", [BertModel, BertForMaskedLM, BertForSequenceClassification])
def test_gicho_reloads_a_pre_ln_bert_exactly(cls, tmp_path):
    ours = _perturbed(cls(BertConfig(**SIZES, norm_first=True)))
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["norm_first"] is True
    again = from_pretrained(tmp_path).eval()
    assert type(again) is cls and again.config == ours.config
    batch = _batch()
    with torch.no_grad():
        a, b = ours(**batch), again(**batch)
    for key in ("last_hidden_state", "logits"):
        if key in a:
            torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)
    assert read_config(tmp_path)["norm_first"] is True


def test_a_post_ln_bert_writes_no_pre_ln_key_or_final_norm(tmp_path):
    BertForMaskedLM(BertConfig(**SIZES)).save_pretrained(tmp_path)
    assert "norm_first" not in json.loads((tmp_path / "config.json").read_text())
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "encoder.LayerNorm" in k]


@pytest.mark.parametrize("name", ["BertModel", "BertForMaskedLM", "BertForSequenceClassification"])
def test_transformers_refuses_a_pre_ln_bert_saying_why(name, tmp_path):
    transformers = pytest.importorskip("transformers")
    cls = {"BertModel": BertModel, "BertForMaskedLM": BertForMaskedLM,
           "BertForSequenceClassification": BertForSequenceClassification}[name]
    cls(BertConfig(**SIZES, norm_first=True)).save_pretrained(tmp_path)
    with pytest.raises(KeyError, match=rf"pre-LN layers \(norm_first=true\): transformers' {name} would compute "
                                       r"something else") as info:
        getattr(transformers, name).from_pretrained(tmp_path)
    assert "hidden_act='gelu'" not in str(info.value)  # no way out: transformers' encoder is post-LN


def test_norm_first_must_be_a_bool():
    with pytest.raises(ValueError, match=r"argument `norm_first` must be True or False; got 'yes'"):
        BertConfig(**SIZES, norm_first="yes")
