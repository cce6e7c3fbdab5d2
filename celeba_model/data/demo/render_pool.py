"""Drawing and saving every planned image, in chunks: in-process, or over a pool of worker processes.

Each image is drawn with its own ``default_rng([seed, index])``, so how the work is split never
changes a byte.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .plan import ImagePlan
from .render import render_face
from .traits import FaceTraits

JPEG_QUALITY = 90  # of the saved files (the camera sometimes adds a lower-quality round first)


def _render_chunk(job: tuple[str, int, list[tuple[int, FaceTraits]]]) -> int:
    """Draw and save a batch of images (runs in a worker process); returns how many were written."""
    image_dir, seed, items = job
    for index, traits in items:
        image = render_face(traits, np.random.default_rng([seed, index]))
        image.save(os.path.join(image_dir, f"{index:06d}.jpg"), "JPEG", quality=JPEG_QUALITY)
    return len(items)


def render_all(
    plans: list[ImagePlan],
    image_dir: Path,
    seed: int,
    workers: int,
    progress: bool,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Draw every planned image into ``image_dir``; ``on_progress(done, total)`` follows finished chunks."""
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
        # Several chunks per worker balance the load; chunks are big enough to amortize pickling.
        size = max(16, min(256, len(items) // (workers * 8)))
        jobs = [(str(image_dir), seed, items[i : i + size]) for i in range(0, len(items), size)]
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            for done in pool.map(_render_chunk, jobs):
                advance(done)
