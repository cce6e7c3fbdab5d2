"""Drawing the parts of a demo picture, one function each: body, hair, face, features, accessories.

``render.render_face`` calls them back to front. Each draws with a ``Pen`` in aligned-CelebA
coordinates and reads what to draw from ``FaceTraits``; the ``Nuisance`` only supplies label-free
colors and jitter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .canvas import (
    CHIN_Y,
    CX,
    EYE_DX,
    EYE_Y,
    FACE_HALF_WIDTH,
    FACE_TOP,
    HAIR_CENTER_Y,
    MOUTH_Y,
    NOSE_Y,
    Pen,
    arc_points,
    shade,
)
from .nuisance import Nuisance
from .traits import DEFAULT_SKIN_RGB, HAIR_RGB, RGB, FaceTraits


@dataclass(frozen=True)
class Head:
    """Per-picture head geometry and colors shared by the drawing helpers."""

    hw: float  # face half width
    skin: RGB
    hair: RGB
    length: str
    hair_top: float
    hairline_y: float
    hairline_rx: float

    @classmethod
    def from_traits(cls, t: FaceTraits, nz: Nuisance) -> Head:
        """The head ``t`` describes, widened or narrowed by the picture's random ``head_width``."""
        length = t.hair_length or ("short" if t.male else "long")
        hw = FACE_HALF_WIDTH * t.face_width * nz.head_width
        return cls(
            hw=hw,
            skin=t.skin_rgb or DEFAULT_SKIN_RGB[t.pale_skin],
            hair=t.hair_rgb or HAIR_RGB[t.hair_color],
            length=length,
            hair_top=t.hair_top,
            hairline_y=57.0 if t.receding_hairline else 64.0,
            hairline_rx=hw - (9.0 if t.receding_hairline else 1.0),
        )


def draw_body(pen: Pen, t: FaceTraits, head: Head, nz: Nuisance) -> None:
    """Shoulders, neck and neck accessories."""
    cx = CX
    pen.ellipse((cx - 84, 194, cx + 84, 300), fill=nz.clothing_rgb)
    neck = shade(head.skin, 0.86)
    pen.polygon([(cx - 19, 150), (cx + 19, 150), (cx + 21, 200), (cx - 21, 200)], fill=neck)
    if t.necktie:
        pen.polygon([(cx - 20, 196), (cx, 206), (cx - 6, 214), (cx - 24, 204)], fill=(240, 240, 240))
        pen.polygon([(cx + 20, 196), (cx, 206), (cx + 6, 214), (cx + 24, 204)], fill=(240, 240, 240))
        pen.polygon([(cx - 4, 204), (cx + 4, 204), (cx + 7, 222), (cx - 7, 222)], fill=nz.accessory_rgb)
    else:
        pen.polygon([(cx - 21, 198), (cx + 21, 198), (cx, 214)], fill=neck)
    if t.necklace:
        pen.arc((cx - 19, 176, cx + 19, 206), 20, 160, fill=(214, 178, 60), width=1.6)


def draw_back_hair(pen: Pen, t: FaceTraits, head: Head, nz: Nuisance) -> None:
    """Hair behind the head: shoulder length for long hair, chin length for medium."""
    if head.length == "short" or t.bald:
        return
    cx, hw = CX, head.hw
    bottom = 226.0 if head.length == "long" else 178.0
    wave = (lambda y: 3.0 * math.sin(y / 7.0 + 6 * nz.strands[0])) if t.wavy_hair else (lambda y: 0.0)
    top = arc_points(cx, HAIR_CENTER_Y, hw + 11, HAIR_CENTER_Y - head.hair_top, math.pi, 2 * math.pi, 20)
    spread = 12.0 if head.length == "long" else 4.0
    right = [(cx + hw + 12 + spread * (y - 120) / 100 + wave(y), y) for y in np.linspace(120, bottom, 8)]
    left = [(cx - hw - 12 - spread * (y - 120) / 100 + wave(y), y) for y in np.linspace(bottom, 120, 8)]
    pen.polygon(top + right + left, fill=head.hair)
    # Strands give the hair texture without changing its mean color much.
    for i in range(6):
        side = -1 if i % 2 else 1
        x0 = cx + side * (hw + 2 + 14 * nz.strands[i + 1])
        pts = [(x0 + side * spread * (y - 120) / 100 + wave(y + 9 * i), y) for y in np.linspace(112, bottom - 4, 6)]
        pen.line(pts, fill=shade(head.hair, 0.78 if i % 3 else 1.15), width=1)


