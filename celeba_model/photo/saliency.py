"""Grad-CAM: where in the face crop the model looked for one attribute.

Selvaraju et al.'s Grad-CAM weights the last convolutional feature maps by the mean gradient of the
attribute's logit and keeps the positive part: a coarse map of the regions that pushed the
attribute's score up. For Blond_Hair it should light up the hair, for Smiling the mouth; a map on the
background means the model learned a shortcut.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn


def last_feature_layer(model: nn.Module) -> nn.Module:
    """The last ReLU of ``model.features``: the output of the last convolution block."""
    features = getattr(model, "features", None)
    if features is None:
        raise ValueError(f"{type(model).__name__} has no `features` block to explain")
    relus = [m for m in features.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError(f"{type(model).__name__}.features has no ReLU layer")
    return relus[-1]


def grad_cam(model: nn.Module, x: torch.Tensor, attribute: int, layer: nn.Module | None = None) -> np.ndarray:
    """Grad-CAM map (H, W) in [0, 1] at the input's resolution for one image ``x`` (1, C, H, W).

    An ensemble (``models.ensemble``) has no single feature block: its map is the mean of its members'."""
    members = getattr(model, "members", None)
    if layer is None and isinstance(members, nn.ModuleList):
        cam = np.mean([grad_cam(member, x, attribute) for member in members], axis=0)
        top = float(cam.max())
        return (cam / top).astype(np.float32) if top > 0 else cam.astype(np.float32)
    layer = layer or last_feature_layer(model)
    captured: dict[str, torch.Tensor] = {}

    def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        captured["activation"] = output
        output.register_hook(lambda grad: captured.__setitem__("gradient", grad))

    handle = layer.register_forward_hook(keep)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = x.detach().clone().requires_grad_(True)  # so the graph exists even for a frozen model
            logits = model(x)
            logits[0, attribute].backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)  # leave no gradients behind on a model used for inference
        model.train(was_training)
    activation, gradient = captured["activation"].detach(), captured["gradient"].detach()
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    top = float(cam.max())
    return (cam / top).numpy() if top > 0 else np.zeros(tuple(x.shape[-2:]), dtype=np.float32)


def _heat_colors(values: np.ndarray) -> np.ndarray:
    """A blue-to-red color ramp (jet-like) for values in [0, 1], as uint8 RGB."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    anchors = np.array([0.0, 0.35, 0.65, 1.0])
    colors = np.array([[0, 0, 160], [0, 200, 255], [255, 220, 0], [230, 0, 0]], dtype=np.float64)
    rgb = np.stack([np.interp(v[..., 0], anchors, colors[:, c]) for c in range(3)], axis=-1)
    return rgb.astype(np.uint8)


def overlay(face: Image.Image, cam: np.ndarray, alpha: float = 0.45, size: int | None = None) -> Image.Image:
    """The face with the map laid over it in color (warm = looked at)."""
    size = size or face.size[0]
    base = face.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    heat = Image.fromarray(_heat_colors(cam)).resize((size, size), Image.Resampling.BILINEAR)
    return Image.blend(base, heat, alpha)


def band_shares(heatmap: np.ndarray) -> np.ndarray:
    """Share of a non-negative map's total in its top, middle and bottom thirds (rows)."""
    rows = heatmap.sum(axis=1)
    edges = np.linspace(0, len(rows), 4).round().astype(int)
    parts = np.array([rows[a:b].sum() for a, b in zip(edges[:-1], edges[1:])])
    return parts / max(parts.sum(), 1e-12)
