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

    # One affine warp covers flip, zoom and shift. The warp is axis-aligned, so its sampling grid is
    # two broadcast products (much cheaper on a CPU than F.affine_grid's general matrix product).
    # Grid coordinates are in [-1, 1], pixel centres at (2i + 1) / size - 1, so a shift of s (a
    # fraction of the image) is 2*s there.
    height, width = x.shape[2], x.shape[3]
    sign = torch.where(flip, -1.0, 1.0).to(device=device, dtype=x.dtype)
    scale, shift = scale.to(x.dtype), shift.to(x.dtype)
    xs = (torch.arange(width, device=device, dtype=x.dtype) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=device, dtype=x.dtype) * 2 + 1) / height - 1
    grid_x = (sign / scale).view(n, 1, 1) * xs.view(1, 1, width) + 2 * shift[:, 0].view(n, 1, 1)
    grid_y = (1 / scale).view(n, 1, 1) * ys.view(1, height, 1) + 2 * shift[:, 1].view(n, 1, 1)
    grid = torch.stack([grid_x.expand(n, height, width), grid_y.expand(n, height, width)], dim=-1)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    # Brightness (x*b), contrast about the image mean ((x - m)*c + m) and saturation about the luma
    # (g + (x - g)*s) are all linear in the pixel, so together they are one 3x3 colour matrix and one
    # offset per image, applied in a single pass:
    #   out = b*c*(s*x + (1 - s)*g(x)) + (1 - c)*b*mean(x)
    # (g's weights sum to 1, so the offset is the same for every channel).
    bc = (brightness * contrast).to(x.dtype)
    offset = ((1 - contrast) * brightness).to(x.dtype).view(n, 1, 1, 1) * x.mean(dim=(1, 2, 3), keepdim=True)
    if channels == 3 and config.saturation > 0:
        luma = torch.tensor([0.299, 0.587, 0.114], device=device, dtype=x.dtype)
        s = saturation.to(x.dtype).view(n, 1, 1)
        matrix = s * torch.eye(3, device=device, dtype=x.dtype) + (1 - s) * luma.view(1, 1, 3)  # rows: outputs
        matrix = bc.view(n, 1, 1) * matrix
        x = torch.einsum("nij,njhw->nihw", matrix, x)
    else:
        x = x * bc.view(n, 1, 1, 1)
    return x.add_(offset).clamp_(0.0, 1.0)
