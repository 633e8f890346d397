"""benchmarks/cpu_transformers.py runs end to end in its smoke mode (tiny sizes, one round).

It checks, for the inference cases, that gicho and ``transformers`` give the same embeddings /
logits on the benchmark's own inputs before timing them; no figure is asserted (tests never
assert on time).
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("single_torch_thread")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cpu_transformers.py"


def _load_script():
    os.environ["HF_HUB_OFFLINE"] = "1"
    spec = importlib.util.spec_from_file_location("cpu_transformers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def _check(rows, names, out):
    assert [r["case"] for r in rows] == list(names)
    for row in rows:
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0
        assert row["ours_per_s"] > 0 and row["theirs_per_s"] > 0
        assert row["ours_faults"] >= 0 and row["theirs_faults"] >= 0
    assert "torch " in out and "transformers " in out and "load average" in out
    assert out.count("page faults per step") == len(names)


def test_cpu_transformers_smoke_every_case_in_process(capsys):
    module = _load_script()
    rows = module.main(["--smoke", "--threads", "1", "--same-process"])
    _check(rows, module.CASES, capsys.readouterr().out)


def test_cpu_transformers_smoke_one_process_per_case(capsys):
    module = _load_script()
    names = ("bert-infer", "vit-infer")
    rows = module.main(["--smoke", "--threads", "1", "--case", ",".join(names)])
    _check(rows, names, capsys.readouterr().out)


def test_cpu_transformers_rejects_an_unknown_case(capsys):
    module = _load_script()
    with pytest.raises(SystemExit):
        module.main(["--smoke", "--case", "bert-infer,nope"])
    assert "unknown case 'nope'" in capsys.readouterr().err
