"""Tests for gicho.models.classifier: config checks, the three input kinds, loss, padding."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from gicho.models.classifier import ClassifierConfig, SequenceClassifier, SequenceRegressor
from gicho.nn.pooling import check_nonempty
from gicho.nn.pooling import pool as pool_tokens

pytestmark = pytest.mark.usefixtures("single_torch_thread")


SMALL = {"d_model": 16, "n_heads": 2, "n_layers": 2, "dropout": 0.0, "max_len": 12}


def test_config_checks():
    with pytest.raises(ValueError, match="d_model=30 must be divisible by n_heads=4"):
        ClassifierConfig(vocab_size=10, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="exactly one of vocab_size"):
        ClassifierConfig()
    with pytest.raises(ValueError, match=r"exactly one of .*\['vocab_size', 'n_features'\]"):
        ClassifierConfig(vocab_size=10, n_features=3)
    with pytest.raises(ValueError, match="`pool` must be one of"):
        ClassifierConfig(vocab_size=10, pool="sum")
    with pytest.raises(ValueError, match="`position` must be one of"):
        ClassifierConfig(vocab_size=10, position="rope")
    with pytest.raises(ValueError, match="n_features=20 exceeds max_len=8"):
        ClassifierConfig(n_features=20, max_len=8)
    with pytest.raises(ValueError, match="`dropout`"):
        ClassifierConfig(vocab_size=10, dropout=1.5)
    with pytest.raises(ValueError, match="`target_std`"):
        ClassifierConfig(n_features=3, target_std=0.0)
    with pytest.raises(TypeError, match="`n_layers` must be an integer"):
        ClassifierConfig(vocab_size=10, n_layers=1.5)
    config = ClassifierConfig(vocab_size=10, d_model=16, n_heads=2)
    assert config.d_ff is None and config.ff_dim == 64  # resolved on use, so overrides of d_model follow
    assert ClassifierConfig(**dataclasses.asdict(config)) == config  # JSON round trip


@pytest.mark.parametrize("pool", ["mean", "cls", "max"])
@pytest.mark.parametrize("norm_first", [True, False])
def test_classifier_ids_pipeline_and_loss(pool, norm_first):
    torch.manual_seed(0)
    config = ClassifierConfig(vocab_size=11, n_labels=3, pool=pool, norm_first=norm_first, **SMALL)
    model = SequenceClassifier(config).eval()
    assert model.config is config
    ids = torch.randint(1, 11, (4, 7))
    labels = torch.tensor([0, 2, -100, 1])
    out = model(input_ids=ids, labels=labels)
    assert out["logits"].shape == (4, 3)
    torch.testing.assert_close(
        out["loss"], F.cross_entropy(out["logits"], labels, ignore_index=-100)
    )
    features = model.forward_features(ids)
    hidden, mask = features.last_hidden_state, features.mask
    assert hidden.shape == (4, 7 + (pool == "cls"), 16)
    pooled = model.pool(features)
    torch.testing.assert_close(pooled, pool_tokens(hidden, mask, pool, int(pool == "cls")))
    torch.testing.assert_close(model.forward_head(pooled), out["logits"])
    torch.testing.assert_close(model.embed(input_ids=ids), pooled)
    out["loss"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("pool", ["mean", "cls"])
def test_further_padding_does_not_change_outputs(pool):
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(vocab_size=11, pool=pool, **SMALL)).eval()
    ids = torch.tensor([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]])
    more = torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    a = model(input_ids=ids)["logits"]
    b = model(input_ids=more)["logits"]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    # the explicit mask equals the pad-id mask; an int 0/1 mask works too
    c = model(input_ids=more, attention_mask=(more != 0).long())["logits"]
    torch.testing.assert_close(c, b, atol=1e-6, rtol=0)
    # the unpadded row alone gives the same logits
    torch.testing.assert_close(model(input_ids=ids[:1, :3])["logits"], a[:1], atol=1e-5, rtol=0)


def test_regressor_feature_tokens_standardised_loss():
    torch.manual_seed(0)
    config = ClassifierConfig(
        n_features=5, n_labels=1, position="none", target_mean=100.0, target_std=50.0, **SMALL
    )
    model = SequenceRegressor(config).eval()
    x = torch.randn(6, 5)
    y = torch.randn(6) * 50 + 100
    out = model(features=x, labels=y)
    assert out["predictions"].shape == (6,)
    expected = F.mse_loss((out["predictions"] - 100) / 50, (y - 100) / 50)
    torch.testing.assert_close(out["loss"], expected)
    with pytest.raises(ValueError, match=r"labels must have shape \(6,\)"):
        model(features=x, labels=y[:, None])
    multi = SequenceRegressor(dataclasses.replace(config, n_labels=2)).eval()
    assert multi(features=x)["predictions"].shape == (6, 2)


def test_vector_tokens_and_attentions():
    torch.manual_seed(0)
    config = ClassifierConfig(token_dim=8, n_labels=10, pool="cls", **SMALL)
    model = SequenceClassifier(config).eval()
    out = model(features=torch.randn(3, 8, 8), output_attentions=True)
    assert out["logits"].shape == (3, 10)
    assert len(out["attentions"]) == 2 and out["attentions"][0].shape == (3, 2, 9, 9)


def test_learns_a_marker_task():
    """A few steps of Adam drive the training loss on a separable marker task near zero."""
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(vocab_size=8, **SMALL))
    ids = torch.randint(3, 8, (32, 10))
    labels = torch.randint(0, 2, (32,))
    ids[torch.arange(32), torch.randint(0, 10, (32,))] = labels + 1  # marker id 1 or 2
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = model(input_ids=ids, labels=labels)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    acc = (model(input_ids=ids)["logits"].argmax(-1) == labels).float().mean()
    assert acc > 0.9


def test_bad_inputs():
    model = SequenceClassifier(ClassifierConfig(vocab_size=11, **SMALL))
    with pytest.raises(ValueError, match="sequence length 13 exceeds max_len=12"):
        model(input_ids=torch.ones(2, 13, dtype=torch.long))
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(B, T\) = \(2, 5\)"):
        model(input_ids=torch.ones(2, 5, dtype=torch.long), attention_mask=torch.ones(2, 6))
    with pytest.raises(ValueError, match="pass input_ids"):
        model(features=torch.ones(2, 5))
    with pytest.raises(ValueError, match="integer tensor of shape"):
        model(input_ids=torch.ones(2, 5))
    # an all-padding row is caught where batches are built (no host sync in forward) ...
    with pytest.raises(ValueError, match=r"batch rows \[1\] have no real token"):
        check_nonempty(torch.tensor([[1, 2], [0, 0]]) != 0)
    # ... and the model itself stays finite on it
    assert torch.isfinite(model(input_ids=torch.tensor([[1, 2], [0, 0]]))["logits"]).all()
    vec = SequenceClassifier(ClassifierConfig(token_dim=4, **SMALL))
    with pytest.raises(ValueError, match=r"features must have shape \(B, T, 4\)"):
        vec(features=torch.ones(2, 3, 5))
    with pytest.raises(ValueError, match="pass features"):
        vec(input_ids=torch.ones(2, 3, dtype=torch.long))


def test_out_of_range_ids_and_labels_are_clear_errors():
    model = SequenceClassifier(ClassifierConfig(vocab_size=11, n_labels=3, **SMALL))
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 11\)"):
        model(input_ids=torch.tensor([[1, 11]]))
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 11\)"):
        model(input_ids=torch.tensor([[1, -2]]))
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\) or -100"):
        model(input_ids=torch.tensor([[1, 2]]), labels=torch.tensor([7]))
