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


def test_cpu_transformers_smoke(capsys):
    os.environ["HF_HUB_OFFLINE"] = "1"
    spec = importlib.util.spec_from_file_location("cpu_transformers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    rows = module.main(["--smoke", "--threads", "1"])
    assert [r["case"] for r in rows] == list(module.CASES)
    for row in rows:
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0
        assert row["ours_per_s"] > 0 and row["theirs_per_s"] > 0
    out = capsys.readouterr().out
    assert "torch " in out and "transformers " in out and "load average" in out
