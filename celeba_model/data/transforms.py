"""What the model sees, in one place: the evaluation preset and the training preset.

- ``PreprocessConfig``: crop, size, color and normalization, recorded in every checkpoint and part
  of the image cache's key (``image_to_array`` applies the pixel part once, into the cache);
- evaluation: ``to_model_input`` turns cached uint8 images into normalized model input;
- training: ``to_training_input`` does the same through ``augment_batch`` (random flip, shift,
  zoom, brightness, contrast, saturation) on whole batches of tensors, on whatever device the batch
  lives on. Working on the batch (one affine warp, a few broadcast multiplies) instead of per PIL
  image keeps augmentation off the CPU's critical path on a GPU and costs little on a CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import ConfigError
from .crop import ALIGNED_FACE_CROP, CropBox, crop_and_resize

COLORS = ("rgb", "gray")


@dataclass(frozen=True)
class PreprocessConfig:
    """How a CelebA image becomes a model input. Part of the cache key and the checkpoint."""

    image_size: int = 64
    color: str = "gray"
    crop: CropBox = field(default=ALIGNED_FACE_CROP)
    # Inputs are scaled to [-1, 1]; fixed rather than fitted so a checkpoint never depends
    # on statistics of the data it happened to be trained on.
    mean: float = 0.5
    std: float = 0.5

    def __post_init__(self) -> None:
        if self.color not in COLORS:
            raise ConfigError(f"color must be one of {COLORS}, got {self.color!r}")
        if not 8 <= self.image_size <= 1024:
            raise ConfigError(f"image_size must be between 8 and 1024, got {self.image_size}")

    @property
    def channels(self) -> int:
        return 3 if self.color == "rgb" else 1

    def to_dict(self) -> dict:
        return {
            "image_size": self.image_size,
            "color": self.color,
            "crop": self.crop.to_dict(),
            "mean": self.mean,
            "std": self.std,
        }

    @classmethod
    def from_dict(cls, values: dict) -> "PreprocessConfig":
        return cls(
            image_size=int(values["image_size"]),
            color=str(values["color"]),
            crop=CropBox.from_dict(values["crop"]),
            mean=float(values.get("mean", 0.5)),
            std=float(values.get("std", 0.5)),
        )

    def cache_fields(self) -> dict:
        """The settings that change cached pixels (normalization is applied later, on tensors)."""
        return {"image_size": self.image_size, "color": self.color, "crop": self.crop.to_dict()}


def image_to_array(image: Image.Image, spec: PreprocessConfig, crop: CropBox | None = None) -> np.ndarray:
    """Crop (``spec.crop`` unless another box is given) and resize to an HxWxC uint8 array."""
    face = crop_and_resize(image, crop or spec.crop, spec.image_size, spec.color)
    array = np.asarray(face, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def to_unit_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC (as stored in the cache) -> float NCHW in [0, 1], where augmentation works."""
    return batch.permute(0, 3, 1, 2).float().div_(255.0)


def normalize(x: torch.Tensor, spec: PreprocessConfig) -> torch.Tensor:
    """[0, 1] NCHW -> the model's input range, in channels_last memory (faster convolutions)."""
    return ((x - spec.mean) / spec.std).contiguous(memory_format=torch.channels_last)


def to_model_input(batch: torch.Tensor, spec: PreprocessConfig) -> torch.Tensor:
    """uint8 NHWC -> normalized float NCHW, without augmentation (evaluation and prediction).

    The same values as ``normalize(to_unit_float(batch))`` in one conversion and one in-place pass:
    for the small models, evaluation is otherwise bound by these copies. The NHWC layout seen
    through the NCHW permutation already is channels_last memory.
    """
    x = batch.permute(0, 3, 1, 2).float()
    return x.mul_(1.0 / (255.0 * spec.std)).sub_(spec.mean / spec.std).contiguous(memory_format=torch.channels_last)


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random changes; each is sampled independently per image."""

    flip: bool = True  # none of the 40 CelebA attributes depends on left/right
    max_shift: float = 0.06  # fraction of the image size
    max_scale: float = 0.08  # zoom in or out by up to this fraction
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2  # RGB only; kept small so hair and skin color labels stay true
    max_rotate: float = 0.0  # degrees, either way

    def to_dict(self) -> dict:
        return asdict(self)


# "photo": the framing noise of the detector path on top of "standard". Uploaded photos are framed from
# detected keypoints (photo/framing.py), so their crops wobble where aligned CelebA's do not: a few
# degrees of residual roll, and shift and scale errors of several percent.
AUGMENT_PRESETS = {
    "standard": AugmentConfig(),
    "photo": AugmentConfig(max_shift=0.08, max_scale=0.12, max_rotate=10.0),
}


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
    # Drawn last and only when asked for, so runs without rotation keep their random numbers.
    angle = (_uniform(n, config.max_rotate, generator, device) * (torch.pi / 180) if config.max_rotate > 0
             else torch.zeros(n, device=device))

    # One affine warp covers flip, zoom, shift and rotation. Its sampling grid is built from broadcast
    # products (much cheaper on a CPU than F.affine_grid's general matrix product); without rotation
    # it is axis-aligned and needs two. Grid coordinates are in [-1, 1], pixel centers at
    # (2i + 1) / size - 1, so a shift of s (a fraction of the image) is 2*s there.
    height, width = x.shape[2], x.shape[3]
    sign = torch.where(flip, -1.0, 1.0).to(device=device, dtype=x.dtype)
    scale, shift = scale.to(x.dtype), shift.to(x.dtype)
    xs = (torch.arange(width, device=device, dtype=x.dtype) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=device, dtype=x.dtype) * 2 + 1) / height - 1
    if config.max_rotate > 0:
        cos, sin = (torch.cos(angle) / scale).to(x.dtype).view(n, 1, 1), (torch.sin(angle) / scale).to(x.dtype).view(n, 1, 1)
        xs_flipped = sign.view(n, 1, 1) * xs.view(1, 1, width)
        grid_x = cos * xs_flipped - sin * ys.view(1, height, 1) + 2 * shift[:, 0].view(n, 1, 1)
        grid_y = sin * xs_flipped + cos * ys.view(1, height, 1) + 2 * shift[:, 1].view(n, 1, 1)
        grid = torch.stack([grid_x, grid_y], dim=-1)
    else:
        grid_x = (sign / scale).view(n, 1, 1) * xs.view(1, 1, width) + 2 * shift[:, 0].view(n, 1, 1)
        grid_y = (1 / scale).view(n, 1, 1) * ys.view(1, height, 1) + 2 * shift[:, 1].view(n, 1, 1)
        grid = torch.stack([grid_x.expand(n, height, width), grid_y.expand(n, height, width)], dim=-1)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    # Brightness (x*b), contrast about the image mean ((x - m)*c + m) and saturation about the luma
    # (g + (x - g)*s) are all linear in the pixel, so together they are one 3x3 color matrix and one
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


def to_training_input(
    images: torch.Tensor, spec: PreprocessConfig, augment: AugmentConfig | None, generator: torch.Generator
) -> torch.Tensor:
    """uint8 NHWC batch (already on the training device) -> augmented, normalized model input."""
    x = to_unit_float(images)
    if augment is not None:
        x = augment_batch(x, augment, generator)
    return normalize(x, spec)
