"""A trainer step directory holds a model in one format: what its ``save_pretrained`` writes.

* ``checkpoints/step-N/`` holds the exported tensor names (Hugging Face's for BERT and ViT)
  under the family's ``config.json``, the same files as ``save_pretrained`` (and ``model/``),
  so ``gicho.models.from_pretrained`` loads a step directory;
* resuming reads it back through the model class's ``import_state_dict`` and stays bit-exact;
* a step directory written by an earlier gicho (gicho's internal tensor names, written by
  ``gicho.weights.save_model``) still resumes, bit-exact.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from torch.utils.data import Dataset

from gicho import weights
from gicho.models import from_pretrained
from gicho.models.bert import BertConfig, BertForMaskedLM
from gicho.models.classifier import ClassifierConfig, SequenceClassifier
from gicho.models.vit import ViTConfig, ViTForImageClassification
from gicho.train import CheckpointError, TrainConfig, Trainer, latest_checkpoint

IGNORE = -100


class Samples(Dataset):
    """Seeded random samples of one family's inputs (their labels learnable or not: the
    tests compare runs, not accuracy)."""

    def __init__(self, kind: str, n: int = 24, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        if kind == "bert":
            ids = torch.randint(4, 30, (n, 8), generator=g)
            labels = torch.where(torch.rand(n, 8, generator=g) < 0.3, ids, IGNORE)
            labels[:, 1] = ids[:, 1]  # every sample predicts at least one token
            masked = torch.where(labels != IGNORE, 3, ids)
            self.items = [{"input_ids": masked[i], "labels": labels[i]} for i in range(n)]
        elif kind == "vit":
            x = torch.randn(n, 1, 8, 8, generator=g)
            y = (x.mean(dim=(1, 2, 3)) > 0).long()
            self.items = [{"pixel_values": x[i], "labels": y[i]} for i in range(n)]
        else:
            ids = torch.randint(1, 20, (n, 6), generator=g)
            self.items = [{"input_ids": ids[i], "labels": ids[i, 0] % 3} for i in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.items[i]


def make_model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "bert":
        return BertForMaskedLM(BertConfig(vocab_size=30, d_model=16, n_layers=2, n_heads=2, d_ff=32,
                                          max_len=8, dropout=0.1))
    if kind == "vit":
        return ViTForImageClassification(ViTConfig(image_size=8, patch_size=4, in_channels=1, d_model=16,
                                                   n_layers=2, n_heads=2, n_labels=2, dropout=0.1))
    return SequenceClassifier(ClassifierConfig(vocab_size=20, n_labels=3, d_model=16, n_heads=2,
                                               n_layers=1, max_len=8, dropout=0.1))


def train(kind: str, run_dir, *, resume: bool = False) -> Trainer:
    config = TrainConfig(max_steps=6, batch_size=4, lr=1e-2, warmup_steps=2, eval_every=3, log_every=3,
                         keep_last=2, device="cpu", progress=False)
    trainer = Trainer(make_model(kind), Samples(kind), Samples(kind, n=8, seed=1), config=config,
                      run_dir=run_dir)
    trainer.fit(resume=resume)
    return trainer


FAMILIES = ["bert", "vit", "classifier"]
# a tensor name only the exported (Hugging Face) layout has, and only gicho's internal one has
EXPORTED_ONLY = {"bert": ("bert.encoder.layer.0.attention.self.query.weight",
                          "backbone.encoder.layers.0.attn.qkv.weight"),
                 "vit": ("vit.encoder.layer.0.attention.attention.query.weight",
                         "backbone.encoder.layers.0.attn.qkv.weight")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One uninterrupted 6-step run of each family (checkpoints at steps 3 and 6), on one
    thread as the tests' own runs (module fixtures start before the per-test thread fixture)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {kind: (train(kind, run_dir := tmp_path_factory.mktemp(kind)), run_dir) for kind in FAMILIES}
    finally:
        torch.set_num_threads(threads)


def _assert_same_state(got: torch.nn.Module, want: torch.nn.Module) -> None:
    got_state, want_state = got.state_dict(), want.state_dict()
    assert got_state.keys() == want_state.keys()
    for name, tensor in want_state.items():
        assert torch.equal(got_state[name].cpu(), tensor.cpu()), name


@pytest.mark.slow
@pytest.mark.parametrize("kind", FAMILIES)
def test_a_step_directory_holds_what_save_pretrained_writes(kind, trained, tmp_path):
    trainer, run_dir = trained[kind]
    step = latest_checkpoint(run_dir)
    assert step.name == "step-00000006"
    trainer.model.save_pretrained(tmp_path / "pretrained")
    model_files = sorted(p.name for p in (tmp_path / "pretrained").iterdir())
    assert {"config.json", "model.safetensors"} <= set(model_files)
    for name in model_files:
        if name != "model.safetensors":  # safetensors' byte layout may differ; tensors compared below
            assert (step / name).read_bytes() == (tmp_path / "pretrained" / name).read_bytes(), name
    stored, exported = weights.read_state_dict(step), weights.read_state_dict(tmp_path / "pretrained")
    assert stored.keys() == exported.keys()
    for name, tensor in exported.items():
        assert torch.equal(stored[name], tensor), name
    if kind in EXPORTED_ONLY:  # Hugging Face's names, not gicho's internal ones
        hf_name, internal_name = EXPORTED_ONLY[kind]
        assert hf_name in stored and internal_name not in stored


@pytest.mark.slow
@pytest.mark.parametrize("kind", FAMILIES)
def test_from_pretrained_loads_a_step_directory(kind, trained):
    trainer, run_dir = trained[kind]
    loaded = from_pretrained(latest_checkpoint(run_dir))
    assert type(loaded) is type(trainer.model) and loaded.config == trainer.model.config
    _assert_same_state(loaded, trainer.model)


def _drop_last_checkpoint(run_dir, copy):
    """A copy of ``run_dir`` as a crash right after step 3's checkpoint would leave it."""
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "checkpoints" / "step-00000006")
    (copy / "checkpoints" / "best.json").unlink()
    return copy / "checkpoints" / "step-00000003"


