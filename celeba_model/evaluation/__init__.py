"""Running checkpoints over whole splits into predictions artifacts.

- ``batched``: probabilities for cached images in large batches, on CPU or GPU, and the one place the
  sigmoid and flip averaging are applied (``sigmoid_probabilities``, photos use it too);
- ``evaluate``: one checkpoint (``evaluate``) or several (``evaluate_checkpoints``) over a split,
  saved as artifacts (``EvalConfig``);
- ``predictions``: the artifact (``predictions.npz`` + ``meta.json``) and loading it;
- ``imported``: another tool's predictions (CSV or NPZ, read by ``import_table``) saved as an artifact
  (``import_predictions``), and artifacts written back in that format (``export_predictions_csv``);
- ``embeddings``: a run's penultimate-layer features (``embeddings.npz``) for its aligned images, and
  loading them (``load_embeddings``; photo runs are embedded by ``celeba_model.photo.embeddings``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_package

# Public name -> its module, imported on first use: importing the package costs nothing (the dashboard's
# first page needs a few of these modules, not torch).
_NAMES = {
    "predict_probabilities": ".batched", "sigmoid_probabilities": ".batched",
    "EvalConfig": ".evaluate", "evaluate": ".evaluate", "evaluate_checkpoint": ".evaluate",
    "evaluate_checkpoints": ".evaluate",
    "ImportPredictionsError": ".imported", "ImportSummary": ".imported", "export_predictions": ".imported",
    "export_predictions_csv": ".imported", "import_predictions": ".imported",
    "Predictions": ".predictions", "load_predictions": ".predictions", "save_predictions": ".predictions",
}
lazy_package(__name__, _NAMES)
__all__ = sorted(_NAMES)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load on first use
    from .batched import predict_probabilities, sigmoid_probabilities  # noqa: F401
    from .evaluate import EvalConfig, evaluate, evaluate_checkpoint, evaluate_checkpoints  # noqa: F401
    from .imported import ImportPredictionsError, ImportSummary, export_predictions, export_predictions_csv, import_predictions  # noqa: F401
    from .predictions import Predictions, load_predictions, save_predictions  # noqa: F401
