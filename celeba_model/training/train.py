"""train(): check, lock, set up, resume, then per epoch train_one_epoch, validate, and save checkpoints
and metrics (the run folder's files: run_folder.py).

Randomness (shuffling or drawing, dropout, augmentation) is re-seeded from (seed, epoch) at each epoch
(seeds.py), and Group DRO's weights are saved with each epoch, so resuming at an epoch boundary
reproduces the uninterrupted run exactly. The group options change three things only: how an epoch
draws its images (sampling.py), the loss (dro.py) and what picks the best epoch (groups.py); JTT
trains a first run before the real one (jtt.py).
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..data.transforms import AUGMENT_PRESETS, PreprocessConfig
from ..errors import CelebAModelError, ConfigError
from ..models.features import head_layer
from ..models.registry import ModelSpec, count_parameters, create_model, model_spec
from ..utils import run_lock
from ..utils.devices import resolve_device
from ..utils.distributed import DistInfo, barrier, init_distributed
from . import jtt
from .batches import CachedBatches, ResidentBatches, RunData, batch_loader, keep_data_on_device, prepare_data
from .config import TrainConfig, TrainingError
from .distill import blend_targets, teacher_probabilities
from .dro import GroupDRO
from .groups import RunCells, cell_accuracy, run_cells
from .regularization import BatchRegularization
from .loop import ValMetrics, compute_pos_weight, train_one_epoch, validate
from .run_folder import BEST, LAST, RunProgress, check_run_folder, load_last, save_epoch, write_config, write_metrics
from .sampling import EpochSampler
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
    best_val_worst_group_accuracy: float | None = None  # with --group-by: the best epoch's worst cell


@dataclass
class _Setup:
    """What both runs of a JTT run share (and a plain run uses once): where and on what it trains."""

    device: torch.device
    info: DistInfo
    spec: PreprocessConfig
    mspec: ModelSpec
    data: RunData
    cells: RunCells | None


def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train (or resume) a run; returns the best epoch, its validation macro-F1 and the checkpoints.

    Everything that can be checked is checked before anything is written (settings, the model, the
    run folder, the data and its groups), so a start that fails leaves no trace. While it trains, the
    run folder is locked (``run_lock``): a second start into the same folder is refused.
    """
    out = Path(config.out)
    device, info = _init_device(config.device)
    spec = PreprocessConfig(image_size=config.image_size, color=config.color)
    mspec = model_spec(config.arch, spec.channels, len(config.trained_attributes), spec.image_size,
                       config.model_config)
    torch.manual_seed(config.seed)  # weight initialization
    model = _build_model(mspec)
    check_run_folder(config, out, resume)
    data = prepare_data(config, spec, info)
    cells = run_cells(config, data.index, data.train_rows, data.val_rows)
    barrier(info)  # every rank has checked the settings, folder and data before rank 0 writes

    with run_lock.locked(out) if info.is_main else nullcontext():
        if info.is_main:
            check_run_folder(config, out, resume)  # again, now that no other process can start here
            if not resume:
                write_config(out, config)
        barrier(info)
        setup = _Setup(device, info, spec, mspec, data, cells)
        sampler = EpochSampler(data.train_rows)  # a plain shuffle
        if config.group_balance:
            sampler = EpochSampler(data.train_rows, cells=cells.cells[data.train_rows], num_cells=cells.spec.num_cells)
        jtt_record = None
        if config.jtt:
            # Just Train Twice: a first run's mistakes, drawn more often by a second run from scratch.
            errors = _jtt_error_set(config, setup, model, resume)
            sampler = EpochSampler(data.train_rows, weights=jtt.upweights(errors, config.jtt_upweight))
            jtt_record = jtt.summary(config, errors)
            torch.manual_seed(config.seed)  # the second run starts from scratch, as the first did
            model = _build_model(mspec)
        result, _ = _fit(config, setup, model, sampler, resume, jtt_record)
    return result


def _jtt_error_set(config: TrainConfig, setup: _Setup, model: nn.Module, resume: bool) -> np.ndarray:
    """JTT's error set: read back on resume, else found by training (or finishing) the first run."""
    out = Path(config.out)
    errors = jtt.load_errors(out, setup.data) if resume else None
    if errors is None:
        first = jtt.first_run_config(config)
        first_out = Path(first.out)
        started = (first_out / LAST).is_file()
        if setup.info.is_main and not started:
            write_config(first_out, first)
        barrier(setup.info)
        logger.info(f"JTT: the first run ({first.epochs} epochs of plain training) in {first_out}")
        _, final = _fit(first, setup, model, EpochSampler(setup.data.train_rows), started, None)
        errors = jtt.find_errors(final, config, setup.data, setup.spec, setup.device, setup.info)
        if setup.info.is_main:
            jtt.save_errors(out, config, setup.data, errors)
        barrier(setup.info)
    logger.info(f"JTT: {int(errors.sum()):,} of {len(errors):,} train images misclassified for "
                f"{jtt.target_of(config)}; the second run draws them {config.jtt_upweight:g} times as often")
    return errors