@pytest.mark.slow
@pytest.mark.parametrize("kind", FAMILIES)
def test_resuming_a_step_directory_is_bit_exact(kind, trained, tmp_path):
    reference, run_dir = trained[kind]
    _drop_last_checkpoint(run_dir, tmp_path / "run")
    resumed = train(kind, tmp_path / "run", resume=True)
    assert resumed.state_.step == 6
    _assert_same_state(resumed.model, reference.model)


def _rewrite_the_old_way(step, kind):
    """Replace ``step``'s model files with what gicho wrote before step directories took
    ``save_pretrained``'s format: ``weights.save_model(model)`` (internal tensor names)."""
    model = from_pretrained(step)
    for path in step.iterdir():
        if path.name not in ("optimizer.pt", "rng_state.pt", "trainer_state.json"):
            path.unlink()
    weights.save_model(model, step)
    stored = weights.read_state_dict(step)
    assert stored.keys() == model.state_dict().keys() - {"lm_head.decoder.weight"}  # tied: stored once
    if kind in EXPORTED_ONLY:
        hf_name, internal_name = EXPORTED_ONLY[kind]
        assert internal_name in stored and hf_name not in stored


@pytest.mark.slow
@pytest.mark.parametrize("kind", FAMILIES)
def test_a_step_directory_in_the_old_internal_names_still_resumes_bit_exact(kind, trained, tmp_path):
    reference, run_dir = trained[kind]
    step = _drop_last_checkpoint(run_dir, tmp_path / "run")
    _rewrite_the_old_way(step, kind)
    resumed = train(kind, tmp_path / "run", resume=True)
    assert resumed.state_.step == 6
    _assert_same_state(resumed.model, reference.model)
    # and the checkpoints it writes from then on are in the one format
    assert EXPORTED_ONLY.get(kind, ("head.weight",))[0] in weights.read_state_dict(
        latest_checkpoint(tmp_path / "run"))


def test_resume_routes_tensors_through_the_importer_and_refuses_what_it_refuses(tmp_path):
    """A stored tensor the family's importer refuses (a layer lacking its key projection) is
    named with the file; NaN weights are refused as from_pretrained refuses them."""
    model = make_model("bert")
    model.save_pretrained(tmp_path / "a")
    state = weights.read_state_dict(tmp_path / "a")
    del state["bert.encoder.layer.0.attention.self.key.weight"]
    with pytest.raises(CheckpointError, match=r"^the step: .*layer 0 has no attention\.self\.key\.weight"):
        weights.load_saved_state(make_model("bert"), state, source="the step")
    state = weights.read_state_dict(tmp_path / "a")
    state["bert.embeddings.word_embeddings.weight"][0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"^the step holds NaN or infinite values in "
                                              r"backbone\.stem\.word_embeddings\.weight"):
        weights.load_saved_state(make_model("bert"), state, source="the step")


def test_a_mismatched_step_directory_names_the_converted_tensors(tmp_path):
    make_model("bert").save_pretrained(tmp_path / "a")
    state = weights.read_state_dict(tmp_path / "a")
    state["bert.mystery.weight"] = torch.zeros(16, 16)
    with pytest.raises(CheckpointError, match=r"^the step \(tensor names converted to BertForMaskedLM's\) "
                                              r"does not match BertForMaskedLM: unexpected tensors: "
                                              r"mystery\.weight$"):
        weights.load_saved_state(make_model("bert"), state, source="the step")
