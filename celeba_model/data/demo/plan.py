"""The demo's plan: its people, their traits, the train/val/test split and every label.

Planning is cheap and serial, drawing nothing, so one random stream alone decides every label;
``render`` then only draws the traits planned here.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ...attributes import CELEBA_ATTRIBUTES, PAPER_ATTRIBUTES
from .spurious import SpuriousCorrelation, correlate
from .traits import HAIR_RGB, RGB, FaceTraits

LABEL_NOISE = 0.02  # per-image flip probability for each paper attribute
SPLIT_NAMES = ("train", "val", "test")  # partition values 0, 1, 2

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
    return tuple(int(np.clip(c * k + j, 0, 255)) for c, j in zip(HAIR_RGB[color], jitter, strict=True))  # type: ignore[return-value]


_EYE_COLORS: tuple[RGB, ...] = (
    (78, 52, 34),
    (60, 40, 28),
    (95, 70, 40),
    (70, 110, 150),
    (80, 110, 80),
    (50, 50, 60),
)


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
        eye_rgb=_EYE_COLORS[int(rng.integers(len(_EYE_COLORS)))],
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


def plan_demo(
    num_images: int, seed: int = 0, spurious: SpuriousCorrelation | tuple[str, str, float] | None = None
) -> list[ImagePlan]:
    """Decide every person, split, trait and label without drawing anything.

    Images are numbered train first, then val, then test, like the official files. The true traits
    in each plan are what the picture shows; ``labels`` are what the attribute file says.
    ``spurious`` (target, group, share) ties the target to the group in the train split only
    (``spurious.py``); without it the plan is the standard demo's.
    """
    spurious = SpuriousCorrelation.parse(spurious)
    rng = np.random.default_rng([seed, 0x0CE1EBA])  # a stream distinct from the per-image ones
    counts = _images_per_person(rng, num_images)
    identities = rng.permutation(len(counts)) + 1
    people = [_sample_person(rng, int(identities[i]), n) for i, n in enumerate(counts)]
    plans: list[ImagePlan] = []
    for partition, group in enumerate(_assign_splits(people, rng)):
        group = _ensure_coverage(group, rng)  # only edits people if the population lacks a trait
        if spurious is not None:
            # Its own stream, so the standard plan's draws stay as they are.
            group = correlate(group, partition, spurious, np.random.default_rng([seed, 0x5B0, partition]),
                              _HAIR_WEIGHTS)
        looks = [_person_look(p, rng) for p in group]
        # Shuffle a split's pictures so people are interleaved, as in CelebA.
        slots = [k for k, p in enumerate(group) for _ in range(p.num_images)]
        for k in rng.permutation(slots):
            person = group[int(k)]
            coin = _Coins(rng)
            traits, truth = _image_traits(person, looks[int(k)], coin)
            plans.append(ImagePlan(len(plans) + 1, person.identity, partition, traits, _noisy_labels(truth, coin)))
    return plans
