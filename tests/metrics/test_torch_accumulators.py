"""The torch streaming accumulators of gicho.metrics (re-exported by gicho.train): the confusion
matrix against scikit-learn, and the import that stays free of torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix

import gicho.metrics
import gicho.train
from gicho.metrics import ClassificationAccuracy, ConfusionMatrix


def test_import_gicho_metrics_does_not_import_torch():
    code = "import sys, gicho.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_gicho_train_re_exports_the_same_accumulators():
    for name in ("ClassificationAccuracy", "ConfusionMatrix", "MaskedLMScores", "RegressionScores",
                 "SequenceMatchScores"):
        assert getattr(gicho.train, name) is getattr(gicho.metrics, name)
        assert getattr(gicho.metrics, name).__module__ == "gicho.metrics._torch"
    with pytest.raises(AttributeError, match=r"module 'gicho\.metrics' has no attribute 'Nope'"):
        gicho.metrics.Nope  # noqa: B018


def test_confusion_matrix_over_batches_equals_sklearns_and_skips_ignored_labels():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 4, generator=g)
    labels = torch.randint(0, 4, (50,), generator=g)
    labels[::7] = -100  # left out, as by ClassificationAccuracy
    matrix, accuracy = ConfusionMatrix(["a", "b", "c", "d"], per_class=True), ClassificationAccuracy()
    for lo in range(0, 50, 16):  # uneven batches
        batch, outputs = {"labels": labels[lo:lo + 16]}, {"logits": logits[lo:lo + 16]}
        matrix.update(outputs, batch)
        accuracy.update(outputs, batch)
    keep = (labels != -100).numpy()
    expected = confusion_matrix(labels.numpy()[keep], logits.argmax(-1).numpy()[keep], labels=range(4))
    np.testing.assert_array_equal(matrix.matrix(), expected)
    scores = matrix.compute()
    assert scores["accuracy"] == accuracy.compute()["accuracy"] == np.trace(expected) / expected.sum()
    for k, name in enumerate("abcd"):
        assert scores[f"accuracy_{name}"] == expected[k, k] / expected[k].sum()


def test_confusion_matrix_of_token_classification_and_an_unseen_class():
    logits = torch.tensor([[[5.0, 0, 0], [0, 5.0, 0]], [[0, 5.0, 0], [0, 0, 0]]])  # (B=2, T=2, C=3)
    labels = torch.tensor([[0, 0], [1, -100]])
    matrix = ConfusionMatrix(3, per_class=True)
    matrix.update({"logits": logits}, {"labels": labels})
    np.testing.assert_array_equal(matrix.matrix(), [[1, 1, 0], [0, 1, 0], [0, 0, 0]])
    scores = matrix.compute()
    assert (scores["accuracy"], scores["accuracy_0"], scores["accuracy_1"]) == (2 / 3, 0.5, 1.0)
    assert np.isnan(scores["accuracy_2"])  # no item of class 2
    assert matrix.names == ["0", "1", "2"]  # a count of classes names them by index


def test_confusion_matrix_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"saw no labelled item"):
        ConfusionMatrix(2).compute()
    with pytest.raises(ValueError, match=r"logits of shape \(3, 2\) do not match labels of shape \(3,\) and 3 "
                                         r"classes; expected logits of shape \(3, 3\)"):
        ConfusionMatrix(3).update({"logits": torch.zeros(3, 2)}, {"labels": torch.zeros(3, dtype=torch.long)})
    matrix = ConfusionMatrix(2)
    matrix.update({"logits": torch.zeros(3, 2)}, {"labels": torch.tensor([0, 2, -1])})
    with pytest.raises(ValueError, match=r"saw 2 label\(s\) outside \[0, 2\) that are not ignore_index=-100"):
        matrix.compute()
    with pytest.raises(KeyError, match=r"ConfusionMatrix needs batch\['labels'\]"):
        ConfusionMatrix(2).update({"logits": torch.zeros(1, 2)}, {"x": torch.zeros(1)})
    with pytest.raises(TypeError, match=r"argument `classes` must be a number of classes or a sequence"):
        ConfusionMatrix("abc")
