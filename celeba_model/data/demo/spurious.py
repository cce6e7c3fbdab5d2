"""A controllable spurious correlation in the demo: a target attribute tied to a group attribute in
the train split only, as Blond_Hair is tied to sex in CelebA (Sagawa et al. 2020).

``SpuriousCorrelation("Blond_Hair", "Male", 0.02)`` redraws, per person, who shows the target:

* in val and test, half of the people of each group value show it, so the four cells (target x
  group) are about equally large and a model's worst cell can be measured;
* in train, half of the people on one side of the group show it, and on the other side only as many
  as make ``share`` of the train split's target images group-positive (a share under 0.5 makes the
  group-positive side the rare one: blond men), but at least one person when ``share`` is above 0.

Only the target changes (a hair color or pale skin); the group attribute and everything else a
person shows stay as planned. Shares are met to the nearest person, since a person's 20-40
pictures all show the same hair.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import numpy as np

from ...attributes import resolve_attributes
from ...errors import CelebAModelError, ConfigError

# The attributes a demo person carries for all their pictures, so a plan can tie them together.
TARGETS: dict[str, str | None] = {
    "Black_Hair": "black", "Blond_Hair": "blond", "Brown_Hair": "brown", "Gray_Hair": "gray", "Pale_Skin": None,
}
GROUPS: dict[str, str] = {"Male": "male", "Young": "young"}
BALANCED = 0.5  # the target's rate on each balanced side of the group


class _Person(Protocol):
    num_images: int
    male: bool
    young: bool
    hair_color: str
    pale_skin: bool
    bald: bool


P = TypeVar("P", bound=_Person)


@dataclass(frozen=True)
class SpuriousCorrelation:
    """Tie ``target`` to ``group`` in the train split: ``share`` of its target images are group-positive."""

    target: str
    group: str
    share: float

    def __post_init__(self) -> None:
        try:
            target, group = resolve_attributes([self.target, self.group])
        except CelebAModelError as err:
            raise ConfigError(f"spurious: {err}") from err
        if target not in TARGETS:
            raise ConfigError(f"spurious: the demo can tie only {', '.join(TARGETS)} to a group (a trait a "
                              f"person keeps in every picture), got {target}")
        if group not in GROUPS:
            raise ConfigError(f"spurious: the group must be one of {', '.join(GROUPS)}, got {group}")
        share = self.share
        number = isinstance(share, (int, float)) and not isinstance(share, bool)
        if not (number and math.isfinite(share) and 0 <= share <= 1):
            raise ConfigError(f"spurious: the share must be a number from 0 to 1, got {share!r}")
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "share", float(share))

    @classmethod
    def parse(cls, value: Any) -> SpuriousCorrelation | None:
        """None, a SpuriousCorrelation, (target, group, share), or the command line's "TARGET,GROUP,SHARE"."""
        if value is None or isinstance(value, SpuriousCorrelation):
            return value
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",")]
            try:
                target, group, share = parts
                return cls(target, group, float(share))
            except ValueError as err:  # not three parts, or a share that is not a number
                if isinstance(err, ConfigError):
                    raise
                raise ConfigError(f"spurious must be TARGET,GROUP,SHARE such as Blond_Hair,Male,0.02, "
                                  f"got {value!r}") from None
        if isinstance(value, Sequence) and len(value) == 3 and all(isinstance(v, str) for v in value[:2]):
            return cls(value[0], value[1], value[2])
        raise ConfigError(f"spurious must be (target, group, share) such as ('Blond_Hair', 'Male', 0.02), "
                          f"got {value!r}")

    def to_list(self) -> list:
        return [self.target, self.group, self.share]


def correlate(
    people: list[P], partition: int, spec: SpuriousCorrelation, rng: np.random.Generator,
    hair_weights: Mapping[bool, Mapping[str, float]],
) -> list[P]:
    """Redraw who shows ``spec.target`` among one split's ``people`` (partition 0 is train)."""
    hair = TARGETS[spec.target] is not None
    sides = {
        side: [i for i, p in enumerate(people)
               if getattr(p, GROUPS[spec.group]) == side and not (hair and p.bald)]  # a bald head shows no hair color
        for side in (False, True)
    }
    rare = spec.share <= 0.5  # the group side whose share of the target is set in train
    chosen = _half(sides[not rare], rng)
    if partition == 0:
        rare_share = spec.share if rare else 1.0 - spec.share
        common_images = sum(people[i].num_images for i in chosen)
        wanted = common_images * rare_share / (1.0 - rare_share)
        # A share above 0 keeps someone in the rare cell: balancing and Group DRO need an example of it.
        chosen |= _nearest(people, sides[rare], wanted, rng, at_least_one=rare_share > 0)
    else:
        chosen |= _half(sides[rare], rng)
    return [_with_target(p, spec.target, i in chosen, rng, hair_weights) for i, p in enumerate(people)]


def _half(members: list[int], rng: np.random.Generator) -> set[int]:
    """Half of ``members``, at random; of two or more, at least one shown and one not."""
    n = len(members)
    k = max(1, min(n - 1, round(n / 2))) if n >= 2 else n
    return {members[int(j)] for j in rng.permutation(n)[:k]}


def _nearest(
    people: list[P], members: list[int], quota: float, rng: np.random.Generator, at_least_one: bool
) -> set[int]:
    """People of ``members`` (taken in random order) whose pictures come nearest to ``quota`` images."""
    chosen: set[int] = set()
    total = 0
    for j in rng.permutation(len(members)):
        i = members[int(j)]
        if abs(total + people[i].num_images - quota) < abs(total - quota) or (at_least_one and not chosen):
            chosen.add(i)
            total += people[i].num_images
    return chosen


def _with_target(person: P, target: str, shown: bool, rng: np.random.Generator,
                 hair_weights: Mapping[bool, Mapping[str, float]]) -> P:
    color = TARGETS[target]
    if color is None:
        return replace(person, pale_skin=shown)  # type: ignore[type-var]
    if shown:
        return replace(person, hair_color=color)  # type: ignore[type-var]
    if person.hair_color != color:
        return person
    # Another color this person's sex would have, in the usual proportions.
    others = {name: w for name, w in hair_weights[person.male].items() if name != color}
    names = list(others)
    p = np.array([others[n] for n in names])
    return replace(person, hair_color=names[int(rng.choice(len(names), p=p / p.sum()))])  # type: ignore[type-var]
