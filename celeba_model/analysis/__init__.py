"""Reading predictions artifacts: thresholds, reports, the examples worth looking at.

- ``thresholds``: tuning on a validation artifact and saving the thresholds for the checkpoint that
  made it (where they are kept and how they are read: ``celeba_model.models.thresholds``);
- ``reports``: the per-attribute table beside the paper's, ablation comparisons, experiment tables;
- ``selection``: one attribute's most confident mistakes;
- ``slices``: where a model fails, by group: one target's metrics by attribute or person with
  intervals over people, target x group cells and worst-group accuracy, fairlearn's fairness
  differences, the bias map of every target x attribute, per-group thresholds.
"""

from .reports import attribute_report, compare_runs, format_comparison, format_report, resolve_thresholds
from .selection import error_rows
from .slices import BiasMap, GroupThresholds, SliceReport, bias_map, fit_group_thresholds, slice_metrics, slice_report
from .thresholds import evaluated_checkpoint, save_thresholds_to_checkpoint, tune_run

__all__ = [
    "BiasMap", "GroupThresholds", "SliceReport", "attribute_report", "bias_map", "compare_runs", "error_rows",
    "evaluated_checkpoint", "fit_group_thresholds", "format_comparison", "format_report", "resolve_thresholds",
    "save_thresholds_to_checkpoint", "slice_metrics", "slice_report", "tune_run",
]
