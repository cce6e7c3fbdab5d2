"""The shipped models: which one the dashboard opens on and photos are predicted with (chosen on
validation, never on test), and how shipped artifacts name their images."""

from __future__ import annotations

import json

import pytest

from celeba_model.catalogue import Catalogue
from celeba_model.workspace import ARTIFACT_FILE, Workspace


def _ship(root, name: str) -> None:
    folder = root / "checkpoints" / "celeba"
    (folder / "runs" / name / "test").mkdir(parents=True, exist_ok=True)
    (folder / "runs" / name / "test" / ARTIFACT_FILE).write_bytes(b"")
    (folder / f"{name}.safetensors").write_bytes(b"")


def test_default_model_is_the_best_on_validation_across_both_shipped_families(tmp_path):
    folder = tmp_path / "checkpoints" / "celeba"
    folder.mkdir(parents=True)
    for name in ("paper", "paper_rgb", "attrnet"):
        _ship(tmp_path, name)
    (folder / "results.json").write_text(json.dumps({"variants": {
        "paper": {"best_val_macro_f1": 0.74}, "paper_rgb": {"best_val_macro_f1": 0.79},
        "gone": {"best_val_macro_f1": 0.99},  # listed, but its file is not shipped
    }}))
    experiments = {
        "attrnet": {"best_val_macro_f1": 0.84, "shipped_as": "attrnet", "test": {}},
        "cnn4": {"best_val_macro_f1": 0.95, "test": {}},  # never shipped: not a candidate
    }
    (folder / "experiments.json").write_text(json.dumps(experiments))
    catalogue = Catalogue(Workspace(tmp_path))
    assert catalogue.real_data_validation_scores() == {"paper": 0.74, "paper_rgb": 0.79, "attrnet": 0.84}
    assert catalogue.default_model() == folder / "attrnet.safetensors"
    assert catalogue.default_run() == folder / "runs" / "attrnet" / "test"

    # Without the experiments summary the paper family decides.
    (folder / "experiments.json").unlink()
    assert catalogue.default_model() == folder / "paper_rgb.safetensors"


def test_without_real_checkpoints_the_demo_model_is_the_default(tmp_path):
    demo = tmp_path / "checkpoints" / "demo"
    demo.mkdir(parents=True)
    (demo / "paper_rgb.safetensors").write_bytes(b"")
    (demo / "paper.safetensors").write_bytes(b"")
    assert Catalogue(Workspace(tmp_path)).default_model() == demo / "paper_rgb.safetensors"
    assert Catalogue(Workspace(tmp_path / "empty")).default_model() is None


def test_shipped_artifacts_name_images_beside_the_repository_relative_to_it(tmp_path):
    import numpy as np

    from celeba_model.catalogue import ship_artifact
    from celeba_model.evaluation.predictions import Predictions, load_predictions
    from celeba_model.workspace import REPO_ROOT

    beside = REPO_ROOT.parent / "shared" / "celeba" / "img_align_celeba" / "000001.jpg"
    elsewhere = tmp_path / "img_align_celeba" / "000002.jpg"
    if elsewhere.is_relative_to(REPO_ROOT.parent):
        pytest.skip(f"the temporary folder {tmp_path} lies beside the repository here")
    predictions = Predictions(
        probabilities=np.full((2, 1), 0.7, dtype=np.float32), labels=np.ones((2, 1), dtype=np.uint8),
        files=np.array(["000001.jpg", "000002.jpg"]), paths=np.array([str(beside), str(elsewhere)]),
        identity=np.array([1, 2]), meta={"attributes": ["Smiling"], "checkpoint": {"path": "x"}, "split": "test"},
    )
    ship_artifact(predictions, "checkpoints/celeba/m.safetensors", tmp_path / "run")
    shipped = load_predictions(tmp_path / "run")
    assert list(shipped.paths) == ["../shared/celeba/img_align_celeba/000001.jpg", str(elsewhere)]
    assert shipped.meta["checkpoint"]["path"] == "checkpoints/celeba/m.safetensors"
