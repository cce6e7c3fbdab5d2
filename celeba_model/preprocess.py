"""What the model sees: crop, size, colour and normalisation, recorded in every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from .errors import ConfigError
from .crop import ALIGNED_FACE_CROP, CropBox, crop_and_resize

COLORS = ("rgb", "gray")


@dataclass(frozen=True)
class PreprocessSpec:
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
    def from_dict(cls, values: dict) -> "PreprocessSpec":
        return cls(
            image_size=int(values["image_size"]),
            color=str(values["color"]),
            crop=CropBox.from_dict(values["crop"]),
            mean=float(values.get("mean", 0.5)),
            std=float(values.get("std", 0.5)),
        )

    def cache_fields(self) -> dict:
        """The settings that change cached pixels (normalisation is applied later, on tensors)."""
        return {"image_size": self.image_size, "color": self.color, "crop": self.crop.to_dict()}


def image_to_array(image: Image.Image, spec: PreprocessSpec, crop: CropBox | None = None) -> np.ndarray:
    """Crop (``spec.crop`` unless another box is given) and resize to an HxWxC uint8 array."""
    face = crop_and_resize(image, crop or spec.crop, spec.image_size, spec.color)
    array = np.asarray(face, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def to_unit_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC (as stored in the cache) -> float NCHW in [0, 1], where augmentation works."""
    return batch.permute(0, 3, 1, 2).float().div_(255.0)


def normalise(x: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """[0, 1] NCHW -> the model's input range, in channels_last memory (faster convolutions)."""
    return ((x - spec.mean) / spec.std).contiguous(memory_format=torch.channels_last)


def to_model_input(batch: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """uint8 NHWC -> normalised float NCHW, without augmentation (evaluation and prediction).

    The same values as ``normalise(to_unit_float(batch))`` in one conversion and one in-place pass:
    for the small models, evaluation is otherwise bound by these copies. The NHWC layout seen
    through the NCHW permutation already is channels_last memory.
    """
    x = batch.permute(0, 3, 1, 2).float()
    return x.mul_(1.0 / (255.0 * spec.std)).sub_(spec.mean / spec.std).contiguous(memory_format=torch.channels_last)