def _fit(
    config: TrainConfig, setup: _Setup, model: nn.Module, sampler: EpochSampler, resume: bool,
    jtt_record: dict | None,
) -> tuple[TrainResult, nn.Module]:
    """Train ``model`` into ``config.out`` (resuming after its last finished epoch); returns the result
    and the evaluated model (the moving average when there is one) as the last epoch left it."""
    out = Path(config.out)
    device, info, spec, data, cells = setup.device, setup.info, setup.spec, setup.data, setup.cells

    # Set up the model, loss, optimizer and schedule.
    model = model.to(device).to(memory_format=torch.channels_last)
    pos_weight = compute_pos_weight(data.labels[data.train_rows], config.pos_weight)
    criterion = nn.BCEWithLogitsLoss(
        pos_weight=None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float32, device=device)
    )
    dro = (GroupDRO(cells.spec.num_cells, config.dro_step, criterion.pos_weight, device, info)
           if config.group_dro else None)
    # Fused on CUDA: one kernel for the whole update instead of several per parameter group; at batch 100
    # a small model's step is launch-bound (bench/gpu_suite.sh).
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                  fused=device.type == "cuda")
    # Under torchrun every rank takes batch_size images per step (as in torchvision's references).
    steps_per_epoch = math.ceil(len(data.train_rows) / (config.batch_size * info.world_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
    augment = AUGMENT_PRESETS[config.augment_preset] if config.augment else None
    # torch's AveragedModel keeps the moving average (weights and batch-norm statistics).
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
           if config.ema is not None else None)

    # Resume after the last finished epoch.
    done = RunProgress()
    if resume and (out / LAST).is_file():
        done = load_last(out, model, optimizer, scheduler, ema, device, dro)
        logger.info(f"Resuming {out} after epoch {done.epoch} "
                    f"(best val macro-F1 {done.best_val_macro_f1:.4f} at epoch {done.best_epoch})")
    history, best_f1, best_epoch = done.history, done.best_val_macro_f1, done.best_epoch
    best_score = _selection_score(history[best_epoch - 1], config.select) if best_epoch else -1.0
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
        + (f" (+{len(config.aux_attributes)} auxiliary)" if config.aux_attributes else "")
        + (f", {info.world_size} processes" if info.enabled else "")
    )
    if cells is not None:
        logger.info(f"Train images per cell: {cells.train_counts}")
    labels = data.labels.astype(np.float32)
    if config.teacher:
        # Distillation: the predicted attributes' train targets blend in the teacher's probabilities.
        predicted = len(config.attributes)
        teacher = teacher_probabilities(config.teacher, data.images, data.train_rows, spec, config.attributes,
                                        device, config.eval_batch_size)
        labels[data.train_rows, :predicted] = blend_targets(labels[data.train_rows, :predicted], teacher,
                                                            config.distill_weight)
    regularization = BatchRegularization(config.label_smoothing, config.random_erase, config.mix, config.mix_alpha)
    batch_cells = cells.cells if dro is not None else None  # Group DRO needs each image's cell
    source: CachedBatches | ResidentBatches = CachedBatches(data.array_path, labels, batch_cells)
    if keep_data_on_device(config.data_on_device, device, data.images.nbytes):
        source = ResidentBatches(data.images, labels, device, batch_cells)
        logger.info(f"Holding the {data.images.nbytes / 2**30:.2f} GiB image cache on {device}")
    logger.debug(f"Image cache {data.array_path}; {steps_per_epoch:,} steps per epoch")
    meta_base = {"model": setup.mspec.to_dict(), "attributes": config.trained_attributes,
                 "preprocess": spec.to_dict()}
    epochs_without_gain = (len(history) - best_epoch) if history else 0
    evaluated = ema.module if ema is not None else model

    for epoch in range(done.epoch + 1, config.epochs + 1):
        if config.patience is not None and epochs_without_gain >= config.patience:
            figure = "worst-group accuracy" if config.select == "worst-group" else "macro-F1"
            logger.info(f"Stopped early: no gain in validation {figure} for {config.patience} epochs")
            break
        epoch_started = time.perf_counter()
        torch.manual_seed(epoch_seed(config.seed, epoch, DROPOUT, info.rank))
        batches = sampler.epoch(config.batch_size, epoch_seed(config.seed, epoch, SHUFFLE), info)
        generator = torch.Generator(device=device).manual_seed(epoch_seed(config.seed, epoch, AUGMENT, info.rank))
        loader = batch_loader(source, batches, config.workers, device,
                              epoch_seed(config.seed, epoch, LOADER, info.rank))
        loss = criterion if dro is None else dro
        stats = train_one_epoch(
            network, loss, optimizer, scheduler, loader, device, spec, augment, generator, ema, info,
            regularization=regularization,
            num_batches=len(batches), desc=f"Epoch {epoch}/{config.epochs}",
            progress=config.progress and info.is_main,
        )
        val = validate(evaluated, data, spec, device, info, config.eval_batch_size, scored=len(config.attributes))

        record = {
            "epoch": epoch,
            "train_loss": stats.loss,
            "val_loss": val.loss,
            "val_macro_f1": val.macro_f1,
            "val_f1": {a: float(f) for a, f in zip(config.attributes, val.f1)},
            "lr": optimizer.param_groups[0]["lr"],
            "train_seconds": stats.seconds,
            "train_images_per_s": stats.images * info.world_size / stats.seconds,
            "epoch_seconds": time.perf_counter() - epoch_started,  # training and validation: for an ETA
        }
        if cells is not None:
            record |= _group_record(config, cells, data, val, dro)
        history.append(record)
        score = _selection_score(record, config.select)
        improved = score > best_score
        if improved:
            best_score, best_f1, best_epoch, epochs_without_gain = score, val.macro_f1, epoch, 0
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
        if cells is not None:
            training["groups"] = cells.to_dict()
            training["best_val_worst_group_accuracy"] = history[best_epoch - 1]["val_worst_group_accuracy"]
        if jtt_record is not None:
            training["jtt"] = jtt_record
        if info.is_main:
            meta = meta_base | {"training": training}
            predicted = _predicted_only(evaluated, meta, config) if config.aux_attributes else None
            save_epoch(out, meta, model, optimizer, ema, history, improved, dro, keep=config.keep_epochs,
                       predicted=predicted)
        barrier(info)
        logger.info(
            f"epoch {epoch:3d}/{config.epochs}  loss {stats.loss:.4f}  val loss {val.loss:.4f}  "
            f"val macro-F1 {val.macro_f1:.4f}"
            + (f"  worst group {record['val_worst_group_accuracy']:.4f}" if cells is not None else "")
            + f"{'  *best*' if improved else ''}  {stats.seconds:.1f} s ({record['train_images_per_s']:,.0f} img/s)"
        )

    worst = history[best_epoch - 1]["val_worst_group_accuracy"] if cells is not None and best_epoch else None
    result = TrainResult(out=str(out), best_epoch=best_epoch, best_val_macro_f1=best_f1, epochs_run=len(history),
                         best_checkpoint=str(out / BEST), last_checkpoint=str(out / LAST),
                         best_val_worst_group_accuracy=worst)
    return result, evaluated


