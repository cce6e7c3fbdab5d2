"""Embedding a run (``python -m celeba_model embed``): its images' penultimate features, as its evaluation saw them.

A split run's aligned images go through the crop and image cache ``evaluate`` uses
(``evaluation.embeddings``); a photo run's (its metadata has ``photos``) through this package's
detection and framing, ``frame_photo_set``, as ``evaluate-photos`` framed them. Either way the run's own
checkpoint computes the features, checked by its weights digest, and they are saved as
``RUN/embeddings.npz`` in the order of ``RUN/predictions.npz``. The 2-D map drawn from them is
``celeba_model.analysis.embedding_map``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError
from ..evaluation.embeddings import (
    EMBEDDINGS_FILE,
    Embeddings,
    EmbeddingsError,
    aligned_inputs,
    embedding_checkpoint,
    embeddings_record,
    load_embeddings,
    predict_features,
    run_image_paths,
    save_embeddings,
)
from ..evaluation.predictions import Predictions, load_predictions
from ..models.checkpoint import load_checkpoint
from ..models.features import head_layer
from ..utils.devices import resolve_device
from ..workspace import default_workspace_root
from .evaluate import frame_photo_set

logger = logging.getLogger(__name__)

# (stage, fraction done) -> None, as the catalogue's progress callbacks.
Progress = Callable[[str, float], None]


def _quiet(stage: str, fraction: float) -> None:
    return None


def embed_run(
    run: str | Path | Predictions,
    data_root: str | Path | None = None,
    *,
    workspace_root: str | Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    cache_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    on_progress: Progress = _quiet,
) -> Embeddings:
    """Compute and save the penultimate features of a run's images (``RUN/embeddings.npz``).

    Embeddings already there and current (the run's weights and images) are returned as they are
    unless ``overwrite``. ``data_root``: where the images are when not where the run recorded them
    (a CelebA folder, or a photo run's folder of photos). Raises ``EmbeddingsError`` for a run without
    a checkpoint of ours (imported, crossfit), a checkpoint moved or changed, or missing images.
    """
    predictions = run if isinstance(run, Predictions) else load_predictions(run)
    if predictions.folder is None:
        raise ConfigError("embed_run needs a saved run (its folder receives embeddings.npz)")
    root = default_workspace_root(workspace_root)
    if not overwrite and (predictions.folder / EMBEDDINGS_FILE).is_file():
        try:
            return load_embeddings(predictions.folder, predictions)
        except EmbeddingsError as err:  # stale or damaged: computed again below
            logger.info(f"Computing the embeddings again: {err}")
    checkpoint_path = embedding_checkpoint(predictions, root)
    on_progress("Finding the images", 0.0)
    paths = run_image_paths(predictions, root, data_root)
    target = resolve_device(device)
    checkpoint = load_checkpoint(checkpoint_path, device=target)
    spec = checkpoint.preprocess
    flip_tta = bool(predictions.meta.get("flip_tta", False))
    started = time.perf_counter()
    if "photos" in predictions.meta:
        source = "photos"
        framed = frame_photo_set(paths, [spec], progress=progress,
                                 on_photo=lambda done, total: on_progress("Detecting and framing the faces",
                                                                          0.8 * done / total))
        if framed.left_out or framed.files != [str(f) for f in predictions.files]:
            first = next(iter(framed.left_out.values()), "a file name differs")
            raise EmbeddingsError(f"{len(framed.left_out):,} of {len(paths):,} photos could not be framed now ({first}); "
                                  "the run's photos must all be readable to embed it")
        images, share = next(iter(framed.inputs.values())), 0.2
    else:
        source = "aligned"
        images = aligned_inputs(paths, spec, cache_dir, progress=progress,
                                on_progress=lambda done, total: on_progress("Cropping the images (image cache)",
                                                                            0.5 * done / total))
        share = 0.5
    start = 1.0 - share
    features = predict_features(checkpoint.model, images, None, spec, target, batch_size, flip_tta,
                                on_batch=lambda done, total: on_progress("Computing features",
                                                                         start + share * done / total))
    embeddings = embeddings_record(predictions, features, head_layer(checkpoint.model), source, device=target,
                                   seconds=time.perf_counter() - started, flip_tta=flip_tta)
    save_embeddings(predictions.folder, embeddings)
    return embeddings
