"""Shared fixtures: small CelebA-layout folders written on the fly, and the generated demo dataset."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celeba_model.attributes import CELEBA_ATTRIBUTES

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CELEBA_SHARED", REPO.parent / "shared"))

# Image caches and parsed indexes of the tests (and of the commands they start) go to a folder of this
# session, never to the user's ~/.cache/celeba_model; tests that need their own set it themselves.
_SESSION_CACHE = tempfile.mkdtemp(prefix="celeba-model-test-cache-")
os.environ["CELEBA_MODEL_CACHE"] = _SESSION_CACHE


def pytest_sessionfinish(session, exitstatus) -> None:
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


def write_celeba(
    root: Path,
    n: int = 12,
    *,
    size: tuple[int, int] = (178, 218),
    partition: bool = True,
    identity: bool = True,
    on_disk: set[int] | None = None,
    crlf: bool = False,
    seed: int = 0,
) -> Path:
    """Write a minimal CelebA layout with ``n`` listed images (noise pictures) under ``root``."""
    rng = np.random.default_rng(seed)
    images = root / "img_align_celeba"
    images.mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    labels = rng.choice([-1, 1], size=(n, 40))
    nl = "\r\n" if crlf else "\n"
    lines = [str(n), " ".join(CELEBA_ATTRIBUTES)]
    lines += [name + " " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, labels)]
    (root / "list_attr_celeba.txt").write_text(nl.join(lines) + nl, newline="")
    if partition:
        parts = [0 if i < n * 0.6 else (1 if i < n * 0.8 else 2) for i in range(n)]
        (root / "list_eval_partition.txt").write_text(nl.join(f"{a} {p}" for a, p in zip(names, parts)) + nl, newline="")
    if identity:
        (root / "identity_CelebA.txt").write_text("\n".join(f"{a} {i // 3 + 1}" for i, a in enumerate(names)) + "\n")
    for i, name in enumerate(names):
        if on_disk is None or i in on_disk:
            pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(images / name, quality=90)
    return root


@pytest.fixture
def celeba_factory(tmp_path):
    counter = iter(range(1000))

    def make(**kwargs) -> Path:
        return write_celeba(tmp_path / f"celeba{next(counter)}", **kwargs)

    return make


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A 1,200-image demo dataset, generated once per test session."""
    from celeba_model.data.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("demo")
    make_demo_dataset(root, num_images=1200, seed=0, workers=2, progress=False)
    return root


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"


def shared_root(name: str) -> Path:
    """A folder of ../shared, or skip the test with the reason."""
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"real CelebA data not available: {path} is absent (development-only folder)")
    return path


@pytest.fixture(scope="session")
def trained_runs(demo_root, tmp_path_factory) -> dict[str, Path]:
    """The paper model and both ablations, briefly trained on the demo (32x32 RGB), by arch name."""
    from celeba_model.training import TrainConfig, train

    base = tmp_path_factory.mktemp("runs")
    runs = {}
    for arch in ("paper", "no_conv3", "no_conv3_no_fc1"):
        config = TrainConfig(data_roots=[str(demo_root)], out=str(base / arch), arch=arch, epochs=3, image_size=32,
                             color="rgb", lr=3e-3, cache_dir=str(base / "cache"), progress=False)
        train(config)
        runs[arch] = base / arch
    return runs


@pytest.fixture(scope="session")
def dashboard_workspace(tmp_path_factory) -> Path:
    """A fresh workspace holding the shipped checkpoints (demo and real-data), as a new clone has.

    The dashboard tests start the app on it; the first start generates the demo and evaluates
    the checkpoints, later tests reuse that work.
    """
    import shutil

    root = tmp_path_factory.mktemp("workspace")
    shutil.copytree(REPO / "checkpoints", root / "checkpoints")
    return root
