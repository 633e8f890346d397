"""The contract every model family keeps (timm's test_models.py idea), parametrized over families.

For each family: output shapes and no NaN, a gradient for every parameter, a state-dict key
snapshot (the checkpoint layout is a public format: a renamed tensor breaks saved models and
key maps), ``save_pretrained`` → ``from_pretrained`` gives identical outputs, more padding
does not change the outputs, and a ``torch.compile`` forward equals the eager one. A new family
adds one entry to ``FAMILIES`` and one snapshot file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from gicho.models import from_pretrained
from gicho.models.bert import BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel
from gicho.models.classifier import ClassifierConfig, SequenceClassifier, SequenceRegressor
from gicho.models.cnn import SmallCNN, SmallCNNConfig
from gicho.models.seq2seq import Seq2Seq, Seq2SeqConfig
from gicho.models.vit import ViTConfig, ViTForImageClassification

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SNAPSHOTS = Path(__file__).parent / "snapshots"
SMALL = {"d_model": 16, "n_heads": 2, "n_layers": 2, "dropout": 0.0, "max_len": 12}


@dataclass
class Family:
    """How to build a tiny model of a family, a batch for it, and a padded copy of the batch."""

    build: Callable[[], torch.nn.Module]
    batch: Callable[[], dict[str, torch.Tensor]]
    output: str  # the key compared across save/load, padding and compile
    pad: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
    fullgraph: bool = True  # compiles without graph breaks (no host synchronisation)
    has_loss: bool = True  # given labels, the model returns "loss" (an encoder alone does not)
    per_example: bool = True  # output's first dimension is the batch's


def _ids_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 20, (3, 7), generator=g)
    ids[1, 5:] = 0  # padding
    return {"input_ids": ids, "labels": torch.tensor([0, 2, 1])}


def _pad_ids(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    extra = torch.zeros(batch["input_ids"].shape[0], 4, dtype=torch.long)
    return {**batch, "input_ids": torch.cat([batch["input_ids"], extra], dim=1)}


def _seq2seq_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    src = torch.randint(4, 30, (3, 6), generator=g)
    src[1, 4:] = 0
    tgt = torch.randint(4, 15, (3, 5), generator=g)
    labels = tgt.clone()
    labels[2, 3:] = -100
    return {"src": src, "src_mask": src != 0, "tgt_in": torch.cat([torch.ones(3, 1, dtype=torch.long),
                                                                    tgt[:, :-1]], 1), "labels": labels}


def _pad_src(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    src = torch.cat([batch["src"], torch.zeros(3, 3, dtype=torch.long)], dim=1)
    return {**batch, "src": src, "src_mask": src != 0}


def _bert_batch(labels: str | None = None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 40, (3, 7), generator=g)
    ids[:, 0] = 2  # [CLS]
    ids[1, 5:] = 0  # padding
    types = torch.zeros_like(ids)
    types[0, 4:] = 1  # a sentence pair
    batch = {"input_ids": ids, "token_type_ids": types}
    if labels == "mlm":
        mlm = torch.full_like(ids, -100)
        mlm[0, 2], mlm[1, 3], mlm[2, 6] = 7, 8, 9
        batch["labels"] = mlm
    elif labels == "classes":
        batch["labels"] = torch.tensor([0, 2, 1])
    return batch


def _pad_bert(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    fill = {"input_ids": 0, "token_type_ids": 0, "labels": -100}
    return {k: torch.cat([v, torch.full((v.shape[0], 4), fill[k], dtype=v.dtype)], dim=1) if v.ndim == 2 else v
            for k, v in batch.items()}


BERT_TINY = {"vocab_size": 40, "d_model": 16, "n_heads": 2, "n_layers": 2, "d_ff": 32, "max_len": 12,
             "dropout": 0.0, "attention_dropout": 0.0}

FAMILIES = {
    "classifier-ids-cls": Family(
        lambda: SequenceClassifier(ClassifierConfig(vocab_size=20, n_labels=3, pool="cls", **SMALL)),
        _ids_batch, "logits", _pad_ids),
    "classifier-ids-mean-postln": Family(
        lambda: SequenceClassifier(ClassifierConfig(vocab_size=20, n_labels=3, pool="mean", norm_first=False,
                                                    **SMALL)),
        _ids_batch, "logits", _pad_ids),
    "classifier-vector-tokens": Family(
        lambda: SequenceClassifier(ClassifierConfig(token_dim=8, n_labels=10, pool="max", **SMALL)),
        lambda: {"features": torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0)),
                 "labels": torch.tensor([1, 9, 0])}, "logits"),
    "regressor-feature-tokens": Family(
        lambda: SequenceRegressor(ClassifierConfig(n_features=5, n_labels=1, position="none", pool="cls",
                                                   target_mean=3.0, target_std=2.0, **SMALL)),
        lambda: {"features": torch.randn(4, 5, generator=torch.Generator().manual_seed(0)),
                 "labels": torch.randn(4, generator=torch.Generator().manual_seed(1))}, "predictions"),
    "seq2seq": Family(
        lambda: Seq2Seq(Seq2SeqConfig(src_vocab_size=30, tgt_vocab_size=15, embed_dim=8, hidden_dim=8,
                                      attention_dim=8)),
        _seq2seq_batch, "logits", _pad_src, fullgraph=False),
    "bert-model": Family(lambda: BertModel(BertConfig(**BERT_TINY)), _bert_batch, "pooler_output", _pad_bert,
                         has_loss=False),
    "bert-masked-lm": Family(lambda: BertForMaskedLM(BertConfig(**BERT_TINY)), lambda: _bert_batch("mlm"),
                             "loss", _pad_bert, per_example=False),
    "bert-classifier-cls": Family(lambda: BertForSequenceClassification(BertConfig(n_labels=3, **BERT_TINY)),
                                  lambda: _bert_batch("classes"), "logits", _pad_bert),
    "bert-classifier-mean": Family(
        lambda: BertForSequenceClassification(BertConfig(n_labels=3, pool="mean", **BERT_TINY)),
        lambda: _bert_batch("classes"), "logits", _pad_bert),
    "vit-cls": Family(
        lambda: ViTForImageClassification(ViTConfig(image_size=8, patch_size=4, d_model=16, n_heads=2,
                                                    n_layers=2, n_labels=3)),
        lambda: {"pixel_values": torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0)),
                 "labels": torch.tensor([0, 2, 1])}, "logits"),
    "vit-mean-grey": Family(
        lambda: ViTForImageClassification(ViTConfig(image_size=8, patch_size=2, in_channels=1, d_model=16,
                                                    n_heads=2, n_layers=1, n_labels=10, pool="mean")),
        lambda: {"pixel_values": torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)),
                 "labels": torch.tensor([1, 9, 0])}, "logits"),
    # the small-data options of the ViT studies: SPT and LSA; a convolutional stem and DeiT's distillation
    # token (its "logits" average two heads: the contract's head is the one on the pooled [CLS])
    "vit-shifted-lsa-mean": Family(
        lambda: ViTForImageClassification(ViTConfig(image_size=8, patch_size=2, in_channels=1, d_model=16, n_heads=2,
                                                    n_layers=1, n_labels=10, pool="mean", stem="shifted",
                                                    attention="lsa")),
        lambda: {"pixel_values": torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)),
                 "labels": torch.tensor([1, 9, 0])}, "logits"),
    "vit-conv-distilled": Family(
        lambda: ViTForImageClassification(ViTConfig(image_size=8, patch_size=4, in_channels=1, d_model=16, n_heads=2,
                                                    n_layers=2, n_labels=3, stem="conv", distillation=True)),
        lambda: {"pixel_values": torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)),
                 "labels": torch.tensor([0, 2, 1]), "teacher_labels": torch.tensor([1, 2, 0])}, "cls_logits"),
    "small-cnn": Family(
        lambda: SmallCNN(SmallCNNConfig(in_channels=1, channels=8, n_labels=10)),
        lambda: {"pixel_values": torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)),
                 "labels": torch.tensor([1, 9, -100])}, "logits"),
}


def _loss(family: Family, out: dict[str, torch.Tensor]) -> torch.Tensor:
    return out["loss"] if family.has_loss else out[family.output].square().mean()


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return FAMILIES[name].build()


@pytest.mark.parametrize("name", FAMILIES)
def test_forward_shapes_loss_and_no_nan(name):
    family, model = FAMILIES[name], _model(name)
    out = model.eval()(**family.batch())
    assert torch.isfinite(out[family.output]).all()
    loss = _loss(family, out)
    assert loss.ndim == 0 and torch.isfinite(loss)
    if family.per_example:
        assert out[family.output].shape[0] == next(iter(family.batch().values())).shape[0]


@pytest.mark.parametrize("name", FAMILIES)
def test_every_parameter_gets_a_gradient(name):
    family, model = FAMILIES[name], _model(name)
    _loss(family, model.train()(**family.batch())).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", FAMILIES)
def test_state_dict_keys_match_the_snapshot(name):
    keys = [f"{k} {tuple(v.shape)}" for k, v in _model(name).state_dict().items()]
    path = SNAPSHOTS / f"{name}.txt"
    assert path.is_file(), f"no snapshot for {name}: write {path} from this list and review it: {keys}"
    assert keys == path.read_text().splitlines()


@pytest.mark.parametrize("name", FAMILIES)
def test_save_pretrained_round_trip_gives_identical_outputs(name, tmp_path):
    family, model = FAMILIES[name], _model(name).eval()
    with torch.no_grad():
        for p in model.parameters():  # non-default values everywhere, buffers included
            p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path)
    for loaded in (type(model).from_pretrained(tmp_path), from_pretrained(tmp_path)):
        assert type(loaded) is type(model) and not loaded.training
        assert loaded.config == model.config
        with torch.no_grad():
            torch.testing.assert_close(loaded(**family.batch())[family.output],
                                       model(**family.batch())[family.output], rtol=0, atol=0)


@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if f.pad is not None])
def test_more_padding_changes_nothing(name):
    family, model = FAMILIES[name], _model(name).eval()
    batch = family.batch()
    with torch.no_grad():
        torch.testing.assert_close(model(**family.pad(batch))[family.output],
                                   model(**batch)[family.output], atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_compiled_forward_equals_eager(name):
    family, model = FAMILIES[name], _model(name).eval()
    batch = family.batch()
    torch._dynamo.reset()
    # aot_eager traces exactly what inductor would compile, without building C++ kernels;
    # fullgraph=True fails on any graph break, e.g. a host synchronisation in the forward pass
    compiled = torch.compile(model, backend="aot_eager", fullgraph=family.fullgraph)
    with torch.no_grad():
        torch.testing.assert_close(compiled(**batch)[family.output], model(**batch)[family.output],
                                   atol=1e-5, rtol=1e-5)


HEADED = [n for n in FAMILIES if n not in ("seq2seq", "bert-masked-lm")]  # the MLM head scores tokens


@pytest.mark.parametrize("name", HEADED)
def test_forward_is_forward_features_then_pool_then_forward_head(name):
    """Every pooling family exposes timm's three steps, and ``embed`` is the pre-logits vector."""
    family, model = FAMILIES[name], _model(name).eval()
    inputs = {k: v for k, v in family.batch().items() if k not in ("labels", "teacher_labels")}
    with torch.no_grad():
        pooled = model.pool(model.forward_features(**inputs))
        out = model(**inputs)[family.output]
        head = model.forward_head(pooled)
        if name.startswith("regressor"):  # the head predicts standardised targets
            c = model.config
            head = head.squeeze(-1) * c.target_std + c.target_mean
        torch.testing.assert_close(head, out, rtol=1e-5, atol=1e-5)
        if not name.startswith("bert"):  # BERT's embed is sentence-transformers' normalised mean
            torch.testing.assert_close(model.embed(**inputs), model.forward_head(pooled, pre_logits=True),
                                       rtol=1e-5, atol=1e-5)
