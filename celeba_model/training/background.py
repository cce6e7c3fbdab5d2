"""Training in a background process that outlives whoever started it: start, status, stop, resume.

``start_training(config)`` checks what can be checked at once (the settings, the model, the data
roots' layout, the run folder: not locked, not holding another run), then runs ``python -m
celeba_model train ...`` detached (``utils.jobs``), its output in ``OUT/train.log``; ``OUT/job.json``
records the command, PID and start time, and the exit status when it ends. Everything is read back
from the run folder (``training_status``), so a page reload, another browser session or a restarted
dashboard sees the same state. ``stop_training`` sends SIGINT to the job's process group: training
stops as on Ctrl+C, leaving its last finished epoch's checkpoint for ``resume_training``.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import pandas as pd

from ..data.celeba_files import find_layout
from ..data.transforms import PreprocessConfig
from ..errors import CelebAModelError, ConfigError
from ..models.registry import create_model, model_spec
from ..utils import jobs, run_lock
from ..utils.run_lock import RunLockedError
from ..workspace import LABELS_FOLDER, OVERRIDES_FOLDER
from .config import TrainConfig, TrainingError, read_run_config
from .history import HistoryError, run_history
from .run_folder import CONFIG, METRICS, check_run_folder, find_run_folders

LOG_FILE = "train.log"
RUNNING, FINISHED, STOPPED, FAILED = "running", "finished", "stopped", "failed"
# Folders of runs/ that hold other things than training runs (the demo's evaluations, thresholds, labels).
RESERVED_NAMES = ("demo", OVERRIDES_FOLDER, LABELS_FOLDER)
# TrainConfig fields the command line sets in its own way (or that a background run fixes).
_OWN_FLAGS = ("data_roots", "out", "progress")


@dataclass(frozen=True)
class TrainingStatus:
    """Where a run folder's training stands, read from its files."""

    out: Path
    state: str  # RUNNING, FINISHED, STOPPED or FAILED
    epoch: int  # epochs finished
    epochs: int | None  # epochs asked for (None when unknown)
    message: str  # one line for people: "running: epoch 3 of 10 done, about 1 min 20 s left"
    eta_seconds: float | None = None  # while running, from the epochs so far
    started: str | None = None  # when the latest background job started (UTC, ISO 8601)
    exit_status: int | None = None  # of the latest background job, once it ended
    log_tail: list[str] = field(default_factory=list)  # the last lines of OUT/train.log
    stoppable: bool = False  # a running background job (stop_training works on it)
    resumable: bool = False  # stopped or failed part-way, with the settings to resume from

    @property
    def fraction(self) -> float:
        """Progress as a number in [0, 1]."""
        return min(self.epoch / self.epochs, 1.0) if self.epochs else 0.0


def run_folder_named(runs_dir: str | Path, name: str) -> Path:
    """``runs_dir/name`` for a new run named by a person; ConfigError for a name that is not one plain
    folder name or that runs/ keeps for something else."""
    name = name.strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise ConfigError(f"Run name {name!r}: use letters, digits, '.', '_' and '-' (one folder name, "
                          "starting with a letter or digit)")
    if name in RESERVED_NAMES:
        raise ConfigError(f"runs/{name} holds other files ({', '.join(RESERVED_NAMES)} are taken); choose another name")
    return Path(runs_dir) / name


def train_arguments(config: TrainConfig) -> list[str]:
    """The ``python -m celeba_model train`` options that make ``config`` (settings left at their default
    are not written out), with progress bars off for a log file."""
    args = [a for root in config.data_roots for a in ("--data-root", root)] + ["--out", config.out]
    for f in fields(TrainConfig):
        if f.name in _OWN_FLAGS:
            continue
        value = getattr(config, f.name)
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        if f.name == "attributes":
            default = TrainConfig(data_roots=[], out="").attributes
        if value == default or value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag)  # every boolean defaults to False
        elif f.name in ("attributes", "aux_attributes"):
            args += [flag, *value]
        elif f.name == "group_by":
            args += [flag, ",".join(value)]
        elif f.name == "model_config":
            args += [flag, json.dumps(value, separators=(",", ":"))]
        else:
            args += [flag, str(value)]
    return args + ["--no-progress"]


