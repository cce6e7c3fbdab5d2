"""One epoch of optimization (train_one_epoch) and one pass of prediction and metrics on the val split
(validate), as in torchvision's reference training script."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from ..data.transforms import AugmentConfig, PreprocessConfig, to_training_input
from ..evaluation.batched import predict_probabilities
from ..metrics.counts import f1_scores
from ..utils.devices import autocast
from ..utils.distributed import DistInfo, mean_over_ranks, predict_shard
from .batches import RunData
from .regularization import BatchRegularization


def compute_pos_weight(labels: np.ndarray, mode: str) -> np.ndarray | None:
    """Per-attribute weight of positive examples in the loss: none, sqrt(neg/pos) or neg/pos."""
    if mode == "none":
        return None
    positives = labels.sum(axis=0).astype(np.float64)
    negatives = len(labels) - positives
    ratio = negatives / np.maximum(positives, 1.0)
    return np.sqrt(ratio) if mode == "sqrt" else ratio


def optimize_step(
    network: nn.Module, criterion: Callable[..., torch.Tensor], optimizer: torch.optim.Optimizer, x: torch.Tensor,
    targets: torch.Tensor, device: torch.device, cells: torch.Tensor | None = None,
) -> torch.Tensor:
    """One forward, backward and optimizer update on a prepared batch; returns the loss. With the
    images' ``cells``, the criterion is a group loss (dro.GroupDRO) called with them."""
    with autocast(device):
        logits = network(x)
    loss = criterion(logits.float(), targets) if cells is None else criterion(logits.float(), targets, cells)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


@dataclass
class EpochStats:
    """What one epoch of training measured."""

    loss: float  # mean training loss over all images of all processes
    images: int  # images this process trained on
    seconds: float


def train_one_epoch(
    network: nn.Module,
    criterion: Callable[..., torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loader: Iterable[tuple[torch.Tensor, ...]],
    device: torch.device,
    spec: PreprocessConfig,
    augment: AugmentConfig | None,
    generator: torch.Generator,
    ema: AveragedModel | None = None,
    info: DistInfo = DistInfo(),
    *,
    regularization: BatchRegularization = BatchRegularization(),
    num_batches: int | None = None,
    desc: str = "",
    progress: bool = True,
) -> EpochStats:
    """Train ``network`` (the model, or its DistributedDataParallel wrapper) on each batch of ``loader``
    once: augment (and regularize) with ``generator``, step the optimizer and the per-step scheduler, update ``ema``.
    Batches that carry their images' cells (for Group DRO) pass them to the criterion."""
    model = network.module if isinstance(network, DistributedDataParallel) else network
    network.train()
    started = time.perf_counter()
    loss_sum, seen = 0.0, 0
    bar = tqdm(loader, total=num_batches, desc=desc, unit="batch", disable=not progress, leave=False)
    for images, targets, *cells in bar:
        targets = targets.to(device, non_blocking=True)
        x = to_training_input(images.to(device, non_blocking=True), spec, augment, generator)
        if regularization.active:
            x, targets = regularization.apply(x, targets, generator)
        group = cells[0].to(device, non_blocking=True) if cells else None
        loss = optimize_step(network, criterion, optimizer, x, targets, device, group)
        scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        loss_sum += loss.item() * len(targets)
        seen += len(targets)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", img_s=f"{seen / (time.perf_counter() - started):,.0f}")
    bar.close()
    seconds = time.perf_counter() - started
    return EpochStats(loss=mean_over_ranks(loss_sum, seen, info), images=seen, seconds=seconds)


@dataclass
class ValMetrics:
    """The model's validation loss and F1 at threshold 0.5, and the probabilities they come from."""

    loss: float  # binary cross-entropy, averaged over images and attributes
    f1: np.ndarray  # (A,) per attribute
    macro_f1: float
    probabilities: np.ndarray  # (len(val_rows), A), for figures per group (groups.cell_accuracy)


def validate(
    model: nn.Module, data: RunData, spec: PreprocessConfig, device: torch.device, info: DistInfo = DistInfo(),
    batch_size: int | None = None, scored: int | None = None,
) -> ValMetrics:
    """Predict the val split with ``model`` and score it (every process gets the same metrics): the
    first ``scored`` attributes (the predicted ones; the rest are auxiliary), or all of them."""
    labels = data.labels[data.val_rows]
    # Each rank predicts its share of the validation images; gathered in rank order they are
    # exactly the single-process predictions.
    probs = predict_shard(
        lambda rows: predict_probabilities(model, data.images, rows, spec, device, batch_size=batch_size),
        data.val_rows, info, labels.shape[1],
    )
    labels, probs = labels[:, :scored], probs[:, :scored]
    f1 = f1_scores(labels, probs, 0.5)
    return ValMetrics(loss=_binary_cross_entropy(labels, probs), f1=f1, macro_f1=float(f1.mean()), probabilities=probs)


def _binary_cross_entropy(labels: np.ndarray, probs: np.ndarray) -> float:
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
