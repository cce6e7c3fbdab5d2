"""Photo-by-photo prediction: a checkpoint loaded once, then crop -> model -> probabilities, one image or a batch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.crop import CropBox
from ..data.transforms import image_to_array, to_model_input
from ..evaluation.batched import sigmoid_probabilities
from ..models.checkpoint import Checkpoint, load_checkpoint


@dataclass
class ImagePrediction:
    """What the model saw and what it said about one image."""

    crop: Image.Image  # the model's input before normalization, at model resolution
    probabilities: np.ndarray  # (A,) float32
    attributes: list[str]
    crop_box: CropBox

    def decisions(self, thresholds: np.ndarray | float = 0.5) -> np.ndarray:
        """(A,) bool: attribute predicted present at the thresholds."""
        return self.probabilities >= np.asarray(thresholds)


class Predictor:
    """Holds one checkpoint's model for repeated single-image predictions (upload page, scripts)."""

    def __init__(self, checkpoint: str | Path | Checkpoint, device: str | torch.device = "cpu") -> None:
        self.checkpoint = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint, device=device)
        self.device = torch.device(device)
        self.model = self.checkpoint.model.to(self.device).eval()
        self.spec = self.checkpoint.preprocess
        self.attributes = self.checkpoint.attributes
        # A checkpoint whose thresholds were tuned on flip-averaged scores asks for flip averaging.
        self.flip_tta = bool(self.checkpoint.meta.get("inference", {}).get("flip_tta", False))

    def model_input(self, image: Image.Image, crop_box: CropBox | None = None) -> np.ndarray:
        """The model's input pixels for an RGB image, before normalization: HxWxC uint8 at model size."""
        return image_to_array(image, self.spec, crop=crop_box or self.spec.crop)

    def _tensor(self, pixels: np.ndarray) -> torch.Tensor:
        """The normalized model input for a batch of ``model_input`` arrays, (N, H, W, C) uint8."""
        # A copy: arrays from PIL images are read-only, which torch.from_numpy warns about.
        return to_model_input(torch.from_numpy(np.array(pixels, dtype=np.uint8)).to(self.device), self.spec)

    @torch.inference_mode()
    def predict_inputs(self, pixels: np.ndarray) -> np.ndarray:
        """(N, A) float32 probabilities for a batch of ``model_input`` arrays, (N, H, W, C) uint8.

        Single and batched predictions run this same code, so they agree (to float rounding). With
        the checkpoint's ``flip_tta`` each image's probabilities are averaged with its mirror image's
        (``sigmoid_probabilities``, shared with split evaluation).
        """
        return sigmoid_probabilities(self.model, self._tensor(pixels), self.flip_tta).cpu().numpy()

    def predict(self, image: Image.Image, crop_box: CropBox | None = None) -> ImagePrediction:
        """Predict an RGB image, cropping ``crop_box`` (default: the aligned-CelebA training crop)."""
        box = crop_box or self.spec.crop
        pixels = self.model_input(image, box)
        probabilities = self.predict_inputs(pixels[None])[0]
        crop = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
        return ImagePrediction(crop=crop, probabilities=probabilities, attributes=self.attributes, crop_box=box)

    def explain(self, image: Image.Image, attribute: str, crop_box: CropBox | None = None) -> np.ndarray:
        """Grad-CAM map (model resolution, values in [0, 1]) of ``attribute`` for the cropped image."""
        from .saliency import grad_cam

        x = self._tensor(self.model_input(image, crop_box)[None])
        return grad_cam(self.model, x, self.attributes.index(attribute))
