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
