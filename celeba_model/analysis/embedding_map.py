"""The embedding map: a run's penultimate features drawn in 2-D by UMAP, cached on disk, and the values
its points are coloured by.

``RUN/map.npz`` (loads without pickle) holds ``coordinates`` (N, 2) float32, row for row with
``RUN/predictions.npz``, and ``meta`` (JSON): the digest of the features it was drawn from
(``features_sha256``), of the image names in order (``files_sha256``), the parameters
(``MapParams``: PCA to 50 dimensions, then UMAP with 15 neighbours, minimum distance 0.1, seed 0),
the umap-learn version and the seconds it took. ``map_for`` reuses it while the features and the
parameters are the same, and draws it again (seeded, so the same features give the same map) when
either changed. A run shipped with its map but without its features (``embeddings.npz`` is large for
thousands of images) shows that map as long as the run's images are the same.
"""

from __future__ import annotations

import io
import itertools
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CelebAModelError
from ..evaluation.embeddings import EMBEDDINGS_FILE, files_digest, load_embeddings
from ..evaluation.predictions import Predictions
from ..utils.fileio import atomic_write_bytes

MAP_FILE = "map.npz"
MAP_FORMAT = "celeba_model/embedding-map-v1"
# What points can be coloured by (the Map page's choices).
COLOR_BY = ("label", "prediction", "error", "probability", "group", "person")
ERROR_TYPES = ("TP", "FP", "FN", "TN")


class MapError(CelebAModelError, ValueError):
    """A map that cannot be drawn or used: no features, a bad colour choice."""


@dataclass(frozen=True)
class MapParams:
    """How the map is drawn: PCA to ``pca_dims`` (faster neighbour search, less noise), then UMAP."""

    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "euclidean"
    pca_dims: int = 50
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EmbeddingMap:
    """2-D coordinates of a run's images, row for row with its predictions."""

    coordinates: np.ndarray  # (N, 2) float32
    meta: dict = field(default_factory=dict)
    computed: bool = False  # drawn by this call, not read from map.npz

    def __len__(self) -> int:
        return len(self.coordinates)


def compute_map(features: np.ndarray, params: MapParams = MapParams()) -> np.ndarray:
    """(N, 2) float32 UMAP coordinates of ``features`` (N, D); seeded, so the same input gives the same map.

    The first call in a process also compiles umap-learn's numba code (about 15 s on 2 cores).
    """
    x = np.asarray(features, dtype=np.float32)
    n = len(x)
    if n < 3:  # nothing to lay out: points on a line
        return np.column_stack([np.arange(n), np.zeros(n)]).astype(np.float32)
    dims = min(params.pca_dims, x.shape[1], n - 1)
    if dims < x.shape[1]:
        from sklearn.decomposition import PCA

        x = PCA(n_components=dims, random_state=params.seed).fit_transform(x).astype(np.float32)
    if n < 10:  # too few points for UMAP's neighbour graph: the first two principal axes
        padded = np.zeros((n, 2), np.float32)
        padded[:, : min(2, x.shape[1])] = x[:, :2]
        return padded
    import umap  # imported here: its numba code compiles on import (seconds)

    reducer = umap.UMAP(n_neighbors=min(params.n_neighbors, n - 1), min_dist=params.min_dist, metric=params.metric,
                        random_state=params.seed, n_jobs=1, init="spectral" if n > 50 else "random")
    with warnings.catch_warnings():
        # A seed makes UMAP single-threaded and says so; small graphs warn about their spectral layout.
        warnings.simplefilter("ignore")
        return reducer.fit_transform(x).astype(np.float32)


def load_map(folder: str | Path) -> EmbeddingMap | None:
    """The map stored in ``folder`` (None when there is none or it is unreadable: it is only a cache)."""
    path = Path(folder) / MAP_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            coordinates, meta = data["coordinates"], json.loads(str(data["meta"]))
    except Exception:  # noqa: BLE001 - a damaged cache is drawn again
        return None
    if not isinstance(meta, dict) or meta.get("format") != MAP_FORMAT or coordinates.ndim != 2:
        return None
    return EmbeddingMap(coordinates.astype(np.float32), meta)


