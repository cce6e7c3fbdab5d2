"""Evaluation: run checkpoints over a whole split in large batches and save predictions artifacts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from ..data.cache import load_or_build_cache
from ..data.index import CelebAIndex, load_index
from ..errors import ConfigError
from ..models.checkpoint import load_checkpoint, read_checkpoint_meta
from ..utils.devices import default_eval_batch_size, resolve_device
from ..utils.distributed import barrier, init_distributed, main_first, predict_shard
from ..workspace import default_run_folder, default_workspace_root, run_name
from .batched import predict_probabilities
from .predictions import Predictions, check_replaceable, save_predictions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    """How to evaluate: which split, batch size, device, test-time flip averaging."""

    split: str = "test"
    batch_size: int | None = None  # None: devices.default_eval_batch_size (128 on CPU, 4,096 on a GPU)
    flip_tta: bool | None = None  # None: as the checkpoint's metadata says (inference.flip_tta), else off
    device: str = "auto"
    cache_dir: str | None = None
    progress: bool = True
    overwrite: bool = False  # replace an artifact made from another checkpoint in the output folder


def output_folders(
    checkpoints: Sequence[str | Path], out: str | Path | None, options: EvalConfig, workspace_root: Path
) -> list[Path]:
    """One folder per checkpoint: ``out`` itself for one, ``out/<checkpoint name>`` for several, and
    ``<workspace>/runs/<checkpoint name>/<split>`` without ``out`` (``layout.default_run_folder``)."""
    if out is None:
        folders = [default_run_folder(workspace_root, c, options.split, options.flip_tta) for c in checkpoints]
    elif len(checkpoints) == 1:
        folders = [Path(out)]
    else:
        folders = [Path(out) / run_name(c) for c in checkpoints]
    if len(set(folders)) != len(folders):
        raise ConfigError(f"Several checkpoints would write to the same folder: {', '.join(map(str, folders))}; "
                          "give --out, or rename the checkpoint files")
    return folders


def evaluate_checkpoint(
    checkpoint_path: str | Path,
    index: CelebAIndex,
    out: str | Path,
    options: EvalConfig = EvalConfig(),
    on_batch: Callable[[int, int], None] | None = None,
) -> Predictions:
    """Predict one split with one checkpoint and save the artifact in ``out``.

    Under torchrun each rank predicts its share of the split; rank 0 gathers them (in the order a
    single process would produce) and alone writes the artifact.
    """
    device = resolve_device(options.device)
    info = init_distributed(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    checkpoint = load_checkpoint(checkpoint_path, device=device)
    check_replaceable(out, checkpoint.weights_sha256, options.overwrite)  # before any work is spent
    model = checkpoint.model.to(memory_format=torch.channels_last)
    spec = checkpoint.preprocess
    progress = options.progress and info.is_main
    listed = index.split_indices(options.split)
    # Only this split's images are decoded into the shared cache (the rest stay as they are).
    cache = main_first(info, lambda: load_or_build_cache(index.paths, spec, options.cache_dir, progress=progress,
                                                         rows=listed))
    rows = listed[cache.valid[listed]]
    if len(rows) == 0:
        raise ConfigError(f"The {options.split} split of {', '.join(index.roots)} has no readable images")
    labels = index.attribute_labels(checkpoint.attributes, rows)
    # All 40 labels go along for slices by any attribute, unless a root lacks some column (-1 there).
    every_label = index.labels[rows]
    celeba_labels = every_label.astype(np.uint8) if (every_label >= 0).all() else None
    batch_size = options.batch_size or default_eval_batch_size(device)
    flip_tta = options.flip_tta if options.flip_tta is not None else checkpoint.meta.get("inference", {}).get("flip_tta", False)

    logger.debug(f"Evaluating {checkpoint_path} on {len(rows):,} {options.split} images on {device} "
                 f"(batches of {batch_size}, flip averaging {'on' if flip_tta else 'off'})")
    started = time.perf_counter()
    probabilities = predict_shard(
        lambda mine: predict_probabilities(
            model, cache.images, mine, spec, device, batch_size=batch_size, flip_tta=flip_tta,
            progress=progress, desc=f"Evaluating {run_name(checkpoint_path)}", on_batch=on_batch,
        ),
        rows, info, len(checkpoint.attributes),
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started

    meta = {
        "checkpoint": {
            # Which model made these predictions; its tuned thresholds are read from it when used
            # (thresholds.evaluated_checkpoint), never copied here where they would go stale.
            "path": str(Path(checkpoint_path).resolve()),
            "weights_sha256": checkpoint.weights_sha256,
            "arch": checkpoint.spec.arch,
            "best_epoch": checkpoint.meta.get("training", {}).get("best_epoch"),
        },
        "split": options.split,
        "data_roots": list(index.roots),
        "attributes": checkpoint.attributes,
        "preprocess": spec.to_dict(),
        "counts": {
            "images": int(len(rows)),
            "unreadable_skipped": int((~cache.valid[listed]).sum()),
            "positives": {a: int(p) for a, p in zip(checkpoint.attributes, labels.sum(axis=0))},
            "identities": int(len(np.unique(index.identity[rows][index.identity[rows] >= 0]))),
        },
        "timing": {
            "seconds": seconds,  # predicting, from the cache
            "images_per_s": len(rows) / seconds if seconds > 0 else None,
            # Decoding the images this evaluation lacked in the cache (0 when it had them all).
            "cache_seconds": cache.seconds,
            "images_cached": cache.decoded,
            "device": str(device),
            "batch_size": batch_size,
            "processes": info.world_size,
        },
        "flip_tta": bool(flip_tta),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    predictions = Predictions(
        probabilities=probabilities,
        labels=labels,
        files=index.files[rows],
        paths=np.array(index.paths[rows].resolved_strings()),
        identity=index.identity[rows],
        meta=meta,
        folder=Path(out),
        celeba_labels=celeba_labels,
    )
    if info.is_main:
        save_predictions(out, predictions)
    barrier(info)  # the artifact is on disk before any rank moves on
    return predictions


def evaluate_checkpoints(
    checkpoints: Sequence[str | Path],
    data_roots: Sequence[str | Path],
    out: str | Path | None = None,
    options: EvalConfig = EvalConfig(),
    workspace_root: Path | None = None,
) -> list[Predictions]:
    """Evaluate several checkpoints (an ablation) on the same split, each into its own artifact.

    Every output folder is checked before the first evaluation starts, so a call that would replace
    another checkpoint's artifact fails at once and writes nothing.
    """
    if not checkpoints:
        raise ConfigError("No checkpoint given")
    folders = output_folders(checkpoints, out, options, default_workspace_root(workspace_root))
    for checkpoint, folder in zip(checkpoints, folders):
        check_replaceable(folder, read_checkpoint_meta(checkpoint).weights_sha256, options.overwrite)
    index = load_index(data_roots, cache_dir=options.cache_dir)
    return [evaluate_checkpoint(c, index, folder, options) for c, folder in zip(checkpoints, folders)]


def evaluate(
    checkpoint: str | Path,
    data_roots: str | Path | Sequence[str | Path],
    split: str = "test",
    out: str | Path | None = None,
    *,
    flip_tta: bool | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    cache_dir: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    workspace_root: Path | None = None,
) -> Predictions:
    """Evaluate one checkpoint on one split and save the artifact (``python -m celeba_model evaluate``).

    ``out`` defaults to ``WORKSPACE/runs/<checkpoint name>/<split>``; the returned ``Predictions``
    is also on disk there. See ``evaluate_checkpoints`` for several checkpoints at once.
    """
    roots = [data_roots] if isinstance(data_roots, (str, Path)) else list(data_roots)
    config = EvalConfig(split=split, batch_size=batch_size, flip_tta=flip_tta, device=device, cache_dir=cache_dir,
                        progress=progress, overwrite=overwrite)
    return evaluate_checkpoints([checkpoint], roots, out, config, workspace_root)[0]
