"""The 40 CelebA attribute names, the paper's 10, and name validation."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from .errors import CelebAModelError

# Column order of the official list_attr_celeba.txt.
CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald",
    "Bangs", "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair",
    "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings",
    "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

# The paper's 10 attributes, in the order of its table and of its figure-2 vectors.
PAPER_ATTRIBUTES: tuple[str, ...] = (
    "Eyeglasses", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair",
    "Gray_Hair", "Male", "Pale_Skin", "Smiling", "Young",
)


class UnknownAttributeError(CelebAModelError, ValueError):
    """An attribute name that is not one of the 40 CelebA attributes."""


# The word that stands for every attribute (``--attributes all``).
ALL_ATTRIBUTES = "all"


def resolve_attributes(names: Sequence[str] | None) -> list[str]:
    """Validate attribute names (case-insensitive) and return them in canonical spelling.

    ``None`` or an empty sequence means the paper's 10 attributes; ``["all"]`` means all 40, in
    ``list_attr_celeba.txt`` order.
    """
    if not names:
        return list(PAPER_ATTRIBUTES)
    if any(name.strip().lower() == ALL_ATTRIBUTES for name in names):
        if len(names) > 1:
            raise UnknownAttributeError(f"{ALL_ATTRIBUTES!r} stands for all 40 attributes; give it alone, not with "
                                        "other names")
        return list(CELEBA_ATTRIBUTES)
    by_lower = {a.lower(): a for a in CELEBA_ATTRIBUTES}
    resolved: list[str] = []
    for name in names:
        canonical = by_lower.get(name.strip().lower())
        if canonical is None:
            close = difflib.get_close_matches(name, CELEBA_ATTRIBUTES, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UnknownAttributeError(
                f"Unknown attribute {name!r}.{hint} Valid names: {', '.join(CELEBA_ATTRIBUTES)}"
            )
        if canonical in resolved:
            raise UnknownAttributeError(f"Attribute {canonical!r} is listed twice")
        resolved.append(canonical)
    return resolved
