"""Embeddings of a run: the penultimate-layer features of its images, stored next to its predictions.

``RUN/embeddings.npz`` (loads without pickle) holds ``features`` (N, D) float16, ``files`` (N,) in the
order of the run's ``predictions.npz``, and ``meta`` (JSON): format, the layer (``models.features``:
the input of the classifier head), the checkpoint (path as the run records it, weights digest),
``files_sha256`` (which images, in which order), how the images were read (``aligned``: the crop and
image cache evaluation uses; ``photos``: the photo path's detection and framing), flip averaging,
device and time. Features are computed with the run's own checkpoint, checked by its weights digest,
on the images as its evaluation saw them; with flip averaging, each image's features are averaged
with its mirror image's, as its probabilities were.

This module does the aligned images; ``celeba_model.photo.embeddings.embed_run`` picks the path for
a run (photo runs need the face detector, one layer up). torch is imported only by the functions that
run the model: reading embeddings (the Map page) does not wait for it.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CelebAModelError, ConfigError
from ..utils.fileio import atomic_write_bytes
from .predictions import Predictions, recorded_checkpoint

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..data.transforms import PreprocessConfig

EMBEDDINGS_FILE = "embeddings.npz"
FORMAT = "celeba_model/embeddings-v1"


class EmbeddingsError(CelebAModelError, ValueError):
    """Embeddings that cannot be computed or used: no checkpoint, images missing, a stale or damaged file."""


def files_digest(files: Sequence[str] | np.ndarray) -> str:
    """SHA-256 of the image names in order: which images, and in which order, an array describes."""
    return hashlib.sha256("\n".join(str(f) for f in files).encode("utf-8")).hexdigest()


def features_digest(features: np.ndarray) -> str:
    """SHA-256 of the stored (float16) features and their shape: the key of a map drawn from them."""
    stored = np.ascontiguousarray(features, dtype=np.float16)
    digest = hashlib.sha256(f"{stored.shape}\n".encode())
    digest.update(stored.tobytes())
    return digest.hexdigest()


@dataclass
class Embeddings:
    """One run's features, row for row with its predictions."""

    features: np.ndarray  # (N, D) float16
    files: np.ndarray  # (N,) image names, as in predictions.npz
    meta: dict = field(default_factory=dict)
    folder: Path | None = None

    def __len__(self) -> int:
        return len(self.files)

    @property
    def layer(self) -> str:
        return str(self.meta.get("layer", "?"))

    @property
    def features_sha256(self) -> str:
        return features_digest(self.features)

    def check_matches(self, predictions: Predictions) -> None:
        """Refuse embeddings of other weights or other images than ``predictions`` (a re-evaluated run)."""
        made_by = self.meta.get("checkpoint", {}).get("weights_sha256")
        if made_by != predictions.meta.get("checkpoint", {}).get("weights_sha256"):
            raise EmbeddingsError(f"{self.folder}: the embeddings come from other weights than the run's predictions "
                                  "(re-evaluated since); run `python -m celeba_model embed --run RUN --overwrite`")
        if files_digest(self.files) != files_digest(predictions.files):
            raise EmbeddingsError(f"{self.folder}: the embeddings are of other images, or in another order, than the "
                                  "run's predictions; run `python -m celeba_model embed --run RUN --overwrite`")


def save_embeddings(folder: str | Path, embeddings: Embeddings) -> Path:
    """Write ``folder/embeddings.npz`` atomically; returns its path."""
    path = Path(folder) / EMBEDDINGS_FILE
    features = np.asarray(embeddings.features, dtype=np.float16)
    meta = {"format": FORMAT, **embeddings.meta, "files_sha256": files_digest(embeddings.files),
            "features_sha256": features_digest(features), "dimensions": int(features.shape[1])}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, features=features, files=np.asarray(embeddings.files, dtype=str),
                        meta=np.array(json.dumps(meta)))
    atomic_write_bytes(path, buffer.getvalue())
    embeddings.meta, embeddings.folder = meta, Path(folder)
    return path


def load_embeddings(folder: str | Path, predictions: Predictions | None = None) -> Embeddings:
    """A run's embeddings; with ``predictions``, checked to be of its weights and images, in its order."""
    path = Path(folder) / EMBEDDINGS_FILE
    if not path.is_file():
        raise EmbeddingsError(f"{folder}: no {EMBEDDINGS_FILE}; run `python -m celeba_model embed --run {folder}`")
    try:
        with np.load(path, allow_pickle=False) as data:
            features, files, meta = data["features"], data["files"], json.loads(str(data["meta"]))
    except Exception as err:  # noqa: BLE001 - zipfile, zlib, numpy and JSON each raise their own on damage
        raise EmbeddingsError(f"{path}: not readable embeddings, truncated or corrupt ({type(err).__name__}: {err}); "
                              "run `embed --overwrite` to rebuild them") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise EmbeddingsError(f"{path}: not a {FORMAT} file")
    if features.ndim != 2 or len(features) != len(files):
        raise EmbeddingsError(f"{path}: features {features.shape} do not match {len(files)} files")
    embeddings = Embeddings(features, files, meta, Path(folder))
    if predictions is not None:
        embeddings.check_matches(predictions)
    return embeddings


