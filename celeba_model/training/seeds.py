"""Per-epoch seeds: each random stream of an epoch is seeded from (run seed, epoch), so a run resumed at
an epoch boundary draws exactly what the uninterrupted run would have drawn."""

from __future__ import annotations

import numpy as np

# The random streams of one epoch.
DROPOUT = 0  # torch's global generator
SHUFFLE = 1  # the order of the training images (shared by all ranks)
AUGMENT = 2  # flips, shifts, zoom and colors, drawn on the training device
LOADER = 3  # the DataLoader's own generator (its workers' base seed)


def epoch_seed(seed: int, epoch: int, stream: int = DROPOUT, rank: int = 0) -> int:
    """A distinct, reproducible seed for each (run seed, epoch, random stream, process rank)."""
    key = [seed, epoch, stream] + ([rank] if rank else [])  # rank 0 keeps the single-process seeds
    return int(np.random.SeedSequence(key).generate_state(1)[0])
