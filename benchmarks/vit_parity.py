"""gicho ViT vs timm ``vit_*_patch16_224``: same weights, same inputs → outputs and speed.

Run (on a machine with timm; nothing is downloaded): ``python benchmarks/vit_parity.py
[--models vit_tiny_patch16_224,vit_base_patch16_224] [--batch 32] [--repeats 20]
[--device cuda] [--dtype float32] [--torchvision-stub]``

On a CPU machine whose torch has no matching torchvision (gicho's development machines), install
timm's wheel alone and stub torchvision's import (timm's ViT never calls it)::

    .venv/bin/pip download timm --no-deps -d /tmp/timm && cd /tmp/timm && unzip -q timm-*.whl
    PYTHONPATH=/tmp/timm .venv/bin/python benchmarks/vit_parity.py --device cpu --batch 4 \
        --repeats 3 --torchvision-stub

For each model, timm's architecture is built with random weights (``pretrained=False``, so no
hub access), its ``state_dict()`` is written as safetensors in timm's layout and loaded by
``ViTForImageClassification.from_pretrained(file, config=preset)`` through gicho's timm key map;
both models then classify the same random batch in eval mode. Each model is compared twice:
pooled by [CLS] (timm's default, gicho ``pool="cls"``) and by the mean of the patch tokens
(timm ``global_pool="avg", fc_norm=False``, gicho ``pool="mean"``; both normalise, then average
without [CLS]). Printed: the largest absolute
difference of the logits and of the final [CLS] features (float32: expect ~1e-5 or less), and
forward times interleaved round-robin (one call of each per round), the median of the paired
ratios ``gicho / timm``. timm's LayerNorm eps (1e-6) is what the presets use. Never run by the
tests (timm imports torchvision, which gicho does not depend on).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from gicho.models.vit import ViTConfig, ViTForImageClassification

PRESET_OF = {"vit_tiny_patch16_224": "tiny", "vit_small_patch16_224": "small",
             "vit_base_patch16_224": "base", "vit_large_patch16_224": "large"}


def _timed(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def compare(name: str, pool: str, batch: int, repeats: int, device: str,
            dtype: torch.dtype) -> dict[str, float]:
    import timm

    torch.manual_seed(0)
    timm_pool = {"cls": {}, "mean": {"global_pool": "avg", "fc_norm": False}}[pool]
    reference = timm.create_model(name, pretrained=False, **timm_pool).eval()
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "timm.safetensors"
        save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(file))
        config = ViTConfig.from_preset(PRESET_OF[name], pool=pool)
        ours = ViTForImageClassification.from_pretrained(file, config=config)
    reference, ours = reference.to(device, dtype), ours.to(device, dtype).eval()
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1)).to(device, dtype)
    with torch.no_grad():
        ref_logits, our_logits = reference(x), ours(x)["logits"]
        ref_cls = reference.forward_features(x)[:, 0]  # the final [CLS] state, normalised
        our_cls = ours.forward_features(x).last_hidden_state[:, 0]
        ratios = []
        for _ in range(repeats):
            t_ref = _timed(lambda: reference(x), device)
            t_ours = _timed(lambda: ours(x), device)
            ratios.append(t_ours / t_ref)
        t_ref = statistics.median(_timed(lambda: reference(x), device) for _ in range(5))
    return {"logits_max_abs": float((ref_logits - our_logits).abs().max()),
            "cls_max_abs": float((ref_cls - our_cls).abs().max()),
            "timm_ms": 1000 * t_ref, "ratio_median": statistics.median(ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vit_tiny_patch16_224,vit_small_patch16_224,vit_base_patch16_224")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--pools", default="cls,mean", help="cls, mean, or both (comma-separated)")
    parser.add_argument("--torchvision-stub", action="store_true",
                        help="stub torchvision's import (CPU torch without a matching torchvision)")
    args = parser.parse_args()
    if args.torchvision_stub:
        from _torchvision_stub import install

        install()
    import timm

    dtype = getattr(torch, args.dtype)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"torch {torch.__version__}, timm {timm.__version__}, {where}, {args.dtype}, batch {args.batch}")
    print(f"{'model':26s} {'pool':5s} {'max|Δlogits|':>13s} {'max|Δ[CLS]|':>12s} {'timm ms':>8s} "
          f"{'gicho/timm':>10s}")
    for name in args.models.split(","):
        for pool in args.pools.split(","):
            r = compare(name, pool, args.batch, args.repeats, args.device, dtype)
            print(f"{name:26s} {pool:5s} {r['logits_max_abs']:13.2e} {r['cls_max_abs']:12.2e} "
                  f"{r['timm_ms']:8.2f} {r['ratio_median']:10.2f}", flush=True)


if __name__ == "__main__":
    main()
