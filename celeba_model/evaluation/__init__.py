"""Running checkpoints over whole splits into predictions artifacts.

- ``batched``: probabilities for cached images in large batches, on CPU or GPU, and the one place the
  sigmoid and flip averaging are applied (``sigmoid_probabilities``, photos use it too);
- ``evaluate``: one checkpoint (``evaluate``) or several (``evaluate_checkpoints``) over a split,
  saved as artifacts (``EvalConfig``);
- ``predictions``: the artifact (``predictions.npz`` + ``meta.json``) and loading it;
- ``imported``: another tool's predictions (CSV or NPZ, read by ``import_table``) saved as an artifact
  (``import_predictions``), and artifacts written back in that format (``export_predictions_csv``).
"""

from .batched import predict_probabilities, sigmoid_probabilities
from .evaluate import EvalConfig, evaluate, evaluate_checkpoint, evaluate_checkpoints
from .imported import ImportPredictionsError, ImportSummary, export_predictions, export_predictions_csv, import_predictions
from .predictions import Predictions, load_predictions, save_predictions

__all__ = [
    "EvalConfig", "ImportPredictionsError", "ImportSummary", "Predictions", "evaluate", "evaluate_checkpoint",
    "evaluate_checkpoints", "export_predictions", "export_predictions_csv", "import_predictions", "load_predictions",
    "predict_probabilities", "save_predictions", "sigmoid_probabilities",
]
