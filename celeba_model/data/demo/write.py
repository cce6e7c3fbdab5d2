"""A synthetic CelebA: procedural faces written in the official on-disk layout.

The demo dataset lets the product (and every test) run offline. It mimics aligned CelebA closely
enough that the same code path, crop box and attribute columns work for real and demo data:

* ``img_align_celeba/000001.jpg ...``: 178x218 RGB JPEGs with the eyes, nose, mouth and chin where
  aligned CelebA has them, so ``ALIGNED_FACE_CROP`` frames demo faces the way it frames real ones.
* ``list_attr_celeba.txt``, ``list_eval_partition.txt`` and ``identity_CelebA.txt`` in the official
  formats, with CelebA-like base rates and about 2% label noise on the paper's 10 attributes.

Each of the paper's attributes is drawn visibly. Hair color and Pale_Skin are chosen so that they
differ mainly in hue and saturation, not in luma (blond ~ gray, brown ~ auburn, pale ~ normal skin),
so a color model can learn them and a grayscale model mostly cannot, as in the paper.

Generation is deterministic: labels come from one serial plan seeded by ``seed`` and each image is
drawn with ``np.random.default_rng([seed, index])``, so the number of workers never changes a byte.
"""

from __future__ import annotations

import colorsys
import io
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter
from tqdm import tqdm

from ...attributes import CELEBA_ATTRIBUTES, PAPER_ATTRIBUTES
from ...errors import ConfigError
from ...utils.fileio import atomic_write_text
from ..celeba_files import ATTRIBUTE_FILE as ATTR_FILE
from ..celeba_files import IDENTITY_FILE, PARTITION_FILE
from ..celeba_files import IMAGE_FOLDER as IMAGE_DIR

__all__ = ["HAIR_COLORS", "DemoSummary", "FaceTraits", "ImagePlan", "make_demo_dataset", "plan_demo", "render_face"]

# Bump whenever the output for a given (num_images, seed) changes, so old demo folders regenerate.
GENERATOR_VERSION = 1

IMAGE_WIDTH, IMAGE_HEIGHT = 178, 218
INFO_FILE = "demo_info.json"
SPLIT_NAMES = ("train", "val", "test")  # partition values 0, 1, 2

JPEG_QUALITY = 90
LABEL_NOISE = 0.02  # per-image flip probability for each paper attribute
_IMAGE_NAME = re.compile(r"^(\d{6})\.jpg$")

# Hair colors the generator draws. Only the first four have a CelebA column; the others are
# CelebA's "no hair-color label" cases. Luma (0.299R + 0.587G + 0.114B) is matched in pairs so that
# grayscale cannot tell them apart: blond ~ gray ~ 170, brown ~ auburn ~ 102, black is dark.
HAIR_COLORS: tuple[str, ...] = ("black", "blond", "brown", "gray", "auburn", "dark_brown", "ginger", "dyed")
_HAIR_RGB: dict[str, tuple[int, int, int]] = {
    "black": (32, 28, 26),  # luma ~29
    "blond": (210, 165, 95),  # luma ~170, saturated yellow
    "brown": (128, 96, 66),  # luma ~102, dull orange
    "gray": (170, 170, 173),  # luma ~170, no saturation
    "auburn": (162, 82, 52),  # luma ~102, saturated red
    "dark_brown": (72, 52, 40),  # luma ~57, between black and brown
    "ginger": (196, 118, 66),  # luma ~135
    "dyed": (150, 90, 170),  # placeholder; dyed people get a random hue per person
}
_HAIR_COLUMN = {"black": "Black_Hair", "blond": "Blond_Hair", "brown": "Brown_Hair", "gray": "Gray_Hair"}
# P(color | not gray) by sex; "other" colors share the rest. Blond is mostly female.
_HAIR_WEIGHTS = {
    True: {
        "black": 0.30,
        "blond": 0.035,
        "brown": 0.20,
        "auburn": 0.21,
        "dark_brown": 0.15,
        "ginger": 0.07,
        "dyed": 0.035,
    },
    False: {
        "black": 0.22,
        "blond": 0.22,
        "brown": 0.19,
        "auburn": 0.17,
        "dark_brown": 0.11,
        "ginger": 0.06,
        "dyed": 0.03,
    },
}
# Both skin groups get the same luma range; they differ in saturation (and a little in hue).
_SKIN_LUMA = (182.0, 206.0)
_DEFAULT_SKIN = {False: (225, 185, 155), True: (203, 193, 188)}  # luma ~194 and ~195

# Aligned CelebA landmarks in pixels of the 178x218 image (the face frame all drawing uses).
_CX = IMAGE_WIDTH / 2  # face center line
_EYE_Y = 111.0  # 0.51 H
_EYE_DX = 19.6  # eyes at 0.39 W and 0.61 W
_NOSE_Y = 135.0  # nose tip, 0.62 H
_MOUTH_Y = 153.0  # 0.70 H
_CHIN_Y = 181.0  # 0.83 H
_FACE_TOP = 60.0  # top of the skin ellipse, hidden under hair
_FACE_HALF_WIDTH = 46.0  # face ellipse about 92 px wide
_HAIR_CENTRE_Y = 112.0  # center of the hair and hairline ellipses

# Drawing at twice the size and shrinking gives cheap antialiasing; PIL's ImageDraw has none.
_SUPERSAMPLE = 2

RGB = tuple[int, int, int]


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


@dataclass(frozen=True)
class DemoSummary:
    """What ``make_demo_dataset`` produced (or found already in place)."""

    root: Path
    num_images: int
    num_identities: int
    split_counts: dict[str, int]  # images per split: train, val, test
    positive_rates: dict[str, float]  # per paper attribute, over all images (noisy labels)
    split_positive_rates: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready form (the root as a string)."""
        data = asdict(self)
        data["root"] = str(self.root)
        return data


# --------------------------------------------------------------------------------------------
# The plan: people, splits and labels. Cheap and serial, so it alone decides every label.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Person:
    """One synthetic identity: traits that stay fixed across that person's pictures."""

    identity: int
    num_images: int
    male: bool
    young: bool
    hair_color: str
    pale_skin: bool
    glasses_wearer: bool
    bangs_style: bool
    bald: bool
    extras: dict[str, bool]  # other per-person attributes and habits (see _sample_extras)