def _check_start(config: TrainConfig, out: Path, resume: bool) -> None:
    """What training would refuse, checked before a process is started (TrainConfig checked itself)."""
    spec = PreprocessConfig(image_size=config.image_size, color=config.color)
    try:
        create_model(model_spec(config.arch, spec.channels, len(config.trained_attributes), spec.image_size,
                                config.model_config))
    except (TypeError, ValueError, RuntimeError) as err:
        if isinstance(err, CelebAModelError):
            raise
        raise ConfigError(f"Cannot build {config.arch} with model config {config.model_config}: {err}") from err
    for root in config.data_roots:
        find_layout(root)  # a CelebA folder: images and list files where expected
    _check_folder(config, out, resume)


def _check_folder(config: TrainConfig, out: Path, resume: bool) -> None:
    job = jobs.read_job(out)
    if job is not None and jobs.job_running(job):
        raise TrainingError(f"A training run is already going in {out} (started {job.get('started')}); stop it first")
    check_run_folder(config, out, resume)  # locked, or holding another run (or nothing to resume)


def _launch(config: TrainConfig, resume: bool, env: Mapping[str, str] | None) -> TrainingStatus:
    out = Path(config.out)
    _check_start(config, out, resume)
    command = [sys.executable, "-m", "celeba_model", "train"]
    command += ["--out", config.out, "--resume", "--no-progress"] if resume else train_arguments(config)
    environment = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    # Locked while starting, so that two starts at once (two browser sessions) cannot both pass the
    # checks; the lock is ours only until the job is recorded, long before training takes it.
    with run_lock.locked(out):
        _check_folder(config, out, resume)
        extra = {"kind": "train", "resume": resume, "epochs": config.epochs, "epochs_at_start": _epochs_done(out)}
        try:
            jobs.start_job(out, command, out / LOG_FILE, env=environment, extra=extra)
        except OSError as err:
            raise TrainingError(f"could not start training in {out}: {err.strerror or err}") from err
    return training_status(out)


def start_training(config: TrainConfig, env: Mapping[str, str] | None = None) -> TrainingStatus:
    """Start a new run of ``config`` in the background (into ``config.out``) and return its status.

    Raises ConfigError, TrainingError or RunLockedError (all CelebAModelError) with the reason when
    training would refuse to start; nothing is written then.
    """
    return _launch(config, False, env)


def resume_training(out: str | Path, env: Mapping[str, str] | None = None) -> TrainingStatus:
    """Continue the run in ``out`` after its last finished epoch, in the background, with its saved settings."""
    config = TrainConfig.from_dict({**read_run_config(out), "out": str(out), "progress": False})
    return _launch(config, True, env)


def stop_training(out: str | Path, wait_s: float = 0.0) -> TrainingStatus:
    """Stop a run started by ``start_training`` or ``resume_training`` (SIGINT to its process group, as
    Ctrl+C): its last finished epoch's checkpoint stays for ``resume_training``. Waits up to ``wait_s``
    seconds for it to end; returns the status."""
    out = Path(out)
    job = jobs.read_job(out)
    if job is None or not jobs.job_running(job):
        raise TrainingError(f"No training started from here is running in {out}")
    jobs.signal_job(job, signal.SIGINT)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and jobs.job_running(jobs.read_job(out) or {}):
        time.sleep(0.1)
    return training_status(out)


def training_runs(root: str | Path) -> list[Path]:
    """Every training run folder under ``root`` (runs/): those with a config.json, and those a background
    start wrote a job.json into (a start that failed before training wrote anything)."""
    root = Path(root)
    started = {p.parent for p in root.rglob(jobs.JOB_FILE)} if root.is_dir() else set()
    return sorted(set(find_run_folders(root)) | started)


def _epochs_done(out: Path) -> int:
    try:
        return len(run_history(out)) if (out / METRICS).is_file() else 0
    except HistoryError:
        return 0


def _planned_epochs(out: Path, job: dict | None) -> int | None:
    try:
        epochs = read_run_config(out).get("epochs")
    except TrainingError:
        epochs = None
    if not isinstance(epochs, int):
        epochs = (job or {}).get("epochs")
    return epochs if isinstance(epochs, int) else None


