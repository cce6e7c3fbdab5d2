"""Where an artifact's images are read: as recorded, under the workspace, or by name in a CelebA folder."""

from __future__ import annotations

import numpy as np

from celeba_model.evaluation.predictions import Predictions


def _predictions(paths: list[str]) -> Predictions:
    n = len(paths)
    return Predictions(probabilities=np.zeros((n, 1), np.float32), labels=np.zeros((n, 1), np.uint8),
                       files=np.array([f"{i + 1:06d}.jpg" for i in range(n)]), paths=np.array(paths),
                       identity=np.full(n, -1), meta={"attributes": ["Smiling"]})


def test_recorded_paths_come_first_then_the_same_name_in_a_celeba_folder(celeba_factory, tmp_path):
    root = celeba_factory(n=3)
    workspace = tmp_path / "ws"
    (workspace / "imgs").mkdir(parents=True)
    (workspace / "imgs" / "a.jpg").write_bytes(b"x")
    recorded = root / "img_align_celeba" / "000001.jpg"
    predictions = _predictions([str(recorded), "imgs/a.jpg", "/elsewhere/000003.jpg"])
    assert predictions.image_path(0, workspace) == recorded
    assert predictions.image_path(1, workspace) == workspace / "imgs" / "a.jpg"  # relative: under the workspace
    assert predictions.image_path(2, workspace) is None  # made on another machine, no folder given
    assert predictions.image_path(2, workspace, root) == root / "img_align_celeba" / "000003.jpg"
    assert predictions.image_path(2, workspace, tmp_path / "not-celeba") is None
