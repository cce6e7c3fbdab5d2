"""The predictions artifact: what an evaluation saves and every analysis reads.

One evaluation is one folder holding:

- ``predictions.npz`` (authoritative, written atomically, loads without pickle):
  ``probabilities`` (N, A) float32 sigmoid outputs; ``labels`` (N, A) uint8 ground truth;
  ``files`` (N,) image names as in list_attr_celeba.txt; ``paths`` (N,) where the images were read;
  ``identity`` (N,) person ids (-1 unknown); ``meta`` the JSON metadata below, as a string;
  optionally ``celeba_labels`` (N, 40) uint8, all 40 CelebA labels of each image in
  ``CELEBA_ATTRIBUTES`` order, when the data had them (slices by any attribute read it; artifacts
  without it load as before).
- ``meta.json``: a readable copy of the metadata: format, checkpoint (its absolute path, or one
  relative to the workspace for shipped artifacts, architecture and weights SHA-256: which model
  made these predictions; its tuned thresholds are read from it when used, never copied here),
  split, data roots, attribute names, preprocessing, counts (images, positives per attribute),
  timing (seconds, images/s, device, batch size), test-time options (flip averaging) and creation
  time.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..attributes import CELEBA_ATTRIBUTES
from ..data.celeba_files import CelebANotFoundError, find_layout
from ..data.corrections import LabelCorrections
from ..errors import CelebAModelError
from ..models.header import read_checkpoint_meta
from ..utils.fileio import atomic_write_files
from ..workspace import ARTIFACT_FILE as ARRAY_FILE
from ..workspace import default_workspace_root

FORMAT = "celeba_model/predictions-v1"
META_FILE = "meta.json"


class PredictionsError(CelebAModelError, ValueError):
    """A predictions artifact that is missing, incomplete or not of this format."""


class PredictionsWarning(UserWarning):
    """Something off in an artifact that does not stop its use (a damaged meta.json copy)."""


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
    # All 40 CelebA labels per image (N, 40) uint8 in CELEBA_ATTRIBUTES order; None when unknown.
    celeba_labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, a = self.probabilities.shape
        if self.labels.shape != (n, a):
            raise PredictionsError(f"labels {self.labels.shape} do not match probabilities {self.probabilities.shape}")
        for name in ("files", "paths", "identity"):
            if len(getattr(self, name)) != n:
                raise PredictionsError(f"{name} has {len(getattr(self, name))} entries for {n} predictions")
        if len(self.attributes) != a:
            raise PredictionsError(f"{len(self.attributes)} attribute names for {a} columns")
        if self.celeba_labels is not None:
            celeba = np.asarray(self.celeba_labels)
            if celeba.shape != (n, len(CELEBA_ATTRIBUTES)):
                raise PredictionsError(f"celeba_labels {celeba.shape} is not ({n}, {len(CELEBA_ATTRIBUTES)})")
            if celeba.size and not np.isin(celeba, (0, 1)).all():
                raise PredictionsError("celeba_labels must hold only 0 and 1 (store None when a label is unknown)")
            self.celeba_labels = celeba.astype(np.uint8)

    @property
    def attributes(self) -> list[str]:
        return list(self.meta["attributes"])

    @property
    def labeled_attributes(self) -> list[str]:
        """The attributes ``group_labels`` can give: all 40 (CelebA order) with ``celeba_labels``,
        else the model's own."""
        return list(CELEBA_ATTRIBUTES) if self.celeba_labels is not None else self.attributes

    def group_labels(self, name: str) -> np.ndarray:
        """The (N,) 0/1 ground truth of any CelebA attribute: from ``celeba_labels`` when stored, else
        from the model's own label columns; a clear error when this artifact does not know it."""
        if self.celeba_labels is not None and name in CELEBA_ATTRIBUTES:
            return self.celeba_labels[:, CELEBA_ATTRIBUTES.index(name)]
        if name in self.attributes:
            return self.labels[:, self.attributes.index(name)].astype(np.uint8)
        if name not in CELEBA_ATTRIBUTES:
            raise PredictionsError(f"{name!r} is not a CelebA attribute")
        raise PredictionsError(f"{self.name} has no labels of {name}: it stores only the model's attributes "
                               f"({', '.join(self.attributes)}); evaluate again to store all 40 labels")

    def with_corrections(self, corrections: LabelCorrections) -> Predictions:
        """A copy whose labels (the model's and all 40) carry ``corrections``; ``meta["label_corrections"]``
        says which file and how many of the model's labels changed. Probabilities are untouched."""
        labels, changed = corrections.apply(self.files, self.attributes, self.labels)
        celeba = self.celeba_labels
        if celeba is not None:
            celeba = corrections.apply(self.files, list(CELEBA_ATTRIBUTES), celeba)[0]
        per_attribute = (labels != self.labels).sum(axis=0)
        record = {"file": str(corrections.path) if corrections.path else None, "changed": changed,
                  "changed_per_attribute": {a: int(n) for a, n in zip(self.attributes, per_attribute)}}
        return replace(self, labels=labels, celeba_labels=celeba, meta={**self.meta, "label_corrections": record})

    @property
    def name(self) -> str:
        """A short label for tables: the run folder and split, e.g. ``paper/test``."""
        if self.folder is None:
            return self.meta.get("checkpoint", {}).get("arch", "predictions")
        return f"{self.folder.parent.name}/{self.folder.name}"

    def __len__(self) -> int:
        return len(self.files)

    def image_paths(self, workspace_root: Path | None = None, data_root: str | Path | None = None) -> list[str | None]:
        """``image_path`` of every row at once (the folders are looked up once, not per image): for pages
        that need all of a run's images, such as the Map's hover faces."""
        root = default_workspace_root(workspace_root)
        try:
            image_dir = find_layout(data_root).image_dir if data_root else None
        except CelebANotFoundError:
            image_dir = None
        found: list[str | None] = []
        for recorded, name in zip(self.paths, self.files):
            path = os.path.join(root, str(recorded))  # an absolute recorded path stays as it is
            if not os.path.isfile(path):
                path = os.path.join(image_dir, str(name)) if image_dir is not None else ""
            found.append(path if path and os.path.isfile(path) else None)
        return found

    def image_path(self, row: int, workspace_root: Path | None = None, data_root: str | Path | None = None) -> Path | None:
        """Where to read image ``row`` now: the path recorded at evaluation (a relative one under the
        workspace), else the same file name in ``data_root``'s image folder (an artifact made on
        another machine), else None."""
        recorded = Path(str(self.paths[row]))
        if not recorded.is_absolute():
            recorded = default_workspace_root(workspace_root) / recorded
        if recorded.is_file():
            return recorded
        if not data_root:
            return None
        try:
            candidate = find_layout(data_root).image_dir / str(self.files[row])
        except CelebANotFoundError:
            return None
        return candidate if candidate.is_file() else None


