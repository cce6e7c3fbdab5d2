"""Running checkpoints over whole splits into predictions artifacts.

- ``batched``: probabilities for cached images in large batches, on CPU or GPU, with flip averaging;
- ``evaluate``: one or several checkpoints over a split, saved as artifacts (``EvalConfig``);
- ``predictions``: the artifact (``predictions.npz`` + ``meta.json``) and loading it.
"""

from .batched import predict_probabilities
from .evaluate import EvalConfig, evaluate_checkpoint, evaluate_checkpoints
from .predictions import Predictions, load_predictions, save_predictions

__all__ = [
    "EvalConfig", "Predictions", "evaluate_checkpoint", "evaluate_checkpoints", "load_predictions",
    "predict_probabilities", "save_predictions",
]
