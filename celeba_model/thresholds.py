"""Tuned decision thresholds: chosen on a validation artifact, saved as JSON and into the checkpoint."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from .checkpoint import load_checkpoint, update_checkpoint_meta
from .errors import ConfigError
from .fileio import atomic_write_text
from .predictions import Predictions
from .sweep import tune_thresholds

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


def save_thresholds_to_checkpoint(predictions: Predictions, result: dict, checkpoint: str | Path | None = None) -> Path:
    """Store tuned thresholds in the metadata of the checkpoint that produced ``predictions``.

    Refuses when that checkpoint's weights changed since the evaluation: thresholds tuned on one
    model's scores mean nothing for another.
    """
    path = Path(checkpoint or predictions.meta.get("checkpoint", {}).get("path") or "")
    if not path.is_file():
        raise ConfigError(f"The evaluated checkpoint {path} is not on disk; pass the checkpoint path explicitly")
    current = load_checkpoint(path)
    expected = predictions.meta.get("checkpoint", {}).get("weights_sha256")
    if expected and current.weights_sha256 != expected:
        raise ConfigError(f"{path} has different weights from the model evaluated in {predictions.folder}; re-evaluate it first")
    if current.attributes != predictions.attributes:
        raise ConfigError(f"{path} predicts {current.attributes}, the thresholds are for {predictions.attributes}")
    update_checkpoint_meta(path, {
        "thresholds": result["thresholds"],
        "thresholds_info": {k: result[k] for k in ("objective", "target", "source", "split", "created")},
    })
    return path
