"""A tiny model and data set shared by the train tests and their subprocess scripts.

The model can be told to misbehave on its n-th training forward pass (raise, return a NaN
loss, or block after touching a marker file), which lets the tests crash or kill a run at a
known point.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from gicho.train import TrainConfig, Trainer


class ToyData(Dataset):
    """``n`` samples of 4 Gaussian features; the label says whether their sum is positive."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=g)
        self.y = (self.x.sum(dim=1) > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


@dataclass
class ToyConfig:
    d_in: int = 4
    d_hidden: int = 16
    n_classes: int = 2
    dropout: float = 0.0


class ToyMLP(nn.Module):
    """Two-layer MLP classifier following the Hugging Face convention (labels → loss)."""

    def __init__(self, config: ToyConfig | None = None) -> None:
        super().__init__()
        self.config = config or ToyConfig()
        c = self.config
        self.net = nn.Sequential(nn.Linear(c.d_in, c.d_hidden), nn.LayerNorm(c.d_hidden), nn.ReLU(),
                                 nn.Dropout(c.dropout), nn.Linear(c.d_hidden, c.n_classes))
        self.train_calls = 0
        self.fail_at: int | None = None  # raise RuntimeError on this training call
        self.nan_at: int | None = None  # return a NaN loss from this training call on
        self.block_at: int | None = None  # touch `marker` and sleep on this training call
        self.marker: Path | None = None
        self.signal_at: list[tuple[int, int]] = []  # (training call, signal) sent to this process

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if self.training:
            self.train_calls += 1
            if self.train_calls == self.fail_at:
                raise RuntimeError(f"simulated crash on training call {self.train_calls}")
            for call, signum in self.signal_at:
                if self.train_calls == call:
                    os.kill(os.getpid(), signum)
            if self.train_calls == self.block_at:
                self.marker.touch()
                time.sleep(600)  # the test kills the process here
        logits = self.net(x)
        out = {"logits": logits}
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels)
            if self.training and self.nan_at is not None and self.train_calls >= self.nan_at:
                loss = loss * float("nan")
            out["loss"] = loss
        return out


class Accuracy:
    """A hand-written streaming metric (the Trainer's contract), kept independent of
    gicho.metrics' torch accumulators so that the loop's tests do not rest on the accumulators
    under test."""

    def __init__(self) -> None:
        self.correct = self.total = 0

    def update(self, outputs, batch) -> None:
        pred = outputs["logits"].argmax(dim=-1)
        self.correct += int((pred == batch["labels"]).sum())
        self.total += len(pred)

    def compute(self) -> dict[str, float]:
        return {"accuracy": self.correct / self.total}


accuracy = Accuracy  # the factory passed to the Trainer


class NoisyCollate:
    """Adds noise from a generator of its own to the features, as MLM masking draws masks from
    its own; its state must be checkpointed for an exact resume (per rank under torchrun)."""

    def __init__(self, seed: int = 7) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, items):
        batch = torch.utils.data.default_collate(items)
        return {**batch, "x": batch["x"] + torch.randn(batch["x"].shape, generator=self.generator)}

    def state_dict(self):
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])


def make_trainer(run_dir=None, *, dropout: float = 0.0, n_train: int = 64, n_eval: int = 24,
                 model_seed: int = 0, noise_seed: int | None = None, **config) -> Trainer:
    """A Trainer over ToyMLP; ``config`` overrides TrainConfig fields (small defaults);
    ``noise_seed``: batches go through a :class:`NoisyCollate` seeded with it."""
    defaults = dict(max_steps=20, batch_size=8, eval_every=10, log_every=5, progress=False,
                    device="cpu")
    torch.manual_seed(model_seed)
    model = ToyMLP(ToyConfig(dropout=dropout))
    collate = NoisyCollate(noise_seed) if noise_seed is not None else None
    return Trainer(model, ToyData(n_train, seed=1), ToyData(n_eval, seed=2), accuracy,
                   TrainConfig(**{**defaults, **config}), run_dir=run_dir, collate_fn=collate)


class TokenTagger(nn.Module):
    """Tags every token; -100 labels are ignored; reports ``n_items`` (labelled tokens)."""

    def __init__(self, report_n_items: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 8)
        self.out = nn.Linear(8, 3)
        self.report_n_items = report_n_items

    def forward(self, tokens, labels=None):
        logits = self.out(torch.tanh(self.embed(tokens)))  # (B, T, 3)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits.reshape(-1, 3), labels.reshape(-1), ignore_index=-100)
            if self.report_n_items:
                out["n_items"] = (labels != -100).sum()
        return out


def token_data(n: int = 16, length: int = 6) -> list[dict[str, torch.Tensor]]:
    """Samples 0..n-2 have 1 labelled token, sample n-1 all ``length``: micro-batches differ."""
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 11, (n, length), generator=g)
    labels = torch.randint(0, 3, (n, length), generator=g)
    for i in range(n - 1):
        labels[i, 1:] = -100
    return [{"tokens": t, "labels": y} for t, y in zip(tokens, labels, strict=True)]


def make_token_trainer(run_dir=None, *, n_train: int = 8, **config) -> Trainer:
    """A Trainer over TokenTagger and :func:`token_data` (no evaluation data)."""
    defaults = dict(max_steps=3, batch_size=8, lr=0.05, grad_clip=1e9, log_every=1, eval_every=100,
                    progress=False, device="cpu")
    torch.manual_seed(0)
    return Trainer(TokenTagger(), token_data(n_train), None, None,
                   TrainConfig(**{**defaults, **config}), run_dir=run_dir)


def record_grads(sink: list) -> None:
    """Make ``nn.utils.clip_grad_norm_`` append each step's final gradients to ``sink``."""
    real_clip = nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        params = list(params)
        sink.append([p.grad.clone() for p in params])
        return real_clip(params, max_norm, *args, **kwargs)

    nn.utils.clip_grad_norm_ = spy
