"""Threshold-free metrics and curves: precision-recall, ROC, average precision, calibration.

Pure functions on numpy arrays; ``labels`` 0/1 and ``scores`` probabilities, (N, A) or (N,).
scikit-learn computes the curves (imported when first needed); average precision and ROC AUC are
computed here in numpy, as scikit-learn defines them (the tests check they agree), so that the
dashboard's first page does not wait for scikit-learn to import. This module fixes the cases
scikit-learn warns about to the package's conventions, and never warns:

- an attribute without positives has average precision 0.0 and PR-curve recall 0;
- ROC AUC is NaN where only one class is present (it is undefined), and ROC-curve rates with a
  zero denominator are 0;
- scores must be finite for these functions (scikit-learn rejects NaN), and in [0, 1] for the
  calibration functions.

``thin_curve`` and ``pr_curve_for_display`` pick a few thousand points of a curve for a chart: a curve
has a point per distinct score (about 200,000 for full CelebA), far more than a chart can show.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from .counts import _as_2d


def _as_1d(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth, scores = _as_2d(labels, scores)
    if truth.shape[1] != 1:
        raise ValueError(f"expected one attribute (N,) or (N, 1), got {truth.shape}")
    return truth[:, 0], np.asarray(scores[:, 0], dtype=np.float64)


def pr_curve(labels: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """Precision-recall curve of one attribute, as ``sklearn.metrics.precision_recall_curve``.

    ``thresholds`` are the distinct scores ascending; ``precision`` and ``recall`` have one more
    entry, the (1, 0) end point. Without positives recall is 0 everywhere (scikit-learn: 1, with
    a warning); with no samples the curve is just the end point.
    """
    from sklearn.metrics import precision_recall_curve

    truth, scores = _as_1d(labels, scores)
    if truth.size == 0:
        return {"precision": np.ones(1), "recall": np.zeros(1), "thresholds": np.zeros(0)}
    with warnings.catch_warnings():
        # The only warning here is "no positive class", handled below.
        warnings.simplefilter("ignore")
        precision, recall, thresholds = precision_recall_curve(truth, scores, pos_label=True)
    if not truth.any():
        recall = np.zeros_like(recall)
    return {"precision": precision, "recall": recall, "thresholds": thresholds}


def _finite(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise ValueError("Input contains NaN or infinity: scores must be finite")
    return scores


def _binary_average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """sklearn's ``average_precision_score``: sum over distinct thresholds, from the highest, of the recall
    gained times the precision there (a threshold is ``score >= t``; tied scores enter together)."""
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], truth[order].astype(np.float64)
    last = np.flatnonzero(np.concatenate((ranked[1:] != ranked[:-1], [True])))  # the end of each tie group
    tp = np.cumsum(hits)[last]
    precision = tp / (last + 1)
    return float(np.sum(np.diff(tp, prepend=0.0) / tp[-1] * precision))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-attribute average precision (sklearn's step-wise AP), (A,); 0.0 without positives."""
    truth, scores = _as_2d(labels, scores)
    scores = _finite(scores)
    out = np.zeros(truth.shape[1], dtype=np.float64)
    for a in range(truth.shape[1]):
        if truth[:, a].any():
            out[a] = _binary_average_precision(truth[:, a].astype(bool), scores[:, a])
    return out


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..N of ``values``, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-attribute ROC AUC, (A,); NaN where only one class is present (undefined there).

    The Mann-Whitney form, with tied scores counting one half: the area under the ROC curve as
    sklearn's ``roc_auc_score`` computes it.
    """
    truth, scores = _as_2d(labels, scores)
    scores = _finite(scores)
    out = np.full(truth.shape[1], np.nan, dtype=np.float64)
    for a in range(truth.shape[1]):
        column = truth[:, a].astype(bool)
        positives = int(column.sum())
        negatives = len(column) - positives
        if positives and negatives:
            rank_sum = _average_ranks(scores[:, a])[column].sum()
            out[a] = (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)
    return out


def roc_curve_points(labels: np.ndarray, scores: np.ndarray, drop_intermediate: bool = True) -> dict[str, np.ndarray]:
    """ROC curve of one attribute, as ``sklearn.metrics.roc_curve`` (thresholds descending, the
    first is +inf). Rates with a zero denominator (no negatives, or no positives) are 0 instead
    of scikit-learn's NaN; no samples give the single point (0, 0)."""
    from sklearn.metrics import roc_curve

    truth, scores = _as_1d(labels, scores)
    if truth.size == 0:
        return {"fpr": np.zeros(1), "tpr": np.zeros(1), "thresholds": np.full(1, np.inf)}
    with warnings.catch_warnings():
        # Only the one-class warnings, whose NaN rates are replaced below.
        warnings.simplefilter("ignore")
        fpr, tpr, thresholds = roc_curve(truth, scores, pos_label=True, drop_intermediate=drop_intermediate)
    return {"fpr": np.nan_to_num(fpr, nan=0.0), "tpr": np.nan_to_num(tpr, nan=0.0), "thresholds": thresholds}


