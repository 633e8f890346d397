"""benchmarks/cpu_inference_chunks.py runs in its smoke mode and really chunks (no figure asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cpu_inference_chunks.py"


def test_smoke_run_chunks_and_restores_the_budget(capsys):
    from gicho.nn import transformer

    before = transformer.INFERENCE_CHUNK_BYTES
    spec = importlib.util.spec_from_file_location("cpu_inference_chunks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--smoke", "--threads", "1"])
    assert transformer.INFERENCE_CHUNK_BYTES == before  # the script leaves the library as it was
    out = capsys.readouterr().out
    assert "torch " in out and "budget" in out
    assert "6 x 8: chunks of 2 sequence(s)" in out and "whole / chunked" in out
