"""Training on the demo data: it learns, checkpoints every epoch, and resumes exactly after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from celeba_model.data.index import load_index
from celeba_model.errors import ConfigError
from celeba_model.models.checkpoint import load_checkpoint
from celeba_model.training import TrainConfig, TrainingError, train

REPO = Path(__file__).resolve().parents[1]


def _config(demo_root, out, cache_dir, **overrides) -> TrainConfig:
    values = dict(
        data_roots=[str(demo_root)], out=str(out), cache_dir=str(cache_dir), image_size=32, epochs=6,
        color="rgb", progress=False, lr=3e-3,
    )
    return TrainConfig(**{**values, **overrides})


def test_short_training_learns_well_above_chance(demo_root, tmp_path):
    result = train(_config(demo_root, tmp_path / "run", tmp_path / "cache", pos_weight="sqrt"))
    run = tmp_path / "run"
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == list(range(1, 7))
    assert set(lines[0]["val_f1"]) == set(TrainConfig(data_roots=[], out="").attributes)

    # Chance level: the best trivial rule per attribute, predicting "present" for everyone.
    index = load_index([demo_root])
    val = index.attribute_labels(TrainConfig(data_roots=[], out="").attributes, index.split_indices("val"))
    rate = val.mean(axis=0)
    chance = float(np.mean(2 * rate / (1 + rate)))
    best = result.best_val_macro_f1
    assert best > chance + 0.15, (best, chance)
    assert best == max(l["val_macro_f1"] for l in lines)

    checkpoint = load_checkpoint(run / "best.safetensors")
    assert checkpoint.meta["training"]["best_epoch"] == result.best_epoch
    assert checkpoint.preprocess.color == "rgb" and checkpoint.preprocess.image_size == 32
    assert "optimizer" not in checkpoint.meta  # best is for inference: weights only
    assert "optimizer" in load_checkpoint(run / "last.safetensors", with_optimizer=True).meta


def test_existing_run_is_not_overwritten_and_settings_are_locked_on_resume(demo_root, tmp_path):
    config = _config(demo_root, tmp_path / "run", tmp_path / "cache", epochs=1, arch="no_conv3_no_fc1")
    train(config)
    before = (tmp_path / "run" / "last.safetensors").read_bytes()
    with pytest.raises(TrainingError, match="already holds a training run"):
        train(config)
    with pytest.raises(TrainingError, match="lr: run has 0.003, asked for 0.1"):
        train(_config(demo_root, tmp_path / "run", tmp_path / "cache", epochs=1, arch="no_conv3_no_fc1", lr=0.1), resume=True)
    assert (tmp_path / "run" / "last.safetensors").read_bytes() == before
    with pytest.raises(TrainingError, match="Nothing to resume"):
        train(_config(demo_root, tmp_path / "other", tmp_path / "cache"), resume=True)


def test_max_train_images_limits_the_training_set(demo_root, tmp_path):
    train(_config(demo_root, tmp_path / "run", tmp_path / "cache", epochs=1, max_train_images=100, arch="no_conv3_no_fc1"))
    meta = load_checkpoint(tmp_path / "run" / "last.safetensors").meta
    assert meta["training"]["data"]["train_images"] == 100


def _train_command(demo_root, out, cache_dir, epochs=4):
    return [
        sys.executable, "-m", "celeba_model", "train", "--data-root", str(demo_root), "--out", str(out),
        "--cache-dir", str(cache_dir), "--arch", "paper", "--image-size", "32", "--color", "rgb",
        "--epochs", str(epochs), "--augment", "--pos-weight", "sqrt", "--ema", "0.95", "--no-progress",
    ]


def _run_env():
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def test_run_killed_mid_training_resumes_to_the_same_result(demo_root, tmp_path):
    cache = tmp_path / "cache"
    # The uninterrupted reference run.
    subprocess.run(_train_command(demo_root, tmp_path / "full", cache), check=True, env=_run_env(), capture_output=True)

    # The same run, killed with SIGKILL as soon as its first epoch is on disk.
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_command(demo_root, killed, cache), env=_run_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = killed / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and metrics.read_text().strip():
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = len(metrics.read_text().splitlines())
    assert 1 <= done_at_kill < 4, "the run must be killed part-way"
    assert not list(killed.glob("*.tmp")) and not list(killed.glob(".*.tmp"))
    assert load_checkpoint(killed / "last.safetensors").meta["training"]["epoch"] >= 1

    result = subprocess.run(_train_command(demo_root, killed, cache) + ["--resume"], env=_run_env(),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Resuming" in result.stderr  # a log line
    assert json.loads(result.stdout)["epochs_run"] == 4  # the summary, alone on stdout

    full = load_file(tmp_path / "full" / "last.safetensors")
    resumed = load_file(killed / "last.safetensors")
    assert full.keys() == resumed.keys()
    for name in full:
        assert torch.equal(full[name], resumed[name]), name
    strip = lambda path: [{k: v for k, v in json.loads(l).items() if "seconds" not in k and "per_s" not in k}  # noqa: E731
                          for l in path.read_text().splitlines()]
    assert strip(killed / "metrics.jsonl") == strip(tmp_path / "full" / "metrics.jsonl")


def test_cache_held_on_the_device_trains_exactly_like_the_memory_map(demo_root, tmp_path):
    # The GPU path (whole cache resident on the device) must not change what is learned; on this
    # CPU "yes" holds it as one in-memory tensor, which exercises the same code.
    common = dict(epochs=1, arch="no_conv3_no_fc1", augment=True, pos_weight="sqrt", max_train_images=300)
    train(_config(demo_root, tmp_path / "mapped", tmp_path / "cache", data_on_device="no", **common))
    train(_config(demo_root, tmp_path / "resident", tmp_path / "cache", data_on_device="yes", **common))
    mapped = load_file(tmp_path / "mapped" / "last.safetensors")
    resident = load_file(tmp_path / "resident" / "last.safetensors")
    assert mapped.keys() == resident.keys()
    for name in mapped:
        assert torch.equal(mapped[name], resident[name]), name


def test_unknown_data_on_device_mode_is_refused(demo_root, tmp_path):
    with pytest.raises(ConfigError, match="data_on_device must be one of"):
        _config(demo_root, tmp_path / "run", tmp_path / "cache", data_on_device="always")


def test_auxiliary_attributes_train_more_outputs_and_ship_only_the_predicted_ones(demo_root, tmp_path):
    aux = ["Wearing_Hat", "Bald", "Mustache"]
    config = _config(demo_root, tmp_path / "run", tmp_path / "cache", epochs=1, arch="cnn4", aux_attributes=aux)
    assert config.trained_attributes == config.attributes + aux
    train(config)
    run = tmp_path / "run"
    line = json.loads((run / "metrics.jsonl").read_text())
    assert list(line["val_f1"]) == config.attributes  # validation scores the predicted attributes only

    best, last = load_checkpoint(run / "best.safetensors"), load_checkpoint(run / "last.safetensors")
    assert best.attributes == config.attributes and best.meta["training"]["aux_attributes"] == aux
    assert last.attributes == config.attributes + aux  # all outputs, to resume
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    best.model.eval(), last.model.eval()
    with torch.no_grad():
        assert torch.allclose(best.model(x), last.model(x)[:, : len(config.attributes)], atol=1e-6)

    with pytest.raises(TrainingError, match="aux_attributes"):
        train(_config(demo_root, run, tmp_path / "cache", epochs=1, arch="cnn4", aux_attributes=["Bald"]), resume=True)


def test_auxiliary_attributes_all_means_the_others_and_may_not_repeat_predicted_ones(tmp_path):
    config = TrainConfig(data_roots=["x"], out=str(tmp_path), aux_attributes=["all"])
    assert len(config.trained_attributes) == 40 and len(set(config.trained_attributes)) == 40
    with pytest.raises(ConfigError, match="cannot repeat predicted attributes: Smiling"):
        TrainConfig(data_roots=["x"], out=str(tmp_path), aux_attributes=["smiling"])
    with pytest.raises(ConfigError, match="augment_preset"):
        TrainConfig(data_roots=["x"], out=str(tmp_path), augment_preset="heavy")
