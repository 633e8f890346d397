"""gicho.weights and from_pretrained: strict loading, key maps, QKV layout, untrusted files."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
import torch.nn.functional as F

from gicho.models import from_pretrained
from gicho.models.classifier import ClassifierConfig, SequenceClassifier
from gicho.models.seq2seq import Seq2Seq
from gicho.nn import MultiHeadSelfAttention
from gicho.weights import (
    CheckpointError,
    fuse_qkv,
    load_model_weights,
    load_state_dict_checked,
    read_state_dict,
    split_qkv,
    tensor_shapes,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SMALL = {"vocab_size": 20, "n_labels": 3, "d_model": 16, "n_heads": 2, "n_layers": 1, "max_len": 8}


def _saved(tmp_path):
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(**SMALL)).eval()
    model.save_pretrained(tmp_path)
    return model


def test_fuse_and_split_qkv_reproduce_separate_projections():
    torch.manual_seed(0)
    d, h = 16, 4
    q, k, v = (torch.nn.Linear(d, d) for _ in range(3))
    attn = MultiHeadSelfAttention(d, h).eval()
    with torch.no_grad():
        attn.qkv.weight.copy_(fuse_qkv(q.weight, k.weight, v.weight))
        attn.qkv.bias.copy_(fuse_qkv(q.bias, k.bias, v.bias))
    x = torch.randn(2, 5, d)

    def heads(t):
        return t.view(2, 5, h, d // h).transpose(1, 2)  # (B, H, T, Dh)

    expected = F.scaled_dot_product_attention(heads(q(x)), heads(k(x)), heads(v(x)))
    expected = attn.proj(expected.transpose(1, 2).reshape(2, 5, d))
    torch.testing.assert_close(attn(x)[0], expected, atol=1e-6, rtol=1e-6)
    for part, original in zip(split_qkv(attn.qkv.weight), (q.weight, k.weight, v.weight), strict=True):
        torch.testing.assert_close(part, original)
    with pytest.raises(ValueError, match=r"3\*D rows; got shape \(47, 16\)"):
        split_qkv(torch.zeros(47, 16))
    with pytest.raises(ValueError, match="same shape"):
        fuse_qkv(torch.zeros(4, 4), torch.zeros(4, 4), torch.zeros(3, 4))


def test_key_map_renames_and_drops_and_reports_by_name(tmp_path):
    model = _saved(tmp_path)
    state = {f"hf.{k}": v for k, v in model.state_dict().items()}
    state["hf.position_ids"] = torch.arange(8)  # a buffer a reference stores and gicho does not

    def key_map(name):
        return None if name == "hf.position_ids" else name.removeprefix("hf.")

    fresh = SequenceClassifier(ClassifierConfig(**SMALL))
    load_state_dict_checked(fresh, state, key_map=key_map)
    for a, b in zip(fresh.state_dict().values(), model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(CheckpointError, match=r"missing tensors: backbone\..*; unexpected tensors: hf\.backbone"):
        load_state_dict_checked(fresh, state)
    with pytest.raises(CheckpointError, match="key map collision"):
        load_state_dict_checked(fresh, state, key_map=lambda n: "head.bias")


def test_absurd_config_is_refused_before_any_allocation(tmp_path):
    _saved(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    # 2^20 wide: ~10^13 bytes if it were ever allocated (it would crash, not pass)
    (tmp_path / "config.json").write_text(json.dumps({**config, "d_model": 2**20, "n_heads": 2}))
    with pytest.raises(CheckpointError, match=r"does not match SequenceClassifier: .*shape mismatch"):
        SequenceClassifier.from_pretrained(tmp_path)
    # 1000 deep: refused from the header's layer count, before even a meta model is built
    (tmp_path / "config.json").write_text(json.dumps({**config, "n_layers": 1000}))
    with pytest.raises(CheckpointError, match=r"config.json: n_layers=1000, but weights file .*model.safetensors "
                                              r"holds 1 layer\(s\)"):
        SequenceClassifier.from_pretrained(tmp_path)


def test_config_problems_are_checkpoint_errors(tmp_path):
    _saved(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "bogus": 1}))
    with pytest.raises(CheckpointError, match=r"unknown field\(s\) \['bogus'\]"):
        from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "dropout": 1.5}))
    with pytest.raises(CheckpointError, match=r"not a valid ClassifierConfig: .*`dropout`"):
        from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"holds a 'sequence-classifier' model, not a 'seq2seq'"):
        Seq2Seq.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps([1, 2]))
    with pytest.raises(CheckpointError, match="must hold a JSON object"):
        from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "model_type"}))
    with pytest.raises(CheckpointError, match="has no 'model_type'"):
        from_pretrained(tmp_path)


def test_a_missing_config_points_to_a_model_one_directory_down(tmp_path):
    # a package directory that holds its checkpoint in model/ (as the packaged MiniLM does)
    _saved(tmp_path / "model")
    with pytest.raises(CheckpointError, match=r"config.json is missing; the model may be in .*model$"):
        from_pretrained(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"config.json is missing$"):  # nothing to suggest
        from_pretrained(tmp_path / "empty")


def test_legacy_bin_is_read_with_weights_only_and_pickles_are_refused(tmp_path):
    model = _saved(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    assert tensor_shapes(tmp_path)["head.weight"] == (3, 16)
    loaded = SequenceClassifier.from_pretrained(tmp_path)
    ids = torch.randint(1, 20, (2, 6))
    torch.testing.assert_close(loaded(input_ids=ids)["logits"], model(input_ids=ids)["logits"])

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps({"head.weight": Evil()}))
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        read_state_dict(tmp_path)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_model_weights(SequenceClassifier(ClassifierConfig(**SMALL)), tmp_path)


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "dangling", "directory"])
def test_a_weights_file_that_is_not_a_regular_file_is_named_as_such(target, tmp_path):
    _saved(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.unlink()
    if target == "directory":
        weights.mkdir()
        expected = r"is not a regular file \(a directory\)"
    else:
        weights.symlink_to(tmp_path / "nowhere" if target == "dangling" else target)
        expected = (r"is not a regular file \(a link to .*nowhere, which does not exist\)" if target == "dangling"
                    else rf"is not a regular file \(a link to {target}, a character device\)")
    with pytest.raises(CheckpointError, match=rf"weights file .*model.safetensors {expected}$"):
        from_pretrained(tmp_path)
    for path in (tmp_path, weights) if target != "directory" else (tmp_path,):
        with pytest.raises(CheckpointError, match=expected):
            read_state_dict(path)


@pytest.mark.parametrize("field", ["encoder_layers", "decoder_layers"])
def test_seq2seq_config_claiming_a_million_layers_is_refused_before_building(field, tmp_path, monkeypatch):
    from gicho.models.seq2seq import Seq2SeqConfig

    Seq2Seq(Seq2SeqConfig(encoder_layers=2, decoder_layers=1)).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, field: 10**6}))

    def never(self, config):
        raise AssertionError("the model was built before its depth was checked against the weights")

    monkeypatch.setattr(Seq2Seq, "__init__", never)
    held = 2 if field == "encoder_layers" else 1
    with pytest.raises(CheckpointError, match=rf"config.json: {field}=1000000, but weights file "
                                              rf".*model.safetensors holds {held} layer\(s\)"):
        from_pretrained(tmp_path)