def _log_tail(out: Path, job: dict | None, lines: int) -> list[str]:
    path = Path((job or {}).get("log") or out / LOG_FILE)
    try:
        with open(path, "rb") as f:
            f.seek(max(f.seek(0, os.SEEK_END) - 16384, 0))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    # Progress bars redraw with carriage returns: keep what each line finally showed.
    shown = [line.rsplit("\r", 1)[-1].rstrip() for line in text.splitlines()]
    return [line for line in shown if line][-lines:]


def _eta(out: Path, history: pd.DataFrame, epoch: int, epochs: int | None) -> float | None:
    """Seconds left: the recent epochs' duration times the epochs to go, less what the current one has run."""
    if not epochs or epoch < 1 or epoch >= epochs:
        return None
    seconds = history["epoch_seconds"] if "epoch_seconds" in history else history["train_seconds"]
    recent = seconds.dropna().tail(3)
    if recent.empty:
        return None
    per_epoch = float(recent.mean())
    try:
        since = max(time.time() - (out / METRICS).stat().st_mtime, 0.0)
    except OSError:
        since = 0.0
    return max(per_epoch - since, 0.0) + per_epoch * (epochs - epoch - 1)


def duration(seconds: float) -> str:
    """A duration for people: '45 s', '3 min 20 s', '2 h 05 min'."""
    seconds = int(math.ceil(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def training_status(out: str | Path, log_lines: int = 12) -> TrainingStatus:
    """The state of the run in ``out``: running (epoch k of n, ETA), finished, stopped or failed (with the
    log's last lines), from job.json, the run lock and metrics.jsonl."""
    out = Path(out)
    job = jobs.read_job(out)
    epochs = _planned_epochs(out, job)
    damaged = None
    try:
        history = run_history(out) if (out / METRICS).is_file() else None
    except HistoryError as err:
        history, damaged = None, str(err)
    epoch = 0 if history is None else len(history)
    of = f" of {epochs}" if epochs else ""
    common = dict(out=out, epoch=epoch, epochs=epochs, started=(job or {}).get("started"),
                  exit_status=(job or {}).get("exit_status"), log_tail=_log_tail(out, job, log_lines))
    resumable = (out / CONFIG).is_file() and (epochs is None or epoch < epochs)

    job_alive = job is not None and jobs.job_running(job)
    try:
        run_lock.check_unlocked(out)
        locked = False
    except RunLockedError:
        locked = True
    if job_alive or locked:
        eta = _eta(out, history, epoch, epochs) if history is not None else None
        message = f"running: epoch {epoch}{of} done" if epoch else "running: the first epoch is under way"
        message += f", about {duration(eta)} left" if eta is not None else ""
        if not job_alive:
            message += " (started outside the dashboard)"
        return TrainingStatus(state=RUNNING, message=message, eta_seconds=eta, stoppable=job_alive, **common)

    status = (job or {}).get("exit_status")
    if damaged:
        return TrainingStatus(state=FAILED, message=damaged, resumable=False, **common)
    if job is not None and status is None:
        return TrainingStatus(state=FAILED, message=f"ended after epoch {epoch}{of} without recording an exit "
                              "status (killed?)", resumable=resumable, **common)
    if status in jobs.INTERRUPTED:
        return TrainingStatus(state=STOPPED, message=f"stopped after epoch {epoch}{of}" +
                              ("; resume to continue" if resumable else ""), resumable=resumable, **common)
    if status not in (None, 0):
        errors = [line for line in common["log_tail"] if line.startswith("error:")]
        why = f": {errors[-1][len('error:'):].strip()}" if errors else ""
        return TrainingStatus(state=FAILED, message=f"failed (exit status {status}) after epoch {epoch}{of}{why}",
                              resumable=resumable, **common)
    if status == 0 or not resumable:
        early = " (stopped early: no gain for its patience)" if epochs and epoch < epochs else ""
        return TrainingStatus(state=FINISHED, message=f"finished: {epoch} epoch{'s' * (epoch != 1)}{early}", **common)
    # A run of the command line that is not running and has epochs to go: interrupted or killed.
    return TrainingStatus(state=STOPPED, message=f"not running, after epoch {epoch}{of}; resume to continue",
                          resumable=True, **common)
