"""Checkpoints evaluated on photos through the photo path (`evaluate-photos`): the same numbers as
`predict`, labels and people from the list files by name, one detection pass for many checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from celeba_model.attributes import CELEBA_ATTRIBUTES
from celeba_model.cli import main
from celeba_model.data.celeba_files import read_attribute_file, read_identity_file
from celeba_model.evaluation.predictions import load_predictions
from celeba_model.photo.detection import FaceDetector
from celeba_model.photo import Predictor
from celeba_model.photo.evaluate import PhotoWarning, evaluate_photos, frame_photo_set

from .conftest import shared_root

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "checkpoints" / "demo"


@pytest.fixture
def photos(demo_root, tmp_path) -> Path:
    """Ten demo faces away from their dataset folder, as a user's photos would be."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for face in sorted((demo_root / "img_align_celeba").glob("*.jpg"))[:10]:
        shutil.copyfile(face, folder / face.name)
    return folder


def test_photo_artifacts_hold_what_predict_says_with_labels_and_people(photos, demo_root, tmp_path, capsys):
    out = tmp_path / "run"
    checkpoint = DEMO / "paper_rgb.safetensors"
    assert main(["evaluate-photos", str(photos), "--checkpoint", str(checkpoint), "--labels-root", str(demo_root),
                 "--out", str(out), "--no-progress"]) == 0
    run = load_predictions(out)
    assert len(run) == 10 and run.meta["split"] == "photos" and run.meta["photos"]["images"] == 10

    table = read_attribute_file(demo_root / "list_attr_celeba.txt")
    people = read_identity_file(demo_root / "identity_CelebA.txt")
    rows = [table.files.index(name) for name in run.files]
    columns = [table.names.index(a) for a in CELEBA_ATTRIBUTES]
    assert np.array_equal(run.celeba_labels, table.labels[rows][:, columns])
    assert np.array_equal(run.labels, table.labels[rows][:, [table.names.index(a) for a in run.attributes]])
    assert run.identity.tolist() == [people[name] for name in run.files]

    # The photo path, exactly: predict --json gives the same probabilities for the same files.
    capsys.readouterr()
    assert main(["predict", *sorted(str(p) for p in photos.iterdir()), "--checkpoint", str(checkpoint), "--json",
                 "--whole-image-if-no-face", "--workspace", str(tmp_path)]) == 0
    predicted = {Path(r["image"]).name: [r["probabilities"][a] for a in run.attributes]
                 for r in json.loads(capsys.readouterr().out)}
    assert np.allclose(run.probabilities, [predicted[name] for name in run.files], atol=1e-5)


def test_many_checkpoints_cost_one_detection_pass(photos, demo_root, tmp_path, monkeypatch):
    calls = []
    detect = FaceDetector.detect
    monkeypatch.setattr(FaceDetector, "detect", lambda self, image: calls.append(1) or detect(self, image))
    checkpoints = [DEMO / f"{name}.safetensors" for name in ("paper", "no_conv3", "paper_rgb")]  # gray and RGB inputs
    runs = evaluate_photos(checkpoints, [photos], demo_root, tmp_path / "runs", progress=False)
    assert len(calls) == 10
    assert [r.folder.name for r in runs] == ["paper", "no_conv3", "paper_rgb"]
    assert all(np.array_equal(r.files, runs[0].files) for r in runs)

    # Framed once by hand, the photos serve later groups of checkpoints without detecting again.
    framed = frame_photo_set([photos], [Predictor(c).spec for c in checkpoints], progress=False)
    calls.clear()
    [again] = evaluate_photos([checkpoints[2]], [], demo_root, tmp_path / "again", photo_set=framed, progress=False)
    assert calls == [] and np.array_equal(again.probabilities, runs[2].probabilities)


def test_unusable_and_unlabelled_photos_are_left_out_with_a_warning(photos, demo_root, tmp_path):
    (photos / "broken.jpg").write_bytes(b"not a photo")
    shutil.copyfile(next(photos.glob("0*.jpg")), photos / "999999.jpg")  # not in the list files
    with pytest.warns(PhotoWarning) as caught:
        [run] = evaluate_photos([DEMO / "paper.safetensors"], [photos], demo_root, tmp_path / "r", progress=False)
    messages = " ".join(str(w.message) for w in caught)
    assert "999999.jpg" in messages and "broken.jpg" in messages
    assert len(run) == 10 and run.meta["photos"]["left_out"] == 2


def test_real_photos_of_celeba_test_people(tmp_path):
    faces = shared_root("celeba_wild") / "faces"
    labels = shared_root("celeba")
    [run] = evaluate_photos([REPO / "checkpoints" / "celeba" / "attrnet.safetensors"], [faces], labels,
                            tmp_path / "wild", progress=False)
    assert len(run) == 581 and run.meta["counts"]["identities"] > 10
    accuracy = ((run.probabilities >= 0.5) == run.labels.astype(bool)).mean()
    assert accuracy > 0.88, accuracy  # attrnet's mean accuracy on these photos is about 0.93
