"""Damaged artifacts and checkpoints give one clear line from every command that reads them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from celeba_model.cli import main
from celeba_model.models.checkpoint import read_checkpoint_file

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboard" / "app.py"
SHIPPED_VAL = REPO / "checkpoints" / "celeba" / "runs" / "paper" / "val"


def _damage_truncated(folder: Path) -> None:
    data = (folder / "predictions.npz").read_bytes()
    (folder / "predictions.npz").write_bytes(data[: len(data) // 2])


def _damage_corrupted(folder: Path) -> None:
    data = bytearray((folder / "predictions.npz").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 400] = bytes(400)  # zeroed block inside the compressed arrays
    (folder / "predictions.npz").write_bytes(bytes(data))


def _damage_meta_list(folder: Path) -> None:
    (folder / "meta.json").write_text(json.dumps([1, 2, 3]))


def _damage_npz_meta_list(folder: Path) -> None:
    import numpy as np

    with np.load(folder / "predictions.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["meta"] = np.array(json.dumps([1, 2]))
    np.savez(folder / "predictions.npz", **arrays)


DAMAGES = {
    "truncated predictions.npz": (_damage_truncated, "not a readable predictions artifact"),
    "corrupted predictions.npz": (_damage_corrupted, "not a readable predictions artifact"),
    "metadata inside predictions.npz is a JSON list": (_damage_npz_meta_list, "is not 'celeba_model/predictions-v1'"),
}


@pytest.fixture
def run(tmp_path) -> Path:
    folder = tmp_path / "paper" / "val"
    shutil.copytree(SHIPPED_VAL, folder)
    return folder


def _commands(folder: Path) -> dict[str, list[str]]:
    return {
        "report": ["report", "--run", str(folder), "--bootstrap", "10"],
        "compare": ["compare", str(folder), str(folder), "--bootstrap", "10"],
        "tune": ["tune", "--run", str(folder)],
    }


@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.parametrize("command", ["report", "compare", "tune"])
def test_a_damaged_artifact_is_one_clear_line(run, damage, command, capsys):
    apply, message = DAMAGES[damage]
    apply(run)
    assert main(_commands(run)[command]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert str(run / "predictions.npz") in err


@pytest.mark.parametrize("command", ["report", "compare", "tune"])
def test_a_damaged_meta_json_copy_is_reported_and_the_artifact_still_works(run, command, capsys):
    _damage_meta_list(run)
    with pytest.warns(UserWarning, match="meta.json is not a JSON object; using the metadata stored in predictions.npz"):
        assert main(_commands(run)[command]) == 0


def _without(checkpoint: Path, out: Path, key: str) -> Path:
    """A copy of ``checkpoint`` whose metadata lacks ``key`` (tensors and digest intact)."""
    from safetensors.torch import save as save_safetensors

    tensors, meta, digest = read_checkpoint_file(checkpoint)
    meta.pop(key)
    header = {"format": "celeba_model/checkpoint-v1", "meta": json.dumps(meta), "tensors_sha256": digest}
    out.write_bytes(save_safetensors(tensors, metadata=header))
    return out


def test_a_checkpoint_without_attribute_names_is_one_clear_line_in_evaluate(tmp_path, demo_root, capsys):
    broken = _without(REPO / "checkpoints" / "demo" / "paper.safetensors", tmp_path / "noattrs.safetensors", "attributes")
    assert main(["evaluate", "--checkpoint", str(broken), "--data-root", str(demo_root), "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(broken) in err and "attributes" in err and "Traceback" not in err


def test_the_upload_page_explains_a_checkpoint_without_attribute_names(tmp_path, monkeypatch):
    workspace = tmp_path / "ws"
    (workspace / "checkpoints" / "mine").mkdir(parents=True)
    broken = _without(REPO / "checkpoints" / "demo" / "paper_rgb.safetensors",
                      workspace / "checkpoints" / "mine" / "noattrs.safetensors", "attributes")
    monkeypatch.setenv("CELEBA_WORKSPACE", str(workspace))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at = at.switch_page("views/upload.py").run()
    assert not at.exception
    at.selectbox(key="upload_checkpoint").set_value("checkpoints/mine/noattrs.safetensors").run()
    assert not at.exception
    assert any("cannot be used" in e.value and "noattrs.safetensors" in e.value for e in at.error)
    assert broken.is_file()
