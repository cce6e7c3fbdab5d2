"""The threshold round trip as the README writes it: evaluate val, evaluate test, tune on val and save,
report on test with the checkpoint's thresholds; from the CLI and from the dashboard.

"The checkpoint's thresholds" are read from the checkpoint when they are used, never from a copy
made at evaluation time; shipped checkpoints are never rewritten (their thresholds go to the
workspace's override).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from celeba_model.cli import main
from celeba_model.models.checkpoint import (
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
    update_checkpoint_meta,
)
from celeba_model.models.thresholds import stored_thresholds

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboard" / "app.py"
STALE = 0.238  # thresholds a checkpoint held before the round trip


def _tuned(run: Path) -> dict[str, float]:
    return json.loads((run / "thresholds.json").read_text())["thresholds"]


def _report_thresholds(run: Path) -> dict[str, float]:
    return {r["attribute"]: r["threshold"] for r in json.loads((run / "report.json").read_text())["attributes"]}


@pytest.fixture
def user_workspace(tmp_path, trained_runs, monkeypatch) -> Path:
    """A user's folder holding one training run, worked in as the README does (relative paths)."""
    workspace = tmp_path / "work"
    (workspace / "runs" / "paper").mkdir(parents=True)
    shutil.copyfile(trained_runs["paper"] / "best.safetensors", workspace / "runs" / "paper" / "best.safetensors")
    monkeypatch.chdir(workspace)
    monkeypatch.delenv("CELEBA_WORKSPACE", raising=False)
    monkeypatch.setenv("CELEBA_MODEL_CACHE", str(tmp_path / "cache"))
    return workspace


def _readme_sequence(demo_root: Path) -> None:
    """The README's threshold commands, in its order, word for word but for the data root."""
    ckpt, data = "runs/paper/best.safetensors", str(demo_root)
    assert main(["evaluate", "--checkpoint", ckpt, "--data-root", data, "--split", "val"]) == 0
    assert main(["evaluate", "--checkpoint", ckpt, "--data-root", data, "--split", "test"]) == 0
    assert main(["tune", "--run", "runs/paper/val", "--save-to-checkpoint"]) == 0
    assert main(["report", "--run", "runs/paper/test", "--thresholds", "checkpoint", "--bootstrap", "20"]) == 0


@pytest.mark.parametrize("had_thresholds", [False, True], ids=["fresh checkpoint", "checkpoint with old thresholds"])
def test_readme_threshold_sequence_reports_with_the_thresholds_just_tuned(user_workspace, demo_root, had_thresholds,
                                                                          capsys):
    checkpoint = user_workspace / "runs" / "paper" / "best.safetensors"
    if had_thresholds:
        update_checkpoint_meta(checkpoint, {"thresholds": {a: STALE for a in _attributes(checkpoint)}})
    _readme_sequence(demo_root)
    tuned = _tuned(user_workspace / "runs" / "paper" / "val")
    assert not np.allclose(list(tuned.values()), STALE)
    assert _report_thresholds(user_workspace / "runs" / "paper" / "test") == pytest.approx(tuned)
    assert "Thresholds from" in capsys.readouterr().out


def _attributes(checkpoint: Path) -> list[str]:
    return read_checkpoint_meta(checkpoint).meta["attributes"]


def test_dashboard_uses_the_thresholds_tuned_after_the_evaluation(user_workspace, demo_root, monkeypatch):
    checkpoint = user_workspace / "runs" / "paper" / "best.safetensors"
    update_checkpoint_meta(checkpoint, {"thresholds": {a: STALE for a in _attributes(checkpoint)}})
    _readme_sequence(demo_root)
    tuned = _tuned(user_workspace / "runs" / "paper" / "val")
    monkeypatch.setenv("CELEBA_WORKSPACE", str(user_workspace))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.sidebar.selectbox(key="run_choice").set_value("paper/test").run()
    at = at.switch_page("views/thresholds.py").run()
    assert not at.exception
    next(b for b in at.button if b.label == "Use checkpoint's").click().run()
    table = at.dataframe[0].value.set_index("attribute")["threshold"]
    assert table.to_dict() == pytest.approx(tuned)


