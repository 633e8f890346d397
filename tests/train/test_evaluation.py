"""One evaluation pass: streaming metrics updated from the loss's own forward outputs; the ready
accumulators against scikit-learn; exact token-level losses in training and evaluation."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, mean_absolute_error, r2_score, root_mean_squared_error
from torch import nn

from gicho.train import (
    ClassificationAccuracy,
    RegressionScores,
    StreamingMetric,
    TrainConfig,
    Trainer,
    evaluate_model,
)
from gicho.train.data import MicroBatches

# ---------------------------------------------------------------------- one evaluation pass


def count_eval_forwards(model: nn.Module) -> list[int]:
    calls = []
    forward = model.forward

    def counting(**batch):
        if not model.training:
            calls.append(len(batch["x"]))
        return forward(**batch)

    model.forward = counting
    return calls


def test_evaluation_runs_the_model_once_per_batch(toy):
    trainer = toy.make_trainer(n_eval=30, eval_batch_size=8)
    trainer.metrics = [toy.Accuracy, functools.partial(ClassificationAccuracy, name="acc2")]
    calls = count_eval_forwards(trainer.model)
    result = trainer.evaluate()
    assert calls == [8, 8, 8, 6]  # before: every batch twice (loss pass, then metrics pass)
    assert set(result) == {"eval_loss", "accuracy", "acc2"}
    assert result["accuracy"] == result["acc2"]
    assert isinstance(toy.Accuracy(), StreamingMetric)


def test_eval_forward_feeds_loss_and_metrics(toy):
    seen = []

    def eval_forward(model, batch):
        out = model(**batch)
        return {**out, "doubled": out["logits"] * 2}

    class Doubled:
        def __init__(self):
            self.ok = True

        def update(self, outputs, batch):
            seen.append(outputs["loss"])
            self.ok &= bool(torch.equal(outputs["doubled"], outputs["logits"] * 2))

        def compute(self):
            return {"doubled_ok": float(self.ok)}

    trainer = toy.make_trainer(n_eval=24, eval_batch_size=8)
    trainer.metrics, trainer.eval_forward = Doubled, eval_forward
    calls = count_eval_forwards(trainer.model)
    result = trainer.evaluate()
    assert calls == [8, 8, 8] and len(seen) == 3 and result["doubled_ok"] == 1.0
    assert result["eval_loss"] == pytest.approx(float(torch.stack(seen).mean()), rel=1e-6)
    plain = evaluate_model(trainer.model, trainer.eval_data, Doubled, eval_forward=eval_forward, batch_size=8)
    assert plain == result


def test_old_metrics_callable_is_refused_with_a_pointer(toy):
    old = lambda model, batches: {"accuracy": 1.0}  # noqa: E731
    with pytest.raises(TypeError, match=r"`metrics` must be a factory called with no arguments .*"
                       r"<lambda> needs arguments\. The old metrics\(model, batches\) form is gone"):
        Trainer(toy.ToyMLP(), toy.ToyData(8, 0), metrics=old)
    with pytest.raises(TypeError, match=r"`metrics`: .*<lambda>\(\) must return an object with "
                       r"update\(outputs, batch\) and compute\(\); got dict"):
        evaluate_model(toy.ToyMLP(), toy.ToyData(8, 0), lambda: {})
    with pytest.raises(ValueError, match=r"metrics Accuracy and Accuracy both report 'accuracy'"):
        evaluate_model(toy.ToyMLP(), toy.ToyData(8, 0), [toy.Accuracy, toy.Accuracy])
    with pytest.raises(TypeError, match=r"`eval_forward` must be callable or None; got int"):
        Trainer(toy.ToyMLP(), toy.ToyData(8, 0), eval_forward=1)


# ----------------------------------------------------------------------- ready accumulators


def test_classification_accuracy_ignores_minus_100_and_handles_tokens():
    metric = ClassificationAccuracy()
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]]])  # (1, 3, 2): predicts 0, 1, 0
    metric.update({"logits": logits}, {"labels": torch.tensor([[0, 0, -100]])})
    metric.update({"logits": logits[0]}, {"labels": torch.tensor([0, 1, 1])})
    assert metric.compute() == {"accuracy": 3 / 5}
    y_true = np.array([0, 0, 0, 1, 1])
    assert accuracy_score(y_true, [0, 1, 0, 1, 0]) == 3 / 5
    with pytest.raises(ValueError, match=r"saw no labelled item \(every label was -100"):
        ClassificationAccuracy().compute()
    with pytest.raises(KeyError, match=r"ClassificationAccuracy needs batch\['labels'\]; the batch "
                       r"has keys \['x'\]"):
        ClassificationAccuracy().update({"logits": logits}, {"x": logits})
    with pytest.raises(ValueError, match=r"logits of shape \(1, 3, 2\) do not match labels of shape \(3,\)"):
        ClassificationAccuracy().update({"logits": logits}, {"labels": torch.tensor([0, 1, 1])})


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("offset", [0.0, 1e8])
def test_regression_scores_match_sklearn_for_any_batching(k, offset):
    rng = np.random.default_rng(0)
    y = offset + rng.normal(size=(1000, k)) * rng.uniform(0.5, 2, size=k)
    y_hat = y + rng.normal(scale=0.3, size=(1000, k))
    metric = RegressionScores(prefix="test_")
    for chunk in np.array_split(np.arange(1000), 7):
        pred, true = torch.tensor(y_hat[chunk]), torch.tensor(y[chunk])
        if k == 1:
            pred, true = pred[:, 0], true[:, 0]
        metric.update({"predictions": pred}, {"labels": true})
    got = metric.compute()
    assert got["test_mae"] == pytest.approx(mean_absolute_error(y, y_hat), rel=1e-12)
    assert got["test_rmse"] == pytest.approx(root_mean_squared_error(y, y_hat), rel=1e-12)
    assert got["test_r2"] == pytest.approx(r2_score(y, y_hat), rel=1e-9, abs=1e-12)


def test_regression_scores_float32_inputs_and_constant_targets():
    y = torch.tensor([2.0, 2.0, 2.0])
    exact, off = RegressionScores(), RegressionScores()
    exact.update({"predictions": y.clone()}, {"labels": y})
    off.update({"predictions": y + 1}, {"labels": y})
    assert exact.compute()["r2"] == r2_score(y.numpy(), y.numpy()) == 1.0
    assert off.compute()["r2"] == r2_score(y.numpy(), y.numpy() + 1) == 0.0
    with pytest.raises(ValueError, match=r"RegressionScores saw no sample"):
        RegressionScores().compute()
    with pytest.raises(ValueError, match=r"predictions of shape \(3,\) do not match targets of shape \(2,\)"):
        RegressionScores().update({"predictions": y}, {"labels": y[:2]})


# --------------------------------------------------------------------- exact token-level loss


def train_recording_grads(toy, monkeypatch, data, **config) -> tuple[Trainer, list[list[torch.Tensor]]]:
    """Fit a TokenTagger; record each step's final gradients (they pass through clipping)."""
    grads: list[list[torch.Tensor]] = []
    monkeypatch.setattr(nn.utils, "clip_grad_norm_", nn.utils.clip_grad_norm_)  # restored by undo()
    toy.record_grads(grads)
    torch.manual_seed(0)
    trainer = Trainer(toy.TokenTagger(), data, None, None,
                      TrainConfig(**{"max_steps": 3, "lr": 0.05, "grad_clip": 1e9, "log_every": 1,
                                     "eval_every": 100, "progress": False, "device": "cpu",
                                     **config}))
    trainer.fit()
    monkeypatch.undo()
    return trainer, grads


