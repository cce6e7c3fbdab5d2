"""Drawing one demo face: a backdrop, the parts of the person back to front, then the camera."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw

from . import parts
from .camera import apply_camera
from .canvas import IMAGE_HEIGHT, IMAGE_WIDTH, SUPERSAMPLE, Pen
from .nuisance import Nuisance, draw_nuisance
from .traits import FaceTraits


def _background(nz: Nuisance) -> Image.Image:
    """Solid, gradient or blotchy backdrop, sometimes with clutter shapes (kept behind the person).

    Built at the final size and then upscaled: backgrounds are smooth, and a nearest-neighbor
    upscale is far cheaper than filling a supersampled canvas.
    """
    c0, c1 = (tuple(int(v) for v in c) for c in nz.background_rgb)
    kind = nz.background_kind
    size = (IMAGE_WIDTH, IMAGE_HEIGHT)
    if kind == 0:
        img = Image.new("RGB", size, c0)
    elif kind in (1, 2):  # vertical or horizontal linear gradient
        steps = np.linspace(0.0, 1.0, IMAGE_HEIGHT if kind == 1 else IMAGE_WIDTH, dtype=np.float32)[:, None]
        ramp = (np.array(c0) * (1 - steps) + np.array(c1) * steps).astype(np.uint8)
        ramp = ramp[:, None, :] if kind == 1 else ramp[None, :, :]
        img = Image.fromarray(np.ascontiguousarray(np.broadcast_to(ramp, (IMAGE_HEIGHT, IMAGE_WIDTH, 3))))
    else:
        img = Image.fromarray(nz.blotches).resize(size, Image.Resampling.BILINEAR)
    if kind >= 3 or nz.clutter[0, 0] < 0.3:
        draw = ImageDraw.Draw(img)
        for on, shape, x0, y0, x1, y1, hue, val in nz.clutter:
            if on < 0.5:
                continue
            box = (
                min(x0, x1) * IMAGE_WIDTH,
                min(y0, y1) * IMAGE_HEIGHT,
                max(x0, x1) * IMAGE_WIDTH,
                max(y0, y1) * IMAGE_HEIGHT,
            )
            fill = tuple(int(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.45, 0.25 + 0.7 * val))
            (draw.rectangle if shape < 0.5 else draw.ellipse)(box, fill=fill)
    if SUPERSAMPLE > 1:
        img = img.resize((IMAGE_WIDTH * SUPERSAMPLE, IMAGE_HEIGHT * SUPERSAMPLE), Image.Resampling.NEAREST)
    return img


def render_face(traits: FaceTraits, rng: np.random.Generator) -> Image.Image:
    """Draw one 178x218 RGB face with aligned-CelebA geometry.

    ``traits`` decide what the face shows; ``rng`` only adds label-free variation (pose jitter,
    background, lighting, noise). Its draws do not depend on ``traits``, so two calls with equally
    seeded generators differ only where the traits differ.
    """
    nz = draw_nuisance(rng)
    head = parts.Head.from_traits(traits, nz)
    canvas = _background(nz)
    pen = Pen(ImageDraw.Draw(canvas, "RGBA"), nz)
    parts.draw_body(pen, traits, head, nz)
    parts.draw_back_hair(pen, traits, head, nz)
    parts.draw_face(pen, traits, head)
    parts.draw_age(pen, traits, head)
    parts.draw_facial_hair(pen, traits, head)
    parts.draw_nose(pen, traits, head)
    parts.draw_mouth(pen, traits, head, nz)
    if traits.mustache:
        parts.draw_mustache(pen, head)
    parts.draw_eyes(pen, traits, head, nz)
    parts.draw_hair_cap(pen, traits, head, nz)
    if traits.bangs:
        parts.draw_bangs(pen, head, nz)
    parts.draw_side_locks(pen, traits, head)
    if traits.earrings:
        parts.draw_earrings(pen, head)
    if traits.eyeglasses:
        parts.draw_glasses(pen, traits, head, nz)
    if traits.hat:
        parts.draw_hat(pen, head, nz)
    if SUPERSAMPLE > 1:
        canvas = canvas.reduce(SUPERSAMPLE)
    return apply_camera(canvas, traits, nz, rng)
