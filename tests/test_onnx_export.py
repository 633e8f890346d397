"""ONNX export (gicho.models.onnx_export, ``gicho export``): onnxruntime computes what gicho
computes, at other batch sizes, lengths and padding than the graph was traced on."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from gicho.cli import main  # noqa: E402
from gicho.models.bert import BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel  # noqa: E402
from gicho.models.onnx_export import TOLERANCE, export_onnx  # noqa: E402
from gicho.models.vit import ViTConfig, ViTForImageClassification, ViTModel  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_torch_thread")
BERT = {"vocab_size": 40, "d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 32, "max_len": 24}
VIT = {"image_size": 8, "patch_size": 2, "in_channels": 1, "d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 32}
WORDS = ["the", "a", "loop", "exits", "break", "return", "for", "while", "."]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _randomise_norms(model: torch.nn.Module) -> None:
    """LayerNorms away from (1, 0), so that a graph that skipped one would show."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


def _text_batch(batch: int, length: int, lengths: list[int], seed: int) -> dict[str, np.ndarray]:
    """Token ids (batch, length) with right padding to ``lengths`` and two segments."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, BERT["vocab_size"], (batch, length), generator=g)
    mask = (torch.arange(length) < torch.tensor(lengths)[:, None]).long()
    segments = (torch.arange(length) >= length // 2).long().expand(batch, -1) * mask
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": segments}


# (batch, length, real lengths): another batch size and length than the export's 2 x 8 (and its
# 3 x 5 check), a single token, the longest input, left-over padding in every row
TEXT_SHAPES = [(1, 1, [1]), (4, 13, [13, 1, 7, 12]), (5, 24, [24, 3, 24, 10, 2]), (3, 6, [5, 5, 4])]


def _run(path, inputs: dict) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]


@pytest.mark.parametrize("fields", [{"pool": "cls", "label_names": ("neg", "neutral", "pos")},
                                    {"pool": "mean", "norm_first": True, "n_labels": 1}])
def test_bert_classifier_logits_equal_gichos_at_other_batches_lengths_and_padding(tmp_path, fields):
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**BERT, **{"n_labels": 3, **fields})).eval()
    _randomise_norms(model)
    result = export_onnx(model, tmp_path / "bert.onnx")
    assert result.what == "classifier" and result.output_name == "logits"
    assert result.input_names == ("input_ids", "attention_mask", "token_type_ids")
    assert result.max_abs_diff <= TOLERANCE and result.checked_shapes == ((2, 8), (3, 5))
    for i, (batch, length, lengths) in enumerate(TEXT_SHAPES):
        inputs = _text_batch(batch, length, lengths, seed=i)
        with torch.no_grad():
            want = model(**inputs)["logits"].numpy()  # eager: unpadded, fused attention
        np.testing.assert_allclose(_run(result.path, inputs), want, rtol=0, atol=TOLERANCE)
    assert not model.training  # the export leaves the model's mode as it found it
    meta = ort.InferenceSession(str(result.path)).get_modelmeta().custom_metadata_map
    assert json.loads(meta["gicho.label_names"]) == (list(fields["label_names"]) if "label_names" in fields else None)
    assert json.loads(meta["gicho.inputs"]) == list(result.input_names) and meta["gicho.max_len"] == "24"


@pytest.mark.parametrize("head", [BertModel, BertForMaskedLM, BertForSequenceClassification])
def test_bert_embeddings_equal_embed_for_every_head(tmp_path, head):
    torch.manual_seed(1)
    model = head(BertConfig(**BERT))
    _randomise_norms(model)
    model.train()  # the graph is the evaluation pass (no dropout) whatever the mode
    result = export_onnx(model, tmp_path / "embed.onnx", what="embeddings" if head is BertForSequenceClassification
                         else None)
    assert result.what == "embeddings" and result.output_name == "embeddings" and model.training
    model.eval()
    for i, (batch, length, lengths) in enumerate(TEXT_SHAPES):
        inputs = _text_batch(batch, length, lengths, seed=10 + i)
        with torch.no_grad():
            want = model.embed(**inputs).numpy()
        got = _run(result.path, inputs)
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_embeddings_graph_on_tokenized_texts_equals_sentence_embeddings(tmp_path):
    from gicho.tasks.bert_text import encode, load_tokenizer, sentence_embeddings

    torch.manual_seed(2)
    directory = tmp_path / "tiny-bert"
    model = BertModel(BertConfig(**{**BERT, "vocab_size": len(SPECIALS) + len(WORDS)})).eval()
    model.save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(SPECIALS + WORDS) + "\n")
    result = export_onnx(directory, tmp_path / "embed.onnx")  # a directory: loaded, BertModel → embeddings
    assert result.what == "embeddings"
    assert str(directory) in result.metadata["gicho.preprocessing"] and "vocab.txt" in result.metadata[
        "gicho.preprocessing"]
    tokenizer = load_tokenizer(directory)
    texts = ["the loop exits .", "break", "a while loop for the return of a break ."]
    batch = encode(tokenizer, texts, 24)
    got = _run(result.path, {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
                             "token_type_ids": batch.token_type_ids})
    want, _ = sentence_embeddings(model, tokenizer, texts)
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("options", [{}, {"stem": "conv", "distillation": True},
                                     {"stem": "shifted", "attention": "lsa", "pool": "mean"},
                                     {"attention": "lsa", "distillation": True, "pool": "max"}])
def test_vit_classifier_with_every_option_equals_gicho_at_other_batch_sizes(tmp_path, options):
    torch.manual_seed(3)
    model = ViTForImageClassification(ViTConfig(**VIT, n_labels=4, label_names=("a", "b", "c", "d"),
                                                **options)).eval()
    _randomise_norms(model)
    result = export_onnx(model, tmp_path / "vit.onnx")
    assert result.input_names == ("pixel_values",) and result.max_abs_diff <= TOLERANCE
    assert json.loads(result.metadata["gicho.label_names"]) == ["a", "b", "c", "d"]
    for batch in (1, 5):
        pixels = torch.randn(batch, 1, 8, 8)
        with torch.no_grad():
            want = model(pixels)["logits"].numpy()  # with distillation: the mean of the two heads
        np.testing.assert_allclose(_run(result.path, {"pixel_values": pixels}), want, rtol=0, atol=TOLERANCE)


def _seq2seq():
    from gicho.models.seq2seq import Seq2Seq, Seq2SeqConfig

    return Seq2Seq(Seq2SeqConfig(src_vocab_size=10, tgt_vocab_size=10, embed_dim=8, hidden_dim=8))


def _tabular():
    from gicho.models.classifier import ClassifierConfig, SequenceClassifier

    return SequenceClassifier(ClassifierConfig(n_features=4, d_model=8, n_heads=2, n_layers=1))


def _cnn():
    from gicho.models.cnn import SmallCNN, SmallCNNConfig

    return SmallCNN(SmallCNNConfig(channels=4))


@pytest.mark.parametrize("make, what, message", [
    (_seq2seq, None, r"ONNX export supports BertForSequenceClassification .*; got a Seq2Seq"),
    (_tabular, None, r"ONNX export supports .*; got a SequenceClassifier"),
    (_cnn, None, r"ONNX export supports .*; got a SmallCNN"),
    (lambda: ViTModel(ViTConfig(**VIT)), None, r"got a ViTModel \(an encoder without a head\)"),
    (lambda: ViTForImageClassification(ViTConfig(**VIT, n_labels=2)), "embeddings",
     r"`what`='embeddings' is for BERT models"),
    (lambda: BertForMaskedLM(BertConfig(**BERT)), "classifier",
     r"`what`='classifier' needs a classification head, and this BertForMaskedLM has none"),
    (lambda: BertModel(BertConfig(**BERT)), "logits", r"argument `what` must be one of \('classifier', "
                                                      r"'embeddings'\); got 'logits'"),
    (lambda: BertModel(BertConfig(**BERT)).double(), None, r"writes float32 graphs; .* \['torch.float64'\]"),
])
def test_unsupported_models_and_graphs_are_refused_naming_what_is_supported(tmp_path, make, what, message):
    with pytest.raises(ValueError, match=message):
        export_onnx(make(), tmp_path / "x.onnx", what=what)
    assert not (tmp_path / "x.onnx").exists()


def test_a_graph_that_differs_from_gicho_is_not_written(tmp_path, monkeypatch):
    # Without the tracing switch the encoder unpads the traced example: its token positions
    # become constants of the graph, which then fails on the second input. The export must
    # refuse and leave an existing file as it was.
    from gicho.nn import execution

    monkeypatch.setattr(execution, "static_shapes", lambda: False)
    target = tmp_path / "bert.onnx"
    target.write_bytes(b"previous")
    model = BertForSequenceClassification(BertConfig(**BERT)).eval()
    with pytest.raises(ValueError, match=r"nothing was written to .*bert\.onnx: onnxruntime cannot run the "
                                         r"exported graph on inputs of shape \(3, 5\)"):
        export_onnx(model, target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["bert.onnx"]  # no temporary file left


def test_unchecked_export_and_argument_errors(tmp_path):
    model = BertModel(BertConfig(**BERT))
    result = export_onnx(model, tmp_path / "e.onnx", check=False)
    assert result.max_abs_diff is None and result.checked_shapes == () and "gicho.max_abs_diff" not in result.metadata
    with pytest.raises(ValueError, match=r"argument `atol` must be a number > 0; got 0"):
        export_onnx(model, tmp_path / "e.onnx", atol=0)
    with pytest.raises(ValueError, match=r"argument `opset` must be an integer >= 14 \(fused attention\); got 13"):
        export_onnx(model, tmp_path / "e.onnx", opset=13)


def test_importing_gicho_and_its_cli_does_not_import_onnx():
    code = ("import sys, gicho, gicho.cli; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'onnxscript') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------- gicho export


def run(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code or 0


def test_cli_exports_a_model_directory_and_a_run_directory(tmp_path, capsys):
    torch.manual_seed(4)
    model = BertForSequenceClassification(BertConfig(**BERT, n_labels=2, label_names=("no", "yes")))
    run_dir = tmp_path / "runs" / "sentiment-1"
    model.save_pretrained(run_dir / "model")
    (run_dir / "config.json").write_text(json.dumps({"task": "sentiment", "config": {}}))
    out = tmp_path / "classifier.onnx"
    assert run("export", str(run_dir), "--onnx", str(out)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"wrote {out}: BertForSequenceClassification → logits (inputs input_ids, attention_mask, "
                        "token_type_ids; dynamic batch and sequence)")
    assert lines[1].startswith("checked with onnxruntime: max |onnxruntime - gicho| = ")
    assert lines[1].endswith(" <= 0.0001 on inputs of shape 2 x 8 and 3 x 5 (padded)")
    assert float(lines[1].split("= ")[1].split()[0]) <= TOLERANCE
    meta = ort.InferenceSession(str(out)).get_modelmeta().custom_metadata_map
    assert json.loads(meta["gicho.label_names"]) == ["no", "yes"] and meta["gicho.what"] == "classifier"

    embeddings = tmp_path / "embeddings.onnx"
    assert run("export", str(run_dir / "model"), "--onnx", str(embeddings), "--what", "embeddings") == 0
    assert "BertForSequenceClassification → embeddings" in capsys.readouterr().out
    inputs = _text_batch(3, 7, [7, 2, 5], seed=5)
    with torch.no_grad():
        want = model.eval().embed(**inputs).numpy()
    np.testing.assert_allclose(_run(embeddings, inputs), want, rtol=0, atol=TOLERANCE)


def test_cli_exports_a_vit_and_names_bad_input(tmp_path, capsys):
    torch.manual_seed(5)
    ViTForImageClassification(ViTConfig(**VIT, n_labels=3)).save_pretrained(tmp_path / "vit")
    assert run("export", str(tmp_path / "vit"), "--onnx", str(tmp_path / "vit.onnx")) == 0
    out = capsys.readouterr().out
    assert "ViTForImageClassification → logits (inputs pixel_values; dynamic batch)" in out
    assert "on inputs of shape 2 x 1 x 8 x 8 and 3 x 1 x 8 x 8\n" in out

    assert run("export", str(tmp_path / "vit"), "--onnx", str(tmp_path / "e.onnx"), "--what", "embeddings") == 2
    assert capsys.readouterr().err == ("error: argument `what`='embeddings' is for BERT models (sentence "
                                       "embeddings); a ViTForImageClassification exports what='classifier'\n")
    assert run("export", str(tmp_path / "missing"), "--onnx", str(tmp_path / "m.onnx")) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'missing'} is not a directory (expected a run directory "
                                       "or a model directory with config.json and model.safetensors)\n")
    unfinished = tmp_path / "runs" / "vit-1"
    unfinished.mkdir(parents=True)
    (unfinished / "config.json").write_text(json.dumps({"task": "vit", "config": {}}))
    assert run("export", str(unfinished), "--onnx", str(tmp_path / "u.onnx")) == 2
    assert capsys.readouterr().err == (f"error: {unfinished} is a run directory of the task 'vit' without a model "
                                       f"({unfinished / 'model'} is missing: the run did not finish)\n")
    assert not any(tmp_path.glob("[emu].onnx"))
