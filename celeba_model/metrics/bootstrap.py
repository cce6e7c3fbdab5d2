"""Bootstrap confidence intervals for per-attribute and averaged metrics.

CelebA has many images per person (the real test sample is 660 images of 22 people), so images
of one person are not independent: resampling images understates the uncertainty. With person
ids, ``bootstrap_ci`` resamples people with replacement (a cluster bootstrap) and keeps each
person's images together.

Speed: the confusion counts are aggregated per group once, (G, A, 4); each replicate is a vector
of how many times each group was drawn, so all replicates' counts are one matrix product, and
the metrics follow element-wise on (B, A) arrays.
"""

from __future__ import annotations

import numpy as np

from .counts import _as_2d, harmonic_mean, metrics_from_counts

PER_ATTRIBUTE = ("precision", "recall", "f1")
# Bootstrap draws are made in blocks of about this many (replicate, group) cells, to bound memory
# for image-level resampling of large sets; the block size depends only on the data's size, so
# results depend only on the seed.
_BLOCK_CELLS = 2_000_000


def _group_index(groups: np.ndarray | None, n: int) -> tuple[np.ndarray, int, bool]:
    """Dense group index 0..G-1 per image, G, and whether any real group id was given."""
    if groups is None:
        return np.arange(n), n, False
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups must have shape ({n},), got {groups.shape}")
    if groups.dtype.kind in "iub":
        own = groups < 0  # no person id: the image is its own group
    elif groups.dtype.kind == "f":
        own = ~(groups >= 0)  # also NaN, as a missing id reads from a table
    else:
        own = np.zeros(n, dtype=bool)
    index = np.empty(n, dtype=np.int64)
    _, index[~own] = np.unique(groups[~own], return_inverse=True)
    num_known = int(index[~own].max()) + 1 if (~own).any() else 0
    index[own] = num_known + np.arange(int(own.sum()))
    return index, num_known + int(own.sum()), num_known > 0


def _draw_weights(rng: np.random.Generator, n_boot: int, num_groups: int) -> np.ndarray:
    """(B, G) float64: how many times each group is drawn in each replicate (rows sum to G)."""
    weights = np.zeros((n_boot, num_groups), dtype=np.float64)
    if num_groups == 0:
        return weights
    block = max(1, _BLOCK_CELLS // num_groups)
    for start in range(0, n_boot, block):
        rows = min(block, n_boot - start)
        draws = rng.integers(0, num_groups, size=(rows, num_groups))
        draws += (np.arange(rows) * num_groups)[:, None]
        weights[start : start + rows] = np.bincount(draws.ravel(), minlength=rows * num_groups).reshape(rows, num_groups)
    return weights


def bootstrap_counts(
    labels: np.ndarray,
    scores: np.ndarray,
    thresholds: float | np.ndarray = 0.5,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Confusion counts of every bootstrap replicate, and of the full data.

    Returns (replicates (B, A, 4) int64, full (A, 4) int64, info) with the last axis ordered
    tp, fp, fn, tn, and info {"n_groups", "resampled"}. Groups as in ``bootstrap_ci``.
    """
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    n_boot = int(n_boot)
    truth, scores = _as_2d(labels, scores)
    n, num = truth.shape
    predicted = scores >= np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (num,))
    index, num_groups, has_groups = _group_index(groups, n)

    # Per-group counts (G, A*4), cells ordered tp, fp, fn, tn: code = 2*(not predicted) + (not truth).
    code = 2 * (~predicted).astype(np.int64) + (~truth).astype(np.int64)
    flat = (index[:, None] * num + np.arange(num)[None, :]) * 4 + code
    per_group = np.bincount(flat.ravel(), minlength=num_groups * num * 4).reshape(num_groups, num * 4)

    weights = _draw_weights(np.random.default_rng(seed), n_boot, num_groups)
    # Float matrix product (BLAS) is exact here: the counts are integers far below 2**53.
    replicates = np.rint(weights @ per_group.astype(np.float64)).astype(np.int64).reshape(n_boot, num, 4)
    full = per_group.sum(axis=0).reshape(num, 4).astype(np.int64)
    return replicates, full, {"n_groups": int(num_groups), "resampled": "groups" if has_groups else "images"}


def bootstrap_ci(
    labels: np.ndarray,
    scores: np.ndarray,
    thresholds: float | np.ndarray = 0.5,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Percentile bootstrap intervals of precision, recall and F1 at fixed thresholds.

    ``groups`` (N,) are person ids: people are resampled with replacement, all images of a person
    together; an id < 0 (or ``groups=None``) makes the image its own group. Returns:

    - "precision", "recall", "f1": (A, 2) arrays of [low, high] per attribute;
    - "macro_precision", "macro_recall", "macro_f1", "paper_f": (2,) arrays;
    - "estimate": the point values on the full data (same keys; arrays (A,) or floats);
    - "n_groups" (int), "resampled" ("groups" or "images"), "n_boot", "confidence".

    Deterministic for a given seed. Metric conventions are ``metrics.metrics_from_counts``'s (a
    replicate with no positives has recall 0); with no samples every interval is [0, 0].
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    counts, total, info = bootstrap_counts(labels, scores, thresholds, groups, n_boot, seed)
    n_boot, num = counts.shape[0], counts.shape[1]
    reps = metrics_from_counts(counts[..., 0], counts[..., 1], counts[..., 2], counts[..., 3])
    point = metrics_from_counts(total[:, 0], total[:, 1], total[:, 2], total[:, 3])

    samples = {key: reps[key] for key in PER_ATTRIBUTE}
    estimate: dict = {key: point[key] for key in PER_ATTRIBUTE}
    for key in PER_ATTRIBUTE:
        samples["macro_" + key] = reps[key].mean(axis=1) if num else np.zeros(n_boot)
        estimate["macro_" + key] = float(point[key].mean()) if num else 0.0
    samples["paper_f"] = harmonic_mean(samples["macro_precision"], samples["macro_recall"])
    estimate["paper_f"] = float(harmonic_mean(estimate["macro_precision"], estimate["macro_recall"]))

    alpha = (1.0 - confidence) / 2.0
    out: dict = {}
    for key, values in samples.items():
        # (2, ...) quantiles -> (..., 2): [low, high] last, per attribute for the (A,) metrics.
        out[key] = np.moveaxis(np.quantile(values, [alpha, 1.0 - alpha], axis=0), 0, -1)
    out.update(
        estimate=estimate,
        n_groups=info["n_groups"],
        resampled=info["resampled"],
        n_boot=n_boot,
        confidence=float(confidence),
    )
    return out
