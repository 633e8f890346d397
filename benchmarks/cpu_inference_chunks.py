"""Ablation: gicho's CPU inference in chunks of sequences against the same encoder on the whole batch.

Run: ``python benchmarks/cpu_inference_chunks.py [--threads 2] [--rounds 5] [--budget-mib 12]``

``TransformerEncoder`` runs a large padded batch through its layers a few sequences at a time
when autograd is off on the CPU (``gicho.nn.transformer.inference_chunk``; the budget is the
widest intermediate of one chunk, ``INFERENCE_CHUNK_BYTES``). This script times the encoder
alone, random weights, on several shapes, with that budget and with chunking off (a budget
larger than any batch), interleaved rounds, and prints the median of the paired ratios
``time(whole) / time(chunked)`` (> 1: chunks faster) with the chunk size used. Use it to check
the budget on a new machine; the peer comparison is ``cpu_transformers.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import hardware_lines, paired_ratios

from gicho.nn import transformer

# (layers, width, heads, batch, length): BERT-base-like long and short, MiniLM-like short and long
SHAPES = ((4, 768, 12, 16, 512), (4, 768, 12, 64, 128), (6, 384, 12, 64, 128), (6, 384, 12, 256, 32),
          (6, 384, 12, 8, 512))
NO_CHUNKS = 1 << 50


def measure(layers: int, width: int, heads: int, batch: int, length: int, budget: int, rounds: int) -> str:
    torch.manual_seed(0)
    encoder = transformer.TransformerEncoder(layers, width, heads, 4 * width, dropout=0.0).eval()
    x = torch.randn(batch, length, width)

    def run(bytes_: int):
        def step():
            transformer.INFERENCE_CHUNK_BYTES = bytes_
            with torch.inference_mode():
                return encoder(x).last_hidden_state
        return step

    original = transformer.INFERENCE_CHUNK_BYTES
    try:
        with torch.inference_mode():
            transformer.INFERENCE_CHUNK_BYTES = budget
            chunk = transformer.inference_chunk(x, encoder.layers[0]) or batch
            torch.testing.assert_close(run(budget)(), run(NO_CHUNKS)(), rtol=1e-5, atol=1e-5)
        timed = paired_ratios({"whole": run(NO_CHUNKS), "chunked": run(budget)}, rounds, base="chunked")
    finally:
        transformer.INFERENCE_CHUNK_BYTES = original
    return (f"{layers} layers x {width}, {batch} x {length}: chunks of {chunk} sequence(s); whole batch "
            f"{timed['whole']['median']:.3f} s, chunked {timed['chunked']['median']:.3f} s; "
            f"whole / chunked {timed['whole']['ratio']:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget-mib", type=float, default=transformer.INFERENCE_CHUNK_BYTES / 2**20)
    parser.add_argument("--smoke", action="store_true", help="one tiny shape, one round (a test runs this)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    budget = int(args.budget_mib * 2**20)
    for line in hardware_lines():
        print(line)
    print(f"torch {torch.__version__}, {args.threads} threads, float32, budget {args.budget_mib:g} MiB")
    if args.smoke:  # 6 sequences of 8 tokens, a budget of 2 (the MLP's 128 floats per token are widest)
        shapes, budget, rounds = ((1, 32, 2, 6, 8),), 2 * 8 * 128 * 4, 1
    else:
        shapes, rounds = SHAPES, args.rounds
    for shape in shapes:
        print(measure(*shape, budget=budget, rounds=rounds), flush=True)


if __name__ == "__main__":
    main()
