"""train(): check, lock, set up, resume, then per epoch train_one_epoch, validate, and save checkpoints
and metrics (the run folder's files: run_folder.py).

Randomness (shuffling, dropout, augmentation) is re-seeded from (seed, epoch) at each epoch (seeds.py),
so resuming at an epoch boundary reproduces the uninterrupted run exactly.
"""

from __future__ import annotations

import logging
import math
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..data.transforms import AugmentConfig, PreprocessConfig
from ..errors import CelebAModelError, ConfigError
from ..models.registry import ModelSpec, count_parameters, create_model, model_spec
from ..utils import run_lock
from ..utils.devices import resolve_device
from ..utils.distributed import DistInfo, barrier, init_distributed
from .batches import CachedBatches, ResidentBatches, batch_loader, epoch_batches, keep_data_on_device, prepare_data
from .config import TrainConfig
from .loop import compute_pos_weight, train_one_epoch, validate
from .run_folder import BEST, LAST, RunProgress, check_run_folder, load_last, save_epoch, write_config, write_metrics
from .seeds import AUGMENT, DROPOUT, LOADER, SHUFFLE, epoch_seed

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished (or early-stopped) run achieved, and where its checkpoints are."""

    out: str
    best_epoch: int
    best_val_macro_f1: float
    epochs_run: int
    best_checkpoint: str
    last_checkpoint: str


def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train (or resume) a run; returns the best epoch, its validation macro-F1 and the checkpoints.

    Everything that can be checked is checked before anything is written (settings, the model, the
    run folder, the data), so a start that fails leaves no trace. While it trains, the run folder is
    locked (``run_lock``): a second start into the same folder is refused.
    """
    out = Path(config.out)
    device, info = _init_device(config.device)
    spec = PreprocessConfig(image_size=config.image_size, color=config.color)
    mspec = model_spec(config.arch, spec.channels, len(config.attributes), spec.image_size, config.model_config)
    torch.manual_seed(config.seed)  # weight initialization
    model = _build_model(mspec)
    check_run_folder(config, out, resume)
    data = prepare_data(config, spec, info)
    barrier(info)  # every rank has checked the settings, folder and data before rank 0 writes

    with run_lock.locked(out) if info.is_main else nullcontext():
        if info.is_main:
            check_run_folder(config, out, resume)  # again, now that no other process can start here
            if not resume:
                write_config(out, config)
        barrier(info)

        # Set up the model, loss, optimizer and schedule.
        model = model.to(device).to(memory_format=torch.channels_last)
        pos_weight = compute_pos_weight(data.labels[data.train_rows], config.pos_weight)
        criterion = nn.BCEWithLogitsLoss(
            pos_weight=None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float32, device=device)
        )
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        # Under torchrun every rank takes batch_size images per step (as in torchvision's references).
        steps_per_epoch = math.ceil(len(data.train_rows) / (config.batch_size * info.world_size))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
        augment = AugmentConfig() if config.augment else None
        # torch's AveragedModel keeps the moving average (weights and batch-norm statistics).
        ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
               if config.ema is not None else None)

        # Resume after the last finished epoch.
        done = RunProgress()
        if resume and (out / LAST).is_file():
            done = load_last(out, model, optimizer, scheduler, ema, device)
            logger.info(f"Resuming {out} after epoch {done.epoch} "
                        f"(best val macro-F1 {done.best_val_macro_f1:.4f} at epoch {done.best_epoch})")
        history, best_f1, best_epoch = done.history, done.best_val_macro_f1, done.best_epoch
        if info.is_main:
            # A run killed after writing a checkpoint but before metrics.jsonl: rewrite it from the checkpoint.
            write_metrics(out, history)

        network = model  # what the loop trains: the model itself, or its DistributedDataParallel wrapper
        if info.enabled:
            network = DistributedDataParallel(model, device_ids=[info.local_rank] if device.type == "cuda" else None)
        logger.info(
            f"Training {config.arch} ({count_parameters(model):,} parameters) on {device}: "
            f"{len(data.train_rows):,} train / {len(data.val_rows):,} val images, "
            f"{spec.image_size}x{spec.image_size} {spec.color}, {len(config.attributes)} attributes"
            + (f", {info.world_size} processes" if info.enabled else "")
        )
        labels = data.labels.astype(np.float32)
        source: CachedBatches | ResidentBatches = CachedBatches(data.array_path, labels)
        if keep_data_on_device(config.data_on_device, device, data.images.nbytes):
            source = ResidentBatches(data.images, labels, device)
            logger.info(f"Holding the {data.images.nbytes / 2**30:.2f} GiB image cache on {device}")
        logger.debug(f"Image cache {data.array_path}; {steps_per_epoch:,} steps per epoch")
        meta_base = {"model": mspec.to_dict(), "attributes": config.attributes, "preprocess": spec.to_dict()}
        epochs_without_gain = (len(history) - best_epoch) if history else 0

        for epoch in range(done.epoch + 1, config.epochs + 1):
            if config.patience is not None and epochs_without_gain >= config.patience:
                logger.info(f"Stopped early: no gain in validation macro-F1 for {config.patience} epochs")
                break
            torch.manual_seed(epoch_seed(config.seed, epoch, DROPOUT, info.rank))
            batches = epoch_batches(data.train_rows, config.batch_size, epoch_seed(config.seed, epoch, SHUFFLE), info)
            generator = torch.Generator(device=device).manual_seed(epoch_seed(config.seed, epoch, AUGMENT, info.rank))
            loader = batch_loader(source, batches, config.workers, device,
                                  epoch_seed(config.seed, epoch, LOADER, info.rank))
            stats = train_one_epoch(
                network, criterion, optimizer, scheduler, loader, device, spec, augment, generator, ema, info,
                num_batches=len(batches), desc=f"Epoch {epoch}/{config.epochs}",
                progress=config.progress and info.is_main,
            )
            val = validate(ema.module if ema is not None else model, data, spec, device, info, config.eval_batch_size)

            record = {
                "epoch": epoch,
                "train_loss": stats.loss,
                "val_loss": val.loss,
                "val_macro_f1": val.macro_f1,
                "val_f1": {a: float(f) for a, f in zip(config.attributes, val.f1)},
                "lr": optimizer.param_groups[0]["lr"],
                "train_seconds": stats.seconds,
                "train_images_per_s": stats.images * info.world_size / stats.seconds,
            }
            history.append(record)
            improved = val.macro_f1 > best_f1
            if improved:
                best_f1, best_epoch, epochs_without_gain = val.macro_f1, epoch, 0
            else:
                epochs_without_gain += 1
            training = {
                "config": config.to_dict(),
                "epoch": epoch,
                "best_epoch": best_epoch,
                "best_val_macro_f1": best_f1,
                "history": history,
                "scheduler": scheduler.state_dict(),
                "pos_weight": None if pos_weight is None else pos_weight.tolist(),
                "data": data.index.summary()
                | {"train_images": int(len(data.train_rows)), "val_images": int(len(data.val_rows))},
                "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            if info.is_main:
                save_epoch(out, meta_base | {"training": training}, model, optimizer, ema, history, improved)
            barrier(info)
            logger.info(
                f"epoch {epoch:3d}/{config.epochs}  loss {stats.loss:.4f}  val loss {val.loss:.4f}  "
                f"val macro-F1 {val.macro_f1:.4f}{'  *best*' if improved else ''}  "
                f"{stats.seconds:.1f} s ({record['train_images_per_s']:,.0f} img/s)"
            )

    return TrainResult(out=str(out), best_epoch=best_epoch, best_val_macro_f1=best_f1, epochs_run=len(history),
                       best_checkpoint=str(out / BEST), last_checkpoint=str(out / LAST))


def _init_device(name: str) -> tuple[torch.device, DistInfo]:
    """The training device, and this process's place under torchrun (one process without it)."""
    device = resolve_device(name)
    info = init_distributed(device.type)
    if device.type == "cuda":
        if info.enabled:
            device = torch.device("cuda", info.local_rank)
        torch.backends.cudnn.benchmark = True
    return device, info


def _build_model(mspec: ModelSpec) -> nn.Module:
    try:
        return create_model(mspec)
    except (TypeError, ValueError, RuntimeError) as err:
        if isinstance(err, CelebAModelError):
            raise
        raise ConfigError(f"Cannot build {mspec.arch} with model config {mspec.config}: {err}") from err