def draw_face(pen: Pen, t: FaceTraits, head: Head) -> None:
    """Ears, the face ellipse and, for men, a broader jaw."""
    cx, hw, skin = CX, head.hw, head.skin
    for side in (-1, 1):
        ear_x = cx + side * hw
        pen.ellipse((ear_x - 6, 103, ear_x + 6, 135), fill=shade(skin, 0.93))
        pen.arc((ear_x - 3.5, 108, ear_x + 3.5, 130), 90 - side * 90 - 60, 90 - side * 90 + 60, fill=shade(skin, 0.75))
    if t.bald:
        pen.ellipse((cx - hw - 1, head.hair_top + 3, cx + hw + 1, 150), fill=skin)
    pen.ellipse((cx - hw, FACE_TOP, cx + hw, CHIN_Y + 1), fill=skin)
    if t.male or t.chubby:
        jaw = hw * (1.0 if t.male else 0.95)
        pen.polygon(
            [
                (cx - jaw, 118),
                (cx - jaw * 0.97, 150),
                (cx - jaw * 0.72, 172),
                (cx - jaw * 0.36, CHIN_Y + 1),
                (cx + jaw * 0.36, CHIN_Y + 1),
                (cx + jaw * 0.72, 172),
                (cx + jaw * 0.97, 150),
                (cx + jaw, 118),
            ],
            fill=skin,
        )
    if t.double_chin:
        pen.arc((cx - 16, CHIN_Y - 6, cx + 16, CHIN_Y + 6), 20, 160, fill=shade(skin, 0.82), width=1.2)
    if t.rosy_cheeks or t.heavy_makeup:
        for side in (-1, 1):
            x = cx + side * 24
            pen.ellipse((x - 9, 122, x + 9, 135), fill=(225, 90, 100, 55))


def draw_eyes(pen: Pen, t: FaceTraits, head: Head, nz: Nuisance) -> None:
    """Eyebrows and eyes; old faces get heavier lids, smiles squint a little."""
    brow = shade(head.hair, 0.55) if head.hair[0] > 120 else shade(head.hair, 0.85)
    brow_w = 3.2 if t.bushy_eyebrows else (2.4 if t.male else 1.8)
    half_h = 2.4 if t.narrow_eyes else 3.4
    if t.smiling:
        half_h -= 0.6
    if not t.young:
        half_h -= 0.4
    for side in (-1, 1):
        ex = CX + side * EYE_DX
        peak = 97.5 if t.arched_eyebrows else 99.5
        pen.line(
            [(ex + side * 10, 102.5), (ex + side * 2, peak), (ex - side * 6, peak + 0.5), (ex - side * 9, 101.5)],
            fill=brow,
            width=brow_w,
        )
        if t.heavy_makeup:
            pen.ellipse((ex - 8, 104.5, ex + 8, 111), fill=(*nz.clothing_rgb, 70))
        pen.ellipse((ex - 7, EYE_Y - half_h, ex + 7, EYE_Y + half_h), fill=(238, 236, 232))
        r = min(3.0, half_h + 0.3)
        pen.ellipse((ex - r, EYE_Y - r, ex + r, EYE_Y + r), fill=t.eye_rgb)
        pen.ellipse((ex - 1.2, EYE_Y - 1.2, ex + 1.2, EYE_Y + 1.2), fill=(15, 12, 12))
        lid = (20, 16, 16) if t.heavy_makeup else shade(head.skin, 0.45)
        pen.line(
            [(ex - 7.5, EYE_Y + 0.5), (ex, EYE_Y - half_h - 0.6), (ex + 7.5, EYE_Y + 0.5)],
            fill=lid,
            width=1.6 if t.heavy_makeup else 1.0,
        )


