"""Threshold-free metrics and curves: precision-recall, ROC, average precision, calibration.

Pure functions on numpy arrays; ``labels`` 0/1 and ``scores`` probabilities, (N, A) or (N,).
scikit-learn computes the curves; this module fixes the cases it warns about to the package's
conventions, and never warns:

- an attribute without positives has average precision 0.0 and PR-curve recall 0;
- ROC AUC is NaN where only one class is present (it is undefined), and ROC-curve rates with a
  zero denominator are 0;
- scores must be finite for these functions (scikit-learn rejects NaN), and in [0, 1] for the
  calibration functions.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

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


def average_precision(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-attribute average precision (sklearn's step-wise AP), (A,); 0.0 without positives."""
    truth, scores = _as_2d(labels, scores)
    out = np.zeros(truth.shape[1], dtype=np.float64)
    for a in range(truth.shape[1]):
        if truth[:, a].any():
            out[a] = average_precision_score(truth[:, a], scores[:, a], pos_label=True)
    return out


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-attribute ROC AUC, (A,); NaN where only one class is present (undefined there)."""
    truth, scores = _as_2d(labels, scores)
    out = np.full(truth.shape[1], np.nan, dtype=np.float64)
    for a in range(truth.shape[1]):
        column = truth[:, a]
        if column.any() and not column.all():
            out[a] = roc_auc_score(column, scores[:, a])
    return out


def roc_curve_points(labels: np.ndarray, scores: np.ndarray, drop_intermediate: bool = True) -> dict[str, np.ndarray]:
    """ROC curve of one attribute, as ``sklearn.metrics.roc_curve`` (thresholds descending, the
    first is +inf). Rates with a zero denominator (no negatives, or no positives) are 0 instead
    of scikit-learn's NaN; no samples give the single point (0, 0)."""
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