def test_grad_accumulation_weights_micro_batches_by_items(toy, monkeypatch):
    data = toy.token_data(n=8)  # every step holds the long sample in one of its micro-batches
    big, big_grads = train_recording_grads(toy, monkeypatch, data, batch_size=8)
    small, small_grads = train_recording_grads(toy, monkeypatch, data, batch_size=4, grad_accum_steps=2)
    for step, (a, b) in enumerate(zip(big_grads, small_grads, strict=True)):
        for ga, gb in zip(a, b, strict=True):
            torch.testing.assert_close(gb, ga, rtol=1e-5, atol=1e-6, msg=f"step {step + 1}")
    for name, tensor in big.model.state_dict().items():
        torch.testing.assert_close(small.model.state_dict()[name], tensor, rtol=1e-5, atol=1e-6)
    losses = [[e["loss"] for e in t.history_ if e["split"] == "train"] for t in (big, small)]
    assert losses[1] == pytest.approx(losses[0], abs=1e-6)
    # The test can fail: averaging the two micro-batch means (the old rule) is far off.
    torch.manual_seed(0)
    model = toy.TokenTagger()  # the runs' initial weights, and their first two micro-batches
    stream = iter(MicroBatches(data, torch.utils.data.default_collate, batch_size=4, seed=0,
                               drop_last=True, world_size=1, rank=0, device=torch.device("cpu")))
    first, second = next(stream), next(stream)
    assert (first["labels"] != -100).sum() != (second["labels"] != -100).sum()
    naive = 0.5 * (model(**first)["loss"] + model(**second)["loss"])
    naive.backward()
    assert not torch.allclose(model.out.weight.grad, big_grads[0][-2], atol=1e-3)