def _bin_ids(scores: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-width bin of each score on [0, 1] and the bin edges, exactly as sklearn's
    ``calibration_curve(strategy="uniform")``: bins are [0, e1], (e1, e2], ..., (e_{k-1}, 1], a
    score on an inner edge belonging to the lower bin."""
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size and not (np.all(scores >= 0.0) and np.all(scores <= 1.0)):  # also rejects NaN
        raise ValueError("scores must be probabilities in [0, 1]")
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    return np.searchsorted(edges[1:-1], scores), edges


def reliability_curve(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Reliability diagram of one attribute over ``bins`` equal-width bins on [0, 1].

    Returns arrays of length ``bins``: bin_lower, bin_upper, mean_score, fraction_positive and
    count. Empty bins are kept (count 0, NaN means) so the arrays always line up with the bins;
    on non-empty bins the means equal sklearn's ``calibration_curve(strategy="uniform")``.
    """
    truth, scores = _as_1d(labels, scores)
    ids, edges = _bin_ids(scores, bins)
    count = np.bincount(ids, minlength=int(bins)).astype(np.int64)
    score_sum = np.bincount(ids, weights=scores, minlength=int(bins))
    positive_sum = np.bincount(ids, weights=truth.astype(np.float64), minlength=int(bins))
    mean_score = np.full(int(bins), np.nan)
    fraction_positive = np.full(int(bins), np.nan)
    filled = count > 0
    mean_score[filled] = score_sum[filled] / count[filled]
    fraction_positive[filled] = positive_sum[filled] / count[filled]
    return {
        "bin_lower": edges[:-1],
        "bin_upper": edges[1:],
        "mean_score": mean_score,
        "fraction_positive": fraction_positive,
        "count": count,
    }


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> np.ndarray:
    """Per-attribute ECE, (A,): sum over non-empty bins of (n_b/N) * |fraction_positive_b - mean_score_b|.

    Same bins as ``reliability_curve``; 0.0 for an attribute with no samples.
    """
    truth, scores = _as_2d(labels, scores)
    n, num = truth.shape
    ids, _ = _bin_ids(scores, bins)
    # One bincount for all attributes: attribute a's bins are offset by a * bins.
    flat = (ids + np.arange(num) * int(bins)).ravel()
    size = num * int(bins)
    # Per bin, n_b/N * |mean(label) - mean(score)| = |sum(label) - sum(score)| / N.
    diff = np.bincount(flat, weights=(truth - np.asarray(scores, dtype=np.float64)).ravel(), minlength=size)
    if n == 0:
        return np.zeros(num, dtype=np.float64)
    return np.abs(diff.reshape(num, int(bins))).sum(axis=1) / n


DISPLAY_POINTS = 2000  # points of a curve sent to a chart: about 5 per pixel of a chart's width


def thin_curve(x: np.ndarray, y: np.ndarray, max_points: int = DISPLAY_POINTS, keep: Sequence[int] = ()) -> np.ndarray:
    """Indices of at most about ``max_points`` (plus ``keep``) points that draw the curve (x, y) as all do.

    Points are taken evenly along the curve's length, so that no two drawn neighbours are further
    apart than 1/``max_points`` of it (a fraction of a pixel at chart size), wherever the curve turns;
    the first and last points and the indices in ``keep`` are always among them. Ascending indices.
    """
    if int(max_points) != max_points or max_points < 2:
        raise ValueError(f"max_points must be an integer of at least 2, got {max_points!r}")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D arrays of one length, got {x.shape} and {y.shape}")
    n = len(x)
    extra = np.asarray(keep, dtype=np.int64).reshape(-1)
    if len(extra) and (extra.min() < 0 or extra.max() >= n):
        raise IndexError(f"keep holds indices outside the curve's {n} points")
    if n <= max_points:
        return np.arange(n)
    length = np.concatenate(([0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))))
    if length[-1] > 0:
        # The first point of each of max_points - 1 equal stretches of the curve's length.
        stretch = np.minimum((length / length[-1] * (max_points - 1)).astype(np.int64), max_points - 2)
        chosen = np.flatnonzero(np.concatenate(([True], stretch[1:] != stretch[:-1])))
    else:
        chosen = np.zeros(1, dtype=np.int64)
    return np.unique(np.concatenate([chosen, [0, n - 1], extra]))


def pr_curve_for_display(curve: dict[str, np.ndarray], threshold: float, max_points: int = DISPLAY_POINTS
                         ) -> dict[str, np.ndarray]:
    """A precision-recall curve of ``ThresholdSweep.curve`` thinned for a chart (``thin_curve``), exact at
    the operating point: the point of ``threshold`` (positive when score >= threshold, as
    ``ThresholdSweep.metrics_at`` counts) is always kept, so a marker there lies on the drawn line.

    Returns recall, precision and thresholds of the kept points, and ``operating``: the operating
    point's position among them (-1 when the threshold is above every score: no point of the curve).
    """
    thresholds = np.asarray(curve["thresholds"])
    at = int(np.searchsorted(thresholds, threshold, side="left"))  # the first distinct score >= threshold
    keep = [at] if at < len(thresholds) else []
    rows = thin_curve(curve["recall"], curve["precision"], max_points, keep)
    return {
        "recall": np.asarray(curve["recall"])[rows],
        "precision": np.asarray(curve["precision"])[rows],
        "thresholds": thresholds[rows],
        "operating": np.int64(np.searchsorted(rows, at)) if keep else np.int64(-1),
    }
