"""Training histories (metrics.jsonl, checkpoint metadata) and training in the background: start, status,
stop and resume, as the dashboard's Training page uses them, on short real runs of the demo data."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from celeba_model.cli import build_parser
from celeba_model.errors import CelebAModelError, ConfigError
from celeba_model.models.checkpoint import load_checkpoint, read_checkpoint_meta
from celeba_model.training import TrainConfig, TrainingError
from celeba_model.training.background import (
    FAILED,
    FINISHED,
    RUNNING,
    STOPPED,
    resume_training,
    run_folder_named,
    start_training,
    stop_training,
    train_arguments,
    training_runs,
    training_status,
)
from celeba_model.training.history import (
    HistoryError,
    attribute_columns,
    checkpoint_history,
    history_sources,
    history_summary,
    parse_metrics,
    read_metrics,
    run_history,
)
from celeba_model.utils.jobs import JOB_FILE, read_job
from celeba_model.utils.run_lock import RunLockedError
from celeba_model.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _record(epoch: int, **extra) -> dict:
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.2 / epoch, "val_macro_f1": 0.5 + epoch / 100,
            "val_f1": {"Smiling": 0.8, "Male": 0.9}, "lr": 1e-3, "train_seconds": 2.0, "train_images_per_s": 500.0,
            **extra}


def _lines(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


# Histories.

def test_a_history_being_written_reads_up_to_its_last_whole_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    whole = _lines([_record(2), _record(1)])
    path.write_text(whole + json.dumps(_record(3))[:40])  # the third epoch's line, half written
    table = read_metrics(path)
    assert table["epoch"].tolist() == [1, 2]  # sorted by epoch
    assert attribute_columns(table) == {"Smiling": "val_f1.Smiling", "Male": "val_f1.Male"}
    assert table["val_f1.Male"].tolist() == [0.9, 0.9]
    summary = history_summary(table)
    assert summary["epochs"] == 2 and summary["best_epoch"] == 2 and summary["best_val_macro_f1"] == pytest.approx(0.52)
    # The same line once complete, without its newline yet, counts.
    assert len(parse_metrics(whole + json.dumps(_record(3)))) == 3


@pytest.mark.parametrize("text, message", [
    (_lines([_record(1)]) + "{not json\n" + _lines([_record(3)]), "line 2: not a JSON record"),
    (_lines([_record(1)]) + '{"epoch": 2, "train_loss":\n', "line 2: not a JSON record"),  # ended by a newline
    (_lines([_record(1)]) + "[1, 2]\n", "line 2: a JSON list, not an epoch's record"),
    (_lines([_record(1)]) + '{"train_loss": 0.3}\n', "line 2: no epoch number"),
])
def test_a_damaged_metrics_file_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "metrics.jsonl"
    path.write_text(text)
    with pytest.raises(HistoryError, match=message):
        read_metrics(path)


def test_unreadable_or_missing_histories(tmp_path):
    (tmp_path / "bad.jsonl").write_bytes(b'{"epoch": 1}\n\xff\xfe\n')
    with pytest.raises(HistoryError, match="not UTF-8"):
        read_metrics(tmp_path / "bad.jsonl")
    with pytest.raises(HistoryError, match="not found"):
        run_history(tmp_path / "nothing")
    started = tmp_path / "started"  # a run whose first epoch is under way
    started.mkdir()
    (started / "config.json").write_text("{}")
    assert run_history(started).empty
    (tmp_path / "fake.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CelebAModelError):
        checkpoint_history(tmp_path / "fake.safetensors")


def test_every_shipped_checkpoint_carries_its_history():
    sources = [s for s in history_sources(Workspace(REPO)) if s.shipped]
    labels = [s.label for s in sources]
    assert "celeba/attrnet (shipped)" in labels and "demo/paper (shipped)" in labels
    assert labels.index("celeba/paper (shipped)") < labels.index("demo/paper (shipped)")  # real data first
    ensembles = [p for p in (REPO / "checkpoints").glob("*/*.safetensors")
                 if read_checkpoint_meta(p).meta["model"]["arch"] == "ensemble"]  # assembled, not trained
    assert ensembles and not {s.path for s in sources} & set(ensembles)
    assert len(sources) == len(list((REPO / "checkpoints").glob("*/*.safetensors"))) - len(ensembles)
    for source in sources:
        table = source.load()
        assert len(table) >= 5 and table["epoch"].tolist() == list(range(1, len(table) + 1)), source.label
        assert table["val_macro_f1"].between(0, 1).all() and (table["train_images_per_s"] > 0).all()
        attributes = load_checkpoint(source.path).attributes
        assert list(attribute_columns(table)) == attributes, source.label


# Commands and names.

def test_the_background_command_makes_the_same_config(tmp_path):
    config = TrainConfig(data_roots=["/data/a", "/data/b"], out=str(tmp_path / "run"), arch="cnn4",
                         attributes=["Blond_Hair", "Smiling"], epochs=7, lr=0.0025, image_size=48, color="rgb",
                         pos_weight="sqrt", augment=True, ema=0.99, max_train_images=300,
                         model_config={"width": 24}, group_by=["Male"], group_dro=True, select="worst-group",
                         cache_dir="/tmp/cache", progress=False, keep_epochs=True, aux_attributes=["Bald", "Mustache"],
                         augment_preset="photo")
    args = build_parser().parse_args(["train", *train_arguments(config)])
    given = {k: v for k, v in vars(args).items() if k not in ("func", "command", "log_level", "resume", "no_progress")}
    assert args.no_progress
    assert TrainConfig.from_dict({**given, "progress": False}) == config
    assert train_arguments(TrainConfig(data_roots=["/d"], out="/o")) == ["--data-root", "/d", "--out", "/o",
                                                                         "--no-progress"]


def test_run_names_are_one_plain_folder(tmp_path):
    assert run_folder_named(tmp_path, " my-run_2.b ") == tmp_path / "my-run_2.b"
    for bad in ("", "../up", "a/b", ".hidden", "x" * 101, "demo", "labels", "thresholds"):
        with pytest.raises(ConfigError):
            run_folder_named(tmp_path, bad)


# Background runs.

@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def runs(tmp_path):
    """A runs/ folder; whatever still trains in it at the end of a test is stopped."""
    yield tmp_path
    for folder in training_runs(tmp_path):
        if training_status(folder).stoppable:
            stop_training(folder, wait_s=30)


def _config(root: Path, out: Path, cache: Path, **overrides) -> TrainConfig:
    values = dict(data_roots=[str(root)], out=str(out), image_size=32, epochs=2, max_train_images=200,
                  cache_dir=str(cache), progress=False)
    return TrainConfig(**{**values, **overrides})


def _wait(out: Path, until, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = training_status(out)
        if until(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"timed out; last status: {training_status(out)}")


def test_a_background_run_is_found_again_from_its_folder(demo_root, runs, shared_cache):
    out = runs / "short"
    started = start_training(_config(demo_root, out, shared_cache), env=ENV)
    assert started.state == RUNNING and started.stoppable and started.epochs == 2
    job = read_job(out)
    assert job["command"][1:4] == ["-m", "celeba_model", "train"] and job["pid"] > 0 and job["exit_status"] is None
    with pytest.raises(TrainingError, match="already going"):
        start_training(_config(demo_root, out, shared_cache), env=ENV)

    done = _wait(out, lambda s: s.state != RUNNING)
    assert done.state == FINISHED and done.epoch == 2 and done.exit_status == 0, done
    assert done.message == "finished: 2 epochs" and not done.resumable
    history = run_history(out)
    assert history["epoch"].tolist() == [1, 2] and (history["epoch_seconds"] > 0).all()
    assert any(line.startswith("epoch   2/2") for line in (out / "train.log").read_text().splitlines())
    assert training_runs(runs) == [out]
    with pytest.raises(TrainingError, match="already holds a training run"):
        start_training(_config(demo_root, out, shared_cache), env=ENV)


def test_stopped_mid_run_then_resumed_to_the_end(demo_root, runs, shared_cache):
    out = runs / "long"
    start_training(_config(demo_root, out, shared_cache, epochs=20), env=ENV)
    running = _wait(out, lambda s: s.epoch >= 2 or s.state != RUNNING)
    assert running.state == RUNNING and running.eta_seconds is not None and "left" in running.message, running

    stopped = stop_training(out, wait_s=60)
    assert stopped.state == STOPPED and stopped.exit_status == 130 and stopped.resumable, stopped
    assert 2 <= stopped.epoch < 20
    # The last finished epoch is on disk whole: checkpoint and metrics agree, no temporary file or lock is left.
    assert load_checkpoint(out / "last.safetensors").meta["training"]["epoch"] == stopped.epoch
    assert not list(out.glob(".*.tmp")) and not (out / ".lock").exists()
    assert "Interrupted" in stopped.log_tail[-1]
    with pytest.raises(TrainingError, match="No training started from here is running"):
        stop_training(out)

    resumed = resume_training(out, env=ENV)
    assert resumed.state == RUNNING
    done = _wait(out, lambda s: s.state != RUNNING)
    assert done.state == FINISHED and done.epoch == 20, done
    assert run_history(out)["epoch"].tolist() == list(range(1, 21))
    assert "Resuming" in (out / "train.log").read_text()


def test_starts_that_training_would_refuse_start_nothing(demo_root, runs, shared_cache, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CelebAModelError, match="No CelebA data under"):
        start_training(_config(tmp_path / "empty", runs / "a", shared_cache), env=ENV)
    with pytest.raises(ConfigError):
        start_training(_config(demo_root, runs / "b", shared_cache, model_config={"no_such_option": 1}), env=ENV)
    assert not (runs / "a").exists() and not (runs / "b").exists()

    # A folder another live process is writing (its lock names it).
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        locked = runs / "locked"
        locked.mkdir()
        (locked / ".lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "started": "now"}))
        with pytest.raises(RunLockedError, match=f"process {holder.pid}"):
            start_training(_config(demo_root, locked, shared_cache), env=ENV)
        assert not (locked / JOB_FILE).exists()
        status = training_status(locked)
        assert status.state == RUNNING and not status.stoppable and "outside the dashboard" in status.message
    finally:
        holder.kill()
        holder.wait()


def test_a_run_that_fails_reports_the_error_and_its_log(celeba_factory, runs, shared_cache):
    root = celeba_factory(n=12, on_disk=set(range(7)))  # no val image on disk: training refuses after indexing
    out = runs / "failing"
    start_training(_config(root, out, shared_cache), env=ENV)
    failed = _wait(out, lambda s: s.state != RUNNING)
    assert failed.state == FAILED and failed.exit_status == 2, failed
    assert "The val split" in failed.message and failed.log_tail[-1].startswith("error: ")
    assert not failed.resumable  # it failed before it wrote any settings: start it anew
    assert training_runs(runs) == [out]
