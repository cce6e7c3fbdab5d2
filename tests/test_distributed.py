"""torchrun with two CPU processes (Gloo): training progresses, evaluation equals one process's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from celeba_model.evaluation.predictions import load_predictions

REPO = Path(__file__).resolve().parents[1]


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "celeba_model", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_two_gloo_processes_train_and_evaluate_like_one(demo_root, tmp_path):
    cache = str(tmp_path / "cache")
    run = tmp_path / "ddp"
    result = _torchrun("train", "--data-root", str(demo_root), "--out", str(run), "--arch", "cnn4", "--image-size", "32",
                       "--color", "rgb", "--epochs", "4", "--lr", "3e-3", "--pos-weight", "sqrt", "--cache-dir", cache,
                       "--no-progress")
    assert result.stderr.count("2 processes") == 1  # only rank 0 logs information
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < history[0]["train_loss"] * 0.9
    assert max(h["val_macro_f1"] for h in history) > 0.3
    assert (run / "best.safetensors").is_file() and not list(run.glob(".*.tmp"))

    # Resuming the finished run under torchrun changes nothing.
    before = (run / "last.safetensors").read_bytes()
    _torchrun("train", "--out", str(run), "--resume", "--cache-dir", cache, "--no-progress")
    assert (run / "last.safetensors").read_bytes() == before

    # Sharded evaluation, gathered by rank 0, equals a single process's.
    _torchrun("evaluate", "--checkpoint", str(run / "best.safetensors"), "--data-root", str(demo_root), "--split", "val",
              "--out", str(tmp_path / "sharded"), "--cache-dir", cache, "--no-progress")
    from celeba_model.cli import main

    assert main(["evaluate", "--checkpoint", str(run / "best.safetensors"), "--data-root", str(demo_root), "--split",
                 "val", "--out", str(tmp_path / "single"), "--cache-dir", cache, "--no-progress"]) == 0
    sharded, single = load_predictions(tmp_path / "sharded"), load_predictions(tmp_path / "single")
    assert sharded.meta["timing"]["processes"] == 2 and single.meta["timing"]["processes"] == 1
    assert sharded.files.tolist() == single.files.tolist()
    assert np.array_equal(sharded.labels, single.labels)
    assert np.allclose(sharded.probabilities, single.probabilities, atol=1e-5)
