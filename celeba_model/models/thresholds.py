"""Decision thresholds kept with a checkpoint, read at the moment they are used.

A checkpoint's tuned thresholds live in its metadata, or, for a checkpoint that must not be
rewritten (a shipped, version-controlled one, or a read-only file), in the workspace as an override,
``runs/thresholds/NAME-DIGEST.json``, matched by weights digest; the override wins over the
checkpoint's own metadata. ``thresholds_for`` turns any user choice (a number, ``"checkpoint"``, a
thresholds JSON file, a mapping) into one threshold per attribute. Tuning thresholds on predictions
is ``celeba_model.analysis.thresholds``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..utils.fileio import atomic_write_text
from ..workspace import (
    default_workspace_root,
    find_threshold_override,
    is_protected_checkpoint,
    threshold_override_file,
)
from .header import read_checkpoint_meta

CHECKPOINT = "checkpoint"  # the --thresholds choice that means "the thresholds stored for the checkpoint"


@dataclass(frozen=True)
class StoredThresholds:
    """Tuned thresholds found for a checkpoint, and the file they were read from."""

    values: dict[str, float]
    source: Path
    info: dict


def stored_thresholds(checkpoint: str | Path, workspace_root: Path | None = None) -> StoredThresholds | None:
    """The tuned thresholds kept for a checkpoint, read now: the workspace's override for its weights
    if there is one, else the thresholds in its metadata; None when neither exists."""
    header = read_checkpoint_meta(checkpoint)
    digest = header.weights_sha256
    override = find_threshold_override(default_workspace_root(workspace_root), digest)
    if override is not None:
        try:
            data = json.loads(override.read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"{override}: unreadable thresholds override ({err}); delete it or tune again") from err
        if isinstance(data, dict) and data.get("weights_sha256") == digest and isinstance(data.get("thresholds"), dict):
            return StoredThresholds(data["thresholds"], override, data.get("thresholds_info", {}))
    values = header.meta.get("thresholds")
    if not values:
        return None
    return StoredThresholds(values, Path(checkpoint), header.meta.get("thresholds_info", {}))


def store_thresholds(checkpoint: str | Path, values: Mapping[str, float], info: dict,
                     workspace_root: Path | None = None) -> Path:
    """Keep ``values`` as the checkpoint's thresholds; returns the file written.

    The checkpoint's own metadata is updated when the file may be rewritten (the user's training
    output); for a shipped or read-only checkpoint they go to the workspace's override file and the
    checkpoint stays byte-identical.
    """
    workspace_root = default_workspace_root(workspace_root)
    header = read_checkpoint_meta(checkpoint)
    digest = header.weights_sha256
    values = {a: float(v) for a, v in values.items()}
    override = find_threshold_override(workspace_root, digest)
    if is_protected_checkpoint(checkpoint, workspace_root):
        target = override or threshold_override_file(workspace_root, checkpoint, digest)
        record = {"checkpoint": str(checkpoint), "weights_sha256": digest, "thresholds": values, "thresholds_info": info}
        atomic_write_text(target, json.dumps(record, indent=2))
        return target
    from .checkpoint import update_checkpoint_meta  # torch: only when a checkpoint file is rewritten

    update_checkpoint_meta(checkpoint, {"thresholds": values, "thresholds_info": info})
    if override is not None:
        override.unlink()  # it would otherwise hide the thresholds just saved
    return Path(checkpoint)


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