def _group_record(config: TrainConfig, cells: RunCells, data: RunData, val: ValMetrics, dro: GroupDRO | None) -> dict:
    """An epoch's figures per cell for metrics.jsonl: the target's accuracy on each val cell, the worst
    of them, and Group DRO's weights."""
    column = config.attributes.index(cells.spec.target)
    accuracy = cell_accuracy(cells.spec, cells.cells[data.val_rows], data.labels[data.val_rows, column],
                             val.probabilities[:, column])
    record = {"val_worst_group_accuracy": accuracy.worst, "val_group_accuracy": accuracy.accuracy}
    if dro is not None:
        record["dro_q"] = {name: float(q) for name, q in zip(cells.spec.names(), dro.q.tolist())}
    return record


def _predicted_only(model: nn.Module, meta: dict, config: TrainConfig) -> tuple[nn.Module, dict]:
    """A copy of ``model`` whose last linear layer keeps only the rows of the predicted attributes (the
    first outputs), and its metadata: on those outputs it computes exactly what ``model`` does."""
    kept = len(config.attributes)
    copy = deepcopy(model)
    head = dict(copy.named_modules())[head_layer(copy)]
    if head.out_features != len(config.trained_attributes):
        raise TrainingError(f"{config.arch}'s last linear layer has {head.out_features} outputs, not one per "
                            f"trained attribute ({len(config.trained_attributes)}); aux_attributes needs it")
    head.weight = nn.Parameter(head.weight.detach()[:kept].clone())
    head.bias = nn.Parameter(head.bias.detach()[:kept].clone()) if head.bias is not None else None
    head.out_features = kept
    spec = {**meta["model"], "num_outputs": kept}
    training = {**meta["training"], "aux_attributes": list(config.aux_attributes)}
    return copy, {**meta, "model": spec, "attributes": list(config.attributes), "training": training}


def _selection_score(record: dict, select: str) -> float:
    """The validation figure that picks best.safetensors (--select)."""
    return record["val_worst_group_accuracy"] if select == "worst-group" else record["val_macro_f1"]


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
