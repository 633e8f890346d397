"""Train ToyMLP from the command line: the subprocess side of the kill/resume and torchrun tests.

Usage: python run_toy.py RUN_DIR [--resume] [--block-at N --marker PATH] [--info-dir DIR]
       [--max-steps N] [--batch-size N] [--grad-accum N] [--dropout P]
       [--signal-at N [--signal-rank R]]
       python run_toy.py RUN_DIR --tokens --grads-out FILE [--max-steps N] [--batch-size N]
       (a token-level model with unequal numbers of -100 labels per micro-batch; FILE gets
       rank 0's final gradients of every step)
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _toy import make_token_trainer, make_trainer, record_grads

from gicho.train import distributed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--block-at", type=int)
    parser.add_argument("--marker")
    parser.add_argument("--info-dir")
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--noisy", action="store_true", help="a collate with its own generator, seeded by rank")
    parser.add_argument("--signal-at", type=int, help="SIGTERM this process on that training call")
    parser.add_argument("--signal-rank", type=int, default=0)
    parser.add_argument("--tokens", action="store_true")
    parser.add_argument("--grads-out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = distributed.init_distributed("cpu")
    if args.info_dir:
        record = {"rank": info.rank, "world_size": info.world_size, "local_rank": info.local_rank,
                  "device": str(info.device), "is_main": distributed.is_main_process(),
                  "broadcast": distributed.broadcast_object(f"from rank {info.rank}")}
        distributed.barrier()
        Path(args.info_dir, f"rank{info.rank}.json").write_text(json.dumps(record))
    if args.tokens:
        grads: list = []
        record_grads(grads)
        make_token_trainer(args.run_dir, max_steps=args.max_steps, batch_size=args.batch_size,
                           grad_accum_steps=args.grad_accum).fit()
        if info.is_main:
            torch.save(grads, args.grads_out)
        distributed.cleanup()
        return
    trainer = make_trainer(args.run_dir, dropout=args.dropout, max_steps=args.max_steps,
                           batch_size=args.batch_size, grad_accum_steps=args.grad_accum,
                           eval_every=args.eval_every, device="cpu",
                           noise_seed=7 + info.rank if args.noisy else None)
    trainer.model.block_at = args.block_at
    trainer.model.marker = Path(args.marker) if args.marker else None
    if args.signal_at is not None and info.rank == args.signal_rank:
        trainer.model.signal_at = [(args.signal_at, signal.SIGTERM)]
    trainer.fit(resume=args.resume)
    del trainer  # the DDP wrapper goes before the process group (distributed.cleanup)
    distributed.cleanup()


if __name__ == "__main__":
    main()
