"""Distillation: a teacher's probabilities on the train images, blended into the student's targets.

The teacher (one model or an ensemble checkpoint) predicts every train image once, before training,
from the same image cache the student reads, with flip averaging. The student then learns, for each
predicted attribute, ``(1 - w) * label + w * teacher`` with binary cross-entropy, which accepts soft
targets. Predicting once, rather than on each augmented batch, keeps the cost to one pass over the
train split; the augmentations are small enough (a few percent of shift and zoom, mild colour) that
the teacher's answer for the clean image stands for the augmented one.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from ..data.transforms import PreprocessConfig
from ..models.header import CheckpointError
from ..evaluation.batched import predict_probabilities
from ..models.checkpoint import load_checkpoint
from .config import TrainingError

logger = logging.getLogger(__name__)


def teacher_probabilities(
    teacher: str, images: np.ndarray, rows: np.ndarray, spec: PreprocessConfig, attributes: list[str],
    device: torch.device, batch_size: int | None = None,
) -> np.ndarray:
    """The teacher's flip-averaged probabilities (len(rows), len(attributes)) for ``images[rows]``.

    The teacher must read the student's input (the cached pixels: same size, colour and crop) and
    predict every one of ``attributes``; otherwise a TrainingError says what differs.
    """
    try:
        checkpoint = load_checkpoint(teacher, device)
    except CheckpointError as err:
        raise TrainingError(f"Cannot use {teacher} as the teacher: {err}") from err
    if checkpoint.preprocess.cache_fields() != spec.cache_fields():
        raise TrainingError(
            f"The teacher {teacher} reads {checkpoint.preprocess.cache_fields()}, the student "
            f"{spec.cache_fields()}: distillation predicts the student's cached images, so they must agree "
            "(train the student at the teacher's --image-size and --color)")
    missing = [a for a in attributes if a not in checkpoint.attributes]
    if missing:
        raise TrainingError(f"The teacher {teacher} does not predict {', '.join(missing)}")
    started = time.perf_counter()
    probs = predict_probabilities(checkpoint.model, images, rows, spec, device, batch_size=batch_size, flip_tta=True)
    columns = [checkpoint.attributes.index(a) for a in attributes]
    logger.info(f"Teacher {teacher}: predicted {len(rows):,} train images in {time.perf_counter() - started:.1f} s")
    return probs[:, columns]


def blend_targets(labels: np.ndarray, teacher: np.ndarray, weight: float) -> np.ndarray:
    """Soft targets: ``(1 - weight) * labels + weight * teacher`` (float32, labels' shape)."""
    if labels.shape != teacher.shape:
        raise ValueError(f"labels {labels.shape} and teacher probabilities {teacher.shape} differ in shape")
    return ((1 - weight) * labels.astype(np.float32) + weight * teacher.astype(np.float32)).astype(np.float32)
