"""``mlm-bert`` on a corpus that outgrows memory: Parquet/JSONL/Arrow files through ``datasets``,
blocks memory-mapped from disk, and two ``torchrun`` processes that resume exactly (issue 21, item 5)."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from gicho.runs import evaluate_run, run_task
from gicho.tasks import get

pytest.importorskip("datasets")
pytestmark = pytest.mark.usefixtures("single_torch_thread")

HERE = Path(__file__).resolve().parent
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                "TORCHELASTIC_RUN_ID", "GROUP_RANK")
WORDS = ("the a loop statement break continue function returns value list item each when while "
         "for in of to is it exits runs calls module class method string number file").split()


def _texts(n: int = 240, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 24))).capitalize() + "."
            for _ in range(n)]


def _jsonl(path: Path, texts: list[str], field: str = "text") -> Path:
    path.write_text("".join(json.dumps({field: t, "row": i}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    return path


SMALL = {"data.vocab_size": 150, "data.block_size": 32, "data.valid_fraction": 0.1,
         "train.max_steps": 4, "train.eval_every": 4, "train.log_every": 2, "train.batch_size": 8,
         "train.warmup_steps": 1, "train.device": "cpu"}


def test_mlm_bert_pretrains_on_a_jsonl_file_end_to_end(tmp_path):
    from gicho.data.text import MemmapBlocks, PackedBlocks
    from gicho.data.text.datasets_corpus import HeldOutRows

    texts = _texts()
    path = _jsonl(tmp_path / "corpus.jsonl", texts, field="body")
    task = get("mlm-bert")
    config = task.make_config({**SMALL, "data.corpus": str(path), "data.text_field": "body"})
    splits = task.build_data(config)
    assert isinstance(splits.train, MemmapBlocks) and splits.train.path.is_file()
    # the held-out rows are those of the seeded hash; the training blocks are PackedBlocks' of
    # the other rows, in row order
    held = HeldOutRows(len(texts), 0.1, seed=0).mask(0, len(texts))
    train_texts = [t for t, h in zip(texts, held, strict=True) if not h]
    tokenizer = splits.info["tokenizer"]
    expected = PackedBlocks(train_texts, tokenizer, 32, drop_last=True)
    assert torch.equal(splits.train.blocks, expected.blocks)
    valid = PackedBlocks([t for t, h in zip(texts, held, strict=True) if h], tokenizer, 32)
    assert len(splits.valid) == len(valid)
    again = task.build_data(config)  # every torchrun process builds the same data
    assert torch.equal(again.train.blocks, splits.train.blocks) and again.train.path != splits.train.path
    assert again.info["tokenizer"].get_vocab() == tokenizer.get_vocab()
    blocks_dir = splits.train.path.parent
    del splits, again
    import gc

    gc.collect()
    assert not blocks_dir.exists()  # the temporary blocks go with their dataset

    outcome = run_task(task, config, root=tmp_path / "runs", progress=False, report=False)
    assert set(outcome.metrics) == {"masked_accuracy", "perplexity", "unigram_accuracy"}
    assert 0 <= outcome.metrics["masked_accuracy"] <= 1
    assert evaluate_run(outcome.run_dir) == pytest.approx(outcome.metrics, rel=1e-9)
    assert json.loads((outcome.run_dir / "config.json").read_text())["config"]["data"]["text_field"] == "body"
    assert not list(outcome.run_dir.rglob("*.npy"))  # nothing of the corpus is left in the run


def test_parquet_shards_and_max_documents(tmp_path):
    from gicho.data.text import PackedBlocks
    from gicho.data.text.datasets_corpus import HeldOutRows

    texts = _texts(300, seed=1)
    shards = tmp_path / "shards"
    shards.mkdir()
    for k in range(3):
        pq.write_table(pa.table({"text": texts[k * 100:(k + 1) * 100]}), shards / f"part-{k}.parquet")
    task = get("mlm-bert")
    whole = task.build_data(task.make_config({**SMALL, "data.corpus": str(shards)}))
    head = task.build_data(task.make_config({**SMALL, "data.corpus": str(shards / "*.parquet"),
                                             "data.max_documents": 120, "data.seed": 5}))
    assert len(head.train) < len(whole.train)
    # the first 120 rows (of the shards in sorted order), split by the hash seeded with data.seed
    held = HeldOutRows(120, 0.1, seed=5).mask(0, 120)
    expected = PackedBlocks([t for t, h in zip(texts[:120], held, strict=True) if not h], head.info["tokenizer"],
                            32, drop_last=True)
    assert torch.equal(head.train.blocks, expected.blocks)


def test_table_corpus_config_errors(tmp_path):
    from gicho.tasks.mlm_bert import _streamed_documents

    task = get("mlm-bert")
    path = _jsonl(tmp_path / "corpus.jsonl", _texts(40))
    with pytest.raises(ValueError, match=r"argument `text_field`: .*corpus\.jsonl has no column 'body'; its "
                                         r"columns: 'text', 'row'"):
        task.build_data(task.make_config({**SMALL, "data.corpus": str(path), "data.text_field": "body"}))
    with pytest.raises(ValueError, match=r"field `data.unit` \('line'\) applies to text files; in a Parquet, JSONL "
                                         r"or Arrow corpus each row is a document"):
        _streamed_documents(task.make_config({"data.corpus": str(path), "data.unit": "line"}).data)
    text_file = tmp_path / "corpus.txt"
    text_file.write_text("a paragraph\n\nanother one\n")
    with pytest.raises(ValueError, match=r"field `data.text_field` \('body'\) applies to a Parquet, JSONL or Arrow "
                                         r"corpus; data.corpus is .*corpus\.txt"):
        _streamed_documents(task.make_config({"data.corpus": str(text_file), "data.text_field": "body"}).data)
    assert _streamed_documents(task.make_config({"data.corpus": str(text_file)}).data) is None
    blank = _jsonl(tmp_path / "blank.jsonl", ["words here"] + [" "] * 30)
    with pytest.raises(ValueError, match=r"the held-out rows of .*blank\.jsonl .* hold no text"):
        _streamed_documents(task.make_config({"data.corpus": str(blank), "data.valid_fraction": 0.2}).data)
    with pytest.raises(FileNotFoundError, match=r"argument `path`: file not found: .*missing\.parquet"):
        task.build_data(task.make_config({"data.corpus": str(tmp_path / "missing.parquet")}))


# ------------------------------------------------------------------ torchrun, interrupted and resumed

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


TORCHRUN_ARGS = ["--data.vocab-size", "150", "--data.block-size", "32", "--data.valid-fraction", "0.1",
                 "--train.batch-size", "4", "--train.max-steps", "12", "--train.eval-every", "8",
                 "--train.log-every", "2", "--train.warmup-steps", "2", "--train.device", "cpu"]


def _torchrun(info_dir: Path, *args: str, signal_at: int = -1, signal_rank: int = 1) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    env.update({"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"})
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={_free_port()}", str(HERE / "train_and_signal.py"), str(signal_at), str(signal_rank),
               str(info_dir), "train", "mlm-bert", *args, *TORCHRUN_ARGS]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


def _train_losses(run_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if r.get("split") == "train"}


@pytest.mark.slow
def test_torchrun_two_processes_resume_exactly_on_a_jsonl_corpus(tmp_path):
    """Two gloo processes: a run SIGTERMed on rank 1 during step 5 stops at the step-6 log line
    with a checkpoint; resumed, it ends bit for bit where the uninterrupted 2-process run ends."""
    corpus = str(_jsonl(tmp_path / "corpus.jsonl", _texts(300, seed=2)))
    reference = _torchrun(tmp_path / "info-ref", "--runs-dir", str(tmp_path / "ref"), "--data.corpus", corpus)
    assert reference.returncode == 0, reference.stderr[-4000:]
    (ref_dir,) = (tmp_path / "ref").iterdir()
    ranks = [json.loads((tmp_path / "info-ref" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1] and ranks[0]["train_class"] == "MemmapBlocks"  # the same data on both ranks

    stopped = _torchrun(tmp_path / "info-stop", "--runs-dir", str(tmp_path / "run"), "--data.corpus", corpus,
                        signal_at=4)
    assert stopped.returncode != 0
    assert "interrupted at step 6; resume with: gicho train mlm-bert --resume" in stopped.stderr, stopped.stderr[-4000:]
    (run_dir,) = (tmp_path / "run").iterdir()
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("step-*")) == ["step-00000006"]
    assert not (run_dir / "model").exists()

    resumed = _torchrun(tmp_path / "info-resume", "--resume", str(run_dir), "--data.corpus", corpus)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert json.loads((tmp_path / "info-resume" / "rank1.json").read_text()) == ranks[1]  # the saved vocabulary

    assert _train_losses(run_dir) == _train_losses(ref_dir) and max(_train_losses(run_dir)) == 12
    for name in ("model", "checkpoints/step-00000012"):
        got, want = (load_file(d / name / "model.safetensors") for d in (run_dir, ref_dir))
        assert got.keys() == want.keys()
        for key in want:
            assert torch.equal(got[key], want[key]), (name, key)
    metrics = [json.loads((d / "results.json").read_text())["metrics"] for d in (run_dir, ref_dir)]
    assert metrics[0] == metrics[1]
