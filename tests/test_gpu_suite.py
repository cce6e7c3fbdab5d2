"""bench/gpu_suite.sh on CPU at small size: every step of the GPU run gives figures or a reason, so the
prepared GPU run cannot rot while no GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STEPS = ("environment", "dataset", "train_throughput", "epoch", "evaluation", "torchrun_2gpu")


def _suite(work: Path, out: Path, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OUT"} | {"PYTHON": sys.executable}
    command = ["bash", str(REPO / "bench" / "gpu_suite.sh"), "--device", "cpu", "--small", "--work-dir", str(work),
               "--out-dir", str(out), *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert (out / "gpu_suite.log").is_file()
    return json.loads((out / "gpu_suite.json").read_text())


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("gpu_suite")
    return work, _suite(work, work / "out")


def test_every_step_has_figures_or_a_reason(small_run):
    work, report = small_run
    assert list(report["steps"]) == list(STEPS)
    for name, entry in report["steps"].items():
        assert entry["status"] in ("ok", "skipped"), (name, entry)
        if entry["status"] == "ok":
            assert entry["figures"], name
            assert "peak_gpu_mib" in entry and entry["seconds"] >= 0
        else:
            assert entry["reason"], name
    steps = report["steps"]
    assert steps["torchrun_2gpu"]["status"] == "skipped" and "CUDA" in steps["torchrun_2gpu"]["reason"]

    dataset = steps["dataset"]["figures"]
    assert dataset["images"] == 600 and dataset["splits"] == {"train": 482, "val": 59, "test": 59}
    for model in ("paper", "attrnet"):
        figures = steps["train_throughput"]["figures"][model]
        for pipeline in ("naive", "cached", "resident"):
            assert figures[pipeline]["images_per_s"] > 0
        assert figures["resident_over_naive"] > 0 and figures["cached_over_naive"] > 0
    epoch = steps["epoch"]["figures"]
    assert epoch["train_images"] == 482 and epoch["full_epoch_extrapolated"]
    evaluation = steps["evaluation"]["figures"]
    assert evaluation["images"] == 59 and evaluation["agreement"]["decisions"] == 59 * 10
    assert evaluation["agreement"]["max_abs_diff"] < 1e-6  # CPU against CPU: the same computation

    assert len(report["targets"]) == 4 and all(t["measured"] for t in report["targets"])
    table = (work / "out" / "gpu_suite.md").read_text()
    assert "## Targets" in table and "## Training images/s" in table
    for name in STEPS:
        assert f"| {name} | {report['steps'][name]['status']} |" in table


def test_the_torchrun_step_runs_with_two_gloo_processes(small_run):
    """The 2-GPU step's worker, run here as 2 CPU processes on the dataset the first run left."""
    work, _ = small_run
    report = _suite(work, work / "out_ddp", "--only", "torchrun_2gpu", "--torchrun-cpu")
    assert report["steps"]["evaluation"]["reason"] == "not selected (--only)"
    ddp = report["steps"]["torchrun_2gpu"]
    assert ddp["status"] == "ok", ddp
    assert ddp["figures"]["backend"] == "gloo" and ddp["figures"]["train_images_per_s"] > 0
    assert ddp["figures"]["peak_gpu_mib_per_rank"] == [None, None]