def save_map(folder: str | Path, embedding_map: EmbeddingMap) -> Path:
    """Write ``folder/map.npz`` atomically; returns its path."""
    path = Path(folder) / MAP_FILE
    buffer = io.BytesIO()
    np.savez_compressed(buffer, coordinates=embedding_map.coordinates.astype(np.float32),
                        meta=np.array(json.dumps(embedding_map.meta)))
    atomic_write_bytes(path, buffer.getvalue())
    return path


def has_features(predictions: Predictions) -> bool:
    """Whether the run's folder holds embeddings (a map can be drawn from them)."""
    return predictions.folder is not None and (predictions.folder / EMBEDDINGS_FILE).is_file()


def stored_map(predictions: Predictions, params: MapParams = MapParams()) -> EmbeddingMap | None:
    """The run's map on disk when it is of this run's images and drawn with ``params`` (features not checked)."""
    found = load_map(predictions.folder) if predictions.folder is not None else None
    if found is None or found.meta.get("files_sha256") != files_digest(predictions.files):
        return None
    return found if found.meta.get("params") == params.to_dict() else None


def map_for(predictions: Predictions, params: MapParams = MapParams(), write: bool = True) -> EmbeddingMap:
    """The run's 2-D map: ``map.npz`` when it was drawn from the current features with ``params``, else
    drawn now from ``embeddings.npz`` (and saved when ``write``). Without features, a stored map of the
    run's images is used as it is; without either, a ``MapError`` says to run ``embed``."""
    if predictions.folder is None:
        raise MapError("an embedding map needs a saved run")
    stored = stored_map(predictions, params)
    if not has_features(predictions):
        if stored is not None:
            return stored
        raise MapError(f"{predictions.folder} has no embeddings to draw a map from; run "
                       f"`python -m celeba_model embed --run {predictions.folder}`")
    embeddings = load_embeddings(predictions.folder, predictions)
    key = embeddings.features_sha256
    if stored is not None and stored.meta.get("features_sha256") == key:
        return stored
    started = time.perf_counter()
    coordinates = compute_map(embeddings.features, params)
    import umap

    meta = {"format": MAP_FORMAT, "features_sha256": key, "files_sha256": files_digest(predictions.files),
            "layer": embeddings.layer, "params": params.to_dict(), "umap_version": umap.__version__,
            "seconds": time.perf_counter() - started,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    drawn = EmbeddingMap(coordinates, meta, computed=True)
    if write:
        save_map(predictions.folder, drawn)
    return drawn


# --- what the points are coloured by ---

@dataclass(frozen=True)
class PointColors:
    """Per-point colour values: category codes with their names, or numbers on a continuous scale."""

    values: np.ndarray  # (N,) int codes into ``categories``, or floats when ``categories`` is empty
    categories: list[str]
    title: str

    @property
    def continuous(self) -> bool:
        return not self.categories


def _threshold(predictions: Predictions, attribute: str, thresholds: float | Sequence[float] | None) -> float:
    if thresholds is None:
        return 0.5
    if np.ndim(thresholds) == 0:
        return float(thresholds)
    return float(np.asarray(thresholds)[predictions.attributes.index(attribute)])


def _model_column(predictions: Predictions, attribute: str | None) -> int:
    if attribute not in predictions.attributes:
        raise MapError(f"{attribute!r} is not predicted by {predictions.name} "
                       f"(its model predicts {', '.join(predictions.attributes)})")
    return predictions.attributes.index(attribute)


def point_colors(
    predictions: Predictions,
    by: str,
    attribute: str | None = None,
    thresholds: float | Sequence[float] | None = None,
    group_by: Sequence[str] = (),
) -> PointColors:
    """What colours each point, a pure function of the run (``COLOR_BY``):

    - ``label``: the dataset's label of ``attribute``, any of the 40 when the run stores them
      (``Predictions.group_labels``);
    - ``prediction``: the model's decision for ``attribute`` at ``thresholds`` (one per model
      attribute, or one number; 0.5 when None);
    - ``error``: TP, FP, FN or TN for ``attribute`` at its threshold;
    - ``probability``: the model's probability of ``attribute`` (continuous);
    - ``group``: the combination of one or two attributes' labels (``group_by``), as the Slices page's groups;
    - ``person``: the person (identity; -1 unknown).
    """
    if by == "label":
        try:
            values = predictions.group_labels(str(attribute)).astype(np.int64)
        except CelebAModelError as err:
            raise MapError(str(err)) from err
        return PointColors(values, [f"not {attribute}", str(attribute)], f"{attribute} (label)")
    if by in ("prediction", "error", "probability"):
        j = _model_column(predictions, attribute)
        probability = predictions.probabilities[:, j]
        if by == "probability":
            return PointColors(probability.astype(np.float64), [], f"p({attribute})")
        predicted = probability >= _threshold(predictions, str(attribute), thresholds)
        if by == "prediction":
            return PointColors(predicted.astype(np.int64), [f"not {attribute}", str(attribute)],
                               f"{attribute} (predicted)")
        truth = predictions.labels[:, j].astype(bool)
        # Codes in ERROR_TYPES order: TP, FP, FN, TN.
        codes = np.select([truth & predicted, ~truth & predicted, truth & ~predicted], [0, 1, 2], default=3)
        return PointColors(codes.astype(np.int64), list(ERROR_TYPES), f"{attribute}: error type")
    if by == "group":
        from .slices import PERSON, SliceError, group_features  # fairlearn and scikit-learn: only for groups

        names = list(group_by)
        if PERSON in names:
            raise MapError("colour by person for person groups")
        try:
            columns = group_features(predictions, names).to_numpy()
        except SliceError as err:
            raise MapError(str(err)) from err
        combos = list(itertools.product((0, 1), repeat=len(names)))
        codes = np.zeros(len(predictions), dtype=np.int64)
        for k, combo in enumerate(combos):
            codes[(columns == np.array(combo)).all(axis=1)] = k
        labels = [", ".join(n if v else f"not {n}" for n, v in zip(names, combo)) for combo in combos]
        return PointColors(codes, labels, " x ".join(names))
    if by == "person":
        people, codes = np.unique(np.asarray(predictions.identity, dtype=np.int64), return_inverse=True)
        return PointColors(codes.astype(np.int64), [f"person {p}" if p >= 0 else "person unknown" for p in people],
                           "person")
    raise MapError(f"colour by one of {', '.join(COLOR_BY)}, not {by!r}")


def point_table(predictions: Predictions, attribute: str, thresholds: float | Sequence[float] | None = None,
                rows: Sequence[int] | np.ndarray | None = None) -> pd.DataFrame:
    """Per point (``rows``, default all): row, file, person, the label of ``attribute`` and, when the model
    predicts it, its probability and decision at the threshold (hover text and gallery captions)."""
    rows = np.arange(len(predictions)) if rows is None else np.asarray(rows, dtype=np.int64)
    table = pd.DataFrame({"row": rows, "file": np.asarray(predictions.files)[rows].astype(str),
                          "person": np.asarray(predictions.identity)[rows].astype(np.int64)})
    if attribute in predictions.labeled_attributes:
        table["label"] = predictions.group_labels(attribute)[rows].astype(np.int64)
    if attribute in predictions.attributes:
        j = predictions.attributes.index(attribute)
        table["probability"] = predictions.probabilities[rows, j].astype(np.float64)
        table["predicted"] = (table["probability"] >= _threshold(predictions, attribute, thresholds)).astype(np.int64)
    return table
