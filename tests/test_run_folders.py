"""Run folders are never overwritten or mixed silently: evaluation folders by checkpoint name, a lock
while training writes a run, nothing written by a start that fails, whole files on a full disk."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from celeba_model.catalogue import Catalogue
from celeba_model.cli import main
from celeba_model.evaluation.predictions import load_predictions
from celeba_model.workspace import Workspace, default_run_folder

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "checkpoints" / "demo"
CELEBA = REPO / "checkpoints" / "celeba"


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.delenv("CELEBA_WORKSPACE", raising=False)
    monkeypatch.setenv("CELEBA_MODEL_CACHE", str(tmp_path / "cache"))
    return root


def _evaluate(checkpoint: Path, data: Path, *extra: str) -> int:
    return main(["evaluate", "--checkpoint", str(checkpoint), "--data-root", str(data), "--no-progress", *extra])


def test_each_checkpoint_gets_its_own_folder_by_name(workspace, demo_root):
    assert _evaluate(DEMO / "paper.safetensors", demo_root) == 0
    assert _evaluate(DEMO / "no_conv3.safetensors", demo_root) == 0
    paper, no_conv3 = workspace / "runs" / "paper" / "test", workspace / "runs" / "no_conv3" / "test"
    assert load_predictions(paper).meta["checkpoint"]["arch"] == "paper"
    assert load_predictions(no_conv3).meta["checkpoint"]["arch"] == "no_conv3"
    # The dashboard's sidebar evaluation uses the same rule.
    assert Workspace(workspace).output_for(DEMO / "paper.safetensors", "test") == paper
    assert default_run_folder(workspace, workspace / "runs" / "x" / "best.safetensors", "val") == workspace / "runs" / "x" / "val"


def test_an_artifact_of_another_checkpoint_is_replaced_only_with_overwrite(workspace, demo_root, capsys):
    assert _evaluate(DEMO / "paper.safetensors", demo_root) == 0
    folder = workspace / "runs" / "paper" / "test"
    before = (folder / "predictions.npz").read_bytes()
    # The real-data paper model has the same name: same default folder, other weights.
    assert _evaluate(CELEBA / "paper.safetensors", demo_root) == 2
    err = capsys.readouterr().err
    assert "already holds predictions of another checkpoint" in err and "--overwrite" in err
    assert (folder / "predictions.npz").read_bytes() == before
    # The same checkpoint again is fine; the other one with --overwrite too.
    assert _evaluate(DEMO / "paper.safetensors", demo_root) == 0
    assert _evaluate(CELEBA / "paper.safetensors", demo_root, "--overwrite") == 0
    assert load_predictions(folder).meta["checkpoint"]["path"] == str((CELEBA / "paper.safetensors").resolve())


def test_the_dashboard_refuses_to_replace_another_checkpoints_run(workspace, demo_root):
    from celeba_model.evaluation.predictions import PredictionsError

    ws = Catalogue(Workspace(workspace))
    ws.evaluate(DEMO / "paper.safetensors", [demo_root], "val")
    with pytest.raises(PredictionsError, match="another checkpoint"):
        ws.evaluate(CELEBA / "paper.safetensors", [demo_root], "val")
    ws.evaluate(CELEBA / "paper.safetensors", [demo_root], "val", overwrite=True)


def _train_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data-root", str(root), "--out", str(out), "--epochs", "1", "--image-size", "32",
            "--no-progress", *extra]


@pytest.mark.parametrize("options, message", [
    (["--lr", "-0.1"], "lr must be a positive number"),
    (["--lr", "nan"], "lr must be a positive number"),
    (["--model-config", "[1, 2]"], "model_config must be a JSON object"),
    (["--model-config", '{"widths": "wide"}'], "Cannot build paper with model config"),
    (["--image-size", "40"], "divisible by 16"),
    (["--weight-decay", "inf"], "weight_decay must be"),
])
def test_a_start_that_fails_validation_writes_nothing(celeba_factory, tmp_path, capsys, options, message):
    root = celeba_factory(n=12)
    out = tmp_path / "run"
    assert main(_train_args(root, out, *options)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()
    # Nothing was left to trip the next start: the corrected command runs.
    assert main(_train_args(root, out)) == 0


def test_an_empty_train_split_writes_nothing(celeba_factory, tmp_path, capsys):
    root = celeba_factory(n=12)
    (root / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg 2\n" for i in range(12)))
    out = tmp_path / "run"
    assert main(_train_args(root, out)) == 2
    assert "has no readable images" in capsys.readouterr().err
    assert not out.exists()


def test_a_damaged_config_on_resume_is_a_clear_error(celeba_factory, tmp_path, capsys):
    root = celeba_factory(n=12)
    out = tmp_path / "run"
    assert main(_train_args(root, out)) == 0
    for damage in ("{not json", "[1, 2]", json.dumps({"data_roots": [str(root)], "out": str(out), "lr": "fast"})):
        (out / "config.json").write_text(damage)
        capsys.readouterr()
        assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err
        assert "config.json" in err or "lr must be a number, got 'fast'" in err


def _child_training(root: Path, out: Path, epochs: int, lr: str = "0.001") -> subprocess.Popen:
    args = [sys.executable, "-m", "celeba_model", *_train_args(root, out)[:-1], "--lr", lr]
    args[args.index("--epochs") + 1] = str(epochs)
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_second_run_into_a_folder_being_written_is_refused(celeba_factory, tmp_path, capsys):
    root = celeba_factory(n=60)
    out = tmp_path / "run"
    first = _child_training(root, out, epochs=20)
    try:
        deadline = time.monotonic() + 60
        while not (out / "last.safetensors").exists():  # the first run is training
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGSTOP)  # keep it mid-run (alive) while the second start is tried
        config = (out / "config.json").read_text()
        for resume in ([], ["--resume"]):
            assert main(_train_args(root, out, *resume)) == 2
            err = capsys.readouterr().err
            assert f"being written by process {first.pid}" in err
        assert (out / "config.json").read_text() == config
    finally:
        first.kill()
        first.wait()
    # Killed: its lock is stale, so resuming reports it, takes it over and finishes the run.
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"locked by process {first.pid}" in err and "no longer running" in err
    assert not (out / ".lock").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 20


def test_two_runs_started_together_into_one_folder_do_not_mix(celeba_factory, tmp_path):
    root = celeba_factory(n=60)
    out = tmp_path / "run"
    runs = [_child_training(root, out, epochs=3, lr=lr) for lr in ("0.001", "0.002")]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    winner = runs[[code for code, _ in results].index(0)]
    loser_err = next(err for code, err in results if code == 2)
    assert "being written by process" in loser_err or "already holds a training run" in loser_err
    lr = float(winner.args[winner.args.index("--lr") + 1])
    assert json.loads((out / "config.json").read_text())["lr"] == lr
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]


def test_make_demo_refuses_to_replace_a_demo_of_other_settings(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["make-demo", "--out", str(out), "--num-images", "40", "--workers", "1"]) == 0
    before = sorted(p.name for p in (out / "img_align_celeba").iterdir())
    assert main(["make-demo", "--out", str(out), "--num-images", "20", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "already holds a demo dataset of 40 images" in err and "--overwrite" in err
    assert sorted(p.name for p in (out / "img_align_celeba").iterdir()) == before
    assert main(["make-demo", "--out", str(out), "--num-images", "40", "--workers", "1"]) == 0  # same: reused
    assert main(["make-demo", "--out", str(out), "--num-images", "20", "--workers", "1", "--overwrite"]) == 0
    assert len(list((out / "img_align_celeba").iterdir())) == 20


@pytest.fixture
def full_disk(monkeypatch):
    """From now on every file write fails as on a full disk (after its bytes went to the temporary file)."""
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def arm():
        monkeypatch.setattr("celeba_model.utils.fileio.os.fsync", no_space)

    return arm


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_full_disk_leaves_the_previous_artifact_whole(workspace, demo_root, full_disk, capsys):
    assert _evaluate(DEMO / "paper.safetensors", demo_root, "--split", "val") == 0
    folder = workspace / "runs" / "paper" / "val"
    before = _files(folder)
    full_disk()
    assert _evaluate(DEMO / "paper.safetensors", demo_root, "--split", "val") == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("error: disk full: could not write") and "Traceback" not in err
    assert _files(folder) == before
    assert main(["report", "--run", str(folder), "--bootstrap", "10"]) == 2
    assert "error: disk full" in capsys.readouterr().err
    assert _files(folder) == before


def test_a_full_disk_stops_training_with_one_line(celeba_factory, tmp_path, full_disk, capsys):
    root = celeba_factory(n=12)
    full_disk()
    assert main(_train_args(root, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert "error: disk full: could not write" in err and "Traceback" not in err
    assert list((tmp_path / "run").iterdir()) == []  # no half-written file, no lock left behind


def test_related_runs_are_the_same_family_on_the_same_split(tmp_path):
    ws = Workspace(tmp_path)
    folders = [tmp_path / p for p in ("checkpoints/celeba/runs/paper/test", "checkpoints/celeba/runs/attrnet/test",
                                      "checkpoints/celeba/runs/paper/val", "runs/demo/paper/test", "runs/mine/test",
                                      "runs/other/test")]
    for folder in folders:
        folder.mkdir(parents=True)
        (folder / "predictions.npz").write_bytes(b"")
    shipped, demo, mine = folders[0], folders[3], folders[4]
    assert ws.related_runs(shipped) == [shipped, folders[1]]
    assert ws.related_runs(demo) == [demo]
    assert ws.related_runs(mine) == [mine, folders[5]]


def test_kept_epochs_of_different_runs_get_different_folders(tmp_path):
    first = default_run_folder(tmp_path, tmp_path / "runs" / "erm" / "epoch-007.safetensors", "test")
    second = default_run_folder(tmp_path, tmp_path / "runs" / "dro" / "epoch-007.safetensors", "test")
    assert first == tmp_path / "runs" / "erm-epoch-007" / "test" and second != first