def draw_nose(pen: Pen, t: FaceTraits, head: Head) -> None:
    cx, ny = CX, NOSE_Y
    wide = 2.0 if t.big_nose else 0.0
    shadow = shade(head.skin, 0.84)
    pen.line([(cx - 4, 114), (cx - 5 - wide / 2, ny - 5)], fill=shadow, width=1.2)
    pen.arc((cx - 6 - wide, ny - 5, cx + 6 + wide, ny + 3), 20, 160, fill=shade(head.skin, 0.74), width=1)
    for side in (-1, 1):
        x = cx + side * (5 + wide)
        pen.ellipse((x - 2.2, ny + 0.5, x + 2.2, ny + 2.8), fill=shade(head.skin, 0.55))


def draw_facial_hair(pen: Pen, t: FaceTraits, head: Head) -> None:
    """Stubble, beard and goatee: a darker lower face that men only ever have."""
    cx, hw = CX, head.hw
    dark = shade(head.hair, 0.7) if head.hair[0] > 60 else head.hair
    jaw = [
        (cx - hw * 0.92, 126),
        (cx - hw * 0.9, 152),
        (cx - hw * 0.66, 172),
        (cx - hw * 0.32, CHIN_Y + 1),
        (cx + hw * 0.32, CHIN_Y + 1),
        (cx + hw * 0.66, 172),
        (cx + hw * 0.9, 152),
        (cx + hw * 0.92, 126),
        (cx + 22, 140),
        (cx + 10, 143),
        (cx - 10, 143),
        (cx - 22, 140),
    ]
    if t.stubble:  # a faint gray-blue shadow, not a beard
        pen.polygon(jaw, fill=(60, 58, 62, 48))
    if t.beard:
        pen.polygon(jaw, fill=(*dark, 225))
    if t.goatee:
        pen.polygon([(cx - 13, 158), (cx + 13, 158), (cx + 10, CHIN_Y + 1), (cx - 10, CHIN_Y + 1)], fill=(*dark, 215))


def draw_mouth(pen: Pen, t: FaceTraits, head: Head, nz: Nuisance) -> None:
    """An upturned open mouth showing teeth for a smile, closed lips on a neutral line otherwise."""
    cx, my = CX, MOUTH_Y
    if t.lipstick:
        lips: tuple = nz.lipstick_rgb
    else:  # natural lips: skin, a little darker and redder
        r, g, b = shade(head.skin, 0.86)
        lips = (min(255, r + 10), int(g * 0.85), int(b * 0.85))
    thick = 1.4 if t.big_lips else 1.0
    if t.smiling:
        upper = [(cx - 18, my - 4), (cx - 9, my - 1.5), (cx, my - 1), (cx + 9, my - 1.5), (cx + 18, my - 4)]
        drop = 8.5 if t.mouth_open else 6.0
        lower = [(cx + 18, my - 4), (cx + 12, my + drop * 0.55), (cx, my + drop), (cx - 12, my + drop * 0.55)]
        pen.polygon(upper + lower, fill=(95, 28, 34))
        pen.polygon(
            [
                (cx - 15, my - 3),
                (cx - 8, my - 1.2),
                (cx, my - 0.7),
                (cx + 8, my - 1.2),
                (cx + 15, my - 3),
                (cx + 12, my + 1.5),
                (cx, my + 2.8),
                (cx - 12, my + 1.5),
            ],
            fill=(244, 242, 235),
        )
        pen.line(upper, fill=lips, width=1.6 * thick)
        pen.line([*lower, (cx - 18, my - 4)], fill=lips, width=2.0 * thick)
        for side in (-1, 1):  # smile folds
            pen.arc(
                (cx + side * 22 - 5, my - 12, cx + side * 22 + 5, my + 4),
                90 - side * 90 - 50,
                90 - side * 90 + 50,
                fill=shade(head.skin, 0.8),
            )
        return
    corner = my + (1.8 if not t.young else 0.0)  # old mouths droop a little
    pen.polygon(
        [
            (cx - 15, corner),
            (cx - 6, my - 2.5 * thick),
            (cx, my - 1.5 * thick),
            (cx + 6, my - 2.5 * thick),
            (cx + 15, corner),
        ],
        fill=lips,
    )
    pen.polygon(
        [
            (cx - 14, corner),
            (cx + 14, corner),
            (cx + 8, my + 4.5 * thick),
            (cx, my + 5.5 * thick),
            (cx - 8, my + 4.5 * thick),
        ],
        fill=lips,
    )
    if t.mouth_open:
        pen.ellipse((cx - 8, my - 1, cx + 8, my + 2.5), fill=(70, 22, 26))
    pen.line([(cx - 15, corner), (cx, my), (cx + 15, corner)], fill=shade(lips, 0.5), width=1)


