"""gicho.data.augment: per-image shift / flip, MixUp / CutMix batches, presets, exact resume."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from gicho.data.augment import (
    DIGIT_PRESETS,
    DIGIT_SHIFT,
    FOLDER_PRESETS,
    Augmentation,
    MixBatch,
    RandomFlip,
    RandomShift,
    augment_training,
    get_preset,
)
from gicho.nn.losses import classification_loss
from gicho.train import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("single_torch_thread")

N_CLASSES = 3


class Images(torch.utils.data.Dataset):
    """``n`` random 1x6x6 images, labels cycling over the classes."""

    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 1, 6, 6, generator=g)
        self.y = torch.arange(n) % N_CLASSES

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.x[i], "labels": self.y[i]}


def test_the_import_path_of_random_shift_is_kept():
    from gicho.data.images import RandomShift as old

    assert old is RandomShift


def test_random_flip_flips_some_items_and_keeps_the_rest():
    data = Images(40)
    torch.manual_seed(0)
    flipped = RandomFlip(data)
    outcomes = set()
    for i in range(len(data)):
        got, original = flipped[i]["pixel_values"], data[i]["pixel_values"]
        assert torch.equal(got, original) or torch.equal(got, original.flip(-1))
        outcomes.add(torch.equal(got, original))
        assert flipped[i]["labels"] == data[i]["labels"]
    assert outcomes == {True, False}
    with pytest.raises(ValueError, match=r"argument `p` must lie in \[0, 1\]"):
        RandomFlip(data, p=1.5)


def test_mixup_and_cutmix_give_soft_targets_that_match_the_pixels():
    data = Images(8)
    items = [data[i] for i in range(8)]
    for cutmix_prob, mixup_alpha in ((0.0, 0.8), (1.0, 0.0)):  # MixUp only, CutMix only
        mix = MixBatch(None, N_CLASSES, mixup_alpha=mixup_alpha, cutmix_prob=cutmix_prob, seed=3)
        for _ in range(5):
            batch = mix(items)
            x, soft = batch["pixel_values"], batch["labels"]
            assert x.shape == (8, 1, 6, 6) and soft.shape == (8, N_CLASSES) and soft.dtype == torch.float32
            assert torch.allclose(soft.sum(-1), torch.ones(8))
            assert bool((soft >= 0).all())
            if cutmix_prob == 1.0:  # every pixel is one of the batch's images' at that place
                assert bool((x[:, None] == data.x[None, :8]).any(1).all())
            else:  # a convex combination: inside the range of the batch's pixels
                assert bool((x <= data.x[:8].max(0).values + 1e-6).all())


def test_cutmix_lambda_is_the_share_of_pixels_kept():
    """With two classes and distinct partners, the soft target's own weight is the unpasted area."""
    x = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    items = [{"pixel_values": x[i], "labels": torch.tensor(i)} for i in range(2)]
    mix = MixBatch(None, 2, mixup_alpha=0.0, cutmix_alpha=1.0, seed=0)
    seen = 0
    for _ in range(20):
        batch = mix(items)
        if bool(batch["labels"][0, 0] < 1):  # paired with the other image
            seen += 1
            kept = float((batch["pixel_values"][0] == 0).float().mean())
            assert batch["labels"][0, 0].item() == pytest.approx(kept, abs=1e-6)
    assert seen > 0


def test_mix_batch_generator_round_trip_and_errors():
    data = Images(6)
    items = [data[i] for i in range(6)]
    mix = MixBatch(None, N_CLASSES, seed=1)
    mix(items)
    state = mix.state_dict()
    first = [mix(items) for _ in range(3)]
    again = MixBatch(None, N_CLASSES, seed=99)
    again.load_state_dict(state)
    for want, got in zip(first, (again(items) for _ in range(3)), strict=True):
        assert torch.equal(want["pixel_values"], got["pixel_values"]) and torch.equal(want["labels"], got["labels"])
    with pytest.raises(ValueError, match=r"argument `state\['generator'\]` must be a uint8 tensor of shape"):
        again.load_state_dict({"generator": torch.zeros(3)})
    with pytest.raises(ValueError, match="argument `state` must be a mapping with the key 'generator'"):
        again.load_state_dict({"masks": state["generator"]})
    with pytest.raises(ValueError, match="both 0"):
        MixBatch(None, 3, mixup_alpha=0, cutmix_alpha=0)
    with pytest.raises(ValueError, match="argument `n_classes` must be an integer >= 2"):
        MixBatch(None, 1)
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\)"):
        MixBatch(None, 2)(items)  # labels up to 2


