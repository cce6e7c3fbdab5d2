"""Metrics as pure functions, numpy in and numbers out, shared by training, the CLI, the dashboard and
the tests (each checked against scikit-learn).

- ``counts``: confusion counts, per-attribute precision/recall/F1/accuracy, macro and micro summaries;
- ``sweep``: metrics at any thresholds from scores sorted once, and threshold tuning;
- ``curves``: precision-recall and ROC curves, average precision, ROC AUC, reliability and ECE;
- ``bootstrap``: 95% intervals by resampling people;
- ``paper_reference``: the paper's published table and ablations.
"""

from .bootstrap import bootstrap_ci
from .counts import attribute_metrics, confusion_counts, f1_scores, summarize
from .curves import average_precision, expected_calibration_error, pr_curve, reliability_curve, roc_auc
from .paper_reference import PAPER_ABLATIONS, PAPER_AVERAGE, PAPER_TABLE
from .sweep import ThresholdSweep, tune_thresholds

__all__ = [
    "PAPER_ABLATIONS", "PAPER_AVERAGE", "PAPER_TABLE", "ThresholdSweep", "attribute_metrics", "average_precision",
    "bootstrap_ci", "confusion_counts", "expected_calibration_error", "f1_scores", "pr_curve", "reliability_curve",
    "roc_auc", "summarize", "tune_thresholds",
]
