"""Reading predictions artifacts: thresholds, reports, the examples worth looking at.

- ``thresholds``: tuning on a validation artifact and saving the thresholds for the checkpoint that
  made it (where they are kept and how they are read: ``celeba_model.models.thresholds``);
- ``reports``: the per-attribute table beside the paper's, ablation comparisons, experiment tables;
- ``selection``: one attribute's most confident mistakes.
"""

from .reports import attribute_report, compare_runs, format_comparison, format_report, resolve_thresholds
from .selection import error_rows
from .thresholds import evaluated_checkpoint, save_thresholds_to_checkpoint, tune_run

__all__ = [
    "attribute_report", "compare_runs", "error_rows", "evaluated_checkpoint", "format_comparison", "format_report",
    "resolve_thresholds", "save_thresholds_to_checkpoint", "tune_run",
]
