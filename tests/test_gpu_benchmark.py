"""benchmarks/gpu.py, the GPU harness, on the CPU: its smoke run yields a row per case with
real throughputs and passing parity checks, and its parity check does fail on a wrong model.

The GPU figures themselves are measured on the GPU machine (see the script's docstring).
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def harness():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("gpu"), importlib.import_module("_gpu_cases")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _timm_available() -> bool:
    try:
        import timm  # noqa: F401
    except Exception:  # timm imports torchvision, which may be missing or broken
        return False
    return True


def test_smoke_run_has_every_case_with_throughputs_and_parity(harness, tmp_path, monkeypatch):
    gpu, cases = harness
    monkeypatch.setattr(sys, "argv", ["benchmarks/gpu.py"])  # the header records the command
    out = tmp_path / "smoke.json"
    threads = torch.get_num_threads()
    try:
        gpu.main(["--smoke", "--device", "cpu", "--dtype", "fp32", "--modes", "eager", "--iters", "1",
                  "--warmup", "1", "--json", str(out)])
    finally:  # the smoke run uses one thread and silences transformers' progress bars
        torch.set_num_threads(threads)
        from transformers.utils import logging as hf_logging
        hf_logging.enable_progress_bar()
    import json

    data = json.loads(out.read_text(encoding="utf-8"))
    rows = {r["case"]: r for r in data["rows"]}
    assert list(rows) == list(cases.CASES)  # one row per case, in order (one mode)
    for name, row in rows.items():
        assert row["mode"] == "eager"
        assert "gicho_error" not in row and "peer_error" not in row, row
        for side in ("gicho", "peer"):
            thr = row[f"{side}_throughput"]
            assert math.isfinite(thr) and thr > 0, (name, side, thr)
        assert row["ratio"] == pytest.approx(row["gicho_throughput"] / row["peer_throughput"])
        assert row["parity"] == "PASS", (name, next(c["parity"] for c in data["cases"] if c["case"] == name))
        assert row["gicho_mfu"] is None and row["gicho_peak_mb"] is None  # CPU: no peak, no CUDA memory
    for case in data["cases"]:
        assert case["params"]["gicho"] == case["params"]["peer"] > 0
        parity = case["parity"]
        assert parity["compared"] >= (30 if cases.CASES[case["case"]].train else 1)
        assert parity["fp32_worst"]["rel_err"] <= cases.TOL_FP32
    # the ViT peer is timm when it imports, else HF's ViT, named and not judged against timm's target
    for name in ("vit-train-128", "vit-infer-256"):
        case = next(c for c in data["cases"] if c["case"] == name)
        if _timm_available():
            assert case["peer"].startswith("timm")
        else:
            assert case["peer"] == "transformers.ViTForImageClassification"
            assert any("timm not installed" in note for note in case["notes"])
    for row in rows.values():  # tiny models on a CPU are never judged against the GPU targets
        assert row["met"] is None and "smoke" in row["met_note"]
    assert data["header"]["flop_formula"] and data["header"]["precision_policy"]


def test_parity_check_fails_on_a_perturbed_weight(harness):
    """The check can fail: one LayerNorm weight of gicho's copy off by 1% in one layer is caught
    (in the gradients and the loss), and so is a missing gradient."""
    _, cases = harness
    case = cases.CASES["mlm-128x128"]
    pair = cases.build_pair(case, smoke=True, vit_peer="hf")
    batch = {k: v[:4] for k, v in cases.make_batches(case, pair, smoke=True)[0].items()}
    assert cases.parity(pair, case, batch, bf16=False)["ok"]
    with torch.no_grad():
        pair.gicho.backbone.encoder.layers[1].norm1.weight.mul_(1.01)
    result = cases.parity(pair, case, batch, bf16=False)
    assert result["status"] == "FAIL"
    assert result["fp32_worst"]["rel_err"] > cases.TOL_FP32


def test_flops_and_peaks(harness):
    _, cases = harness
    assert cases.peak_flops("NVIDIA H200") == cases.peak_flops("NVIDIA H100 80GB HBM3") == 989.4e12
    assert cases.peak_flops("NVIDIA H100 PCIe") == 756.0e12
    assert cases.peak_flops("Tesla T4") is None
    case = cases.CASES["bert-infer-256x128"]
    pair = cases.Pair("x", None, None, {}, {}, dict, {"d": 768, "layers": 12, "d_ff": 3072, "vocab": 30522})
    mask = torch.ones(2, 128, dtype=torch.long)
    # 2 sequences of 128 tokens: 12 layers x (linear 2*256*(4*768^2 + 2*768*3072) + attention
    # 4*2*128^2*768) + pooler 2*2*768^2, by hand
    expected = 12 * (2 * 256 * (4 * 768**2 + 2 * 768 * 3072) + 4 * 2 * 128**2 * 768) + 2 * 2 * 768**2
    assert cases.model_flops(case, pair, {"attention_mask": mask}) == pytest.approx(expected)
    train = cases.CASES["mlm-128x128"]
    labels = torch.full((2, 128), -100)
    labels[0, :3] = 5
    head = 3 * 2 * (768**2 + 768 * 30522)
    assert cases.model_flops(train, pair, {"attention_mask": mask, "labels": labels}) == pytest.approx(
        3 * (expected - 2 * 2 * 768**2 + head))


def test_targets_are_judged_against_the_right_peer_mode(harness):
    gpu, cases = harness

    def rows():
        return [{"mode": "eager", "gicho_throughput": 150.0, "peer_throughput": 100.0},
                {"mode": "compile", "gicho_throughput": 170.0, "peer_throughput": 120.0}]

    best = rows()  # mlm-128x128: >= 1.5x the peer's best mode (120): 150 is not, 170 is not either
    gpu.judge(cases.CASES["mlm-128x128"], best, vit_fallback=False)
    assert [r["met"] for r in best] == [False, False] and best[0]["reference_throughput"] == 120.0
    same = rows()  # bert inference: >= 1.3x the peer in the same mode
    gpu.judge(cases.CASES["bert-infer-256x128"], same, vit_fallback=False)
    assert [r["met"] for r in same] == [True, True]
    compiled = rows()  # ViT: >= 1.15x the peer compiled (138)
    gpu.judge(cases.CASES["vit-infer-256"], compiled, vit_fallback=False)
    assert [r["met"] for r in compiled] == [True, True]
    compiled[1]["gicho_throughput"] = 130.0
    gpu.judge(cases.CASES["vit-infer-256"], compiled, vit_fallback=False)
    assert compiled[1]["met"] is False
    fallback = rows()  # HF's ViT standing in for timm: the timm target is not claimed
    gpu.judge(cases.CASES["vit-infer-256"], fallback, vit_fallback=True)
    assert all(r["met"] is None and "timm" in r["met_note"] for r in fallback)
    eager_only = rows()[:1]  # the peer was not compiled: no verdict against a compiled target
    gpu.judge(cases.CASES["vit-train-128"], eager_only, vit_fallback=False)
    assert eager_only[0]["met"] is None
