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


def metrics_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> dict[str, np.ndarray]:
    """Every per-attribute metric from confusion counts, element-wise on arrays of any shape.

    Keys: tp, fp, fn, tn, support (TP+FN, the positives), predicted_positive (TP+FP), precision,
    recall, f1, specificity (TN/(TN+FP)), accuracy and balanced_accuracy ((recall+specificity)/2).
    Each ratio with a zero denominator is 0, so balanced accuracy of an attribute with one class
    present is half the rate of that class. scikit-learn's ``balanced_accuracy_score`` instead
    averages only the classes present in ``y_true`` (and gives 1.0 when one class is both the only
    truth and the only prediction); we keep the fixed two-term mean so it works element-wise and
    is comparable across attributes and bootstrap replicates.
    """
    tp, fp, fn, tn = np.broadcast_arrays(*(np.asarray(x) for x in (tp, fp, fn, tn)))
    support = tp + fn
    predicted_positive = tp + fp
    negatives = tn + fp
    precision = safe_divide(tp, predicted_positive)
    recall = safe_divide(tp, support)
    specificity = safe_divide(tn, negatives)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "support": support,
        "predicted_positive": predicted_positive,
        "precision": precision,
        "recall": recall,
        "f1": f1_from_counts(tp, fp, fn),
        "specificity": specificity,
        "accuracy": safe_divide(tp + tn, support + negatives),
        "balanced_accuracy": (recall + specificity) / 2.0,
    }


def attribute_metrics(labels: np.ndarray, scores: np.ndarray, thresholds: float | np.ndarray = 0.5) -> dict[str, np.ndarray]:
    """Per-attribute metrics (arrays of length A, keys of ``metrics_from_counts``) at the thresholds."""
    c = confusion_counts(labels, scores, thresholds)
    return metrics_from_counts(c["tp"], c["fp"], c["fn"], c["tn"])


def harmonic_mean(p: np.ndarray | float, r: np.ndarray | float) -> np.ndarray:
    """2PR/(P+R) element-wise; 0 where P+R is 0."""
    p = np.asarray(p, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    return safe_divide(2.0 * p * r, p + r)


def summarize(per_attribute: dict[str, np.ndarray]) -> dict[str, float]:
    """Macro, micro and paper-style averages of per-attribute metrics (from ``attribute_metrics``).

    macro_* are plain means over attributes of the per-attribute values; micro_* come from the
    counts summed over attributes (micro_accuracy is the element-wise accuracy, 1 - Hamming loss,
    not scikit-learn's subset accuracy). ``paper_f`` is the harmonic mean of macro precision and
    macro recall.
    """
    # Why paper_f: the paper's "AVG" row (P .878, R .539, F .668) is the mean of per-attribute
    # precision, the mean of per-attribute recall, and F = 2PR/(P+R) of those two means; the mean
    # of its per-attribute F values is 0.594, not 0.668. Reproducing its table needs paper_f, while
    # macro_f1 is the usual (scikit-learn "macro") figure. The paper's "Accuracy (TP)" column is
    # TP/positives, i.e. recall.
    tp, fp, fn, tn = (np.asarray(per_attribute[k]) for k in ("tp", "fp", "fn", "tn"))
    micro = metrics_from_counts(tp.sum(), fp.sum(), fn.sum(), tn.sum())

    def mean(key: str) -> float:
        values = np.asarray(per_attribute[key], dtype=np.float64)
        return float(values.mean()) if values.size else 0.0

    macro_precision, macro_recall = mean("precision"), mean("recall")
    return {
        "macro_precision": macro_precision,
        "macro_recall": macro_recall,
        "macro_f1": mean("f1"),
        "macro_specificity": mean("specificity"),
        "macro_accuracy": mean("accuracy"),
        "macro_balanced_accuracy": mean("balanced_accuracy"),
        "micro_precision": float(micro["precision"]),
        "micro_recall": float(micro["recall"]),
        "micro_f1": float(micro["f1"]),
        "micro_accuracy": float(micro["accuracy"]),
        "paper_f": float(harmonic_mean(macro_precision, macro_recall)),
    }