def draw_mustache(pen: Pen, head: Head) -> None:
    cx, my = CX, MOUTH_Y
    dark = shade(head.hair, 0.7) if head.hair[0] > 60 else head.hair
    pen.polygon(
        [(cx - 17, my - 2), (cx, my - 6.5), (cx + 17, my - 2), (cx + 14, my - 6), (cx, my - 10.5), (cx - 14, my - 6)],
        fill=dark,
    )


def draw_age(pen: Pen, t: FaceTraits, head: Head) -> None:
    """Wrinkles for old faces: forehead lines, crow's feet, nasolabial folds, bags and jowls."""
    cx = CX
    line = shade(head.skin, 0.72)
    if not t.young:
        for y in (77.0, 83.0, 89.0):
            pen.arc((cx - 24, y - 3, cx + 24, y + 5), 200, 340, fill=line, width=1)
        for side in (-1, 1):
            ex = cx + side * EYE_DX
            for dy in (-3.0, 0.0, 3.0):
                pen.line([(ex + side * 9, EYE_Y + dy * 0.3), (ex + side * 14, EYE_Y + dy)], fill=line, width=1)
            pen.line([(cx + side * 9, NOSE_Y + 2), (cx + side * 15, 146), (cx + side * 20, 157)], fill=line, width=1.2)
            pen.line([(cx + side * 28, 160), (cx + side * 24, 172)], fill=line, width=1)
    if not t.young or t.bags_under_eyes:
        for side in (-1, 1):
            ex = cx + side * EYE_DX
            pen.arc((ex - 7, EYE_Y + 1, ex + 7, EYE_Y + 8), 20, 160, fill=line, width=1)


def draw_hair_cap(pen: Pen, t: FaceTraits, head: Head, nz: Nuisance) -> None:
    """Hair on top of the head: between the outer hair outline and the hairline."""
    cx, cy = CX, HAIR_CENTER_Y
    wobble = (lambda a: 1.0 + 0.035 * math.sin(9 * a + 6 * nz.strands[2])) if t.wavy_hair else None
    rx_out = head.hw + (7.0 if head.length == "short" else 11.0)
    ry_out = cy - head.hair_top
    ry_in = cy - head.hairline_y
    if t.bald:  # just the fringe above the ears
        for side in (-1, 1):
            pen.polygon(
                [
                    (cx + side * rx_out, cy + 4),
                    (cx + side * (rx_out - 3), 92),
                    (cx + side * (head.hw - 4), 94),
                    (cx + side * (head.hw - 1), cy + 4),
                ],
                fill=head.hair,
            )
        return
    outer = arc_points(cx, cy, rx_out, ry_out, math.pi, 2 * math.pi, 28, wobble)
    inner = arc_points(cx, cy, head.hairline_rx, ry_in, 2 * math.pi, math.pi, 20)
    pen.polygon(outer + inner, fill=head.hair)
    for i, f in enumerate((0.3, 0.55, 0.8)):
        rx = head.hairline_rx + f * (rx_out - head.hairline_rx)
        ry = ry_in + f * (ry_out - ry_in)
        pen.arc(
            (cx - rx, cy - ry, cx + rx, cy + ry),
            200 + 10 * nz.strands[3 + i],
            340 - 10 * nz.strands[6 + i],
            fill=shade(head.hair, 0.8 if i != 1 else 1.14),
            width=1,
        )