def test_presets_and_the_helper():
    assert set(FOLDER_PRESETS) == {"none", "flip-crop", "strong"}
    assert set(DIGIT_PRESETS) == {"none", "shift", "strong"}
    assert not any(p.flip or p.crop_flip for p in DIGIT_PRESETS.values())  # digits are never mirrored
    with pytest.raises(ValueError, match=r"field `data.augment` must be one of 'none', 'shift', 'strong'; got 'flip'"):
        get_preset("flip", DIGIT_PRESETS)
    data = Images(6)
    train, collate = augment_training(data, get_preset("none", DIGIT_PRESETS), n_classes=N_CLASSES, seed=0)
    assert train is data and collate is None
    train, collate = augment_training(data, get_preset("strong", DIGIT_PRESETS), n_classes=N_CLASSES, seed=0,
                                      fill=-1.0)
    assert isinstance(train, RandomShift) and train.max_shift == DIGIT_SHIFT and train.fill == -1.0
    assert isinstance(collate, MixBatch) and collate.n_classes == N_CLASSES
    train, _ = augment_training(data, Augmentation(flip=True), n_classes=N_CLASSES, seed=0)
    assert isinstance(train, RandomFlip)


# ------------------------------------------------------------- training with MixBatch resumes exactly


class TinyImageClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(36, N_CLASSES)
        self.calls = 0
        self.fail_at: int | None = None

    def forward(self, pixel_values, labels=None):
        if self.training:
            self.calls += 1
            if self.calls == self.fail_at:
                raise RuntimeError("simulated crash")
        out = {"logits": self.linear(pixel_values.flatten(1))}
        if labels is not None:
            out.update(classification_loss(out["logits"], labels))
        return out


class HardLabelAccuracy:
    """Evaluation must see the class indices, never mixed soft targets."""

    def __init__(self) -> None:
        self.correct = self.total = 0

    def update(self, outputs, batch) -> None:
        assert batch["labels"].ndim == 1, "an evaluation batch was mixed"
        self.correct += int((outputs["logits"].argmax(-1) == batch["labels"]).sum())
        self.total += len(batch["labels"])

    def compute(self):
        return {"accuracy": self.correct / self.total}


def _trainer(run_dir):
    torch.manual_seed(0)
    train, collate = augment_training(Images(24), get_preset("strong", DIGIT_PRESETS), n_classes=N_CLASSES,
                                      seed=5, fill=-1.0)
    config = TrainConfig(max_steps=12, batch_size=6, eval_every=4, log_every=4, progress=False, device="cpu",
                         warmup_steps=2)
    return Trainer(TinyImageClassifier(), train, Images(9, seed=1), HardLabelAccuracy, config, run_dir=run_dir,
                   train_collate_fn=collate)


def test_a_run_with_mixed_batches_resumes_exactly(tmp_path):
    expected = _trainer(tmp_path / "ref")
    expected.fit()
    crashed = _trainer(tmp_path / "run")
    crashed.model.fail_at = 10
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.fit()
    saved = torch.load(tmp_path / "run" / "checkpoints" / "step-00000008" / "rng_state.pt", weights_only=True)
    assert torch.is_tensor(saved["collate"][0]["generator"])  # MixBatch's own generator
    _trainer(tmp_path / "run").fit(resume=True)
    got, want = (load_file(d / "checkpoints" / "step-00000012" / "model.safetensors")
                 for d in (tmp_path / "run", tmp_path / "ref"))
    for name in want:
        assert torch.equal(got[name], want[name]), name
