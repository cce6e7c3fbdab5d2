"""The upload path for real photos: face framing, no/several faces, EXIF, and agreement with training."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from celeba_model.data.images import open_image
from celeba_model.data.index import CelebAWarning, load_index
from celeba_model.metrics.counts import attribute_metrics, summarize
from celeba_model.models.thresholds import default_thresholds
from celeba_model.photo import (
    FACE_FRAMING,
    PHOTO_MAX_PIXELS,
    Detection,
    FaceDetector,
    Predictor,
    align_face,
    open_photo,
    predict_photo,
)
from celeba_model.photo.framing import face_region

from .conftest import shared_root

REPO = Path(__file__).resolve().parents[1]
REAL_RGB = REPO / "checkpoints" / "celeba" / "paper_rgb.safetensors"
# The shipped default for real photos (best validation macro-F1), and the RGB paper model.
REAL_MODELS = [REPO / "checkpoints" / "celeba" / "attrnet.safetensors", REAL_RGB]
DEMO_RGB = REPO / "checkpoints" / "demo" / "paper_rgb.safetensors"


@pytest.fixture(scope="module")
def detector():
    with FaceDetector() as d:
        yield d


def _keypoints(eyes_mid, eye_gap, mouth_drop, angle):
    c, s = math.cos(angle), math.sin(angle)
    rot = lambda dx, dy: (eyes_mid[0] + c * dx - s * dy, eyes_mid[1] + s * dx + c * dy)  # noqa: E731
    return (rot(-eye_gap / 2, 0), rot(eye_gap / 2, 0), rot(0, mouth_drop / 2), rot(0, mouth_drop), rot(-60, 10), rot(60, 10))


def test_tilted_face_is_turned_upright():
    # Dark dots at the eyes and the mouth of a face tilted by 30 degrees.
    image = Image.new("RGB", (400, 400), "white")
    keypoints = _keypoints((200, 180), 60, 70, math.radians(30))
    draw = ImageDraw.Draw(image)
    for x, y in (keypoints[0], keypoints[1], keypoints[3]):
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill="black")
    detection = Detection(left=120, top=130, width=160, height=160, score=0.9, keypoints=keypoints)
    region = face_region(detection)
    assert region.angle == pytest.approx(math.radians(30))
    face = np.asarray(align_face(image, detection, size=200).convert("L")) < 100
    ys, xs = np.nonzero(face)
    # The eyes land near the middle row (the crop center is just below them), the mouth well below.
    eyes = ys < 130
    left_eye_y, right_eye_y = ys[eyes & (xs < 100)].mean(), ys[eyes & (xs >= 100)].mean()
    assert abs(left_eye_y - right_eye_y) < 1.5  # level after alignment
    assert 90 < left_eye_y < 110
    mouth_x = xs[~eyes].mean()
    assert abs(mouth_x - 100) < 1.5  # the mouth right under the eyes' midpoint
    d = math.sqrt(60 * 70)
    assert region.side == pytest.approx(FACE_FRAMING.side_per_d * d)


def test_no_face_gives_no_prediction_unless_the_whole_image_is_asked_for(detector):
    predictor = Predictor(DEMO_RGB)
    wall = Image.fromarray(np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1))).convert("RGB")
    result = predict_photo(wall, predictor, detector)
    assert result.faces == [] and result.prediction is None
    whole = predict_photo(wall, predictor, detector, whole_image_if_no_face=True)
    assert whole.used_whole_image and whole.prediction.probabilities.shape == (10,)


def test_exif_rotated_photo_gives_the_same_answer(detector, demo_root):
    predictor = Predictor(DEMO_RGB)
    path = next((demo_root / "img_align_celeba").glob("*.jpg"))
    upright = open_image(path)
    rotated = upright.transpose(Image.Transpose.ROTATE_90)  # stored sideways ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with the EXIF tag that says: rotate 90 degrees clockwise to view
    buffer = io.BytesIO()
    rotated.save(buffer, "JPEG", quality=95, exif=exif)
    a = predict_photo(upright, predictor, detector).prediction.probabilities
    b = predict_photo(open_image(buffer.getvalue()), predictor, detector).prediction.probabilities
    assert np.abs(a - b).max() < 0.1


def test_several_faces_predict_the_most_prominent(detector, demo_root):
    faces = sorted((demo_root / "img_align_celeba").glob("*.jpg"))[:2]
    big, small = open_image(faces[0]), open_image(faces[1]).resize((89, 109))
    canvas = Image.new("RGB", (400, 260), (120, 120, 120))
    canvas.paste(small, (20, 70))
    canvas.paste(big, (200, 20))
    result = predict_photo(canvas, Predictor(DEMO_RGB), detector)
    assert len(result.faces) == 2
    assert result.face.center[0] > 200  # the larger face, on the right


@pytest.fixture(scope="module")
def real_test_set():
    root = shared_root("celeba")
    missing = [str(m) for m in REAL_MODELS if not m.is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not in this checkout")
    with pytest.warns(CelebAWarning):
        index = load_index([root])
    return index, index.split_indices("test")


@pytest.mark.parametrize("checkpoint", REAL_MODELS, ids=lambda p: p.stem)
def test_celeba_through_the_upload_path_matches_the_training_path(detector, real_test_set, checkpoint):
    index, rows = real_test_set
    predictor = Predictor(checkpoint)
    thresholds = default_thresholds(predictor.checkpoint.path, predictor.attributes)[0]
    training, upload = [], []
    for i in rows[:300]:
        image = open_image(index.paths[i])
        training.append(predictor.predict(image).probabilities)  # the fixed aligned-CelebA crop
        upload.append(predict_photo(image, predictor, detector).prediction.probabilities)
    training, upload = np.array(training), np.array(upload)
    agreement = ((training >= thresholds) == (upload >= thresholds)).mean()
    assert agreement > 0.93, agreement  # measured 0.96 on all 660 test images
    assert np.abs(training - upload).mean() < 0.06


@pytest.mark.parametrize("checkpoint", REAL_MODELS, ids=lambda p: p.stem)
def test_loose_face_crops_score_like_aligned_images(detector, real_test_set, checkpoint):
    index, rows = real_test_set
    wild = shared_root("celeba_wild") / "faces"
    predictor = Predictor(checkpoint)
    thresholds = default_thresholds(predictor.checkpoint.path, predictor.attributes)[0]
    names = {index.files[i]: i for i in rows}
    files = sorted(p for p in wild.iterdir() if p.name in names)
    assert len(files) > 500
    labels = index.attribute_labels(predictor.attributes, [names[p.name] for p in files])
    wild_probs = np.array([predict_photo(open_photo(p), predictor, detector, whole_image_if_no_face=True)
                           .prediction.probabilities for p in files])
    aligned_probs = np.array([predictor.predict(open_image(index.paths[names[p.name]])).probabilities for p in files])
    wild_f1 = summarize(attribute_metrics(labels, wild_probs, thresholds))["macro_f1"]
    aligned_f1 = summarize(attribute_metrics(labels, aligned_probs, thresholds))["macro_f1"]
    assert wild_f1 > aligned_f1 - 0.05, (wild_f1, aligned_f1)


def test_upload_framing_lands_on_the_training_crop_of_aligned_images(detector, real_test_set):
    from celeba_model.data.crop import ALIGNED_FACE_CROP

    index, rows = real_test_set
    offsets, ratios = [], []
    for i in rows[:200]:
        image = open_image(index.paths[i])
        region = face_region(detector.detect(image)[0])
        w, h = image.size
        box = ALIGNED_FACE_CROP
        side = ((box.right - box.left) * w + (box.bottom - box.top) * h) / 2
        center = np.array([(box.left + box.right) / 2 * w, (box.top + box.bottom) / 2 * h])
        offsets.append(np.linalg.norm(np.array(region.center) - center) / side)
        ratios.append(region.side / side)
    # Typical misplacement about 1-2% of the crop side, scale within a few percent.
    assert np.median(offsets) < 0.03, np.median(offsets)
    assert abs(np.median(ratios) - 1) < 0.03 and np.percentile(np.abs(np.array(ratios) - 1), 90) < 0.15


def test_phone_sized_photo_is_opened_small_and_its_face_still_found(detector, demo_root):
    face = open_image(next((demo_root / "img_align_celeba").glob("*.jpg")))
    scene = Image.new("RGB", (4032, 3024), (90, 110, 130))
    scene.paste(face.resize((712, 872), Image.Resampling.BICUBIC), (1600, 900))
    buffer = io.BytesIO()
    scene.save(buffer, "JPEG", quality=92)
    photo = open_photo(buffer.getvalue(), name="phone.jpg")
    assert photo.width * photo.height <= PHOTO_MAX_PIXELS and photo.size == (1478, 1108)  # 4:3 kept
    assert photo.info["source_size"] == (4032, 3024)
    predictor = Predictor(DEMO_RGB)
    result = predict_photo(photo, predictor, detector)
    assert result.face is not None
    reference = predict_photo(face, predictor, detector).prediction.probabilities
    assert np.abs(result.prediction.probabilities - reference).max() < 0.15
