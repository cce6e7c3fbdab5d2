"""Batch augmentation: stays in range, is reproducible, and each option does what it says."""

from __future__ import annotations

import torch

from celeba_model.data.transforms import AugmentConfig, augment_batch

NONE = AugmentConfig(flip=False, max_shift=0, max_scale=0, brightness=0, contrast=0, saturation=0)


def _batch(n=8, c=3, size=32, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def test_disabled_augmentation_returns_the_input():
    x = _batch()
    assert torch.allclose(augment_batch(x, NONE, torch.Generator().manual_seed(0)), x, atol=1e-5)


def test_flip_mirrors_some_images_exactly():
    x = _batch(n=64)
    y = augment_batch(x, AugmentConfig(flip=True, max_shift=0, max_scale=0, brightness=0, contrast=0, saturation=0),
                      torch.Generator().manual_seed(1))
    flipped = torch.tensor([torch.allclose(y[i], x[i].flip(-1), atol=1e-5) for i in range(64)])
    same = torch.tensor([torch.allclose(y[i], x[i], atol=1e-5) for i in range(64)])
    assert (flipped | same).all() and 10 < flipped.sum() < 54


def test_default_augmentation_is_reproducible_and_in_range():
    x = _batch()
    a = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(3))
    b = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(3))
    c = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1


def test_grayscale_batches_work_and_ignore_saturation():
    x = _batch(c=1)
    y = augment_batch(x, AugmentConfig(saturation=0.5), torch.Generator().manual_seed(0))
    assert y.shape == x.shape


def test_brightness_changes_mean_intensity():
    x = torch.full((16, 3, 8, 8), 0.5)
    y = augment_batch(x, AugmentConfig(flip=False, max_shift=0, max_scale=0, brightness=0.3, contrast=0, saturation=0),
                      torch.Generator().manual_seed(0))
    means = y.mean(dim=(1, 2, 3))
    assert means.min() < 0.45 and means.max() > 0.55


def test_fused_color_jitter_equals_brightness_then_contrast_then_saturation():
    # Geometry off: what remains is the color matrix, checked against the three steps done in turn.
    config = AugmentConfig(flip=False, max_shift=0.0, max_scale=0.0, brightness=0.3, contrast=0.3, saturation=0.3)
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(5)) * 0.6 + 0.2
    out = augment_batch(x, config, torch.Generator().manual_seed(9))

    draws = torch.Generator().manual_seed(9)
    n = x.shape[0]
    for _ in range(3):  # scale and the two shifts come first (flip, when off, draws nothing)
        torch.rand(n, generator=draws)
    b, c, s = ((1 + (torch.rand(n, generator=draws) * 2 - 1) * 0.3).view(n, 1, 1, 1) for _ in range(3))
    y = x * b
    m = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - m) * c + m
    gray = 0.299 * y[:, 0:1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:3]
    expected = (gray + (y - gray) * s).clamp(0, 1)
    assert torch.allclose(out, expected, atol=1e-5)


def _tilt_degrees(images: torch.Tensor) -> torch.Tensor:
    """The angle from vertical of each image's bright mass (second moments of a single-channel batch)."""
    n, _, h, w = images.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    weight = images[:, 0]
    total = weight.sum(dim=(1, 2))
    mx, my = (weight * xs).sum(dim=(1, 2)) / total, (weight * ys).sum(dim=(1, 2)) / total
    cxx = (weight * (xs - mx.view(n, 1, 1)) ** 2).sum(dim=(1, 2))
    cyy = (weight * (ys - my.view(n, 1, 1)) ** 2).sum(dim=(1, 2))
    cxy = (weight * (xs - mx.view(n, 1, 1)) * (ys - my.view(n, 1, 1))).sum(dim=(1, 2))
    return torch.rad2deg(0.5 * torch.atan2(2 * cxy, cyy - cxx))


def test_rotation_tilts_a_vertical_bar_by_at_most_its_range_both_ways():
    x = torch.zeros(64, 1, 48, 48)
    x[:, :, 8:40, 22:26] = 1.0  # a vertical bar through the center
    config = AugmentConfig(flip=False, max_shift=0, max_scale=0, brightness=0, contrast=0, saturation=0, max_rotate=10.0)
    tilt = _tilt_degrees(augment_batch(x, config, torch.Generator().manual_seed(2)))
    assert tilt.abs().max() <= 10.5
    assert (tilt > 2).any() and (tilt < -2).any() and tilt.abs().mean() > 3
    assert _tilt_degrees(augment_batch(x, NONE, torch.Generator().manual_seed(2))).abs().max() < 0.1


def test_photo_preset_adds_rotation_and_runs_without_it_keep_their_random_numbers():
    from celeba_model.data.transforms import AUGMENT_PRESETS
    from celeba_model.training.config import AUGMENT_PRESETS as PRESET_NAMES

    assert tuple(AUGMENT_PRESETS) == PRESET_NAMES  # the config's names and the ranges agree
    assert AUGMENT_PRESETS["photo"].max_rotate > 0 and AUGMENT_PRESETS["standard"].max_rotate == 0
    x = _batch()
    standard = augment_batch(x, AUGMENT_PRESETS["standard"], torch.Generator().manual_seed(3))
    assert torch.equal(standard, augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(3)))
    photo = augment_batch(x, AUGMENT_PRESETS["photo"], torch.Generator().manual_seed(3))
    assert photo.shape == x.shape and photo.min() >= 0 and photo.max() <= 1 and not torch.equal(photo, standard)
