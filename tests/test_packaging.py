"""A non-editable install works away from the checkout: the wheel carries the face detector model,
and `predict` runs from another folder with a workspace the user chooses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from celeba_model.catalogue import Catalogue
from celeba_model.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
MODEL_IN_WHEEL = "celeba_model/photo/assets/face_detector/face_detection_short_range.tflite"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The project built as a wheel and installed (without dependencies: they are this venv's) into a
    folder of its own, as `pip install .` would into another environment."""
    base = tmp_path_factory.mktemp("wheel")
    build = base / "src"
    # Build from a copy: a build writes build/ and *.egg-info/ next to the sources.
    shutil.copytree(REPO, build, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "data", ".cache", "artifacts",
                                                                "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(base / "dist"), str(build)], check=True)
    wheel = next((base / "dist").glob("celeba_model-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(base / "site"),
                    str(wheel)], check=True)
    return base


def test_the_wheel_carries_the_face_detector_model(installed):
    wheel = next((installed / "dist").glob("celeba_model-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert MODEL_IN_WHEEL in names
    assert not any(n.startswith(("tests/", "dashboard/", "checkpoints/")) for n in names)
    metadata = next(n for n in names if n.endswith("METADATA"))
    requires = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Requires-Dist: opencv" in requires  # face_detection imports cv2 for its fallback


def _run_outside(installed: Path, folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed / "site")}
    env.pop("CELEBA_WORKSPACE", None)
    return subprocess.run([sys.executable, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_predict_works_from_outside_the_checkout(installed, tmp_path, demo_root):
    elsewhere = tmp_path / "photos"
    elsewhere.mkdir()
    shutil.copyfile(sorted((demo_root / "img_align_celeba").glob("*.jpg"))[0], elsewhere / "face.jpg")
    where = _run_outside(installed, elsewhere, "-c", "import celeba_model; print(celeba_model.__file__)")
    assert where.stdout.strip().startswith(str(installed / "site")), where.stderr

    checkpoint = Catalogue(Workspace(REPO)).default_model()  # the shipped default (chosen on real photos)
    result = _run_outside(installed, elsewhere, "-m", "celeba_model", "predict", "face.jpg", "--checkpoint",
                          str(checkpoint), "--json")
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    assert entry["image"] == "face.jpg" and entry["face"] is not None and len(entry["probabilities"]) == 10

    # The workspace is the current folder here (no checkout around it): no model in it, a clear error.
    result = _run_outside(installed, elsewhere, "-m", "celeba_model", "predict", "face.jpg")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--checkpoint" in result.stderr and "--workspace" in result.stderr
    # A workspace holding the shipped models, chosen with --workspace, gives the default model.
    result = _run_outside(installed, elsewhere, "-m", "celeba_model", "predict", "face.jpg", "--json",
                          "--workspace", str(REPO))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["probabilities"] == entry["probabilities"]
