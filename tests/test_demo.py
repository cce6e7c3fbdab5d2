"""Tests for the synthetic CelebA generator (celeba_model.data.demo)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celeba_model.attributes import CELEBA_ATTRIBUTES, PAPER_ATTRIBUTES
from celeba_model.data.demo import (
    ATTR_FILE,
    IDENTITY_FILE,
    IMAGE_DIR,
    INFO_FILE,
    PARTITION_FILE,
    DemoSummary,
    FaceTraits,
    make_demo_dataset,
    plan_demo,
    render_face,
)
from celeba_model.errors import ConfigError

# CelebA's positive rates for the paper's attributes.
CELEBA_RATES = {
    "Eyeglasses": 0.065,
    "Bangs": 0.15,
    "Black_Hair": 0.24,
    "Blond_Hair": 0.15,
    "Brown_Hair": 0.20,
    "Gray_Hair": 0.04,
    "Male": 0.42,
    "Pale_Skin": 0.04,
    "Smiling": 0.48,
    "Young": 0.77,
}


def read_attrs(root: Path) -> tuple[list[str], list[str], np.ndarray]:
    lines = (root / ATTR_FILE).read_text().splitlines()
    assert int(lines[0]) == len(lines) - 2
    names = lines[1].split()
    rows = [line.split() for line in lines[2:]]
    assert all(len(r) == 41 for r in rows)
    return names, [r[0] for r in rows], np.array([[int(v) for v in r[1:]] for r in rows])


def read_pairs(root: Path, name: str) -> dict[str, int]:
    pairs = [line.split() for line in (root / name).read_text().splitlines()]
    assert all(len(p) == 2 for p in pairs)
    return {p[0]: int(p[1]) for p in pairs}


def file_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo1200(demo_root: Path) -> tuple[Path, DemoSummary]:
    # The session's shared demo (1,200 images, seed 0); asking again reuses it and returns its summary.
    return demo_root, make_demo_dataset(demo_root, num_images=1200, seed=0, workers=2, progress=False)


def test_layout_and_formats(demo1200: tuple[Path, DemoSummary]) -> None:
    root, summary = demo1200
    names, files, values = read_attrs(root)
    assert tuple(names) == CELEBA_ATTRIBUTES
    assert files == [f"{i:06d}.jpg" for i in range(1, 1201)]
    assert set(np.unique(values)) <= {-1, 1}
    assert b"\r" not in (root / ATTR_FILE).read_bytes()
    # Official spacing: values right-aligned in width 2, one space apart.
    first = (root / ATTR_FILE).read_text().splitlines()[2]
    assert first == files[0] + " " + " ".join(f"{v:2d}" for v in values[0])

    partitions = read_pairs(root, PARTITION_FILE)
    identities = read_pairs(root, IDENTITY_FILE)
    assert list(partitions) == files and list(identities) == files
    assert set(partitions.values()) == {0, 1, 2}
    assert min(identities.values()) >= 1
    # Like the official file, partitions are contiguous: train, then val, then test.
    assert list(partitions.values()) == sorted(partitions.values())

    images = sorted(os.listdir(root / IMAGE_DIR))
    assert images == files
    for name in (files[0], files[599], files[-1]):
        with Image.open(root / IMAGE_DIR / name) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (178, 218)

    assert summary.num_images == 1200
    assert summary.num_identities == len(set(identities.values()))
    assert sum(summary.split_counts.values()) == 1200
    assert summary.split_counts["val"] == list(partitions.values()).count(1)
    for j, name in enumerate(CELEBA_ATTRIBUTES):
        if name in PAPER_ATTRIBUTES:
            assert summary.positive_rates[name] == pytest.approx((values[:, j] == 1).mean(), abs=1e-4)


def test_people_per_identity_and_splits_by_person(demo1200: tuple[Path, DemoSummary]) -> None:
    root, _ = demo1200
    partitions = read_pairs(root, PARTITION_FILE)
    identities = read_pairs(root, IDENTITY_FILE)
    split_of: dict[int, set[int]] = {}
    for name, person in identities.items():
        split_of.setdefault(person, set()).add(partitions[name])
    assert all(len(s) == 1 for s in split_of.values()), "a person appears in two splits"
    counts = np.bincount(list(identities.values()))
    counts = counts[counts > 0]
    assert counts.min() >= 10 and counts.max() <= 50 and 20 <= counts.mean() <= 40
    people = np.bincount([next(iter(s)) for s in split_of.values()], minlength=3)
    assert people[0] > people[1] + people[2] and people[1] >= 4 and people[2] >= 4


def test_base_rates_are_celeba_like(demo1200: tuple[Path, DemoSummary]) -> None:
    root, _ = demo1200
    _, _, values = read_attrs(root)
    rates = {name: float((values[:, j] == 1).mean()) for j, name in enumerate(CELEBA_ATTRIBUTES)}
    for name, target in CELEBA_RATES.items():
        # ~40 people: per-person attributes are noisy, and rare ones are boosted for coverage.
        tolerance = 0.05 if name == "Smiling" else 0.15
        assert abs(rates[name] - target) <= tolerance, (name, rates[name])
    for name in ("Eyeglasses", "Gray_Hair", "Pale_Skin"):
        assert 0.02 <= rates[name] <= 0.2, (name, rates[name])
    # Correlations the generator builds in.
    col = {name: j for j, name in enumerate(CELEBA_ATTRIBUTES)}
    male = values[:, col["Male"]] == 1
    assert (values[male, col["Wearing_Lipstick"]] == 1).mean() < 0.05
    assert (values[~male, col["Wearing_Lipstick"]] == 1).mean() > 0.6
    smiling = values[:, col["Smiling"]] == 1
    assert (values[smiling, col["High_Cheekbones"]] == 1).mean() > (
        values[~smiling, col["High_Cheekbones"]] == 1
    ).mean() + 0.3


def test_base_rates_on_a_large_plan() -> None:
    # Planning draws no pixels, so a big sample pins the generator's rates down cheaply.
    plans = plan_demo(30000, seed=3)
    labels = np.array([p.labels for p in plans]) == 1
    for name, target in CELEBA_RATES.items():
        rate = labels[:, CELEBA_ATTRIBUTES.index(name)].mean()
        assert abs(rate - target) <= 0.05, (name, rate)  # Gray_Hair and Pale_Skin are boosted ~3 points
    # About 2% label noise on each paper attribute: the file disagrees with the drawn truth.
    smiling_truth = np.array([p.traits.smiling for p in plans])
    flipped = (labels[:, CELEBA_ATTRIBUTES.index("Smiling")] != smiling_truth).mean()
    assert 0.01 <= flipped <= 0.03


def test_every_paper_attribute_has_positives_in_every_split(demo1200: tuple[Path, DemoSummary]) -> None:
    root, _ = demo1200
    _, files, values = read_attrs(root)
    partitions = read_pairs(root, PARTITION_FILE)
    split = np.array([partitions[f] for f in files])
    for name in PAPER_ATTRIBUTES:
        column = values[:, CELEBA_ATTRIBUTES.index(name)] == 1
        for k in range(3):
            assert column[split == k].sum() >= 3, (name, k)
            assert (~column[split == k]).sum() >= 3, (name, k)


def test_generation_is_deterministic(tmp_path: Path) -> None:
    # In-process and pooled rendering must give the same bytes.
    make_demo_dataset(tmp_path / "a", num_images=300, seed=7, workers=1, progress=False)
    make_demo_dataset(tmp_path / "b", num_images=300, seed=7, workers=2, progress=False)
    hashes_a, hashes_b = file_hashes(tmp_path / "a"), file_hashes(tmp_path / "b")
    assert len(hashes_a) == 300 + 4
    assert hashes_a == hashes_b
    make_demo_dataset(tmp_path / "c", num_images=300, seed=8, workers=1, progress=False)
    assert file_hashes(tmp_path / "c")[ATTR_FILE] != hashes_a[ATTR_FILE]


def test_reuse_does_not_rewrite(demo1200: tuple[Path, DemoSummary]) -> None:
    root, summary = demo1200
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    again = make_demo_dataset(root, num_images=1200, seed=0, workers=2, progress=False)
    assert again == summary
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_regenerates_own_folder_with_new_parameters_only_when_asked(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    make_demo_dataset(root, num_images=90, seed=1, workers=1, progress=False)
    with pytest.raises(ConfigError, match="already holds a demo dataset of 90 images, seed 1"):
        make_demo_dataset(root, num_images=70, seed=2, workers=1, progress=False)
    assert len(os.listdir(root / IMAGE_DIR)) == 90  # refused: nothing was touched
    summary = make_demo_dataset(root, num_images=70, seed=2, workers=1, progress=False, overwrite=True)
    assert summary.num_images == 70
    assert len(os.listdir(root / IMAGE_DIR)) == 70  # stale images from the bigger run are gone
    info = json.loads((root / INFO_FILE).read_text())
    assert (info["num_images"], info["seed"], info["complete"]) == (70, 2, True)


def test_resumes_after_an_interrupted_run(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    make_demo_dataset(root, num_images=60, seed=0, workers=1, progress=False)
    # A run killed while drawing leaves its marker incomplete and no label files.
    info = json.loads((root / INFO_FILE).read_text())
    (root / INFO_FILE).write_text(json.dumps({**info, "complete": False}))
    (root / ATTR_FILE).unlink()
    summary = make_demo_dataset(root, num_images=60, seed=0, workers=1, progress=False)
    assert summary.num_images == 60 and (root / ATTR_FILE).is_file()


def test_refuses_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a demo dataset"):
        make_demo_dataset(tmp_path, num_images=20, workers=1, progress=False)
    assert os.listdir(tmp_path) == ["notes.txt"]
    with pytest.raises(ValueError):
        make_demo_dataset(tmp_path / "notes.txt", num_images=20, workers=1, progress=False)
    with pytest.raises(ValueError):
        make_demo_dataset(tmp_path / "x", num_images=0, workers=1, progress=False)


# --- Pictures ----------------------------------------------------------------------------------


def render(seed: int = 11, **traits: object) -> np.ndarray:
    return np.asarray(render_face(FaceTraits(**traits), np.random.default_rng(seed)), dtype=np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def saturation(rgb: np.ndarray) -> np.ndarray:
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    return (high - low) / np.maximum(high, 1.0)


def test_render_face_size_and_rng_only_adds_nuisance() -> None:
    image = render_face(FaceTraits(), np.random.default_rng(0))
    assert image.size == (178, 218) and image.mode == "RGB"
    assert np.array_equal(render(seed=3), render(seed=3))
    assert not np.array_equal(render(seed=3), render(seed=4))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hair_color_needs_hue_not_luma(seed: int) -> None:
    blond = render(seed, hair_color="blond")
    gray = render(seed, hair_color="gray")
    black = render(seed, hair_color="black")
    hair = np.abs(luma(blond) - luma(black)) > 60  # where the hair is
    assert hair.sum() > 2000
    # Same brightness in grayscale...
    assert abs(luma(blond)[hair].mean() - luma(gray)[hair].mean()) < 10
    # ...but clearly different saturation and hue in color.
    assert saturation(blond)[hair].mean() > saturation(gray)[hair].mean() + 0.2
    blue_deficit = blond[..., 0] - blond[..., 2]
    assert blue_deficit[hair].mean() > (gray[..., 0] - gray[..., 2])[hair].mean() + 50

    brown = render(seed, hair_color="brown")
    auburn = render(seed, hair_color="auburn")
    assert abs(luma(brown)[hair].mean() - luma(auburn)[hair].mean()) < 10
    assert saturation(auburn)[hair].mean() > saturation(brown)[hair].mean() + 0.1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pale_skin_needs_saturation_not_luma(seed: int) -> None:
    pale = render(seed, pale_skin=True, hair_color="black")
    normal = render(seed, pale_skin=False, hair_color="black")
    skin = np.abs(pale - normal).sum(axis=-1) > 30
    assert skin.sum() > 2000
    assert abs(luma(pale)[skin].mean() - luma(normal)[skin].mean()) < 10
    assert saturation(normal)[skin].mean() > saturation(pale)[skin].mean() + 0.12


@pytest.mark.parametrize(
    ("trait", "rows"),
    [
        ("eyeglasses", (98, 122)),  # frames around the eyes, y ~ 111
        ("bangs", (64, 100)),  # fringe over the forehead, down to the brows
        ("smiling", (142, 166)),  # open mouth around y ~ 153
    ],
)
def test_local_attributes_change_the_right_region(trait: str, rows: tuple[int, int]) -> None:
    off = render(5, hair_color="brown")
    on = render(5, hair_color="brown", **{trait: True})
    diff = np.abs(on - off).sum(axis=-1) > 30
    inside = diff[rows[0] : rows[1]].sum()
    assert inside > 150
    assert inside > 0.6 * diff.sum()  # smiles also squint the eyes a little


def test_sex_and_age_are_visible() -> None:
    female, male = render(6, male=False), render(6, male=True)
    below_chin = np.abs(female - male)[190:].sum(axis=-1) > 30  # long hair reaches the shoulders
    assert below_chin.sum() > 500
    young, old = render(6, young=True), render(6, young=False)
    forehead = np.abs(young - old)[70:95, 60:120].sum(axis=-1) > 20  # wrinkle lines
    assert forehead.sum() > 30