def test_a_moved_or_retrained_checkpoint_is_named_not_silently_used(user_workspace, demo_root, capsys):
    _readme_sequence(demo_root)
    checkpoint = user_workspace / "runs" / "paper" / "best.safetensors"
    moved = checkpoint.with_name("kept.safetensors")
    checkpoint.rename(moved)
    capsys.readouterr()
    assert main(["report", "--run", "runs/paper/test", "--thresholds", "checkpoint"]) == 2
    err = capsys.readouterr().err
    assert "no longer there (moved or deleted)" in err and "Traceback" not in err

    # Other weights at the same path (a retrained model): refused, with the reason.
    retrained = load_checkpoint(moved)
    with torch.no_grad():
        next(retrained.model.parameters()).add_(0.01)
    save_checkpoint(checkpoint, retrained.model, retrained.meta)
    assert main(["report", "--run", "runs/paper/test", "--thresholds", "checkpoint"]) == 2
    assert "has different weights from the model evaluated" in capsys.readouterr().err


@pytest.fixture
def shipped_workspace(tmp_path) -> Path:
    """A workspace with the shipped default model and its val/test artifacts, as a checkout has them."""
    root = tmp_path / "checkout"
    source = REPO / "checkpoints" / "celeba"
    target = root / "checkpoints" / "celeba"
    (target / "runs").mkdir(parents=True)
    for name in ("attrnet.safetensors", "experiments.json", "results.json"):
        shutil.copyfile(source / name, target / name)
    shutil.copytree(source / "runs" / "attrnet", target / "runs" / "attrnet")
    return root


def test_tuning_a_shipped_checkpoint_keeps_its_file_and_is_used_everywhere(shipped_workspace, demo_root, capsys,
                                                                            monkeypatch):
    shipped = shipped_workspace / "checkpoints" / "celeba" / "attrnet.safetensors"
    before = shipped.read_bytes()
    val = shipped_workspace / "checkpoints" / "celeba" / "runs" / "attrnet" / "val"
    test = val.parent / "test"
    ws = ["--workspace", str(shipped_workspace)]
    assert main(["tune", "--run", str(val), "--save-to-checkpoint", *ws]) == 0
    assert "the checkpoint is shipped or read-only, so its file is unchanged" in capsys.readouterr().out
    assert shipped.read_bytes() == before
    tuned = _tuned(val)
    overrides = list((shipped_workspace / "runs" / "thresholds").glob("attrnet-*.json"))
    assert len(overrides) == 1
    stored = stored_thresholds(shipped, shipped_workspace)
    assert stored.source == overrides[0] and stored.values == pytest.approx(tuned)

    assert main(["report", "--run", str(test), "--thresholds", "checkpoint", "--bootstrap", "20", *ws]) == 0
    assert _report_thresholds(test) == pytest.approx(tuned)

    # predict uses them by default, with the checkpoint the Upload page uses.
    face = sorted((demo_root / "img_align_celeba").glob("*.jpg"))[0]
    capsys.readouterr()
    assert main(["predict", str(face), "--json", "-v", *ws]) == 0
    captured = capsys.readouterr()
    assert f"thresholds {overrides[0]}" in captured.err
    [entry] = json.loads(captured.out)
    assert entry["decisions"] == {a: entry["probabilities"][a] >= tuned[a] for a in tuned}

    # The Upload page's toggle uses them too.
    monkeypatch.setenv("CELEBA_WORKSPACE", str(shipped_workspace))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at = at.switch_page("views/upload.py").run()
    face = sorted((demo_root / "img_align_celeba").glob("*.jpg"))[0].read_bytes()
    at.get("file_uploader")[0].upload("face.jpg", face, "image/jpeg").run()
    assert not at.exception
    toggle = at.toggle(key="upload_tuned")
    assert toggle.value is True and str(overrides[0]) in toggle.help
