"""What the camera does to a drawn demo face: exposure, light falloff, color cast, noise, blur, JPEG."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from .nuisance import Nuisance
from .traits import FaceTraits


def _soft_clip(values: np.ndarray, knee: float = 215.0) -> np.ndarray:
    """Tone curve that rolls off highlights smoothly instead of clipping at 255.

    A hard clip would flatten bright, saturated channels (the red of normal skin) more than
    unsaturated ones, handing grayscale a luma cue for Pale_Skin in overexposed pictures.
    """
    room = 255.0 - knee
    rolled = knee + room * np.tanh((values - knee) / room)
    return np.clip(np.where(values > knee, rolled, values), 0, 255).round().astype(np.uint8)


def apply_camera(img: Image.Image, t: FaceTraits, nz: Nuisance, rng: np.random.Generator) -> Image.Image:
    """Global lighting, a side light falloff, color cast, sensor noise, blur and compression.

    Random brightness and contrast make absolute luma a weak cue, so hair color and pale skin have
    to be read from hue and saturation. Done with PIL lookup tables and channel ops, which are
    several times faster than float arrays at this size.
    """
    levels = np.arange(256, dtype=np.float32)
    curves = [((levels - 128.0) * nz.contrast + 128.0) * (nz.brightness * g) for g in nz.channel_gain]
    out = img.point(_soft_clip(np.concatenate(curves)).tolist())
    # Light falls off towards one side (a multiply can only darken).
    x = np.linspace(0.0, 1.0, out.width, dtype=np.float32)
    row = 255.0 * (1.0 - (nz.ramp * (1.0 - x) if nz.ramp > 0 else -nz.ramp * x))
    falloff = Image.fromarray(np.ascontiguousarray(np.broadcast_to(row.astype(np.uint8), (out.height, out.width))))
    out = ImageChops.multiply(out, Image.merge("RGB", (falloff,) * 3))
    k = max(1, round(nz.noise_sigma * 1.7))  # uniform noise on [-k, k] has std ~ k / 1.7
    noise = rng.integers(0, 2 * k + 1, size=(out.height, out.width, 3), dtype=np.uint8)
    out = ImageChops.add(out, Image.fromarray(noise), 1.0, -k)
    if t.blurry:
        out = out.filter(ImageFilter.GaussianBlur(float(1.2 + 1.2 * nz.strands[15])))
    elif nz.blur_radius > 0:  # slight softness; a box blur is three times cheaper than a Gaussian
        out = out.filter(ImageFilter.BoxBlur(nz.blur_radius))
    if nz.jpeg_quality:
        buffer = io.BytesIO()
        out.save(buffer, "JPEG", quality=nz.jpeg_quality)
        buffer.seek(0)
        out = Image.open(buffer).convert("RGB")
    return out