def draw_bangs(pen: Pen, head: Head, nz: Nuisance) -> None:
    """A fringe from the hairline down to just above the eyebrows, with a ragged edge."""
    cx, cy = CX, HAIR_CENTER_Y
    bottom = 95.0
    arc = [
        (x, y)
        for x, y in arc_points(cx, cy, head.hairline_rx + 1, cy - head.hairline_y + 1, math.pi, 2 * math.pi, 24)
        if y <= bottom
    ]
    if not arc:
        return
    (x_left, _), (x_right, _) = arc[0], arc[-1]
    swept = 4.0 * (nz.strands[9] - 0.5)  # some fringes slant
    edge = [
        (x, bottom - 1.0 + 3.0 * ((i % 2) + nz.strands[10 + i % 6] - 0.5) + swept * (x - cx) / 40)
        for i, x in enumerate(np.linspace(x_right, x_left, 11))
    ]
    pen.polygon(arc + edge, fill=head.hair)
    for i in range(5):
        x = cx - 28 + 14 * i + 4 * nz.strands[i]
        pen.line([(x, head.hairline_y + 4), (x - 2, bottom - 3)], fill=shade(head.hair, 0.8), width=1)


def draw_side_locks(pen: Pen, t: FaceTraits, head: Head) -> None:
    """Long and medium hair falls in front of the ears, framing the face."""
    if head.length == "short" or t.bald:
        return
    cx, hw = CX, head.hw
    bottom = 220.0 if head.length == "long" else 176.0
    for side in (-1, 1):
        pts = [
            (cx + side * (hw + 2), 88),
            (cx + side * (hw - 7), 97),
            (cx + side * (hw - 6), 130),
            (cx + side * (hw - 2), 160),
            (cx + side * (hw + 6), bottom),
            (cx + side * (hw + 15), bottom),
            (cx + side * (hw + 9), 150),
            (cx + side * (hw + 8), 110),
        ]
        pen.polygon(pts, fill=head.hair)
        pen.line(
            [(cx + side * (hw - 2), 100), (cx + side * (hw + 1), 150), (cx + side * (hw + 9), bottom - 4)],
            fill=shade(head.hair, 0.8),
            width=1,
        )


def draw_glasses(pen: Pen, t: FaceTraits, head: Head, nz: Nuisance) -> None:
    """Dark frames around both eyes, a bridge, and temples running to the ears."""
    frame = nz.frame_rgb
    lens = (18, 18, 24, 225) if t.sunglasses else None
    y0, y1 = EYE_Y - 8, EYE_Y + 7.5
    for side in (-1, 1):
        ex = CX + side * EYE_DX
        pen.draw.rounded_rectangle(
            pen.box(ex - 12.5, y0, ex + 12.5, y1), radius=pen.w(4), fill=lens, outline=frame, width=pen.w(1.8)
        )
        pen.line([(ex + side * 12.5, EYE_Y - 4), (CX + side * (head.hw + 1), EYE_Y - 5)], fill=frame, width=1.8)
    pen.line(
        [(CX - EYE_DX + 12.5, EYE_Y - 3), (CX, EYE_Y - 5), (CX + EYE_DX - 12.5, EYE_Y - 3)],
        fill=frame,
        width=1.8,
    )


def draw_hat(pen: Pen, head: Head, nz: Nuisance) -> None:
    """A brimmed hat over the top of the head; hair still shows at the sides."""
    cx, hw = CX, head.hw
    brim_y = min(head.hairline_y + 6, 76.0)
    crown = arc_points(cx, brim_y, hw + 7, brim_y - head.hair_top + 8, math.pi, 2 * math.pi, 20)
    pen.polygon(crown, fill=nz.accessory_rgb)
    pen.ellipse((cx - hw - 17, brim_y - 5, cx + hw + 17, brim_y + 5), fill=shade(nz.accessory_rgb, 0.8))


def draw_earrings(pen: Pen, head: Head) -> None:
    for side in (-1, 1):
        x = CX + side * (head.hw + 1)
        pen.ellipse((x - 2.2, 136, x + 2.2, 140.4), fill=(224, 190, 70))
