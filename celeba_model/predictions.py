"""The predictions artifact: what an evaluation saves and every analysis reads.

One evaluation is one folder holding:

- ``predictions.npz`` (authoritative, written atomically, loads without pickle):
  ``probabilities`` (N, A) float32 sigmoid outputs; ``labels`` (N, A) uint8 ground truth;
  ``files`` (N,) image names as in list_attr_celeba.txt; ``paths`` (N,) where the images were read;
  ``identity`` (N,) person ids (-1 unknown); ``meta`` the JSON metadata below, as a string.
- ``meta.json``: a readable copy of the metadata: format, checkpoint (path, architecture,
  SHA-256, thresholds stored in it), split, data roots, attribute names, preprocessing, counts
  (images, positives per attribute), timing (seconds, images/s, device, batch size), test-time
  options (flip averaging) and creation time.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import CelebAModelError
from .fileio import atomic_write_bytes, atomic_write_text

FORMAT = "celeba_model/predictions-v1"
ARRAY_FILE = "predictions.npz"
META_FILE = "meta.json"


class PredictionsError(CelebAModelError, ValueError):
    """A predictions artifact that is missing, incomplete or not of this format."""


@dataclass
class Predictions:
    """Model outputs and ground truth for one split, as saved by an evaluation."""

    probabilities: np.ndarray
    labels: np.ndarray
    files: np.ndarray
    paths: np.ndarray
    identity: np.ndarray
    meta: dict = field(default_factory=dict)
    folder: Path | None = None

    def __post_init__(self) -> None:
        n, a = self.probabilities.shape
        if self.labels.shape != (n, a):
            raise PredictionsError(f"labels {self.labels.shape} do not match probabilities {self.probabilities.shape}")
        for name in ("files", "paths", "identity"):
            if len(getattr(self, name)) != n:
                raise PredictionsError(f"{name} has {len(getattr(self, name))} entries for {n} predictions")
        if len(self.attributes) != a:
            raise PredictionsError(f"{len(self.attributes)} attribute names for {a} columns")

    @property
    def attributes(self) -> list[str]:
        return list(self.meta["attributes"])

    @property
    def name(self) -> str:
        """A short label for tables: the run folder and split, e.g. ``paper/test``."""
        if self.folder is None:
            return self.meta.get("checkpoint", {}).get("arch", "predictions")
        return f"{self.folder.parent.name}/{self.folder.name}"

    def __len__(self) -> int:
        return len(self.files)


def save_predictions(folder: str | Path, predictions: Predictions) -> Path:
    """Write the artifact into ``folder`` (created); returns the folder."""
    folder = Path(folder)
    meta = {"format": FORMAT, **predictions.meta}
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        probabilities=predictions.probabilities.astype(np.float32),
        labels=predictions.labels.astype(np.uint8),
        files=np.asarray(predictions.files, dtype=str),
        paths=np.asarray(predictions.paths, dtype=str),
        identity=np.asarray(predictions.identity, dtype=np.int64),
        meta=np.array(json.dumps(meta)),
    )
    # meta.json goes first and comes back last, so its presence means it describes the arrays beside it.
    (folder / META_FILE).unlink(missing_ok=True)
    atomic_write_bytes(folder / ARRAY_FILE, buffer.getvalue())
    atomic_write_text(folder / META_FILE, json.dumps(meta, indent=2))
    return folder


def load_predictions(path: str | Path) -> Predictions:
    """Load an artifact from its folder (or its predictions.npz), with a clear error if it is not one."""
    path = Path(path)
    array_file = path / ARRAY_FILE if path.is_dir() else path
    folder = array_file.parent
    if not array_file.is_file():
        raise PredictionsError(f"{path}: no {ARRAY_FILE} here; run `python -m celeba_model evaluate` to make one")
    try:
        with np.load(array_file, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("probabilities", "labels", "files", "paths", "identity", "meta")}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise PredictionsError(f"{array_file}: not a readable predictions artifact ({err})") from err
    if meta.get("format") != FORMAT:
        raise PredictionsError(f"{array_file}: format {meta.get('format')!r} is not {FORMAT!r}")
    return Predictions(meta=meta, folder=folder, **arrays)


def find_prediction_runs(root: str | Path) -> list[Path]:
    """Every artifact folder under ``root``, sorted by path (for listing runs in the dashboard)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob(ARRAY_FILE))
