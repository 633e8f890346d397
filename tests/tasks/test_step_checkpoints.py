"""A run's step checkpoints are in the format of its ``model/``: what ``save_pretrained`` writes.

``gicho.models.from_pretrained(RUN/checkpoints/step-N)`` loads the model ``RUN/model/`` holds
(the run's chosen checkpoint), with the same ``config.json`` and the same tensors under the
same (Hugging Face) names, for ``mlm-bert`` and ``digits-vit``.
"""

from __future__ import annotations

import pytest
import torch

from gicho import weights
from gicho.models import from_pretrained
from gicho.runs import run_task
from gicho.tasks import get

pytestmark = pytest.mark.usefixtures("single_torch_thread")

TINY = {
    "mlm-bert": {"data.max_documents": 80, "data.vocab_size": 300, "data.block_size": 32},
    "digits-vit": {},
}
TRAINER_FILES = {"optimizer.pt", "rng_state.pt", "trainer_state.json"}


@pytest.mark.slow
@pytest.mark.parametrize("task_name", sorted(TINY))
def test_a_step_checkpoint_loads_like_the_runs_model(task_name, tmp_path):
    task = get(task_name)
    overrides = {**task.quick, "train.max_steps": 4, "train.warmup_steps": 1, "train.eval_every": 4,
                 "train.device": "cpu", **TINY[task_name]}
    run_dir = run_task(task, task.make_config(overrides), root=tmp_path, progress=False, report=False).run_dir
    (step,) = sorted((run_dir / "checkpoints").glob("step-*"))  # the only one: the run's result
    model_dir = run_dir / "model"
    model_files = {p.name for p in step.iterdir()} - TRAINER_FILES
    assert {"config.json", "model.safetensors"} <= model_files
    assert model_files <= {p.name for p in model_dir.iterdir()}  # model/ adds the tokenizer files
    for name in model_files - {"model.safetensors"}:
        assert (step / name).read_bytes() == (model_dir / name).read_bytes(), name
    stored, result = weights.read_state_dict(step), weights.read_state_dict(model_dir)
    assert stored.keys() == result.keys()
    assert any(name.startswith(("bert.", "vit.")) for name in stored)  # Hugging Face's names
    for name, tensor in result.items():
        assert torch.equal(stored[name], tensor), name
    from_step, from_model = from_pretrained(step), from_pretrained(model_dir)
    assert type(from_step) is type(from_model) and from_step.config == from_model.config
    for name, tensor in from_model.state_dict().items():
        assert torch.equal(from_step.state_dict()[name], tensor), name
