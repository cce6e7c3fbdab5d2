"""DemoSummary: what a demo dataset holds, computed from its plan or read back from its info file."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ...attributes import CELEBA_ATTRIBUTES, PAPER_ATTRIBUTES
from .plan import SPLIT_NAMES, ImagePlan


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

    @classmethod
    def from_plans(cls, root: Path, plans: list[ImagePlan]) -> DemoSummary:
        """Counts and positive rates of the labels ``plans`` write (after label noise)."""
        columns = [CELEBA_ATTRIBUTES.index(a) for a in PAPER_ATTRIBUTES]
        labels = np.array([p.labels for p in plans], dtype=np.int8)[:, columns] > 0
        partitions = np.array([p.partition for p in plans])
        split_rates = {
            name: {a: round(float(labels[partitions == k, j].mean()), 4) for j, a in enumerate(PAPER_ATTRIBUTES)}
            for k, name in enumerate(SPLIT_NAMES)
            if (partitions == k).any()
        }
        return cls(
            root=root,
            num_images=len(plans),
            num_identities=len({p.identity for p in plans}),
            split_counts={name: int((partitions == k).sum()) for k, name in enumerate(SPLIT_NAMES)},
            positive_rates={a: round(float(labels[:, j].mean()), 4) for j, a in enumerate(PAPER_ATTRIBUTES)},
            split_positive_rates=split_rates,
        )

    @classmethod
    def from_dict(cls, root: Path, data: dict) -> DemoSummary:
        """The inverse of ``to_dict`` (as stored without its root in the demo's info file)."""
        return cls(
            root=root,
            num_images=int(data["num_images"]),
            num_identities=int(data["num_identities"]),
            split_counts=dict(data["split_counts"]),
            positive_rates=dict(data["positive_rates"]),
            split_positive_rates={k: dict(v) for k, v in data.get("split_positive_rates", {}).items()},
        )
