"""Selecting examples to look at: the model's most confident mistakes for one attribute."""

from __future__ import annotations

import numpy as np

ERROR_KINDS = ("false_positive", "false_negative")


def error_rows(labels: np.ndarray, scores: np.ndarray, threshold: float, kind: str) -> np.ndarray:
    """Row indices of one attribute's errors, the most confident first.

    False positives (absent but predicted) are sorted by score, highest first; false negatives
    (present but missed) by score, lowest first: the top of each list is where the model was
    surest and wrong, the cases worth looking at (often label noise or a real blind spot).
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    predicted = scores >= threshold
    if kind == "false_positive":
        rows = np.flatnonzero(predicted & ~labels)
        return rows[np.argsort(-scores[rows], kind="stable")]
    if kind == "false_negative":
        rows = np.flatnonzero(~predicted & labels)
        return rows[np.argsort(scores[rows], kind="stable")]
    raise ValueError(f"kind must be one of {ERROR_KINDS}, got {kind!r}")


def as_bit_string(values: np.ndarray) -> str:
    """A 0/1 vector as a string, as in the paper's figure 2 (e.g. '0100001011')."""
    return "".join("1" if v else "0" for v in np.asarray(values).astype(bool))
