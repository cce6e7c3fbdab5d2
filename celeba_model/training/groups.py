"""Groups of images: the cells (target value x group values) of a run's train and val images, and each
cell's accuracy on the target, whose minimum is the worst-group accuracy of Sagawa et al. (2020).

With target Blond_Hair and group Male there are four cells: blond men, blond women, non-blond men and
non-blond women. A cell's id has the target as its highest bit and the group attributes below it,
in order, so ``Blond_Hair=1,Male=1`` is cell 3 of 0-3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.index import CelebAIndex, CelebAIndexError
from .config import TrainConfig, TrainingError


@dataclass(frozen=True)
class CellSpec:
    """Which attributes make the cells: the target first, then the grouping attributes."""

    target: str
    group_by: tuple[str, ...]

    @property
    def attributes(self) -> list[str]:
        return [self.target, *self.group_by]

    @property
    def num_cells(self) -> int:
        return 2 ** len(self.attributes)

    def names(self) -> list[str]:
        """Each cell's name in id order, e.g. ``Blond_Hair=1,Male=0``."""
        bits = len(self.attributes)
        return [",".join(f"{a}={(k >> (bits - 1 - j)) & 1}" for j, a in enumerate(self.attributes))
                for k in range(self.num_cells)]

    def assign(self, labels: np.ndarray) -> np.ndarray:
        """Cell ids (int64) of images whose 0/1 labels of ``attributes`` are the columns of ``labels``."""
        weights = 1 << np.arange(labels.shape[1] - 1, -1, -1)
        return (labels.astype(np.int64) * weights).sum(axis=1)


@dataclass
class RunCells:
    """The cells of a run's images: an id for every row of the index (train and val rows are known)."""

    spec: CellSpec
    cells: np.ndarray  # (N,) int64 over the whole index; -1 outside the train and val rows
    train_counts: dict[str, int]
    val_counts: dict[str, int]

    def to_dict(self) -> dict:
        return {"target": self.spec.target, "group_by": list(self.spec.group_by),
                "train_images": self.train_counts, "val_images": self.val_counts}


def run_cells(config: TrainConfig, index: CelebAIndex, train_rows: np.ndarray, val_rows: np.ndarray) -> RunCells | None:
    """The cells of ``config.group_by`` (None without it). Refuses attributes a data root lacks, and an
    empty train cell when batches must draw from every cell."""
    if config.group_by is None:
        return None
    spec = CellSpec(config.group_target or config.attributes[0], tuple(config.group_by))
    rows = np.concatenate([train_rows, val_rows])
    try:
        labels = index.attribute_labels(spec.attributes, rows)
    except CelebAIndexError as err:
        raise TrainingError(f"--group-by and its target need labels for every image: {err}") from err
    cells = np.full(len(index), -1, dtype=np.int64)
    cells[rows] = spec.assign(labels)
    names = spec.names()
    train_counts = np.bincount(cells[train_rows], minlength=spec.num_cells)
    val_counts = np.bincount(cells[val_rows], minlength=spec.num_cells)
    if config.group_balance and (train_counts == 0).any():
        empty = [names[k] for k in np.flatnonzero(train_counts == 0)]
        raise TrainingError(f"--group-balance draws every cell, but the train split has no image of {', '.join(empty)}")
    return RunCells(spec, cells, {n: int(c) for n, c in zip(names, train_counts)},
                    {n: int(c) for n, c in zip(names, val_counts)})


@dataclass
class CellAccuracy:
    """The target's accuracy in each cell (None for a cell without images) and the worst of them."""

    accuracy: dict[str, float | None]
    worst: float


def cell_accuracy(spec: CellSpec, cells: np.ndarray, truth: np.ndarray, probabilities: np.ndarray,
                  threshold: float = 0.5) -> CellAccuracy:
    """Accuracy of the target per cell, for images in ``cells`` with the target's labels ``truth`` and
    probabilities (positive at ``threshold`` or above, as in metrics.counts)."""
    correct = (probabilities >= threshold) == truth.astype(bool)
    accuracy: dict[str, float | None] = {}
    for k, name in enumerate(spec.names()):
        members = cells == k
        accuracy[name] = float(correct[members].mean()) if members.any() else None
    present = [a for a in accuracy.values() if a is not None]
    return CellAccuracy(accuracy, min(present) if present else 0.0)