def embedding_checkpoint(predictions: Predictions, workspace_root: Path | None = None) -> Path:
    """The checkpoint that made ``predictions``, checked to still hold the evaluated weights (what
    ``analysis.thresholds.evaluated_checkpoint`` checks, here worded for features)."""
    where = predictions.folder or "this run"
    if "imported" in predictions.meta or "crossfit" in predictions.meta:
        made = "imported from another tool" if "imported" in predictions.meta else "out-of-fold, from several crossfit models"
        raise EmbeddingsError(f"{where} holds predictions {made}: there is no checkpoint of ours to compute its "
                              "features with, so it has no embedding map")
    return recorded_checkpoint(predictions, workspace_root, error=EmbeddingsError,
                               moved_remedy="evaluate the checkpoint again where it is now, then embed that run",
                               changed_remedy="evaluate it again, then embed that run")


def run_image_paths(predictions: Predictions, workspace_root: Path | None = None,
                    data_root: str | Path | None = None) -> list[Path]:
    """Where each of the run's images is now: as recorded, else under ``data_root`` (a CelebA folder, or
    for a photo run the folder of its photos). A clear error counting the missing ones otherwise."""
    paths: list[Path | None] = []
    for row, name in enumerate(predictions.files):
        found = predictions.image_path(row, workspace_root, data_root)
        if found is None and data_root and (Path(data_root) / str(name)).is_file():
            found = Path(data_root) / str(name)  # a plain folder of photos
        paths.append(found)
    missing = [i for i, p in enumerate(paths) if p is None]
    if missing:
        photos = predictions.meta.get("photos")
        where = (f"the folder of its photos (recorded: {', '.join(photos.get('source', []))})" if photos else
                 f"the CelebA folder it was evaluated on (recorded: {', '.join(predictions.meta.get('data_roots', []))})")
        raise EmbeddingsError(
            f"{len(missing):,} of {len(paths):,} images of {predictions.name} are not on this machine (the first: "
            f"{predictions.paths[missing[0]]})" + (f" nor under {data_root}" if data_root else "")
            + f"; pass --data-root DIR, {where}")
    return [p for p in paths if p is not None]


def predict_features(
    model: nn.Module,
    images: np.ndarray,
    rows: np.ndarray | None,
    spec: PreprocessConfig,
    device: torch.device,
    batch_size: int | None = None,
    flip_tta: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Penultimate features (len(rows), D) float32 of ``images[rows]`` (NHWC uint8: the image cache, or
    framed photos; all rows when None), in the batches and precision ``predict_probabilities`` uses."""
    import torch

    from ..data.transforms import to_model_input
    from ..models.features import features_and_logits
    from ..utils.devices import default_eval_batch_size, full_precision

    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    model.eval()
    batch_size = batch_size or default_eval_batch_size(device)
    outputs: list[torch.Tensor] = []
    for begin in range(0, len(rows), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[rows[begin:begin + batch_size]]))
        x = to_model_input(batch.to(device), spec)
        with torch.inference_mode(), full_precision(device):
            features = features_and_logits(model, x)[0].float()
            if flip_tta:  # as sigmoid_probabilities averages the mirror image's probabilities
                features = (features + features_and_logits(model, torch.flip(x, dims=[3]))[0].float()) / 2
        outputs.append(features)
        if on_batch is not None:
            on_batch(min(begin + batch_size, len(rows)), len(rows))
    if not outputs:
        raise ConfigError("No images to embed: the run is empty")
    return torch.cat(outputs).cpu().numpy().astype(np.float32, copy=False)


def aligned_inputs(paths: Sequence[Path], spec: PreprocessConfig, cache_dir: str | Path | None = None,
                   progress: bool = False, on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The cached model inputs of aligned images (``data.cache``: the crop and resize evaluation uses);
    an error naming the images that cannot be read."""
    from ..data.cache import load_or_build_cache

    cache = load_or_build_cache(list(paths), spec, cache_dir, progress=progress, on_progress=on_progress)
    if not cache.valid.all():
        bad = np.flatnonzero(~cache.valid)
        raise EmbeddingsError(f"{len(bad):,} image(s) cannot be read now, e.g. {paths[bad[0]]} "
                              f"({cache.errors.get(int(bad[0]), 'unreadable')})")
    return cache.images


def embeddings_record(predictions: Predictions, features: np.ndarray, layer: str, source: str, *,
                      device: str | torch.device, seconds: float, flip_tta: bool) -> Embeddings:
    """Features with their metadata, ready for ``save_embeddings``."""
    checkpoint = predictions.meta.get("checkpoint", {})
    meta = {
        "layer": layer,
        "checkpoint": {k: checkpoint.get(k) for k in ("path", "weights_sha256", "arch")},
        "source": source,  # "aligned" (crop and image cache) or "photos" (detection and framing)
        "preprocess": predictions.meta.get("preprocess"),
        "flip_tta": bool(flip_tta),
        "timing": {"seconds": seconds, "device": str(device)},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    # float16 keeps files small (a map needs no more); clipped so that no value becomes infinite.
    stored = np.clip(features, -65000, 65000).astype(np.float16)
    return Embeddings(stored, np.asarray(predictions.files), meta, predictions.folder)
