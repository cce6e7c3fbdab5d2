"""Just Train Twice (Liu et al. 2021): an ERM run finds the training images it gets wrong, and a second
run from scratch draws those images ``jtt_upweight`` times as often, without any group labels.

The first run is a run folder of its own, ``OUT/jtt-first`` (the same settings, ``jtt_epochs``
epochs, plain ERM), so it checkpoints and resumes like any run. Its error set, the train images its
final weights misclassify for the target, is written once to ``OUT/jtt_errors.json``; a resumed run
reads it back instead of predicting again.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.transforms import PreprocessConfig
from ..evaluation.batched import predict_probabilities
from ..utils.distributed import DistInfo, predict_shard
from ..utils.fileio import atomic_write_text
from .batches import RunData
from .config import TrainConfig, TrainingError

FIRST_RUN = "jtt-first"
ERRORS_FILE = "jtt_errors.json"


def target_of(config: TrainConfig) -> str:
    """The attribute whose mistakes JTT upweights: --group-target, else the first trained attribute."""
    return config.group_target or config.attributes[0]


def first_run_config(config: TrainConfig) -> TrainConfig:
    """The first run's settings: the run's own, trained for ``jtt_epochs`` epochs by plain ERM."""
    return replace(config, out=str(Path(config.out) / FIRST_RUN), epochs=config.jtt_epochs, jtt=False,
                   select="macro-f1", keep_epochs=False, patience=None,
                   group_target=config.group_target if config.group_by else None)  # cells need group_by


def find_errors(
    model: nn.Module, config: TrainConfig, data: RunData, spec: PreprocessConfig, device: torch.device,
    info: DistInfo = DistInfo(),
) -> np.ndarray:
    """Whether ``model`` misclassifies each train row's target at threshold 0.5 (a bool per train row)."""
    column = config.attributes.index(target_of(config))
    probs = predict_shard(
        lambda rows: predict_probabilities(model, data.images, rows, spec, device, batch_size=config.eval_batch_size),
        data.train_rows, info, len(config.attributes),
    )
    return (probs[:, column] >= 0.5) != data.labels[data.train_rows, column].astype(bool)


def upweights(errors: np.ndarray, upweight: float) -> np.ndarray:
    """Sampling weights per train row: ``upweight`` for the error set, 1 for the rest."""
    return np.where(errors, upweight, 1.0)


def save_errors(out: Path, config: TrainConfig, data: RunData, errors: np.ndarray) -> None:
    files = data.index.files[data.train_rows[errors]].tolist()
    record = summary(config, errors) | {"files": files}
    atomic_write_text(out / ERRORS_FILE, json.dumps(record, indent=1) + "\n")


def load_errors(out: Path, data: RunData) -> np.ndarray | None:
    """The error set saved in ``out`` as a bool per train row; None before it was found."""
    path = out / ERRORS_FILE
    if not path.is_file():
        return None
    try:
        files = set(json.loads(path.read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise TrainingError(f"{path} is damaged ({err}); delete it to find the error set again") from err
    return np.isin(data.index.files[data.train_rows], list(files))


def summary(config: TrainConfig, errors: np.ndarray) -> dict:
    """What the run's metadata records of JTT."""
    return {"first_run": FIRST_RUN, "first_epochs": config.jtt_epochs, "target": target_of(config),
            "upweight": config.jtt_upweight, "error_set_size": int(errors.sum()), "train_images": int(len(errors))}
