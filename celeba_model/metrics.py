"""Classification metrics as pure functions: numpy arrays in, numbers out.

Conventions: ``labels`` is (N, A) with 1 for present; ``scores`` is (N, A) probabilities; a
prediction is positive when ``score >= threshold``. Ratios with a zero denominator are 0, as in
scikit-learn's ``zero_division=0``, and never warn.
"""

from __future__ import annotations

import numpy as np


def safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ratio that is 0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _as_2d(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    scores = np.asarray(scores)
    if labels.ndim == 1:
        labels, scores = labels[:, None], scores[:, None]
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in shape")
    return labels.astype(bool), scores


def confusion_counts(labels: np.ndarray, scores: np.ndarray, thresholds: float | np.ndarray = 0.5) -> dict[str, np.ndarray]:
    """Per-attribute TP, FP, FN, TN (int64 arrays of length A) at the given thresholds."""
    truth, scores = _as_2d(labels, scores)
    predicted = scores >= np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (scores.shape[1],))
    tp = (predicted & truth).sum(axis=0)
    fp = (predicted & ~truth).sum(axis=0)
    fn = (~predicted & truth).sum(axis=0)
    tn = (~predicted & ~truth).sum(axis=0)
    return {"tp": tp.astype(np.int64), "fp": fp.astype(np.int64), "fn": fn.astype(np.int64), "tn": tn.astype(np.int64)}


def f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 = 2TP / (2TP + FP + FN); 0 when there are no positives and no positive predictions."""
    return safe_divide(2 * np.asarray(tp), 2 * np.asarray(tp) + np.asarray(fp) + np.asarray(fn))


def f1_scores(labels: np.ndarray, scores: np.ndarray, thresholds: float | np.ndarray = 0.5) -> np.ndarray:
    """Per-attribute F1 at the thresholds."""
    c = confusion_counts(labels, scores, thresholds)
    return f1_from_counts(c["tp"], c["fp"], c["fn"])
