"""Face detection: the shipped BlazeFace model through mediapipe, and the OpenCV Haar fallback.

Generated-image tests always run; tests on real CelebA images skip with the reason when
../shared is absent. Detection rates and box statistics are printed (see them with ``pytest -s``).
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celeba_model.photo.detection import (
    BUILD_SCRIPT,
    DEFAULT_MODEL_PATH,
    KEYPOINT_NAMES,
    Detection,
    FaceDetector,
    FaceDetectorError,
    FaceDetectorFallbackWarning,
    FaceModelMissingError,
    _windows,
    most_prominent,
    sort_by_prominence,
)

from .conftest import shared_root


@pytest.fixture(scope="module")
def detector():
    with FaceDetector(backend="mediapipe") as found:
        yield found


@pytest.fixture(scope="module")
def haar():
    return FaceDetector(backend="opencv-haar")


def _images(folder, n: int | None = None) -> list[Image.Image]:
    files = sorted(folder.glob("*.jpg"))[:n]
    assert files, f"no .jpg images in {folder}"
    return [Image.open(f).convert("RGB") for f in files]


# ---------------------------------------------------------------- generated only (always run)


def test_shipped_model_matches_its_readme():
    readme = (DEFAULT_MODEL_PATH.parent / "README.md").read_text()
    recorded = re.search(r"SHA-256 \| `([0-9a-f]{64})`", readme)
    assert recorded, "celeba_model/photo/assets/face_detector/README.md records no SHA-256"
    assert hashlib.sha256(DEFAULT_MODEL_PATH.read_bytes()).hexdigest() == recorded.group(1)
    assert (DEFAULT_MODEL_PATH.parent / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_model_is_package_data():
    assert DEFAULT_MODEL_PATH.parent.parts[-4:] == ("celeba_model", "photo", "assets", "face_detector")
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"assets/face_detector/*"' in pyproject


@pytest.mark.parametrize("size", [(640, 480), (1280, 640), (178, 218), (3000, 20), (20000, 436), (300, 5000)])
def test_panoramas_are_cut_into_overlapping_windows(size):
    width, height = size
    windows = _windows(width, height)
    long_side, short_side = max(size), min(size)
    if long_side <= 2 * short_side or short_side < 32:
        assert windows == [(0, 0, width, height)]
        return
    assert len(windows) > 2
    spans = [(x, x + w) if width > height else (y, y + h) for x, y, w, h in windows]
    assert spans[0][0] == 0 and spans[-1][1] == long_side
    # Any face up to the short side lies whole in some window.
    for start in range(0, long_side - short_side, 7):
        assert any(a <= start and start + short_side <= b for a, b in spans), start


def test_default_backend_is_mediapipe():
    with FaceDetector() as found:
        assert found.backend == "mediapipe" and found.fallback_reason is None


@pytest.mark.parametrize("backend", ["auto", "mediapipe"])
def test_missing_model_names_the_build_script(tmp_path, backend):
    with pytest.raises(FaceModelMissingError, match=re.escape(BUILD_SCRIPT)) as err:
        FaceDetector(tmp_path / "absent.tflite", backend=backend)
    assert isinstance(err.value, FileNotFoundError) and "absent.tflite" in str(err.value)


def test_closed_detector_refuses_to_detect():
    closing = FaceDetector()
    closing.close()
    closing.close()  # twice is fine
    with pytest.raises(FaceDetectorError, match="closed"):
        closing.detect(Image.new("RGB", (64, 64)))


def test_haar_backend_needs_no_model(tmp_path):
    assert FaceDetector(tmp_path / "absent.tflite", backend="opencv-haar").backend == "opencv-haar"


def test_unknown_backend_and_bad_confidence_are_errors():
    with pytest.raises(FaceDetectorError, match="unknown face detector backend"):
        FaceDetector(backend="dlib")
    with pytest.raises(FaceDetectorError, match="min_detection_confidence"):
        FaceDetector(min_detection_confidence=1.5)
    with pytest.raises(FaceDetectorError, match="max_side"):
        FaceDetector(max_side=32)


def test_falls_back_to_haar_when_mediapipe_cannot_be_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` raise ImportError
    with pytest.warns(FaceDetectorFallbackWarning, match="Haar cascade"):
        fallback = FaceDetector()
    assert fallback.backend == "opencv-haar" and "mediapipe" in fallback.fallback_reason
    with pytest.raises(FaceDetectorError, match="could not start"):
        FaceDetector(backend="mediapipe")


def _no_face_images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 640, dtype=np.uint8)
    return {
        "gradient 640x480": Image.fromarray(np.tile(ramp[None, :, None], (480, 1, 3))),
        "flat gray 178x218": Image.new("RGB", (178, 218), (128, 128, 128)),
        "gaussian noise 640x480": Image.fromarray(np.clip(rng.normal(128, 40, (480, 640, 3)), 0, 255).astype(np.uint8)),
        "uniform noise 178x218": Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)),
        "gradient 3000x2000": Image.fromarray(np.tile(np.linspace(0, 255, 3000, dtype=np.uint8)[None, :, None],
                                                      (2000, 1, 3))),
    }


@pytest.mark.parametrize("backend", ["mediapipe", "opencv-haar"])
def test_no_face_gives_no_detection(backend, detector, haar):
    chosen = detector if backend == "mediapipe" else haar
    for name, image in _no_face_images().items():
        assert chosen.detect(image) == [], name
    assert most_prominent([]) is None


@pytest.mark.parametrize("size", [(1, 1), (5, 300), (3000, 2)])
def test_degenerate_images_do_not_fail(detector, size):
    assert detector.detect(Image.new("RGBA", size, (10, 20, 30, 0))) == []


def test_prominence_is_area_times_score():
    small_sure = Detection(0, 0, 50, 50, 0.95)  # 2375
    large_doubtful = Detection(100, 0, 80, 80, 0.55)  # 3520: area outweighs score here
    similar_doubtful = Detection(200, 0, 55, 55, 0.6)  # 1815: here the surer one wins
    assert most_prominent([small_sure, large_doubtful]) is large_doubtful
    assert most_prominent([similar_doubtful, small_sure]) is small_sure
    ranked = sort_by_prominence([similar_doubtful, small_sure, large_doubtful])
    assert ranked == [large_doubtful, small_sure, similar_doubtful]
    assert Detection(10, 20, 30, 40, 1.0).relative(100, 200) == (0.1, 0.1, 0.4, 0.3)
    with_points = Detection(0, 0, 10, 10, 1.0, tuple((float(i), 0.0) for i in range(6)))
    assert with_points.keypoint("nose_tip") == (2.0, 0.0) and Detection(0, 0, 1, 1, 1.0).keypoint("left_eye") is None
    with pytest.raises(KeyError):
        with_points.keypoint("chin")


# ---------------------------------------------------------------- real CelebA images (skip without ../shared)


def _rate(detector: FaceDetector, images: list[Image.Image], label: str) -> tuple[float, float]:
    found = [detector.detect(image) for image in images]
    detected = float(np.mean([len(f) >= 1 for f in found]))
    exactly_one = float(np.mean([len(f) == 1 for f in found]))
    print(f"\n{label}: {len(images)} images, {detected:.1%} with a face, {exactly_one:.1%} with exactly one")
    return detected, exactly_one


def test_detection_rate_aligned(detector):
    detected, one = _rate(detector, _images(shared_root("celeba") / "img_align_celeba", 100), "aligned CelebA 178x218")
    assert detected >= 0.95 and one >= 0.9


def test_detection_rate_half_resolution(detector):
    images = _images(shared_root("celeba_half") / "img_align_celeba", 100)
    detected, one = _rate(detector, images, "half-res CelebA 89x109")
    assert detected >= 0.95 and one >= 0.9


def test_detection_rate_loose_crops(detector):
    detected, one = _rate(detector, _images(shared_root("celeba_wild") / "faces"), "loose face crops ~190 px")
    assert detected >= 0.95 and one >= 0.9


def test_box_and_keypoints_on_aligned_celeba(detector):
    rows, eyes = [], []
    for image in _images(shared_root("celeba") / "img_align_celeba", 200):
        face = most_prominent(detector.detect(image))
        if face is None:
            continue
        w, h = image.size
        left, top, right, bottom = face.relative(w, h)
        rows.append((left, top, right, bottom, (left + right) / 2, (top + bottom) / 2, right - left, bottom - top))
        (rx, ry), (lx, ly) = face.keypoint("right_eye"), face.keypoint("left_eye")
        eyes.append((rx / w, ry / h, lx / w, ly / h))
    stats = np.array(rows)
    print(f"\nBlazeFace box on {len(rows)} aligned CelebA images, fractions of width (x) / height (y), mean ± std:")
    for i, name in enumerate(["left", "top", "right", "bottom", "center x", "center y", "width", "height"]):
        print(f"  {name:8s} {stats[:, i].mean():.3f} ± {stats[:, i].std():.3f}")
    cx, cy, width = stats[:, 4], stats[:, 5], stats[:, 6]
    assert len(rows) >= 190
    assert abs(cx.mean() - 0.5) < 0.03 and 0.55 <= cy.mean() <= 0.65 and 0.4 <= width.mean() <= 0.6
    # every face, not just the average: center near the middle, a face-sized box
    assert np.mean((np.abs(cx - 0.5) < 0.15) & (np.abs(cy - 0.61) < 0.08) & (width > 0.4) & (width < 0.7)) >= 0.98
    eyes = np.array(eyes)  # CelebA is aligned on the eyes: they sit at fixed places
    assert np.all(eyes[:, 0] < eyes[:, 2]), "the person's right eye is on the image's left"
    assert np.allclose(eyes.mean(0), [0.39, 0.52, 0.61, 0.52], atol=0.03) and eyes.std(0).max() < 0.03
    assert len(KEYPOINT_NAMES) == 6


def test_box_follows_a_resized_photo(detector):
    """A large copy (shrunk internally) and the original give the same relative box."""
    image = _images(shared_root("celeba") / "img_align_celeba", 1)[0]
    big = image.resize((image.width * 12, image.height * 12), Image.Resampling.BILINEAR)  # 2136x2616
    small_face, big_face = most_prominent(detector.detect(image)), most_prominent(detector.detect(big))
    assert np.allclose(small_face.relative(*image.size), big_face.relative(*big.size), atol=0.03)
    assert np.allclose(np.array(big_face.keypoints) / 12, small_face.keypoints, atol=4)


def test_face_filling_the_image_is_found_with_padding(detector):
    """Tight crops of the face: the padded retry finds what the plain pass misses, boxes mapped back."""
    plain = FaceDetector(backend="mediapipe", pad_retry=False, tile_retry=False)
    crops = []
    for image in _images(shared_root("celeba") / "img_align_celeba", 150):
        w, h = image.size
        crops.append(image.crop((round(0.25 * w), round(0.4 * h), round(0.75 * w), round(0.8 * h))))  # 89x87
    found_plain = [bool(plain.detect(c)) for c in crops]
    found = [most_prominent(detector.detect(c)) for c in crops]
    rate = np.mean([f is not None for f in found])
    print(f"\ntight 89x87 face crops: {np.mean(found_plain):.1%} plain, {rate:.1%} with retries")
    assert rate >= max(np.mean(found_plain), 0.97)
    for crop, face in zip(crops, found):
        if face is not None:  # the box is in the crop's pixels, centered on the face
            assert 0.25 * crop.width < face.center[0] < 0.75 * crop.width
            assert 0.2 * crop.height < face.center[1] < 0.8 * crop.height


def test_small_face_in_a_large_photo_is_found_with_tiles(detector):
    images = _images(shared_root("celeba") / "img_align_celeba", 10)
    hits = 0
    for image in images:
        canvas = Image.new("RGB", (1400, 1050), (90, 110, 130))  # face ~90 px: 6.4% of the width
        canvas.paste(image, (300, 250))
        face = most_prominent(detector.detect(canvas))
        hits += face is not None and abs(face.center[0] - 389) < 30 and abs(face.center[1] - 380) < 40
    assert hits >= 8


def test_two_faces_the_larger_is_most_prominent(detector):
    images = _images(shared_root("celeba") / "img_align_celeba", 20)
    correct = 0
    for big, small in zip(images[0::2], images[1::2]):
        canvas = Image.new("RGB", (420, 260), (128, 128, 128))
        canvas.paste(big, (20, 20))  # 178x218, face ~95 px
        canvas.paste(small.resize((107, 131), Image.Resampling.BILINEAR), (260, 70))  # face ~57 px
        faces = detector.detect(canvas)
        best = most_prominent(faces)
        correct += len(faces) == 2 and faces[0] is best and 20 < best.center[0] < 198
    assert correct >= 9, f"only {correct} of 10 canvases gave 2 faces with the larger one first"


def test_haar_fallback_finds_aligned_faces(haar, detector):
    images = _images(shared_root("celeba") / "img_align_celeba", 20)
    faces = [most_prominent(haar.detect(image)) for image in images]
    assert sum(f is not None for f in faces) >= 17
    for image, face in zip(images, faces):
        if face is None:
            continue
        assert face.keypoints is None and 0 < face.score < 1
        # moved to BlazeFace's framing: centered between the eyes, at BlazeFace's height and size
        # (BlazeFace's own box also slides sideways with head turn, so x is compared to the eyes)
        reference = most_prominent(detector.detect(image))
        w, h = image.size
        eyes_x = (reference.keypoint("right_eye")[0] + reference.keypoint("left_eye")[0]) / 2
        assert abs(face.center[0] - eyes_x) < 0.08 * w
        assert abs(face.center[1] - reference.center[1]) < 0.06 * h
        assert 0.7 < face.width / reference.width < 1.5
