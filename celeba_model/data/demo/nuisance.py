"""Label-free variation of one demo picture: pose jitter, backdrop, clothing and camera settings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .traits import RGB


@dataclass(frozen=True)
class Nuisance:
    """Random, label-free variation of one picture. Drawn up front in a fixed order so that two
    faces rendered from the same rng state differ only in their traits."""

    dx: float
    dy: float
    scale: float
    head_width: float
    background_kind: int
    background_rgb: np.ndarray  # (2, 3) gradient end colors
    clutter: np.ndarray  # (6, 8): on/off, kind, box, color
    blotches: np.ndarray  # (5, 4, 3) low-res color field
    clothing_rgb: RGB
    accessory_rgb: RGB  # hat, tie
    frame_rgb: RGB  # glasses
    lipstick_rgb: RGB
    strands: np.ndarray  # (16,) in [0, 1): hair strand and fringe jitter
    brightness: float
    contrast: float
    ramp: float  # left-to-right light falloff
    channel_gain: np.ndarray  # (3,) slight color cast
    noise_sigma: float
    blur_radius: float
    jpeg_quality: int  # 0: no extra compression round


_LIPSTICKS: tuple[RGB, ...] = ((178, 32, 52), (200, 62, 92), (150, 24, 42), (206, 84, 104), (160, 50, 80))
_FRAMES: tuple[RGB, ...] = ((20, 20, 22), (60, 40, 24), (28, 30, 62), (90, 20, 20), (45, 45, 45))


def draw_nuisance(rng: np.random.Generator) -> Nuisance:
    def color() -> RGB:
        return tuple(int(v) for v in rng.integers(0, 256, size=3))  # type: ignore[return-value]

    return Nuisance(
        dx=float(rng.uniform(-3.5, 3.5)),
        dy=float(rng.uniform(-3.5, 3.5)),
        scale=float(rng.uniform(0.95, 1.05)),
        head_width=float(rng.uniform(0.96, 1.04)),
        background_kind=int(rng.integers(0, 5)),
        background_rgb=rng.integers(0, 256, size=(2, 3)),
        clutter=rng.random((6, 8)),
        # Half color, half gray: real backdrops are rarely fully saturated.
        blotches=(0.5 * rng.integers(0, 256, size=(5, 4, 3)) + 0.5 * rng.integers(0, 256, size=(5, 4, 1))).astype(
            np.uint8
        ),
        clothing_rgb=color(),
        accessory_rgb=color(),
        frame_rgb=_FRAMES[int(rng.integers(len(_FRAMES)))],
        lipstick_rgb=_LIPSTICKS[int(rng.integers(len(_LIPSTICKS)))],
        strands=rng.random(16),
        brightness=float(rng.uniform(0.78, 1.18)),
        contrast=float(rng.uniform(0.8, 1.12)),
        ramp=float(rng.uniform(-0.22, 0.22)),
        channel_gain=rng.uniform(0.96, 1.04, size=3),
        noise_sigma=float(rng.uniform(1.0, 6.0)),
        blur_radius=float(rng.uniform(0.3, 0.8)) if rng.random() < 0.2 else 0.0,
        jpeg_quality=int(rng.integers(30, 75)) if rng.random() < 0.25 else 0,
    )
