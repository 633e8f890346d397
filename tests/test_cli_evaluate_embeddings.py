"""`gicho evaluate-embeddings` and gicho.data.text.lee: embeddings against the Lee human ratings."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest

from gicho.cli import main
from gicho.data.text.lee import lee_correlations

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _need_gensim() -> None:
    try:
        importlib.metadata.distribution("gensim")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the data wheel gensim (Lee corpus) is not installed")


def test_correlations_over_the_upper_triangle():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(5, 3))
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    ratings = unit @ unit.T  # people agree with the cosine exactly
    scores = lee_correlations(emb, ratings)
    assert scores["n_pairs"] == 10
    assert scores["pearson"] == pytest.approx(1.0) and scores["spearman"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"`embeddings` must have shape \(5, D\)"):
        lee_correlations(emb[:4], ratings)


def test_evaluate_embeddings_on_a_tiny_bert(tmp_path, capsys):
    _need_gensim()
    from gicho.data.text import train_wordpiece
    from gicho.data.text.offline_corpora import lee_documents
    from gicho.models.bert import BertConfig, BertForMaskedLM

    tokenizer = train_wordpiece(lee_documents().texts, vocab_size=300)
    config = BertConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size, max_len=512)
    BertForMaskedLM(config).save_pretrained(tmp_path)
    tokenizer.save(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["evaluate-embeddings", str(tmp_path)])
    assert (info.value.code or 0) == 0
    out = capsys.readouterr().out
    assert "1225 rated pairs" in out and "pearson" in out and "spearman" in out
    value = float(out.split("pearson")[1].split()[0])
    assert -1 <= value <= 1