@dataclass(frozen=True)
class ImagePlan:
    """One planned picture: who, which split, what it shows (true traits) and its noisy file labels."""

    index: int  # 1-based image number
    identity: int
    partition: int
    traits: FaceTraits
    labels: tuple[int, ...]  # 40 values of 1 / -1 in CELEBA_ATTRIBUTES order, after label noise

    @property
    def filename(self) -> str:
        return f"{self.index:06d}.jpg"


class _Coins:
    """Biased coin flips from a pre-drawn block of uniforms (far cheaper than one numpy call per flip)."""

    def __init__(self, rng: np.random.Generator, n: int = 48) -> None:
        self._u = rng.random(n).tolist()
        self._i = 0

    def __call__(self, p: float) -> bool:
        value = self._u[self._i]
        self._i += 1
        return value < p


def _sample_extras(coin: _Coins, male: bool, young: bool) -> dict[str, bool]:
    """Per-person values of the non-paper attributes, tuned so image-level rates match CelebA."""
    f = not male

    def by_sex(p_male: float, p_female: float) -> bool:
        return coin(p_male if male else p_female)

    def by_age(p_young: float, p_old: float) -> bool:
        return coin(p_young if young else p_old)

    wavy = by_sex(0.14, 0.45)
    return {
        "Arched_Eyebrows": by_sex(0.09, 0.40),
        "Attractive": coin((0.45 if male else 0.72) if young else (0.15 if male else 0.30)),
        "Bags_Under_Eyes": by_age(0.13, 0.45),
        "Big_Lips": by_sex(0.18, 0.28),
        "Big_Nose": by_sex(0.36, 0.15),
        "Bushy_Eyebrows": by_sex(0.22, 0.08),
        "Chubby": by_age(0.033, 0.15),
        "Double_Chin": by_age(0.023, 0.14),
        "Narrow_Eyes": coin(0.12),
        "Oval_Face": coin(0.28),
        "Pointy_Nose": by_sex(0.17, 0.36),
        "Receding_Hairline": by_age(0.045, 0.20),
        "Rosy_Cheeks": by_sex(0.015, 0.11),
        "Wavy_Hair": wavy,
        "Straight_Hair": (not wavy) and coin(0.31),
        "Goatee": male and coin(0.143),
        "Mustache": male and coin(0.095),
        "Sideburns": male and coin(0.143),
        # Habits: how likely this person is to show something in a given picture.
        "beard": male and coin(0.10),
        "stubble_prone": male and coin(0.40),
        "makeup_prone": f and coin(0.80),
        "earring_prone": f and coin(0.45),
        "necklace_prone": f and coin(0.35),
        "tie_prone": male and coin(0.30),
        "hat_prone": coin(0.15),
        "sunglasses": coin(0.2),
    }


