"""Likely label errors of a run, per attribute, found by cleanlab from the run's probabilities.

Confident learning (Northcutt et al. 2021) estimates, per attribute, how often a positive label sits
on an image the model confidently calls negative and vice versa, and flags that many of the least
consistent labels; within an attribute, suspects are ranked by cleanlab's label-quality score (the
model's probability of the given label: lowest first). This needs out-of-sample probabilities: a
val or test run, a run on photos, or for the train split the artifact ``celeba_model crossfit``
writes. On a model's own training images it would find almost nothing, since it fits their labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class
from cleanlab.multilabel_classification.rank import get_label_quality_scores_per_class

from ..evaluation.predictions import Predictions

# Below this many images of either value of an attribute, confident learning has too little to
# estimate the noise rates from; the attribute is ranked by the quality score alone.
MIN_PER_CLASS = 5


@dataclass(frozen=True)
class LabelIssues:
    """Every image x attribute label of a run with its quality score and whether cleanlab flags it."""

    attributes: list[str]
    quality: np.ndarray  # (N, A) cleanlab's label quality: the probability of the given label, low = suspect
    flagged: np.ndarray  # (N, A) bool: confident learning's estimate of the label errors
    in_sample: bool  # the probabilities come from a model trained on these images (ranking unreliable)

    def counts(self) -> pd.DataFrame:
        """Per attribute: labels, flagged, and the flagged share."""
        n = len(self.quality)
        flagged = self.flagged.sum(axis=0)
        return pd.DataFrame({"attribute": self.attributes, "images": n, "flagged": flagged,
                             "flagged_share": flagged / max(n, 1)})


def find_label_issues(predictions: Predictions) -> LabelIssues:
    """cleanlab's per-attribute label issues of ``predictions`` (its labels against its probabilities).

    Both calls are vectorized over the attributes: 20,000 images x 10 attributes take well under a
    second (bench/bench_label_issues.py).
    """
    labels = predictions.labels.astype(np.int64)
    probabilities = np.clip(predictions.probabilities.astype(np.float64), 1e-6, 1 - 1e-6)
    n, a = labels.shape
    flagged = np.zeros((n, a), dtype=bool)
    quality = np.ones((n, a))
    if n:
        as_lists = [list(np.flatnonzero(row)) for row in labels]  # cleanlab's multi-label format
        quality = get_label_quality_scores_per_class(as_lists, probabilities, method="self_confidence")
        positives = labels.sum(axis=0)
        usable = (positives >= MIN_PER_CLASS) & (n - positives >= MIN_PER_CLASS)
        if usable.any():
            # Only the attributes with both values present: cleanlab's estimate needs both classes.
            kept = np.flatnonzero(usable)
            sub = [list(np.flatnonzero(row)) for row in labels[:, kept]]
            # n_jobs=1: no worker processes (the dashboard runs this inside a server thread).
            flagged[:, kept] = find_multilabel_issues_per_class(sub, probabilities[:, kept], n_jobs=1)
    meta = predictions.meta
    in_sample = meta.get("split") == "train" and "crossfit" not in meta
    return LabelIssues(predictions.attributes, np.asarray(quality), flagged, in_sample)


def suspects(predictions: Predictions, issues: LabelIssues, attribute: str, flagged_only: bool = True) -> pd.DataFrame:
    """One attribute's suspected label errors, most suspicious first: row, file, person, label,
    probability, quality and whether cleanlab flags it (``flagged_only``: only those)."""
    j = issues.attributes.index(attribute)
    rows = np.flatnonzero(issues.flagged[:, j]) if flagged_only else np.arange(len(issues.quality))
    rows = rows[np.argsort(issues.quality[rows, j], kind="stable")]
    return pd.DataFrame({
        "row": rows,
        "file": np.asarray(predictions.files)[rows].astype(str),
        "person": np.asarray(predictions.identity)[rows],
        "label": predictions.labels[rows, j].astype(int),
        "probability": predictions.probabilities[rows, j].astype(float),
        "quality": issues.quality[rows, j],
        "flagged": issues.flagged[rows, j],
    })
