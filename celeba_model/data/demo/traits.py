"""What one demo face shows (FaceTraits), and the standard hair and skin colors it falls back on.

This is the contract between planning (``plan``), which decides the traits, and drawing
(``render``), which draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]

# Hair colors the generator draws. Only the first four have a CelebA column; the others are
# CelebA's "no hair-color label" cases. Luma (0.299R + 0.587G + 0.114B) is matched in pairs so that
# grayscale cannot tell them apart: blond ~ gray ~ 170, brown ~ auburn ~ 102, black is dark.
HAIR_COLORS: tuple[str, ...] = ("black", "blond", "brown", "gray", "auburn", "dark_brown", "ginger", "dyed")
HAIR_RGB: dict[str, RGB] = {
    "black": (32, 28, 26),  # luma ~29
    "blond": (210, 165, 95),  # luma ~170, saturated yellow
    "brown": (128, 96, 66),  # luma ~102, dull orange
    "gray": (170, 170, 173),  # luma ~170, no saturation
    "auburn": (162, 82, 52),  # luma ~102, saturated red
    "dark_brown": (72, 52, 40),  # luma ~57, between black and brown
    "ginger": (196, 118, 66),  # luma ~135
    "dyed": (150, 90, 170),  # placeholder; dyed people get a random hue per person
}

# The skin of a face without ``skin_rgb``, keyed by ``pale_skin``: the same luma, different saturation.
DEFAULT_SKIN_RGB: dict[bool, RGB] = {False: (225, 185, 155), True: (203, 193, 188)}  # luma ~194 and ~195


@dataclass(frozen=True)
class FaceTraits:
    """Everything ``render_face`` needs to know about one picture's subject.

    The first block holds the paper's attributes as drawn (the true values, before label noise).
    Color fields left as ``None`` take the standard color for ``hair_color`` / ``pale_skin``.
    """

    male: bool = False
    young: bool = True
    hair_color: str = "brown"
    pale_skin: bool = False
    smiling: bool = False
    eyeglasses: bool = False
    bangs: bool = False
    # Fixed per person.
    skin_rgb: RGB | None = None
    hair_rgb: RGB | None = None
    hair_length: str | None = None  # "short", "medium" or "long"; None: short if male else long
    wavy_hair: bool = False
    face_width: float = 1.0
    hair_top: float = 46.0  # y of the top of the hair, in px of the 218-px height
    eye_rgb: RGB = (78, 52, 34)
    sunglasses: bool = False
    bald: bool = False
    receding_hairline: bool = False
    narrow_eyes: bool = False
    big_nose: bool = False
    big_lips: bool = False
    bushy_eyebrows: bool = False
    arched_eyebrows: bool = False
    chubby: bool = False
    double_chin: bool = False
    bags_under_eyes: bool = False
    rosy_cheeks: bool = False
    beard: bool = False
    goatee: bool = False
    mustache: bool = False
    # Vary per image.
    mouth_open: bool = False
    stubble: bool = False
    lipstick: bool = False
    heavy_makeup: bool = False
    earrings: bool = False
    hat: bool = False
    necklace: bool = False
    necktie: bool = False
    blurry: bool = False

    def __post_init__(self) -> None:
        if self.hair_color not in HAIR_COLORS:
            raise ValueError(f"hair_color must be one of {HAIR_COLORS}, got {self.hair_color!r}")
        if self.hair_length not in (None, "short", "medium", "long"):
            raise ValueError(f"hair_length must be short, medium or long, got {self.hair_length!r}")