def _sample_hair_color(rng: np.random.Generator, coin: _Coins, male: bool, young: bool) -> str:
    # Gray hair is mostly for the old; the rate is above CelebA's 4% so small splits still get some.
    if coin(0.008 if young else 0.20):
        return "gray"
    weights = _HAIR_WEIGHTS[male]
    names = list(weights)
    p = np.array([weights[n] for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _sample_person(rng: np.random.Generator, identity: int, num_images: int) -> _Person:
    coin = _Coins(rng)
    male = coin(0.42)
    young = coin(0.77)
    return _Person(
        identity=identity,
        num_images=num_images,
        male=male,
        young=young,
        hair_color=_sample_hair_color(rng, coin, male, young),
        pale_skin=coin(0.055),  # CelebA has 4%; boosted so every split gets pale people
        glasses_wearer=coin(0.065 if young else 0.13),
        bangs_style=coin(0.06 if male else 0.21),
        bald=male and coin(0.015 if young else 0.15),
        extras=_sample_extras(coin, male, young),
    )


def _images_per_person(rng: np.random.Generator, num_images: int) -> list[int]:
    """Split ``num_images`` into people of 20-40 pictures each (a short tail is merged)."""
    counts: list[int] = []
    left = num_images
    while left > 0:
        n = min(int(rng.integers(20, 41)), left)
        if n < 10 and counts:
            counts[-1] += n  # a tiny last person would make sticky traits unreliable
        else:
            counts.append(n)
        left -= n
    return counts


def _num_eval_people(num_people: int) -> int:
    """People in each of val and test: 10%, but at least 5 once there are enough people.

    Five is the fewest that can hold the four labeled hair colors plus a free person, which
    ``_ensure_coverage`` needs; for ~1000 images that makes the split about 70/15/15 by person.
    """
    return max(round(0.1 * num_people), min(5, num_people // 4))


# What every split of 5 or more people must contain, so each paper attribute has positives
# (and Male / Young negatives) everywhere. Bald people show too little hair to count for hair.
_COVERAGE: tuple[Callable[[_Person], bool], ...] = (
    lambda p: p.hair_color == "gray" and not p.bald,
    lambda p: p.pale_skin,
    lambda p: p.hair_color == "blond" and not p.bald,
    lambda p: p.hair_color == "black" and not p.bald,
    lambda p: p.hair_color == "brown" and not p.bald,
    lambda p: p.glasses_wearer,
    lambda p: p.bangs_style and not p.bald,
    lambda p: p.male,
    lambda p: not p.male,
    lambda p: not p.young,
    lambda p: p.young,
)


def _assign_splits(people: list[_Person], rng: np.random.Generator) -> list[list[_Person]]:
    """Split people into train, val and test, stratified so small eval splits still cover every trait.

    Val and test first take, greedily, the people who cover most of what they still lack, then
    random people; train gets the rest. This moves existing people around instead of editing them,
    so base rates stay put whenever the population has enough of each trait.
    """
    pool = [people[i] for i in rng.permutation(len(people))]
    n_eval = _num_eval_people(len(people))
    splits: list[list[_Person]] = [[], []]
    for group in splits:
        while len(group) < n_eval and n_eval >= 5:
            missing = [need for need in _COVERAGE if not any(need(p) for p in group)]
            scores = [sum(need(p) for need in missing) for p in pool]
            if not scores or max(scores) == 0:
                break
            group.append(pool.pop(scores.index(max(scores))))  # pool is shuffled: ties are random
        while len(group) < n_eval:
            group.append(pool.pop())
    return [pool, *splits]


def _ensure_coverage(group: list[_Person], rng: np.random.Generator) -> list[_Person]:
    """Edit a few people so this split shows every paper attribute (needs at least 5 people).

    With only a handful of people per split, rare traits (Gray_Hair, Pale_Skin, Eyeglasses) would
    often be missing from val or test. Edits happen before looks are derived, so pictures stay
    consistent with labels; on large datasets they are rarely needed.
    """
    group = list(group)
    if len(group) < 5:
        return group
    kept: set[int] = set()  # people whose hair color is the split's only example of it

    def pick(candidates: Iterable[int]) -> int | None:
        options = sorted(candidates)
        return int(rng.choice(options)) if options else None

    for color in ("gray", "blond", "black", "brown"):
        have = [i for i, p in enumerate(group) if p.hair_color == color and not p.bald]
        if have:
            kept.add(have[0])
            continue
        i = pick(i for i in range(len(group)) if i not in kept)
        if i is None:
            break
        group[i] = replace(group[i], hair_color=color, bald=False, young=group[i].young and color != "gray")
        kept.add(i)
    fixes: list[tuple[Callable[[_Person], bool], Callable[[_Person], bool], dict]] = [
        (lambda p: p.pale_skin, lambda p: True, {"pale_skin": True}),
        (lambda p: p.glasses_wearer, lambda p: True, {"glasses_wearer": True}),
        (lambda p: p.bangs_style, lambda p: not p.bald, {"bangs_style": True}),
        (lambda p: p.male, lambda p: True, {"male": True}),
        (lambda p: not p.male, lambda p: not p.bald, {"male": False}),
        (lambda p: not p.young, lambda p: True, {"young": False}),
        (lambda p: p.young, lambda p: p.hair_color != "gray", {"young": True}),
    ]
    for present, allowed, change in fixes:
        if any(present(p) for p in group):
            continue
        i = pick(i for i, p in enumerate(group) if allowed(p))
        if i is not None:
            group[i] = _with_sex_consistent_extras(replace(group[i], **change), rng)
    return group


def _with_sex_consistent_extras(person: _Person, rng: np.random.Generator) -> _Person:
    """Resample sex-specific habits after a forced change of sex (no bearded women)."""
    male_only = ("Goatee", "Mustache", "Sideburns", "beard", "stubble_prone", "tie_prone")
    female_only = ("makeup_prone", "earring_prone", "necklace_prone")
    if person.male and not any(person.extras[k] for k in female_only):
        return person
    if not person.male and not any(person.extras[k] for k in male_only):
        return person
    extras = _sample_extras(_Coins(rng), person.male, person.young)
    return replace(person, extras=extras, bald=person.bald and person.male)


def _skin_tone(rng: np.random.Generator, pale: bool) -> RGB:
    """A skin color whose luma is drawn from the same range for pale and normal skin."""
    if pale:
        hue, sat = rng.uniform(0 / 360, 28 / 360), rng.uniform(0.04, 0.11)
    else:
        hue, sat = rng.uniform(18 / 360, 32 / 360), rng.uniform(0.24, 0.37)
    return _with_luma(colorsys.hsv_to_rgb(hue, sat, 1.0), rng.uniform(*_SKIN_LUMA))


def _with_luma(rgb01: Sequence[float], luma: float) -> RGB:
    """Scale a color (components in 0..1) so its luma is ``luma`` (0..255); scaling keeps hue and saturation."""
    base = 0.299 * rgb01[0] + 0.587 * rgb01[1] + 0.114 * rgb01[2]
    k = luma / (255.0 * max(base, 1e-6))
    return tuple(int(np.clip(round(255.0 * c * k), 0, 255)) for c in rgb01)  # type: ignore[return-value]


def _hair_tone(rng: np.random.Generator, color: str) -> RGB:
    """A person's hair color: the palette color with small brightness and channel variation."""
    if color == "dyed":
        hue = rng.choice([rng.uniform(0.55, 0.95), rng.uniform(0.25, 0.45)])
        rgb01 = colorsys.hsv_to_rgb(hue, rng.uniform(0.35, 0.6), 1.0)
        return _with_luma(rgb01, rng.uniform(95, 175))
    k = rng.normal(1.0, 0.05)
    jitter = rng.integers(-6, 7, size=3)
    return tuple(int(np.clip(c * k + j, 0, 255)) for c, j in zip(_HAIR_RGB[color], jitter, strict=True))  # type: ignore[return-value]


_EYE_COLOURS: tuple[RGB, ...] = ((78, 52, 34), (60, 40, 28), (95, 70, 40), (70, 110, 150), (80, 110, 80), (50, 50, 60))


def _person_look(person: _Person, rng: np.random.Generator) -> FaceTraits:
    """The person's fixed appearance; per-image fields are filled in by ``_image_traits``."""
    x = person.extras
    if person.male:
        length = "short" if rng.random() < 0.9 else "medium"
    else:
        length = str(rng.choice(["long", "medium", "short"], p=[0.82, 0.14, 0.04]))
    width = rng.normal(1.03 if person.male else 0.97, 0.025) + (0.05 if x["Chubby"] else 0.0)
    return FaceTraits(
        male=person.male,
        young=person.young,
        hair_color=person.hair_color,
        pale_skin=person.pale_skin,
        skin_rgb=_skin_tone(rng, person.pale_skin),
        hair_rgb=_hair_tone(rng, person.hair_color),
        hair_length=length,
        wavy_hair=x["Wavy_Hair"],
        face_width=float(width),
        hair_top=float(rng.uniform(46, 52) if length == "short" else rng.uniform(41, 49)),
        eye_rgb=_EYE_COLOURS[int(rng.integers(len(_EYE_COLOURS)))],
        sunglasses=x["sunglasses"],
        bald=person.bald,
        receding_hairline=x["Receding_Hairline"],
        narrow_eyes=x["Narrow_Eyes"],
        big_nose=x["Big_Nose"],
        big_lips=x["Big_Lips"],
        bushy_eyebrows=x["Bushy_Eyebrows"],
        arched_eyebrows=x["Arched_Eyebrows"],
        chubby=x["Chubby"],
        double_chin=x["Double_Chin"],
        bags_under_eyes=x["Bags_Under_Eyes"],
        rosy_cheeks=x["Rosy_Cheeks"],
        beard=x["beard"],
        goatee=x["Goatee"],
        mustache=x["Mustache"],
    )


def _image_traits(person: _Person, look: FaceTraits, coin: _Coins) -> tuple[FaceTraits, dict[str, bool]]:
    """One picture of ``person``: per-image traits and the true value of all 40 attributes."""
    x = person.extras
    smiling = coin(0.48)
    makeup = x["makeup_prone"] and coin(0.85)
    traits = replace(
        look,
        smiling=smiling,
        eyeglasses=coin(0.62) if person.glasses_wearer else coin(0.004),
        bangs=(coin(0.85) if person.bangs_style else coin(0.01)) and not person.bald,
        mouth_open=coin(0.80 if smiling else 0.18),
        stubble=x["stubble_prone"] and coin(0.65),
        heavy_makeup=makeup,
        lipstick=(not person.male) and coin(0.97 if makeup else 0.55),
        earrings=x["earring_prone"] and coin(0.75),
        hat=x["hat_prone"] and coin(0.33),
        necklace=x["necklace_prone"] and coin(0.6),
        necktie=x["tie_prone"] and coin(0.55),
        blurry=coin(0.05),
    )
    truth = {
        "5_o_Clock_Shadow": traits.stubble,
        "Arched_Eyebrows": x["Arched_Eyebrows"],
        "Attractive": x["Attractive"],
        "Bags_Under_Eyes": x["Bags_Under_Eyes"],
        "Bald": person.bald,
        "Bangs": traits.bangs,
        "Big_Lips": x["Big_Lips"],
        "Big_Nose": x["Big_Nose"],
        "Blurry": traits.blurry,
        "Bushy_Eyebrows": x["Bushy_Eyebrows"],
        "Chubby": x["Chubby"],
        "Double_Chin": x["Double_Chin"],
        "Eyeglasses": traits.eyeglasses,
        "Goatee": x["Goatee"],
        "Heavy_Makeup": makeup,
        "High_Cheekbones": coin(0.75 if smiling else 0.17),
        "Male": person.male,
        "Mouth_Slightly_Open": traits.mouth_open,
        "Mustache": x["Mustache"],
        "Narrow_Eyes": x["Narrow_Eyes"],
        "No_Beard": not (x["Goatee"] or x["beard"] or traits.stubble),
        "Oval_Face": x["Oval_Face"],
        "Pale_Skin": person.pale_skin,
        "Pointy_Nose": x["Pointy_Nose"],
        "Receding_Hairline": x["Receding_Hairline"],
        "Rosy_Cheeks": x["Rosy_Cheeks"],
        "Sideburns": x["Sideburns"],
        "Smiling": smiling,
        "Straight_Hair": x["Straight_Hair"],
        "Wavy_Hair": x["Wavy_Hair"],
        "Wearing_Earrings": traits.earrings,
        "Wearing_Hat": traits.hat,
        "Wearing_Lipstick": traits.lipstick,
        "Wearing_Necklace": traits.necklace,
        "Wearing_Necktie": traits.necktie,
        "Young": person.young,
    }
    for color, column in _HAIR_COLUMN.items():
        truth[column] = person.hair_color == color
    return traits, truth


def _noisy_labels(truth: dict[str, bool], coin: _Coins) -> tuple[int, ...]:
    """The 40 file values: the truth, with each paper attribute flipped with probability LABEL_NOISE."""
    flips = {name: coin(LABEL_NOISE) for name in PAPER_ATTRIBUTES}
    return tuple(1 if truth[name] != flips.get(name, False) else -1 for name in CELEBA_ATTRIBUTES)


def plan_demo(num_images: int, seed: int = 0) -> list[ImagePlan]:
    """Decide every person, split, trait and label without drawing anything.

    Images are numbered train first, then val, then test, like the official files. The true traits
    in each plan are what the picture shows; ``labels`` are what the attribute file says.
    """
    rng = np.random.default_rng([seed, 0x0CE1EBA])  # a stream distinct from the per-image ones
    counts = _images_per_person(rng, num_images)
    identities = rng.permutation(len(counts)) + 1
    people = [_sample_person(rng, int(identities[i]), n) for i, n in enumerate(counts)]
    plans: list[ImagePlan] = []
    for partition, group in enumerate(_assign_splits(people, rng)):
        group = _ensure_coverage(group, rng)  # only edits people if the population lacks a trait
        looks = [_person_look(p, rng) for p in group]
        # Shuffle a split's pictures so people are interleaved, as in CelebA.
        slots = [k for k, p in enumerate(group) for _ in range(p.num_images)]
        for k in rng.permutation(slots):
            person = group[int(k)]
            coin = _Coins(rng)
            traits, truth = _image_traits(person, looks[int(k)], coin)
            plans.append(ImagePlan(len(plans) + 1, person.identity, partition, traits, _noisy_labels(truth, coin)))
    return plans


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Nuisance:
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


def _draw_nuisance(rng: np.random.Generator) -> _Nuisance:
    def color() -> RGB:
        return tuple(int(v) for v in rng.integers(0, 256, size=3))  # type: ignore[return-value]

    return _Nuisance(
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


class _Pen:
    """ImageDraw in face-frame coordinates (px of the 178x218 image), with the picture's pose jitter
    and supersampling applied, so drawing code reads like aligned-CelebA landmarks."""

    def __init__(self, draw: ImageDraw.ImageDraw, nz: _Nuisance) -> None:
        self.draw = draw
        self._s = nz.scale * _SUPERSAMPLE
        self._ox = (_CX + nz.dx) * _SUPERSAMPLE - _CX * self._s
        self._oy = (_EYE_Y + nz.dy) * _SUPERSAMPLE - _EYE_Y * self._s

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


def _shade(rgb: Sequence[int], k: float, alpha: int | None = None) -> tuple:
    out = tuple(int(min(255, max(0, round(c * k)))) for c in rgb)
    return out if alpha is None else (*out, alpha)


def _arc_points(
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


@dataclass(frozen=True)
class _Head:
    """Per-picture head geometry and colors shared by the drawing helpers."""

    hw: float  # face half width
    skin: RGB
    hair: RGB
    length: str
    hair_top: float
    hairline_y: float
    hairline_rx: float


def _background(nz: _Nuisance) -> Image.Image:
    """Solid, gradient or blotchy backdrop, sometimes with clutter shapes (kept behind the person).

    Built at the final size and then upscaled: backgrounds are smooth, and a nearest-neighbour
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
    if _SUPERSAMPLE > 1:
        img = img.resize((IMAGE_WIDTH * _SUPERSAMPLE, IMAGE_HEIGHT * _SUPERSAMPLE), Image.Resampling.NEAREST)
    return img


def _draw_body(pen: _Pen, t: FaceTraits, head: _Head, nz: _Nuisance) -> None:
    """Shoulders, neck and neck accessories."""
    cx = _CX
    pen.ellipse((cx - 84, 194, cx + 84, 300), fill=nz.clothing_rgb)
    neck = _shade(head.skin, 0.86)
    pen.polygon([(cx - 19, 150), (cx + 19, 150), (cx + 21, 200), (cx - 21, 200)], fill=neck)
    if t.necktie:
        pen.polygon([(cx - 20, 196), (cx, 206), (cx - 6, 214), (cx - 24, 204)], fill=(240, 240, 240))
        pen.polygon([(cx + 20, 196), (cx, 206), (cx + 6, 214), (cx + 24, 204)], fill=(240, 240, 240))
        pen.polygon([(cx - 4, 204), (cx + 4, 204), (cx + 7, 222), (cx - 7, 222)], fill=nz.accessory_rgb)
    else:
        pen.polygon([(cx - 21, 198), (cx + 21, 198), (cx, 214)], fill=neck)
    if t.necklace:
        pen.arc((cx - 19, 176, cx + 19, 206), 20, 160, fill=(214, 178, 60), width=1.6)


def _draw_back_hair(pen: _Pen, t: FaceTraits, head: _Head, nz: _Nuisance) -> None:
    """Hair behind the head: shoulder length for long hair, chin length for medium."""
    if head.length == "short" or t.bald:
        return
    cx, hw = _CX, head.hw
    bottom = 226.0 if head.length == "long" else 178.0
    wave = (lambda y: 3.0 * math.sin(y / 7.0 + 6 * nz.strands[0])) if t.wavy_hair else (lambda y: 0.0)
    top = _arc_points(cx, _HAIR_CENTRE_Y, hw + 11, _HAIR_CENTRE_Y - head.hair_top, math.pi, 2 * math.pi, 20)
    spread = 12.0 if head.length == "long" else 4.0
    right = [(cx + hw + 12 + spread * (y - 120) / 100 + wave(y), y) for y in np.linspace(120, bottom, 8)]
    left = [(cx - hw - 12 - spread * (y - 120) / 100 + wave(y), y) for y in np.linspace(bottom, 120, 8)]
    pen.polygon(top + right + left, fill=head.hair)
    # Strands give the hair texture without changing its mean color much.
    for i in range(6):
        side = -1 if i % 2 else 1
        x0 = cx + side * (hw + 2 + 14 * nz.strands[i + 1])
        pts = [(x0 + side * spread * (y - 120) / 100 + wave(y + 9 * i), y) for y in np.linspace(112, bottom - 4, 6)]
        pen.line(pts, fill=_shade(head.hair, 0.78 if i % 3 else 1.15), width=1)


def _draw_face(pen: _Pen, t: FaceTraits, head: _Head) -> None:
    """Ears, the face ellipse and, for men, a broader jaw."""
    cx, hw, skin = _CX, head.hw, head.skin
    for side in (-1, 1):
        ear_x = cx + side * hw
        pen.ellipse((ear_x - 6, 103, ear_x + 6, 135), fill=_shade(skin, 0.93))
        pen.arc((ear_x - 3.5, 108, ear_x + 3.5, 130), 90 - side * 90 - 60, 90 - side * 90 + 60, fill=_shade(skin, 0.75))
    if t.bald:
        pen.ellipse((cx - hw - 1, head.hair_top + 3, cx + hw + 1, 150), fill=skin)
    pen.ellipse((cx - hw, _FACE_TOP, cx + hw, _CHIN_Y + 1), fill=skin)
    if t.male or t.chubby:
        jaw = hw * (1.0 if t.male else 0.95)
        pen.polygon(
            [
                (cx - jaw, 118),
                (cx - jaw * 0.97, 150),
                (cx - jaw * 0.72, 172),
                (cx - jaw * 0.36, _CHIN_Y + 1),
                (cx + jaw * 0.36, _CHIN_Y + 1),
                (cx + jaw * 0.72, 172),
                (cx + jaw * 0.97, 150),
                (cx + jaw, 118),
            ],
            fill=skin,
        )
    if t.double_chin:
        pen.arc((cx - 16, _CHIN_Y - 6, cx + 16, _CHIN_Y + 6), 20, 160, fill=_shade(skin, 0.82), width=1.2)
    if t.rosy_cheeks or t.heavy_makeup:
        for side in (-1, 1):
            x = cx + side * 24
            pen.ellipse((x - 9, 122, x + 9, 135), fill=(225, 90, 100, 55))


def _draw_eyes(pen: _Pen, t: FaceTraits, head: _Head, nz: _Nuisance) -> None:
    """Eyebrows and eyes; old faces get heavier lids, smiles squint a little."""
    brow = _shade(head.hair, 0.55) if head.hair[0] > 120 else _shade(head.hair, 0.85)
    brow_w = 3.2 if t.bushy_eyebrows else (2.4 if t.male else 1.8)
    half_h = 2.4 if t.narrow_eyes else 3.4
    if t.smiling:
        half_h -= 0.6
    if not t.young:
        half_h -= 0.4
    for side in (-1, 1):
        ex = _CX + side * _EYE_DX
        peak = 97.5 if t.arched_eyebrows else 99.5
        pen.line(
            [(ex + side * 10, 102.5), (ex + side * 2, peak), (ex - side * 6, peak + 0.5), (ex - side * 9, 101.5)],
            fill=brow,
            width=brow_w,
        )
        if t.heavy_makeup:
            pen.ellipse((ex - 8, 104.5, ex + 8, 111), fill=(*nz.clothing_rgb, 70))
        pen.ellipse((ex - 7, _EYE_Y - half_h, ex + 7, _EYE_Y + half_h), fill=(238, 236, 232))
        r = min(3.0, half_h + 0.3)
        pen.ellipse((ex - r, _EYE_Y - r, ex + r, _EYE_Y + r), fill=t.eye_rgb)
        pen.ellipse((ex - 1.2, _EYE_Y - 1.2, ex + 1.2, _EYE_Y + 1.2), fill=(15, 12, 12))
        lid = (20, 16, 16) if t.heavy_makeup else _shade(head.skin, 0.45)
        pen.line(
            [(ex - 7.5, _EYE_Y + 0.5), (ex, _EYE_Y - half_h - 0.6), (ex + 7.5, _EYE_Y + 0.5)],
            fill=lid,
            width=1.6 if t.heavy_makeup else 1.0,
        )


def _draw_nose(pen: _Pen, t: FaceTraits, head: _Head) -> None:
    cx, ny = _CX, _NOSE_Y
    wide = 2.0 if t.big_nose else 0.0
    shadow = _shade(head.skin, 0.84)
    pen.line([(cx - 4, 114), (cx - 5 - wide / 2, ny - 5)], fill=shadow, width=1.2)
    pen.arc((cx - 6 - wide, ny - 5, cx + 6 + wide, ny + 3), 20, 160, fill=_shade(head.skin, 0.74), width=1)
    for side in (-1, 1):
        x = cx + side * (5 + wide)
        pen.ellipse((x - 2.2, ny + 0.5, x + 2.2, ny + 2.8), fill=_shade(head.skin, 0.55))


def _draw_facial_hair(pen: _Pen, t: FaceTraits, head: _Head) -> None:
    """Stubble, beard and goatee: a darker lower face that men only ever have."""
    cx, hw = _CX, head.hw
    dark = _shade(head.hair, 0.7) if head.hair[0] > 60 else head.hair
    jaw = [
        (cx - hw * 0.92, 126),
        (cx - hw * 0.9, 152),
        (cx - hw * 0.66, 172),
        (cx - hw * 0.32, _CHIN_Y + 1),
        (cx + hw * 0.32, _CHIN_Y + 1),
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
        pen.polygon([(cx - 13, 158), (cx + 13, 158), (cx + 10, _CHIN_Y + 1), (cx - 10, _CHIN_Y + 1)], fill=(*dark, 215))


def _draw_mouth(pen: _Pen, t: FaceTraits, head: _Head, nz: _Nuisance) -> None:
    """An upturned open mouth showing teeth for a smile, closed lips on a neutral line otherwise."""
    cx, my = _CX, _MOUTH_Y
    if t.lipstick:
        lips: tuple = nz.lipstick_rgb
    else:  # natural lips: skin, a little darker and redder
        r, g, b = _shade(head.skin, 0.86)
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
                fill=_shade(head.skin, 0.8),
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
    pen.line([(cx - 15, corner), (cx, my), (cx + 15, corner)], fill=_shade(lips, 0.5), width=1)


def _draw_mustache(pen: _Pen, head: _Head) -> None:
    cx, my = _CX, _MOUTH_Y
    dark = _shade(head.hair, 0.7) if head.hair[0] > 60 else head.hair
    pen.polygon(
        [(cx - 17, my - 2), (cx, my - 6.5), (cx + 17, my - 2), (cx + 14, my - 6), (cx, my - 10.5), (cx - 14, my - 6)],
        fill=dark,
    )


def _draw_age(pen: _Pen, t: FaceTraits, head: _Head) -> None:
    """Wrinkles for old faces: forehead lines, crow's feet, nasolabial folds, bags and jowls."""
    cx = _CX
    line = _shade(head.skin, 0.72)
    if not t.young:
        for y in (77.0, 83.0, 89.0):
            pen.arc((cx - 24, y - 3, cx + 24, y + 5), 200, 340, fill=line, width=1)
        for side in (-1, 1):
            ex = cx + side * _EYE_DX
            for dy in (-3.0, 0.0, 3.0):
                pen.line([(ex + side * 9, _EYE_Y + dy * 0.3), (ex + side * 14, _EYE_Y + dy)], fill=line, width=1)
            pen.line([(cx + side * 9, _NOSE_Y + 2), (cx + side * 15, 146), (cx + side * 20, 157)], fill=line, width=1.2)
            pen.line([(cx + side * 28, 160), (cx + side * 24, 172)], fill=line, width=1)
    if not t.young or t.bags_under_eyes:
        for side in (-1, 1):
            ex = cx + side * _EYE_DX
            pen.arc((ex - 7, _EYE_Y + 1, ex + 7, _EYE_Y + 8), 20, 160, fill=line, width=1)


def _draw_hair_cap(pen: _Pen, t: FaceTraits, head: _Head, nz: _Nuisance) -> None:
    """Hair on top of the head: between the outer hair outline and the hairline."""
    cx, cy = _CX, _HAIR_CENTRE_Y
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
    outer = _arc_points(cx, cy, rx_out, ry_out, math.pi, 2 * math.pi, 28, wobble)
    inner = _arc_points(cx, cy, head.hairline_rx, ry_in, 2 * math.pi, math.pi, 20)
    pen.polygon(outer + inner, fill=head.hair)
    for i, f in enumerate((0.3, 0.55, 0.8)):
        rx = head.hairline_rx + f * (rx_out - head.hairline_rx)
        ry = ry_in + f * (ry_out - ry_in)
        pen.arc(
            (cx - rx, cy - ry, cx + rx, cy + ry),
            200 + 10 * nz.strands[3 + i],
            340 - 10 * nz.strands[6 + i],
            fill=_shade(head.hair, 0.8 if i != 1 else 1.14),
            width=1,
        )


def _draw_bangs(pen: _Pen, head: _Head, nz: _Nuisance) -> None:
    """A fringe from the hairline down to just above the eyebrows, with a ragged edge."""
    cx, cy = _CX, _HAIR_CENTRE_Y
    bottom = 95.0
    arc = [
        (x, y)
        for x, y in _arc_points(cx, cy, head.hairline_rx + 1, cy - head.hairline_y + 1, math.pi, 2 * math.pi, 24)
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
        pen.line([(x, head.hairline_y + 4), (x - 2, bottom - 3)], fill=_shade(head.hair, 0.8), width=1)


def _draw_side_locks(pen: _Pen, t: FaceTraits, head: _Head) -> None:
    """Long and medium hair falls in front of the ears, framing the face."""
    if head.length == "short" or t.bald:
        return
    cx, hw = _CX, head.hw
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
            fill=_shade(head.hair, 0.8),
            width=1,
        )


def _draw_glasses(pen: _Pen, t: FaceTraits, head: _Head, nz: _Nuisance) -> None:
    """Dark frames around both eyes, a bridge, and temples running to the ears."""
    frame = nz.frame_rgb
    lens = (18, 18, 24, 225) if t.sunglasses else None
    y0, y1 = _EYE_Y - 8, _EYE_Y + 7.5
    for side in (-1, 1):
        ex = _CX + side * _EYE_DX
        pen.draw.rounded_rectangle(
            pen.box(ex - 12.5, y0, ex + 12.5, y1), radius=pen.w(4), fill=lens, outline=frame, width=pen.w(1.8)
        )
        pen.line([(ex + side * 12.5, _EYE_Y - 4), (_CX + side * (head.hw + 1), _EYE_Y - 5)], fill=frame, width=1.8)
    pen.line(
        [(_CX - _EYE_DX + 12.5, _EYE_Y - 3), (_CX, _EYE_Y - 5), (_CX + _EYE_DX - 12.5, _EYE_Y - 3)],
        fill=frame,
        width=1.8,
    )


def _draw_hat(pen: _Pen, head: _Head, nz: _Nuisance) -> None:
    """A brimmed hat over the top of the head; hair still shows at the sides."""
    cx, hw = _CX, head.hw
    brim_y = min(head.hairline_y + 6, 76.0)
    crown = _arc_points(cx, brim_y, hw + 7, brim_y - head.hair_top + 8, math.pi, 2 * math.pi, 20)
    pen.polygon(crown, fill=nz.accessory_rgb)
    pen.ellipse((cx - hw - 17, brim_y - 5, cx + hw + 17, brim_y + 5), fill=_shade(nz.accessory_rgb, 0.8))


def _draw_earrings(pen: _Pen, head: _Head) -> None:
    for side in (-1, 1):
        x = _CX + side * (head.hw + 1)
        pen.ellipse((x - 2.2, 136, x + 2.2, 140.4), fill=(224, 190, 70))


def _head(t: FaceTraits, nz: _Nuisance) -> _Head:
    length = t.hair_length or ("short" if t.male else "long")
    hw = _FACE_HALF_WIDTH * t.face_width * nz.head_width
    return _Head(
        hw=hw,
        skin=t.skin_rgb or _DEFAULT_SKIN[t.pale_skin],
        hair=t.hair_rgb or _HAIR_RGB[t.hair_color],
        length=length,
        hair_top=t.hair_top,
        hairline_y=57.0 if t.receding_hairline else 64.0,
        hairline_rx=hw - (9.0 if t.receding_hairline else 1.0),
    )


def _soft_clip(values: np.ndarray, knee: float = 215.0) -> np.ndarray:
    """Tone curve that rolls off highlights smoothly instead of clipping at 255.

    A hard clip would flatten bright, saturated channels (the red of normal skin) more than
    unsaturated ones, handing grayscale a luma cue for Pale_Skin in overexposed pictures.
    """
    room = 255.0 - knee
    rolled = knee + room * np.tanh((values - knee) / room)
    return np.clip(np.where(values > knee, rolled, values), 0, 255).round().astype(np.uint8)


def _camera(img: Image.Image, t: FaceTraits, nz: _Nuisance, rng: np.random.Generator) -> Image.Image:
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


def render_face(traits: FaceTraits, rng: np.random.Generator) -> Image.Image:
    """Draw one 178x218 RGB face with aligned-CelebA geometry.

    ``traits`` decide what the face shows; ``rng`` only adds label-free variation (pose jitter,
    background, lighting, noise). Its draws do not depend on ``traits``, so two calls with equally
    seeded generators differ only where the traits differ.
    """
    nz = _draw_nuisance(rng)
    head = _head(traits, nz)
    canvas = _background(nz)
    pen = _Pen(ImageDraw.Draw(canvas, "RGBA"), nz)
    _draw_body(pen, traits, head, nz)
    _draw_back_hair(pen, traits, head, nz)
    _draw_face(pen, traits, head)
    _draw_age(pen, traits, head)
    _draw_facial_hair(pen, traits, head)
    _draw_nose(pen, traits, head)
    _draw_mouth(pen, traits, head, nz)
    if traits.mustache:
        _draw_mustache(pen, head)
    _draw_eyes(pen, traits, head, nz)
    _draw_hair_cap(pen, traits, head, nz)
    if traits.bangs:
        _draw_bangs(pen, head, nz)
    _draw_side_locks(pen, traits, head)
    if traits.earrings:
        _draw_earrings(pen, head)
    if traits.eyeglasses:
        _draw_glasses(pen, traits, head, nz)
    if traits.hat:
        _draw_hat(pen, head, nz)
    if _SUPERSAMPLE > 1:
        canvas = canvas.reduce(_SUPERSAMPLE)
    return _camera(canvas, traits, nz, rng)


# --------------------------------------------------------------------------------------------
# Writing the dataset
# --------------------------------------------------------------------------------------------


def _render_chunk(job: tuple[str, int, list[tuple[int, FaceTraits]]]) -> int:
    """Draw and save a batch of images (runs in a worker process); returns how many were written."""
    image_dir, seed, items = job
    for index, traits in items:
        image = render_face(traits, np.random.default_rng([seed, index]))
        image.save(os.path.join(image_dir, f"{index:06d}.jpg"), "JPEG", quality=JPEG_QUALITY)
    return len(items)


def _render_all(
    plans: list[ImagePlan],
    image_dir: Path,
    seed: int,
    workers: int,
    progress: bool,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    items = [(p.index, p.traits) for p in plans]
    bar = tqdm(total=len(items), desc="demo faces", unit="img", file=sys.stderr, disable=not progress)
    done_total = 0

    def advance(done: int) -> None:
        nonlocal done_total
        done_total += done
        bar.update(done)
        if on_progress is not None:
            on_progress(done_total, len(items))

    with bar:
        if workers <= 1 or len(items) < 64:
            # In-process: no pool start-up cost, and tests stay simple to debug.
            step = 32
            for start in range(0, len(items), step):
                advance(_render_chunk((str(image_dir), seed, items[start : start + step])))
            return
        # Several chunks per worker balance the load; chunks are big enough to amortise pickling.
        size = max(16, min(256, len(items) // (workers * 8)))
        jobs = [(str(image_dir), seed, items[i : i + size]) for i in range(0, len(items), size)]
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            for done in pool.map(_render_chunk, jobs):
                advance(done)


def _format_attr_file(plans: list[ImagePlan]) -> str:
    lines = [str(len(plans)), " ".join(CELEBA_ATTRIBUTES)]
    lines += [p.filename + " " + " ".join(f"{v:2d}" for v in p.labels) for p in plans]
    return "\n".join(lines) + "\n"


def _summarize(root: Path, plans: list[ImagePlan]) -> DemoSummary:
    columns = [CELEBA_ATTRIBUTES.index(a) for a in PAPER_ATTRIBUTES]
    labels = np.array([p.labels for p in plans], dtype=np.int8)[:, columns] > 0
    parts = np.array([p.partition for p in plans])
    split_rates = {
        name: {a: round(float(labels[parts == k, j].mean()), 4) for j, a in enumerate(PAPER_ATTRIBUTES)}
        for k, name in enumerate(SPLIT_NAMES)
        if (parts == k).any()
    }
    return DemoSummary(
        root=root,
        num_images=len(plans),
        num_identities=len({p.identity for p in plans}),
        split_counts={name: int((parts == k).sum()) for k, name in enumerate(SPLIT_NAMES)},
        positive_rates={a: round(float(labels[:, j].mean()), 4) for j, a in enumerate(PAPER_ATTRIBUTES)},
        split_positive_rates=split_rates,
    )


def _read_info(root: Path) -> dict | None:
    """The folder's demo_info.json; None if there is none, {} if it is unreadable (still ours)."""
    path = root / INFO_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _count_images(image_dir: Path) -> int:
    if not image_dir.is_dir():
        return 0
    with os.scandir(image_dir) as entries:
        return sum(1 for e in entries if _IMAGE_NAME.match(e.name))


def _is_complete(root: Path, info: dict, num_images: int, seed: int) -> bool:
    return (
        info.get("complete") is True
        and info.get("version") == GENERATOR_VERSION
        and info.get("num_images") == num_images
        and info.get("seed") == seed
        and all((root / name).is_file() for name in (ATTR_FILE, PARTITION_FILE, IDENTITY_FILE))
        and _count_images(root / IMAGE_DIR) == num_images
    )


def _summary_from_info(root: Path, info: dict) -> DemoSummary:
    s = info["summary"]
    return DemoSummary(
        root=root,
        num_images=int(s["num_images"]),
        num_identities=int(s["num_identities"]),
        split_counts=dict(s["split_counts"]),
        positive_rates=dict(s["positive_rates"]),
        split_positive_rates={k: dict(v) for k, v in s.get("split_positive_rates", {}).items()},
    )


def _write_info(root: Path, num_images: int, seed: int, summary: DemoSummary | None) -> None:
    info = {
        "generator": "celeba_model.data.demo",
        "version": GENERATOR_VERSION,
        "num_images": num_images,
        "seed": seed,
        "complete": summary is not None,
    }
    if summary is not None:
        data = summary.to_dict()
        data.pop("root")
        info["summary"] = data
    atomic_write_text(root / INFO_FILE, json.dumps(info, indent=2) + "\n")


def _prepare_folder(root: Path, num_images: int, seed: int) -> None:
    """Claim ``root`` for the demo and clear what a previous demo could leave stale."""
    root.mkdir(parents=True, exist_ok=True)
    # The text files go first so that a run killed from here on never looks complete.
    for name in (ATTR_FILE, PARTITION_FILE, IDENTITY_FILE):
        (root / name).unlink(missing_ok=True)
    _write_info(root, num_images, seed, summary=None)  # marks the folder as ours, but incomplete
    image_dir = root / IMAGE_DIR
    image_dir.mkdir(exist_ok=True)
    with os.scandir(image_dir) as entries:
        stale = [e.path for e in entries if (m := _IMAGE_NAME.match(e.name)) and int(m.group(1)) > num_images]
    for path in stale:
        os.unlink(path)


def make_demo_dataset(
    out: str | Path,
    num_images: int = 2000,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
) -> DemoSummary:
    """Write a synthetic CelebA with ``num_images`` faces to ``out`` and summarize it.

    Reuses ``out`` without touching it if it already holds a complete demo made with the same
    ``num_images``, ``seed`` and generator version; an unfinished one (a killed run) is completed.
    Refuses (ConfigError) to write into an existing non-empty folder that is not a demo folder, and
    to replace a finished demo of other settings unless ``overwrite``. ``workers`` defaults to the CPU count; 1 renders
    in-process. The output depends only on ``num_images`` and ``seed``. ``on_progress(done, total)``
    is called as images are drawn (for a dashboard progress bar).
    """
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ConfigError(f"num_images must be a positive integer, got {num_images!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if num_images > 999_999:
        raise ConfigError("num_images must be below 1,000,000 (CelebA file names have 6 digits)")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} exists and is not a folder")
    info = _read_info(root)
    if info is not None and _is_complete(root, info, num_images, seed) and "summary" in info:
        return _summary_from_info(root, info)
    if info is None and root.exists() and any(root.iterdir()):
        raise ConfigError(
            f"{root} is not empty and holds no {INFO_FILE}, so it is not a demo dataset folder; "
            "refusing to write into it. Choose an empty or new folder."
        )
    settings = (info or {}).get("num_images"), (info or {}).get("seed"), (info or {}).get("version")
    if info and info.get("complete") is True and settings != (num_images, seed, GENERATOR_VERSION) and not overwrite:
        found = (f"{info.get('num_images')} images, seed {info.get('seed')}, generator version {info.get('version')}")
        raise ConfigError(
            f"{root} already holds a demo dataset of {found}; replacing it with {num_images} images, seed {seed}, "
            f"version {GENERATOR_VERSION} would delete it. Pass --overwrite to replace it, or choose another --out "
            "(nothing was changed)"
        )

    _prepare_folder(root, num_images, seed)
    plans = plan_demo(num_images, seed)
    _render_all(plans, root / IMAGE_DIR, seed, workers if workers is not None else (os.cpu_count() or 1), progress, on_progress)
    # Labels last: the dataset only looks complete once every image is on disk.
    atomic_write_text(root / PARTITION_FILE, "".join(f"{p.filename} {p.partition}\n" for p in plans))
    atomic_write_text(root / IDENTITY_FILE, "".join(f"{p.filename} {p.identity}\n" for p in plans))
    atomic_write_text(root / ATTR_FILE, _format_attr_file(plans))
    summary = _summarize(root, plans)
    _write_info(root, num_images, seed, summary)
    return summary
