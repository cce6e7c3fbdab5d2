"""Where demo faces are drawn: the image size, aligned-CelebA landmarks and a pen in that frame."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from PIL import ImageDraw

from .nuisance import Nuisance

IMAGE_WIDTH, IMAGE_HEIGHT = 178, 218

# Aligned CelebA landmarks in pixels of the 178x218 image (the face frame all drawing uses).
CX = IMAGE_WIDTH / 2  # face center line
EYE_Y = 111.0  # 0.51 H
EYE_DX = 19.6  # eyes at 0.39 W and 0.61 W
NOSE_Y = 135.0  # nose tip, 0.62 H
MOUTH_Y = 153.0  # 0.70 H
CHIN_Y = 181.0  # 0.83 H
FACE_TOP = 60.0  # top of the skin ellipse, hidden under hair
FACE_HALF_WIDTH = 46.0  # face ellipse about 92 px wide
HAIR_CENTER_Y = 112.0  # center of the hair and hairline ellipses

# Drawing at twice the size and shrinking gives cheap antialiasing; PIL's ImageDraw has none.
SUPERSAMPLE = 2


class Pen:
    """ImageDraw in face-frame coordinates (px of the 178x218 image), with the picture's pose jitter
    and supersampling applied, so drawing code reads like aligned-CelebA landmarks."""

    def __init__(self, draw: ImageDraw.ImageDraw, nz: Nuisance) -> None:
        self.draw = draw
        self._s = nz.scale * SUPERSAMPLE
        self._ox = (CX + nz.dx) * SUPERSAMPLE - CX * self._s
        self._oy = (EYE_Y + nz.dy) * SUPERSAMPLE - EYE_Y * self._s

    def p(self, x: float, y: float) -> tuple[float, float]:
        return (self._ox + x * self._s, self._oy + y * self._s)

    def pts(self, points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
        return [self.p(x, y) for x, y in points]

    def box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return (*self.p(x0, y0), *self.p(x1, y1))

    def w(self, width: float) -> int:
        return max(1, round(width * self._s))

    def polygon(self, points: Iterable[tuple[float, float]], fill: tuple) -> None:
        self.draw.polygon(self.pts(points), fill=fill)

    def ellipse(
        self,
        box: tuple[float, float, float, float],
        fill: tuple | None = None,
        outline: tuple | None = None,
        width: float = 1,
    ) -> None:
        self.draw.ellipse(self.box(*box), fill=fill, outline=outline, width=self.w(width))

    def line(self, points: Iterable[tuple[float, float]], fill: tuple, width: float = 1) -> None:
        self.draw.line(self.pts(points), fill=fill, width=self.w(width), joint="curve")

    def arc(
        self, box: tuple[float, float, float, float], start: float, end: float, fill: tuple, width: float = 1
    ) -> None:
        self.draw.arc(self.box(*box), start, end, fill=fill, width=self.w(width))


def shade(rgb: Sequence[int], k: float) -> tuple[int, ...]:
    """``rgb`` darkened (k < 1) or lightened (k > 1), clamped to 0..255."""
    return tuple(int(min(255, max(0, round(c * k)))) for c in rgb)


def arc_points(
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    t0: float,
    t1: float,
    n: int,
    wobble: Callable[[float], float] | None = None,
) -> list[tuple[float, float]]:
    """Points along an ellipse from angle t0 to t1 (radians, y down); ``wobble`` scales the radius."""
    out = []
    for t in np.linspace(t0, t1, n):
        k = wobble(t) if wobble else 1.0
        out.append((cx + rx * k * math.cos(t), cy + ry * k * math.sin(t)))
    return out
