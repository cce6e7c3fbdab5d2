"""Label smoothing, random erasing, mixup, cutmix and distillation: what they do to a batch and its
targets, that they are reproducible, and that training takes them (and refuses bad values)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from celeba_model.data.transforms import PreprocessConfig
from celeba_model.errors import ConfigError
from celeba_model.evaluation.batched import predict_probabilities
from celeba_model.models.checkpoint import load_checkpoint
from celeba_model.training import TrainConfig, TrainingError, train
from celeba_model.training.distill import blend_targets, teacher_probabilities
from celeba_model.training.regularization import BatchRegularization, mix_batch, random_erase

GRAY_TEACHER = str(Path(__file__).resolve().parents[1] / "checkpoints" / "demo" / "paper.safetensors")  # 64x64 gray


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _constant_batch(n: int = 16, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Images each filled with one value, whose single target is that same value: after any mixing,
    an image's mean pixel must equal its target."""
    values = torch.linspace(0, 1, n)
    return values.view(n, 1, 1, 1).expand(n, 3, size, size).clone(), values.view(n, 1).clone()


def test_nothing_is_on_by_default_and_label_smoothing_pulls_targets_off_zero_and_one():
    assert not BatchRegularization().active
    x, targets = torch.zeros(2, 3, 8, 8), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    _, smoothed = BatchRegularization(label_smoothing=0.1).apply(x, targets, _generator())
    assert torch.allclose(smoothed, torch.tensor([[0.05, 0.95], [0.95, 0.05]]))
    assert torch.equal(targets, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))  # the caller's targets are untouched


@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_mixing_mixes_targets_by_the_share_each_image_holds(mode):
    x, targets = _constant_batch()
    mixed, mixed_targets = mix_batch(x, targets, mode, alpha=1.0, generator=_generator(3))
    assert torch.allclose(mixed.mean(dim=(1, 2, 3)), mixed_targets[:, 0], atol=1e-5)
    assert not torch.allclose(mixed_targets, targets)  # Beta(1, 1) with this seed mixes
    if mode == "cutmix":  # pixels are copied, never blended
        assert set(torch.unique(mixed).tolist()) <= set(torch.unique(x).tolist())
    again, _ = mix_batch(x, targets, mode, alpha=1.0, generator=_generator(3))
    assert torch.equal(mixed, again)  # reproducible from the generator


def test_random_erasing_replaces_one_rectangle_in_the_chosen_images_only():
    x = torch.full((64, 3, 32, 32), 7.0)  # a value the noise never takes exactly
    erased = random_erase(x, 0.5, _generator(1))
    changed = (erased != 7.0).any(dim=1)  # (n, H, W)
    share = changed.float().mean(dim=(1, 2))
    touched = share > 0
    assert 15 < int(touched.sum()) < 49  # about half of 64 images
    assert float(share[touched].max()) <= 0.34 and float(share[touched].min()) > 0.005
    for image in changed[touched]:  # the changed pixels form one axis-aligned rectangle
        rows, cols = image.any(dim=1).nonzero(), image.any(dim=0).nonzero()
        box = image[int(rows.min()):int(rows.max()) + 1, int(cols.min()):int(cols.max()) + 1]
        assert bool(box.all())
    assert torch.equal(random_erase(x, 0.0, _generator(1)), x)


def test_blended_targets_and_a_teacher_that_reads_other_input_is_refused(demo_root, tmp_path):
    labels, teacher = np.array([[0, 1], [1, 0]], dtype=np.uint8), np.array([[0.2, 0.6], [0.9, 0.5]])
    assert np.allclose(blend_targets(labels, teacher, 0.5), [[0.1, 0.8], [0.95, 0.25]])
    with pytest.raises(ValueError, match="differ in shape"):
        blend_targets(labels, teacher[:, :1], 0.5)

    gray_teacher = GRAY_TEACHER
    images = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(TrainingError, match="must agree"):
        teacher_probabilities(gray_teacher, images, np.arange(4), PreprocessConfig(32, "rgb"), ["Smiling"],
                              torch.device("cpu"))
    spec = load_checkpoint(gray_teacher).preprocess
    images = np.random.default_rng(0).integers(0, 255, (4, spec.image_size, spec.image_size, 1), dtype=np.uint8)
    with pytest.raises(TrainingError, match="does not predict Bald"):
        teacher_probabilities(gray_teacher, images, np.arange(4), spec, ["Smiling", "Bald"], torch.device("cpu"))
    # The teacher's columns, in the student's order, flip-averaged.
    probs = teacher_probabilities(gray_teacher, images, np.arange(4), spec, ["Smiling", "Male"], torch.device("cpu"))
    checkpoint = load_checkpoint(gray_teacher)
    full = predict_probabilities(checkpoint.model, images, np.arange(4), spec, torch.device("cpu"), flip_tta=True)
    columns = [checkpoint.attributes.index("Smiling"), checkpoint.attributes.index("Male")]
    assert np.allclose(probs, full[:, columns], atol=1e-6)


@pytest.mark.parametrize("values, message", [
    ({"label_smoothing": 1.0}, "label_smoothing"), ({"random_erase": 1.5}, "random_erase"),
    ({"mix": "blend"}, "mix must be one of"), ({"mix_alpha": 0.0}, "mix_alpha"),
    ({"distill_weight": 0.0}, "distill_weight"), ({"teacher": "no/such/teacher.safetensors"}, "does not exist"),
])
def test_bad_regularization_settings_are_refused(tmp_path, values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(data_roots=["x"], out=str(tmp_path), **values)


def test_training_with_every_regularizer_and_a_teacher_runs_and_locks_them_on_resume(demo_root, tmp_path):
    base = dict(data_roots=[str(demo_root)], cache_dir=str(tmp_path / "cache"), image_size=32, color="rgb",
                epochs=1, arch="cnn4", augment=True, progress=False)
    teacher = tmp_path / "teacher"
    train(TrainConfig(out=str(teacher), **base))
    options = dict(label_smoothing=0.1, random_erase=0.5, mix="cutmix", mix_alpha=1.0,
                   teacher=str(teacher / "best.safetensors"), distill_weight=0.7)
    student = tmp_path / "student"
    result = train(TrainConfig(out=str(student), **base, **options))
    assert result.epochs_run == 1 and np.isfinite(result.best_val_macro_f1)
    saved = json.loads((student / "config.json").read_text())
    assert {k: saved[k] for k in options} == options
    with pytest.raises(TrainingError, match="distill_weight"):
        train(TrainConfig(out=str(student), **base, **{**options, "distill_weight": 0.3}), resume=True)
