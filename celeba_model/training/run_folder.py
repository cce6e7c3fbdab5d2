"""A training run's folder: the checks before a run may write it, and the files it holds.

- ``config.json``: the TrainConfig the run was started with;
- ``last.safetensors``: weights, optimizer and scheduler state after the latest epoch (for --resume),
  with Group DRO's cell weights when it is used;
- ``best.safetensors``: weights of the epoch with the best validation macro-F1, or worst-group accuracy
  with --select worst-group (no optimizer state);
- ``epoch-NNN.safetensors``: with --keep-epochs, every epoch's weights (no optimizer state);
- ``metrics.jsonl``: one JSON line per finished epoch (losses, macro-F1, per-attribute F1, speed, and
  per-cell accuracies with --group-by);
- with --jtt, ``jtt-first/`` (the first run, a run folder of its own) and ``jtt_errors.json`` (jtt.py);
- started in the background (the dashboard, background.py), ``job.json`` (command, PID, exit status) and
  ``train.log`` (its output).

Every file is written atomically, so a run killed at any moment leaves the previous good files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..utils import run_lock
from ..utils.fileio import atomic_write_text
from .config import TrainConfig, TrainingError, check_resumable
from .dro import STATE_KEY as DRO_STATE
from .dro import GroupDRO

LAST = "last.safetensors"
BEST = "best.safetensors"
CONFIG = "config.json"
METRICS = "metrics.jsonl"


def epoch_file(epoch: int) -> str:
    """The name of one epoch's kept weights (--keep-epochs)."""
    return f"epoch-{epoch:03d}.safetensors"


def check_run_folder(config: TrainConfig, out: Path, resume: bool) -> None:
    """A new run needs a folder without one; a resumed run needs one started with the same settings;
    neither may start while another process is writing the folder."""
    run_lock.check_unlocked(out)
    if resume:
        check_resumable(config, out)
    elif (out / LAST).exists() or (out / "config.json").exists():
        raise TrainingError(
            f"{out} already holds a training run. Pass --resume to continue it, or choose another --out "
            "(nothing was changed)"
        )


def write_config(out: Path, config: TrainConfig) -> None:
    atomic_write_text(out / CONFIG, json.dumps(config.to_dict(), indent=2))


def write_metrics(out: Path, history: list[dict]) -> None:
    atomic_write_text(out / METRICS, "".join(json.dumps(r) + "\n" for r in history))


def find_run_folders(root: str | Path) -> list[Path]:
    """Every training run folder under ``root`` (a folder holding a config.json, written as a run starts), by path."""
    root = Path(root)
    return sorted(p.parent for p in root.rglob(CONFIG)) if root.is_dir() else []


@dataclass
class RunProgress:
    """Where a run stands after its last finished epoch (a new run: before epoch 1)."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)  # the metrics.jsonl records so far
    best_epoch: int = 0
    best_val_macro_f1: float = -1.0


def load_last(
    out: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: AveragedModel | None, device: torch.device, dro: GroupDRO | None = None,
) -> RunProgress:
    """Restore the model, optimizer, scheduler, moving average and Group DRO's weights from
    ``out/last.safetensors``."""
    path = out / LAST
    state = load_checkpoint(path, device=device, with_optimizer=True)
    model.load_state_dict(state.model.state_dict())
    if state.optimizer_state is None:
        raise TrainingError(f"{path} has no optimizer state; it cannot be resumed")
    optimizer.load_state_dict(state.optimizer_state)
    training = state.meta["training"]
    scheduler.load_state_dict(training["scheduler"])
    if ema is not None:
        saved = state.training_state or {}
        ema.load_state_dict({k[len("ema."):]: v for k, v in saved.items() if k.startswith("ema.")})
    if dro is not None:
        if DRO_STATE not in (state.training_state or {}):
            raise TrainingError(f"{path} has no Group DRO weights; it cannot be resumed")
        dro.load_state_dict(state.training_state)
    return RunProgress(epoch=training["epoch"], history=training["history"], best_epoch=training["best_epoch"],
                       best_val_macro_f1=training["best_val_macro_f1"])


def save_epoch(
    out: Path, meta: dict, model: nn.Module, optimizer: torch.optim.Optimizer, ema: AveragedModel | None,
    history: list[dict], improved: bool, dro: GroupDRO | None = None, keep: bool = False,
    predicted: tuple[nn.Module, dict] | None = None,
) -> None:
    """Write an epoch's checkpoints and the metrics so far: ``best`` (the evaluated weights: the moving
    average when there is one) when ``improved``, the epoch's own file when ``keep``, then ``last`` (for
    resume, with the moving average and Group DRO's weights), then metrics.jsonl. With auxiliary
    attributes, ``predicted`` is the evaluated model cut to the predicted outputs, and its metadata:
    what best and epoch files hold."""
    # Best before last: if killed in between, resume re-runs this epoch and rewrites both identically.
    evaluated, evaluated_meta = predicted or (ema.module if ema is not None else model, meta)
    if improved:
        save_checkpoint(out / BEST, evaluated, evaluated_meta)
    if keep:
        save_checkpoint(out / epoch_file(meta["training"]["epoch"]), evaluated, evaluated_meta)
    state = {f"ema.{k}": v for k, v in ema.state_dict().items()} if ema is not None else {}
    state |= dro.state_dict() if dro is not None else {}
    save_checkpoint(out / LAST, model, meta, optimizer_state=optimizer.state_dict(), training_state=state or None)
    write_metrics(out, history)
