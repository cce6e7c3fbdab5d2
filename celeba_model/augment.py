"""Data augmentation on whole batches of tensors, on whatever device the batch lives on.

Working on the batch (one affine warp, a few broadcast multiplies) instead of per PIL image keeps
augmentation off the CPU's critical path on a GPU and costs little on a CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random changes; each is sampled independently per image."""

    flip: bool = True  # none of the 40 CelebA attributes depends on left/right
    max_shift: float = 0.06  # fraction of the image size
    max_scale: float = 0.08  # zoom in or out by up to this fraction
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2  # RGB only; kept small so hair and skin colour labels stay true

    def to_dict(self) -> dict:
        return asdict(self)


def _uniform(n: int, spread: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """n samples from U(-spread, spread)."""
    return (torch.rand(n, generator=generator, device=device) * 2 - 1) * spread


def augment_batch(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Randomly flip, shift, scale and jitter a float NCHW batch in [0, 1]; returns a new batch in [0, 1]."""
    n, channels = x.shape[0], x.shape[1]
    device = x.device
    # Draw every random number first, in a fixed order, so results depend only on the generator.
    flip = torch.rand(n, generator=generator, device=device) < 0.5 if config.flip else torch.zeros(n, dtype=torch.bool, device=device)
    scale = 1 + _uniform(n, config.max_scale, generator, device)
    shift = torch.stack(
        [_uniform(n, config.max_shift, generator, device), _uniform(n, config.max_shift, generator, device)], dim=1
    )
    brightness = 1 + _uniform(n, config.brightness, generator, device)
    contrast = 1 + _uniform(n, config.contrast, generator, device)
    saturation = 1 + _uniform(n, config.saturation, generator, device)

    # One affine warp covers flip, zoom and shift. affine_grid works in [-1, 1] coordinates,
    # so a shift of s (fraction of the image) is 2*s there.
    theta = torch.zeros(n, 2, 3, device=device, dtype=x.dtype)
    sign = torch.where(flip, -1.0, 1.0).to(device=device, dtype=x.dtype)
    theta[:, 0, 0] = sign / scale
    theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = 2 * shift.to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    view = (n, 1, 1, 1)
    x = x * brightness.view(view)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast.view(view) + mean
    if channels == 3 and config.saturation > 0:
        gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        x = gray + (x - gray) * saturation.view(view)
    return x.clamp_(0.0, 1.0)