def test_eval_loss_is_the_loss_over_all_items(toy):
    data = toy.token_data(n=10)
    torch.manual_seed(0)
    model = toy.TokenTagger()
    got = evaluate_model(model, data, batch_size=3)["eval_loss"]
    batch = torch.utils.data.default_collate(data)
    with torch.no_grad():
        expected = model(**batch)["loss"].item()
        per_batch = [model(**torch.utils.data.default_collate(data[i:i + 3]))["loss"].item()
                     for i in range(0, 10, 3)]
    assert got == pytest.approx(expected, rel=1e-6)
    sample_weighted = (3 * sum(per_batch[:3]) + per_batch[3]) / 10
    assert abs(sample_weighted - expected) > 1e-3  # the old weighting would fail this test
    # Without n_items, batches are weighted by their size, as before.
    model.report_n_items = False
    assert evaluate_model(model, data, batch_size=3)["eval_loss"] == pytest.approx(sample_weighted, rel=1e-6)


@pytest.mark.parametrize(("n_items", "error", "match"), [
    (-1, ValueError, r"the model's `n_items` must be >= 0; got -1"),
    (2.5, TypeError, r"`n_items` must be an int or a one-element tensor .*; got float"),
    (torch.ones(2), TypeError, r"`n_items` must be an int or a one-element tensor .*; got Tensor of shape \(2,\)"),
])
def test_n_items_is_checked(n_items, error, match):
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, x, labels):
            return {"loss": (self.w * x).mean(), "n_items": n_items}

    data = [{"x": torch.ones(2), "labels": torch.tensor(0)}] * 4
    with pytest.raises(error, match=match):
        Trainer(Bad(), data, config=TrainConfig(max_steps=1, batch_size=2, progress=False)).fit()


class Masked(torch.utils.data.Dataset):
    """Token data whose samples ``masked`` have every label -100."""

    def __init__(self, data, masked):
        self.data, self.masked = data, set(masked)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        item = dict(self.data[i])
        if i in self.masked:
            item["labels"] = torch.full_like(item["labels"], -100)
        return item


@pytest.mark.parametrize("as_int", [False, True])
def test_micro_batch_without_items_adds_nothing(toy, monkeypatch, as_int):
    """A micro-batch whose labels are all -100 (n_items 0, mean loss NaN) leaves the step's
    gradient that of the other micro-batch; a step with no item at all is an error."""
    data = toy.token_data(n=8)
    order = MicroBatches(data, None, batch_size=4, seed=0, drop_last=True, world_size=1, rank=0,
                         device=torch.device("cpu")).epoch_batches(0)
    if as_int:
        monkeypatch.setattr(toy.TokenTagger, "forward", _int_n_items(toy.TokenTagger.forward))
    _, grads = train_recording_grads(toy, monkeypatch, Masked(data, order[1]), max_steps=1,
                                     batch_size=4, grad_accum_steps=2)
    kept = [data[i] for i in order[0]]
    _, expected = train_recording_grads(toy, monkeypatch, kept, max_steps=1, batch_size=4)
    for g, e in zip(grads[0], expected[0], strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r"step 1 had no item to average its loss over: every "
                       r"micro-batch reported n_items=0"):
        train_recording_grads(toy, monkeypatch, Masked(data, range(8)), max_steps=1, batch_size=4)


def _int_n_items(forward):
    def wrapped(self, tokens, labels=None):
        out = forward(self, tokens, labels)
        if "n_items" in out:
            out["n_items"] = int(out["n_items"])
        return out

    return wrapped
