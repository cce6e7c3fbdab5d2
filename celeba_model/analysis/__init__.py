"""Reading predictions artifacts: thresholds, reports, the examples worth looking at.

- ``thresholds``: tuning on a validation artifact and saving the thresholds for the checkpoint that
  made it (where they are kept and how they are read: ``celeba_model.models.thresholds``);
- ``reports``: the per-attribute table beside the paper's, ablation comparisons, experiment tables;
- ``selection``: one attribute's most confident mistakes;
- ``slices``: where a model fails, by group: one target's metrics by attribute or person with
  intervals over people, target x group cells and worst-group accuracy, fairlearn's fairness
  differences, the bias map of every target x attribute, per-group thresholds;
- ``label_issues``: likely label errors per attribute (cleanlab);
- ``embedding_map``: a run's features drawn in 2-D by UMAP, cached as ``map.npz`` (``map_for``), and the
  values its points are coloured by (``point_colors``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_package

# Public name -> its module, imported on first use: importing the package costs nothing (the dashboard's
# first page needs a few of these modules, not torch).
_NAMES = {
    "attribute_report": ".reports", "compare_runs": ".reports", "format_comparison": ".reports",
    "format_report": ".reports", "resolve_thresholds": ".reports",
    "error_rows": ".selection",
    "BiasMap": ".slices", "GroupThresholds": ".slices", "SliceReport": ".slices", "bias_map": ".slices",
    "fit_group_thresholds": ".slices", "slice_metrics": ".slices", "slice_report": ".slices",
    "evaluated_checkpoint": ".thresholds", "save_thresholds_to_checkpoint": ".thresholds", "tune_run": ".thresholds",
}
lazy_package(__name__, _NAMES)
__all__ = sorted(_NAMES)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load on first use
    from .reports import attribute_report, compare_runs, format_comparison, format_report, resolve_thresholds  # noqa: F401
    from .selection import error_rows  # noqa: F401
    from .slices import BiasMap, GroupThresholds, SliceReport, bias_map, fit_group_thresholds, slice_metrics, slice_report  # noqa: F401
    from .thresholds import evaluated_checkpoint, save_thresholds_to_checkpoint, tune_run  # noqa: F401