def recorded_checkpoint(predictions: Predictions, workspace_root: Path | None = None, *, moved_remedy: str,
                        changed_remedy: str, error: type[CelebAModelError] = CelebAModelError) -> Path:
    """The checkpoint file that made ``predictions``, checked to still hold the evaluated weights: the one
    check behind tuned thresholds and embeddings, which only word the remedy (``*_remedy``) and the
    ``error`` class their own way. A relative recorded path (shipped artifacts) is taken relative to
    the workspace."""
    recorded = predictions.meta.get("checkpoint", {})
    where = predictions.folder or "these predictions"
    if not recorded.get("path") or not recorded.get("weights_sha256"):
        raise error(f"{where} does not record which checkpoint made it; re-evaluate the checkpoint")
    path = Path(recorded["path"])
    if not path.is_absolute():
        path = default_workspace_root(workspace_root) / path
    if not path.is_file():
        raise error(f"{where} was made by {path}, which is no longer there (moved or deleted); {moved_remedy}")
    current = read_checkpoint_meta(path).weights_sha256
    if current != recorded["weights_sha256"]:
        raise error(f"{path} has different weights from the model evaluated in {where} (weights digest "
                    f"{str(current)[:12]}... now, {recorded['weights_sha256'][:12]}... then: retrained or replaced); "
                    f"{changed_remedy}")
    return path


