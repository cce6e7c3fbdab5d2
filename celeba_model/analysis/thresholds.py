"""Decision thresholds: tuned on a validation artifact, stored with their checkpoint, read when used.

"The checkpoint's thresholds" are always read from the checkpoint at the moment they are used,
never from a copy: a predictions artifact records which checkpoint made it (path and weights
digest), and ``evaluated_checkpoint`` finds that file again and checks it still holds those
weights. Thresholds tuned for a checkpoint that must not be rewritten (a shipped, version-controlled
one, or a read-only file) are kept in the workspace as an override, ``runs/thresholds/NAME-DIGEST.json``,
matched by weights digest; the override wins over the checkpoint's own metadata.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..evaluation.predictions import Predictions
from ..metrics.sweep import tune_thresholds
from ..models.checkpoint import read_checkpoint_meta, update_checkpoint_meta
from ..utils.fileio import atomic_write_text
from ..workspace import (
    default_workspace_root,
    find_threshold_override,
    is_protected_checkpoint,
    threshold_override_file,
)

THRESHOLDS_FILE = "thresholds.json"
CHECKPOINT = "checkpoint"  # the --thresholds choice that means "the thresholds stored for the checkpoint"


@dataclass(frozen=True)
class StoredThresholds:
    """Tuned thresholds found for a checkpoint, and the file they were read from."""

    values: dict[str, float]
    source: Path
    info: dict


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
    recorded = predictions.meta.get("checkpoint", {})
    where = predictions.folder or "these predictions"
    if not recorded.get("path") or not recorded.get("weights_sha256"):
        raise ConfigError(f"{where} does not record which checkpoint made it; re-evaluate the checkpoint")
    path = Path(recorded["path"])
    if not path.is_absolute():
        path = default_workspace_root(workspace_root) / path
    if not path.is_file():
        raise ConfigError(
            f"{where} was made by {path}, which is no longer there (moved or deleted); evaluate the checkpoint "
            "again where it is now, or give the thresholds as a number or a thresholds JSON file"
        )
    current = read_checkpoint_meta(path)["weights_sha256"]
    if current != recorded["weights_sha256"]:
        raise ConfigError(
            f"{path} has different weights from the model evaluated in {where} (weights digest "
            f"{current[:12]}... now, {recorded['weights_sha256'][:12]}... then: retrained or replaced); "
            "re-evaluate it first"
        )
    return path


def stored_thresholds(checkpoint: str | Path, workspace_root: Path | None = None) -> StoredThresholds | None:
    """The tuned thresholds kept for a checkpoint, read now: the workspace's override for its weights
    if there is one, else the thresholds in its metadata; None when neither exists."""
    header = read_checkpoint_meta(checkpoint)
    digest = header["weights_sha256"]
    override = find_threshold_override(default_workspace_root(workspace_root), digest)
    if override is not None:
        try:
            data = json.loads(override.read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"{override}: unreadable thresholds override ({err}); delete it or tune again") from err
        if isinstance(data, dict) and data.get("weights_sha256") == digest and isinstance(data.get("thresholds"), dict):
            return StoredThresholds(data["thresholds"], override, data.get("thresholds_info", {}))
    values = header["meta"].get("thresholds")
    if not values:
        return None
    return StoredThresholds(values, Path(checkpoint), header["meta"].get("thresholds_info", {}))


def save_thresholds_to_checkpoint(
    predictions: Predictions, result: dict, workspace_root: Path | None = None, checkpoint: str | Path | None = None
) -> Path:
    """Store tuned thresholds for the checkpoint that produced ``predictions``; returns the file written.

    The checkpoint's own metadata is updated when the file may be rewritten (the user's training
    output); for a shipped or read-only checkpoint they go to the workspace's override file and the
    checkpoint stays byte-identical. Refused when the checkpoint's weights changed since the
    evaluation: thresholds tuned on one model's scores mean nothing for another.
    """
    workspace_root = default_workspace_root(workspace_root)
    path = Path(checkpoint) if checkpoint is not None else evaluated_checkpoint(predictions, workspace_root)
    header = read_checkpoint_meta(path)
    expected = predictions.meta.get("checkpoint", {}).get("weights_sha256")
    if expected and header["weights_sha256"] != expected:
        raise ConfigError(f"{path} has different weights from the model evaluated in {predictions.folder}; re-evaluate it first")
    attributes = header["meta"].get("attributes")
    if attributes != predictions.attributes:
        raise ConfigError(f"{path} predicts {attributes}, the thresholds are for {predictions.attributes}")
    values = {a: float(result["thresholds"][a]) for a in predictions.attributes}
    info = {k: result.get(k) for k in ("objective", "target", "source", "split", "created")}
    digest = header["weights_sha256"]
    override = find_threshold_override(workspace_root, digest)
    if is_protected_checkpoint(path, workspace_root):
        target = override or threshold_override_file(workspace_root, path, digest)
        record = {"checkpoint": str(path), "weights_sha256": digest, "thresholds": values, "thresholds_info": info}
        atomic_write_text(target, json.dumps(record, indent=2))
        return target
    update_checkpoint_meta(path, {"thresholds": values, "thresholds_info": info})
    if override is not None:
        override.unlink()  # it would otherwise hide the thresholds just saved
    return path


def default_thresholds(
    checkpoint: str | Path, attributes: Sequence[str], workspace_root: Path | None = None
) -> tuple[np.ndarray, str]:
    """The thresholds a photo is judged by unless told otherwise (the Upload page, ``predict``): those
    stored for the checkpoint when it has some, else 0.5 for every attribute."""
    if stored_thresholds(checkpoint, workspace_root) is None:
        return thresholds_for(0.5, attributes, checkpoint, workspace_root)
    return thresholds_for(CHECKPOINT, attributes, checkpoint, workspace_root)


def thresholds_for(
    choice: str | float | Mapping | None,
    attributes: Sequence[str],
    checkpoint: str | Path | None,
    workspace_root: Path | None = None,
) -> tuple[np.ndarray, str]:
    """Per-attribute thresholds and a label saying where they came from.

    ``choice``: a number (one threshold for all), ``"checkpoint"`` (the thresholds stored for
    ``checkpoint``, see ``stored_thresholds``), a thresholds JSON file (as written by ``tune``), or
    a mapping attribute -> threshold.
    """
    if choice is None:
        choice = 0.5
    if isinstance(choice, (int, float)) or (isinstance(choice, str) and _is_number(choice)):
        value = float(choice)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"A threshold must be between 0 and 1, got {value}")
        return np.full(len(attributes), value), f"{value:g}"
    if isinstance(choice, Mapping):
        return _from_mapping(choice, attributes, "given"), "given"
    if choice == CHECKPOINT:
        if checkpoint is None:
            raise ConfigError("--thresholds checkpoint needs a checkpoint")
        stored = stored_thresholds(checkpoint, workspace_root)
        if stored is None:
            raise ConfigError(
                f"{checkpoint} has no tuned thresholds; run `python -m celeba_model tune --run VAL_RUN "
                "--save-to-checkpoint` on a validation run of it first, or pass a number"
            )
        return _from_mapping(stored.values, attributes, str(stored.source)), str(stored.source)
    path = Path(choice)
    if not path.is_file():
        raise ConfigError(f"--thresholds {choice!r} is neither a number, 'checkpoint', nor a thresholds JSON file")
    try:
        values = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: not a readable thresholds JSON file ({err})") from err
    if isinstance(values, dict) and isinstance(values.get("thresholds"), dict):
        values = values["thresholds"]
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a JSON object of attribute thresholds")
    return _from_mapping(values, attributes, str(path)), str(path)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _from_mapping(values: Mapping, attributes: Sequence[str], source: str) -> np.ndarray:
    missing = [a for a in attributes if a not in values]
    if missing:
        raise ConfigError(f"Thresholds from {source} lack attribute(s): {', '.join(missing)}")
    try:
        thresholds = np.array([float(values[a]) for a in attributes])
    except (TypeError, ValueError) as err:
        raise ConfigError(f"Thresholds from {source} are not all numbers ({err})") from err
    if not all(math.isfinite(t) and 0.0 <= t <= 1.0 for t in thresholds):
        raise ConfigError(f"Thresholds from {source} must lie between 0 and 1")
    return thresholds
