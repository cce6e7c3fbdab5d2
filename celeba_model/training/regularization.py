"""Batch regularizers of the training loop: label smoothing, random erasing, mixup and cutmix.

They work on a whole prepared batch (normalized NCHW input and float targets), after augmentation,
on whatever device it lives on. Random numbers come from the epoch's augmentation generator, drawn
only for the regularizers that are on, so a run without them keeps its random numbers exactly.

For multi-label targets, mixup and cutmix mix the label vectors with the images' weights (the 0/1
labels of two faces become, for each attribute, the share of the mixed image that carries it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MIX_MODES = ("none", "mixup", "cutmix")

# Random erasing's rectangle (Zhong et al. 2020, timm's defaults): 2-33% of the image, aspect 0.3-3.3.
ERASE_AREA = (0.02, 1 / 3)
ERASE_LOG_ASPECT = (float(np.log(0.3)), float(np.log(1 / 0.3)))


@dataclass(frozen=True)
class BatchRegularization:
    """Which regularizers a run uses; all off by default."""

    label_smoothing: float = 0.0  # targets y -> y * (1 - e) + e / 2: no target is a certain 0 or 1
    random_erase: float = 0.0  # probability that an image gets one rectangle replaced by noise
    mix: str = "none"  # MIX_MODES: mixup blends two images; cutmix pastes a rectangle of one into another
    mix_alpha: float = 0.2  # the mixing weight is drawn from Beta(alpha, alpha)

    @property
    def active(self) -> bool:
        return self.label_smoothing > 0 or self.random_erase > 0 or self.mix != "none"

    def apply(self, x: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The regularized batch and targets (new tensors; the inputs are not changed)."""
        if self.label_smoothing > 0:
            targets = targets * (1 - self.label_smoothing) + self.label_smoothing / 2
        if self.random_erase > 0:
            x = random_erase(x, self.random_erase, generator)
        if self.mix != "none" and len(x) > 1:
            x, targets = mix_batch(x, targets, self.mix, self.mix_alpha, generator)
        return x, targets


def _beta(alpha: float, generator: torch.Generator) -> float:
    """One draw from Beta(alpha, alpha), seeded from ``generator`` (torch's Beta cannot take one)."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device).item())
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def _boxes(n: int, area: torch.Tensor, log_aspect: torch.Tensor, height: int, width: int,
           generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Rectangles of the given areas (fractions of the image) and log aspect ratios, clipped to the
    image, at uniform random centers: (top, bottom, left, right) in pixels, each of shape (n,)."""
    aspect = torch.exp(log_aspect)
    box_h = (torch.sqrt(area / aspect) * height).round()
    box_w = (torch.sqrt(area * aspect) * width).round()
    cy = torch.rand(n, generator=generator, device=device) * height
    cx = torch.rand(n, generator=generator, device=device) * width
    top, bottom = (cy - box_h / 2).clamp(0, height), (cy + box_h / 2).clamp(0, height)
    left, right = (cx - box_w / 2).clamp(0, width), (cx + box_w / 2).clamp(0, width)
    return top.round(), bottom.round(), left.round(), right.round()


def _box_mask(top: torch.Tensor, bottom: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
              height: int, width: int) -> torch.Tensor:
    """(n, 1, H, W) boolean mask of each image's rectangle."""
    ys = torch.arange(height, device=top.device).view(1, height, 1)
    xs = torch.arange(width, device=top.device).view(1, 1, width)
    inside = ((ys >= top.view(-1, 1, 1)) & (ys < bottom.view(-1, 1, 1))
              & (xs >= left.view(-1, 1, 1)) & (xs < right.view(-1, 1, 1)))
    return inside.unsqueeze(1)


def random_erase(x: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """Replace one random rectangle of each image, with probability ``probability``, by standard normal
    noise (the input is normalized, so that is noise of the data's own scale; timm's "pixel" mode)."""
    n, channels, height, width = x.shape
    device = x.device
    chosen = torch.rand(n, generator=generator, device=device) < probability
    area = ERASE_AREA[0] + torch.rand(n, generator=generator, device=device) * (ERASE_AREA[1] - ERASE_AREA[0])
    log_aspect = (ERASE_LOG_ASPECT[0]
                  + torch.rand(n, generator=generator, device=device) * (ERASE_LOG_ASPECT[1] - ERASE_LOG_ASPECT[0]))
    mask = _box_mask(*_boxes(n, area, log_aspect, height, width, generator, device), height, width)
    mask = mask & chosen.view(n, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
    return torch.where(mask, noise, x).contiguous(memory_format=torch.channels_last)


def mix_batch(x: torch.Tensor, targets: torch.Tensor, mode: str, alpha: float,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each image with another of the batch (a random pairing) by one weight drawn from Beta(alpha,
    alpha): mixup blends the pixels; cutmix pastes one rectangle of the partner, of that share of the
    image. The targets mix by the share each image holds of the result."""
    if mode not in ("mixup", "cutmix"):
        raise ValueError(f"mix must be one of {MIX_MODES[1:]}, got {mode!r}")
    n, _, height, width = x.shape
    device = x.device
    lam = _beta(alpha, generator)
    partner = torch.randperm(n, generator=generator, device=device)
    if mode == "mixup":
        mixed = x * lam + x[partner] * (1 - lam)
    else:
        area = torch.full((1,), 1 - lam, device=device)
        top, bottom, left, right = _boxes(1, area, torch.zeros(1, device=device), height, width, generator, device)
        mask = _box_mask(top, bottom, left, right, height, width)
        mixed = torch.where(mask, x[partner], x)
        lam = 1 - float(((bottom - top) * (right - left)).item()) / (height * width)  # the share actually kept
    mixed_targets = targets * lam + targets[partner] * (1 - lam)
    return mixed.contiguous(memory_format=torch.channels_last), mixed_targets