def save_predictions(folder: str | Path, predictions: Predictions) -> Path:
    """Write the artifact into ``folder`` (created); returns the folder.

    Both files are written completely before either replaces its predecessor, so a failed write
    (a full disk) leaves the previous artifact whole.
    """
    folder = Path(folder)
    meta = {"format": FORMAT, **predictions.meta}
    celeba = predictions.celeba_labels
    optional = {} if celeba is None else {"celeba_labels": celeba.astype(np.uint8)}  # older readers ignore it
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        probabilities=predictions.probabilities.astype(np.float32),
        labels=predictions.labels.astype(np.uint8),
        files=np.asarray(predictions.files, dtype=str),
        paths=np.asarray(predictions.paths, dtype=str),
        identity=np.asarray(predictions.identity, dtype=np.int64),
        meta=np.array(json.dumps(meta)),
        **optional,
    )
    atomic_write_files([(folder / ARRAY_FILE, buffer.getvalue()),
                        (folder / META_FILE, json.dumps(meta, indent=2).encode("utf-8"))])
    return folder


def recorded_weights(folder: str | Path) -> str | None:
    """The weights digest of the checkpoint that made the artifact in ``folder``, read cheaply
    (only the metadata entry of predictions.npz); None when the folder holds no readable artifact."""
    try:
        with np.load(Path(folder) / ARRAY_FILE, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
        return meta["checkpoint"]["weights_sha256"]
    except Exception:  # noqa: BLE001 - any damage means "not a readable artifact" here
        return None


def check_replaceable(folder: str | Path, weights_sha256: str, overwrite: bool = False) -> None:
    """Refuse to replace an artifact made from another checkpoint (other weights) unless ``overwrite``.

    Re-evaluating the same weights into their own folder is always allowed.
    """
    folder = Path(folder)
    if overwrite or not (folder / ARRAY_FILE).exists():
        return
    recorded = recorded_weights(folder)
    if recorded == weights_sha256:
        return
    what = ("predictions of another checkpoint (weights " + recorded[:12] + "...)") if recorded else "an unreadable artifact"
    raise PredictionsError(
        f"{folder} already holds {what}; pass --overwrite to replace it, or choose another --out (nothing was changed)"
    )


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
            # Optional (older artifacts lack it): all 40 labels, for slices by any attribute.
            arrays["celeba_labels"] = data["celeba_labels"] if "celeba_labels" in data.files else None
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as err:  # noqa: BLE001 - zipfile, zlib, numpy and JSON each raise their own on damage
        raise PredictionsError(f"{array_file}: not a readable predictions artifact, truncated or corrupt "
                               f"({type(err).__name__}: {err}); evaluate again to rebuild it") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise PredictionsError(f"{array_file}: format {found!r} is not {FORMAT!r}")
    if not isinstance(meta.get("attributes"), list):
        raise PredictionsError(f"{array_file}: the metadata lists no attribute names")
    if arrays["probabilities"].ndim != 2 or arrays["labels"].ndim != 2:
        raise PredictionsError(f"{array_file}: probabilities and labels must be 2-D (images x attributes)")
    _check_meta_copy(folder / META_FILE, meta)
    return Predictions(meta=meta, folder=folder, **arrays)


def _check_meta_copy(path: Path, meta: dict) -> None:
    """meta.json is a readable copy of the metadata inside predictions.npz, which is what is used;
    a damaged or edited copy is reported so nobody trusts what it says."""
    if not path.is_file():
        return
    try:
        copy = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        problem = f"is not readable JSON ({err})"
    else:
        if copy == meta:
            return
        problem = "is not a JSON object" if not isinstance(copy, dict) else "differs from the metadata in predictions.npz"
    warnings.warn(f"{path} {problem}; using the metadata stored in predictions.npz (evaluate again to rewrite it)",
                  PredictionsWarning, stacklevel=3)
