"""Thresholds from predictions artifacts: tuning them on a validation run, and saving them for the
checkpoint that made the run.

"The checkpoint's thresholds" are always read from the checkpoint at the moment they are used,
never from a copy: a predictions artifact records which checkpoint made it (path and weights
digest), and ``evaluated_checkpoint`` finds that file again and checks it still holds those
weights. Where they are kept is ``celeba_model.models.thresholds``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ConfigError
from ..evaluation.predictions import Predictions, recorded_checkpoint
from ..metrics.sweep import tune_thresholds
from ..models.header import read_checkpoint_meta
from ..models.thresholds import store_thresholds
from ..utils.fileio import atomic_write_text
from ..workspace import default_workspace_root

THRESHOLDS_FILE = "thresholds.json"


def thresholds_record(
    predictions: Predictions,
    thresholds: Sequence[float],
    objective: str = "manual",
    target: float | None = None,
) -> dict:
    """Thresholds with where they came from, in the format of thresholds.json."""
    meta = predictions.meta
    return {
        "thresholds": {a: float(t) for a, t in zip(predictions.attributes, thresholds)},
        "objective": objective,
        "target": target,
        "source": str(predictions.folder),
        "split": meta.get("split"),
        "checkpoint": meta.get("checkpoint", {}).get("path"),
        "weights_sha256": meta.get("checkpoint", {}).get("weights_sha256"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def tune_run(predictions: Predictions, objective: str = "f1", target: float | None = None, write: bool = True) -> dict:
    """Choose per-attribute thresholds on ``predictions``; write RUN/thresholds.json when ``write``."""
    if predictions.meta.get("split") == "test":
        raise ConfigError(
            f"{predictions.folder} holds test-split predictions; tune thresholds on the val split and apply them "
            "to test, or the test figures are no longer an unbiased estimate"
        )
    if objective in ("precision", "recall") and (target is None or not 0.0 < target <= 1.0):
        raise ConfigError(f"--objective {objective} needs --target between 0 and 1")
    choice = tune_thresholds(predictions.labels, predictions.probabilities, objective=objective, target=target)
    attributes = predictions.attributes
    result = thresholds_record(predictions, choice.thresholds, objective, target)
    result["achieved"] = {a: float(v) for a, v in zip(attributes, choice.achieved)}
    result["feasible"] = {a: bool(f) for a, f in zip(attributes, choice.feasible)}
    if write and predictions.folder is not None:
        path = Path(predictions.folder) / THRESHOLDS_FILE
        atomic_write_text(path, json.dumps(result, indent=2))
        result["file"] = str(path)
    return result


def evaluated_checkpoint(predictions: Predictions, workspace_root: Path | None = None) -> Path:
    """The checkpoint file that made ``predictions``, checked to still hold the evaluated weights.

    A relative recorded path (shipped artifacts) is taken relative to the workspace. Raises a
    ConfigError saying what happened when the file moved, was deleted or now holds other weights.
    """
    where = predictions.folder or "these predictions"
    if "imported" in predictions.meta:
        raise ConfigError(f"{where} holds predictions imported from {predictions.meta['imported'].get('source')}: "
                          "no checkpoint stores their thresholds; give them as a number or as the thresholds JSON "
                          "file that `tune` writes")
    if "crossfit" in predictions.meta:
        raise ConfigError(f"{where} holds out-of-fold predictions of several crossfit models: no checkpoint stores "
                          "their thresholds; give them as a number or a thresholds JSON file")
    return recorded_checkpoint(
        predictions, workspace_root, error=ConfigError, changed_remedy="re-evaluate it first",
        moved_remedy="evaluate the checkpoint again where it is now, or give the thresholds as a number or a "
        "thresholds JSON file")


def save_thresholds_to_checkpoint(
    predictions: Predictions, result: dict, workspace_root: Path | None = None, checkpoint: str | Path | None = None
) -> Path:
    """Store tuned thresholds for the checkpoint that produced ``predictions`` (``store_thresholds``:
    its metadata, or the workspace's override for a shipped or read-only one); returns the file written.

    Refused when the checkpoint's weights changed since the evaluation: thresholds tuned on one
    model's scores mean nothing for another.
    """
    workspace_root = default_workspace_root(workspace_root)
    path = Path(checkpoint) if checkpoint is not None else evaluated_checkpoint(predictions, workspace_root)
    header = read_checkpoint_meta(path)
    expected = predictions.meta.get("checkpoint", {}).get("weights_sha256")
    if expected and header.weights_sha256 != expected:
        raise ConfigError(f"{path} has different weights from the model evaluated in {predictions.folder}; re-evaluate it first")
    attributes = header.meta.get("attributes")
    if attributes != predictions.attributes:
        raise ConfigError(f"{path} predicts {attributes}, the thresholds are for {predictions.attributes}")
    values = {a: float(result["thresholds"][a]) for a in predictions.attributes}
    info = {k: result.get(k) for k in ("objective", "target", "source", "split", "created")}
    return store_thresholds(path, values, info, workspace_root)








