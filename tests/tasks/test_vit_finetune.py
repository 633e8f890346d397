"""Task ``vit`` from a pretrained checkpoint (``--model.checkpoint``) and with ``--data.augment``.

No pretrained ViT ships offline: the checkpoint is a tiny randomly initialised Hugging Face ViT
directory written by ``transformers``, with an image processor whose values are not gicho's.
"""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from gicho.cli import main
from gicho.data.augment import FOLDER_PRESETS, MixBatch
from gicho.models.vit import ViTModel, interpolate_pos_embed
from gicho.tasks import get
from gicho.tasks.neural import load_predictor
from gicho.tasks.vit_folder import AugmentName

pytestmark = pytest.mark.usefixtures("single_torch_thread")
transformers = pytest.importorskip("transformers")

MEAN, STD = (0.4, 0.45, 0.5), (0.2, 0.25, 0.3)
FAST = {"train.max_steps": 4, "train.eval_every": 2, "train.warmup_steps": 1, "train.batch_size": 8,
        "train.device": "cpu", "train.progress": False}


@pytest.fixture(scope="module")
def hf_vit(tmp_path_factory):
    """A 16 px, patch 4, width 16 Hugging Face ViT classifier of 5 classes, with its processor."""
    directory = tmp_path_factory.mktemp("hf-vit")
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=16,
                                    num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                    num_labels=5)
    transformers.ViTForImageClassification(config).save_pretrained(directory, safe_serialization=True)
    processor = {"image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": 16, "width": 16},
                 "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                 "image_mean": list(MEAN), "image_std": list(STD)}
    (directory / "preprocessor_config.json").write_text(json.dumps(processor))
    return directory


def _folder(root, counts, mode="RGB", size=12):
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new(mode, (size, size), (i * 20) % 256 if mode == "L" else (i * 20 % 256, 40, 0)).save(
                root / name / f"{i}.png")
    return root


def _config(root, checkpoint, **extra):
    return get("vit").make_config({"data.root": str(root), "model.checkpoint": str(checkpoint), **FAST, **extra})


def test_the_encoder_and_processor_come_from_the_checkpoint_and_the_head_from_the_folder(tmp_path, hf_vit):
    task = get("vit")
    root = _folder(tmp_path / "pets", {"cat": 6, "dog": 6, "eel": 6}, mode="L")  # grey files, RGB checkpoint
    config = _config(root, hf_vit)
    splits = task.build_data(config)
    processor = splits.info["processor"]
    assert (processor.image_size, processor.image_mean, processor.image_std, processor.crop_pct) == (16, MEAN, STD,
                                                                                                      None)
    assert splits.train[0]["pixel_values"].shape == (3, 16, 16)  # grey images read as RGB
    model = task.build_model(config, splits)
    reference = ViTModel.from_pretrained(hf_vit).state_dict()
    for name, tensor in model.state_dict().items():
        if name.startswith("head."):
            continue
        assert torch.equal(tensor, reference[name]), name
    assert model.head.out_features == 3 and model.config.label_names == ("cat", "dog", "eel")
    assert model.image_processor == processor and model.training
    assert task.describe(config)[0].endswith(f"fine-tuned from {hf_vit}")
    assert "1x16, 2 heads, 16 px" in task.describe(config)[0]


def test_another_image_size_interpolates_the_positions(tmp_path, hf_vit):
    task = get("vit")
    root = _folder(tmp_path / "pets", {"cat": 6, "dog": 6})
    config = _config(root, hf_vit, **{"model.image_size": 24})
    splits = task.build_data(config)
    assert splits.info["processor"].image_size == 24 and splits.info["processor"].image_mean == MEAN
    model = task.build_model(config, splits)
    key = "backbone.stem.pos_embed.weight"
    want = interpolate_pos_embed(ViTModel.from_pretrained(hf_vit).state_dict()[key], 6)  # 24 / 4 patches a side
    assert model.config.image_size == 24 and torch.equal(model.state_dict()[key], want)
    assert model(torch.zeros(2, 3, 24, 24))["logits"].shape == (2, 2)


def test_fine_tuning_runs_with_strong_augmentation_saves_the_processor_and_resumes(tmp_path, hf_vit, capsys):
    root = _folder(tmp_path / "pets", {"cat": 10, "dog": 10})
    runs = tmp_path / "runs"
    args = ["--data.root", str(root), "--model.checkpoint", str(hf_vit), "--data.augment", "strong",
            "--train.batch-size", "8", "--train.warmup-steps", "1", "--train.eval-every", "2",
            "--train.device", "cpu", "--train.progress", "false"]
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "vit", "--runs-dir", str(runs), "--train.max-steps", "2", *args])
    assert exit_info.value.code in (0, None), capsys.readouterr().err
    (run_dir,) = runs.iterdir()
    saved = json.loads((run_dir / "model" / "preprocessor_config.json").read_text())
    assert tuple(saved["image_mean"]) == MEAN and tuple(saved["image_std"]) == STD
    assert f"fine-tuned from {hf_vit}" in (run_dir / "report.html").read_text()
    with pytest.raises(SystemExit) as exit_info:  # the checkpoint path is in the run's saved config
        main(["train", "vit", "--resume", str(run_dir), "--train.max-steps", "4"])
    assert exit_info.value.code in (0, None), capsys.readouterr().err
    config = get("vit").make_config({"data.root": str(root), "model.checkpoint": str(hf_vit)})
    predictor = load_predictor(get("vit"), config, run_dir)
    assert predictor.model.config.label_names == ("cat", "dog") and predictor.model.config.d_model == 16
    assert (run_dir / "checkpoints" / "step-00000004").is_dir()


