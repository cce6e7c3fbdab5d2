"""How an epoch draws its training images: a plain shuffle (batches.epoch_batches), cells drawn equally
(--group-balance), or some images drawn more often than others (JTT's upweighted error set).

The drawn epochs sample with replacement and keep plain training's number of steps, so the learning
rate schedule is the same. Like the shuffle they depend only on the epoch's seed (seeds.SHUFFLE):
a resumed run draws what the uninterrupted run drew. Under torchrun every rank draws the same global
batches of batch_size x world_size images and takes every world_size-th image of each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..utils.distributed import DistInfo
from .batches import epoch_batches


def balanced_batches(
    cells: np.ndarray, num_cells: int, batch_size: int, num_batches: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """``num_batches`` batches of positions into ``cells``, each holding every cell in equal numbers (the
    remainder of ``batch_size`` goes to cells chosen at random), drawn with replacement within a cell."""
    members = [np.flatnonzero(cells == k) for k in range(num_cells)]
    if any(len(m) == 0 for m in members):
        raise ValueError("every cell needs at least one image to be drawn")
    batches = []
    for _ in range(num_batches):
        counts = np.full(num_cells, batch_size // num_cells)
        counts[rng.choice(num_cells, batch_size % num_cells, replace=False)] += 1
        drawn = np.concatenate([m[rng.integers(len(m), size=c)] for m, c in zip(members, counts)])
        batches.append(rng.permutation(drawn))
    return batches


def weighted_batches(
    weights: np.ndarray, batch_size: int, num_batches: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """``num_batches`` batches of positions into ``weights``, each image drawn with probability
    proportional to its weight, with replacement."""
    drawn = rng.choice(len(weights), size=batch_size * num_batches, p=weights / weights.sum())
    return list(drawn.reshape(num_batches, batch_size))


@dataclass
class EpochSampler:
    """A run's way of drawing each epoch from its train rows: a shuffle unless ``cells`` (balanced,
    over ``num_cells``) or ``weights`` (per train row) say otherwise."""

    rows: np.ndarray  # the train rows of the index
    cells: np.ndarray | None = None  # per train row
    num_cells: int = 0
    weights: np.ndarray | None = None  # per train row

    def epoch(self, batch_size: int, seed: int, info: DistInfo = DistInfo()) -> list[np.ndarray]:
        """This process's batches of index rows for the epoch whose shuffle seed is ``seed``."""
        if self.cells is None and self.weights is None:
            return epoch_batches(self.rows, batch_size, seed, info)
        rng = np.random.default_rng(seed)
        global_size = batch_size * info.world_size
        num_batches = math.ceil(len(self.rows) / global_size)  # plain training's steps per epoch
        if self.cells is not None:
            positions = balanced_batches(self.cells, self.num_cells, global_size, num_batches, rng)
        else:
            positions = weighted_batches(self.weights, global_size, num_batches, rng)
        return [self.rows[p[info.rank :: info.world_size]] for p in positions]
