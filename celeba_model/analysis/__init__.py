"""Reading predictions artifacts: thresholds, reports, the examples worth looking at.

- ``thresholds``: tuning on a validation artifact; storing thresholds with their checkpoint (or the
  workspace's override) and reading them when used;
- ``reports``: the per-attribute table beside the paper's, ablation comparisons, experiment tables;
- ``selection``: one attribute's most confident mistakes.
"""

from .reports import attribute_report, compare_runs, format_comparison, format_report, resolve_thresholds
from .selection import error_rows
from .thresholds import default_thresholds, save_thresholds_to_checkpoint, stored_thresholds, thresholds_for, tune_run

__all__ = [
    "attribute_report", "compare_runs", "default_thresholds", "error_rows", "format_comparison", "format_report",
    "resolve_thresholds", "save_thresholds_to_checkpoint", "stored_thresholds", "thresholds_for", "tune_run",
]