def test_strong_augmentation_mixes_training_batches_only(tmp_path):
    task = get("vit")
    root = _folder(tmp_path / "pets", {"cat": 6, "dog": 6})
    base = {"data.root": str(root), "model.image_size": 8, "model.patch_size": 4}
    strong = task.build_data(task.make_config({**base, "data.augment": "strong"}))
    assert isinstance(strong.train_collate, MixBatch) and strong.collate is None
    assert strong.train.dataset.transform.train and not strong.test.dataset.transform.train
    plain = task.build_data(task.make_config({**base, "data.augment": "none"}))
    assert plain.train_collate is None and not plain.train.dataset.transform.train
    default = task.build_data(task.make_config(base))
    assert default.train.dataset.transform.train and default.train_collate is None  # flip-crop, as before
    assert set(AugmentName.__args__) == set(FOLDER_PRESETS)


def test_bad_checkpoints_and_conflicting_options_are_refused(tmp_path, hf_vit, capsys):
    task = get("vit")
    root = _folder(tmp_path / "pets", {"cat": 6, "dog": 6})
    with pytest.raises(FileNotFoundError, match="nope does not exist"):
        task.build_data(_config(root, tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=r"is a file; give the directory"):
        task.build_data(_config(root, hf_vit / "model.safetensors"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no ViT"):
        task.build_data(_config(root, tmp_path / "empty"))
    bert = tmp_path / "bert"
    transformers.BertModel(transformers.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1,
                                                   num_attention_heads=2, intermediate_size=16)).save_pretrained(bert)
    with pytest.raises(ValueError, match="holds a 'bert' model, not a ViT"):
        task.build_data(_config(root, bert))
    with pytest.raises(ValueError, match=r"model.patch_size=2 \(the checkpoint's is 4\), model.d_model=32 "
                                         r"\(the checkpoint's is 16\); the architecture comes from the checkpoint"):
        task.build_data(_config(root, hf_vit, **{"model.d_model": 32, "model.patch_size": 2}))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "vit", "--data.augment", "mixup", "--runs-dir", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    assert "field `data.augment` must be one of 'none', 'flip-crop', 'strong'; got 'mixup'" in capsys.readouterr().err


def test_help_lists_the_new_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "vit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--model.checkpoint" in out and "fine-tune this ViT" in out
    assert "--data.augment" in out and "flip-crop (random crop + flip)" in out
    assert "--model.d-model" in out and "Width of the token vectors" in out  # ViTConfig's help, inherited


def test_an_image_size_the_checkpoints_patches_do_not_cut_is_refused():
    import dataclasses

    from gicho.models.vit import ViTConfig
    from gicho.tasks._vit_checkpoint import resolve_model
    from gicho.tasks.vit_folder import _default_model

    checkpoint = ViTConfig(image_size=32, patch_size=16, d_model=16, n_layers=1, n_heads=2)
    given = dataclasses.replace(_default_model(), image_size=24, checkpoint="ck")  # 24 px: 3 patches of 8
    with pytest.raises(ValueError, match=r"--model.checkpoint ck: image_size=24 must be divisible by patch_size=16"):
        resolve_model(given, _default_model(), checkpoint)
    assert resolve_model(dataclasses.replace(given, image_size=48), _default_model(), checkpoint).image_size == 48


def test_a_timm_state_dict_beside_gichos_config_json_fine_tunes(tmp_path):
    """timm's names (renamed by hand as tests/models/test_vit.py does: timm is not installed)."""
    from safetensors.torch import save_file

    from gicho.models.vit import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    source = ViTForImageClassification(ViTConfig(image_size=16, patch_size=4, d_model=16, n_layers=1, n_heads=2,
                                                 n_labels=7))
    directory = tmp_path / "timm-vit"
    source.save_pretrained(directory)  # config.json (+ the processor), then timm's weights instead
    timm = {}
    for k, v in source.state_dict().items():
        k = k.removeprefix("backbone.").replace("encoder.layers.", "blocks.").replace("stem.", "")
        k = {"encoder.norm.weight": "norm.weight", "encoder.norm.bias": "norm.bias",
             "pos_embed.weight": "pos_embed"}.get(k, k)
        timm[k] = (v[None] if k == "pos_embed" else v).contiguous()
    assert "blocks.0.attn.qkv.weight" in timm
    save_file(timm, str(directory / "model.safetensors"))
    root = _folder(tmp_path / "pets", {"cat": 6, "dog": 6})
    task = get("vit")
    config = _config(root, directory)
    model = task.build_model(config, task.build_data(config))
    want = source.state_dict()
    for name, tensor in model.state_dict().items():
        if not name.startswith("head."):
            assert torch.equal(tensor, want[name]), name
    assert model.head.out_features == 2
