"""What gicho's Trainer adds to a bare PyTorch loop doing the same steps (issue 24, item 5).

Run (nothing is downloaded)::

    PYTHONPATH=src .venv/bin/python benchmarks/trainer_overhead.py [--tasks digits-vit mlm-bert] \
        [--steps 200] [--rounds 5] [--threads 1]

For each task at its default sizes (``digits-vit``: the ViT preset ``digits``, batches of 64 8x8
images; ``mlm-bert``: BERT-tiny, batches of 32 blocks of 128 tokens, 15% masked), both sides get
the same model (built by the task, the same seed), the same training data and collate function
(the task's own: shifts, MLM masks), the same optimizer (gicho's fused AdamW over the same
parameter groups, :func:`gicho.train.optim.build_optimizer`), the same warmup + decay schedule,
the same gradient clipping (the task's ``train.grad_clip``) and no mixed precision. The Trainer
runs as a task would, without a run directory (so no checkpoint files: they are the run's, not
the loop's) and without an evaluation inside the timed steps; the bare loop is what a user would
write: a shuffling ``DataLoader``, ``model(**batch)["loss"].backward()``, clip, step, schedule,
``zero_grad``. Each side trains ``--steps`` steps from a fresh model per round; rounds alternate
the sides (:func:`_common.paired_ratios`), and the median over rounds of Trainer time / loop time
is the overhead (1.05 = 5% more). Prints threads, sizes, load and hardware. Never run by the tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import hardware_lines, paired_ratios


def _setup(task_name: str, steps: int) -> tuple[Any, Any, Any]:
    """The task, its config (``steps`` training steps, no evaluation inside them) and its data."""
    from gicho.tasks import get

    task = get(task_name)
    config = task.make_config({"train.device": "cpu", "train.progress": False})
    train = dataclasses.replace(config.train, max_steps=steps, eval_every=steps, log_every=max(1, steps // 4),
                                warmup_steps=min(config.train.warmup_steps, steps // 10))
    config = dataclasses.replace(config, train=train)
    return task, config, task.build_data(config)


def trainer_run(task: Any, config: Any, splits: Any) -> None:
    """``config.train.max_steps`` steps through :class:`gicho.train.Trainer` (no validation set: the
    one evaluation at the end would not be the loop's)."""
    import torch

    from gicho.train import Trainer

    torch.manual_seed(config.train.seed)
    model = task.build_model(config, splits)
    Trainer(model, splits.train, None, None, config.train, collate_fn=splits.collate,
            train_collate_fn=splits.train_collate, param_groups=task.param_groups).fit()


def bare_loop(task: Any, config: Any, splits: Any) -> None:
    """The same steps in a plain PyTorch loop."""
    import torch

    from gicho.train.optim import build_optimizer, build_scheduler

    cfg = config.train
    torch.manual_seed(cfg.seed)
    model = task.build_model(config, splits).train()
    optimizer = build_optimizer(model, cfg, task.param_groups, torch.device("cpu"))
    scheduler = build_scheduler(optimizer, cfg)
    collate = splits.train_collate or splits.collate or torch.utils.data.default_collate
    loader = torch.utils.data.DataLoader(splits.train, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                         collate_fn=collate, generator=torch.Generator().manual_seed(cfg.seed))
    step = 0
    while step < cfg.max_steps:
        for batch in loader:
            loss = model(**batch)["loss"]
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step == cfg.max_steps:
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["digits-vit", "mlm-bert"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float32, CPU; "
          f"{args.steps} steps per run, {args.rounds} interleaved rounds")
    print("\n".join(hardware_lines()))
    for name in args.tasks:
        task, config, splits = _setup(name, args.steps)
        t = config.train
        print(f"\n{name}: batch {t.batch_size}, lr {t.lr}, grad_clip {t.grad_clip}, "
              f"{len(splits.train)} training items, model {task.describe(config)[0]}")
        sides = {"loop": lambda t=task, c=config, s=splits: bare_loop(t, c, s),
                 "trainer": lambda t=task, c=config, s=splits: trainer_run(t, c, s)}
        result = paired_ratios(sides, args.rounds, base="loop")
        loop, trainer = result["loop"], result["trainer"]
        print(f"  bare loop {loop['median']:.2f} s, Trainer {trainer['median']:.2f} s (medians); Trainer / loop "
              f"{trainer['ratio']:.3f} (paired, median; {trainer['ratio_lo']:.3f}-{trainer['ratio_hi']:.3f}) "
              f"= {100 * (trainer['ratio'] - 1):+.1f}% per step")
    print("\n" + hardware_lines()[0])


if __name__ == "__main__":
    main()
