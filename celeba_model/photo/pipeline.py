"""Predicting a real photo: detect the face, reframe it as training saw faces, run the model.

The dashboard's Upload page and ``python -m celeba_model predict`` both go through ``open_photo``
and ``frame_photo`` (and the predictor's ``model_input`` / ``predict_inputs``), so they give the
same answer for the same file; ``predict`` only batches the last step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..data.crop import CropBox
from ..data.images import open_image
from .detection import Detection, FaceDetector
from .framing import align_face
from .predictor import ImagePrediction, Predictor

WHOLE_IMAGE = CropBox(0.0, 0.0, 1.0, 1.0)
# Photo formats accepted by the Upload page and picked from folders by `predict` (lower case, no
# dot). PIL reads them all; GIF gives its first frame, TIFF its first page.
PHOTO_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")
# Photos are shrunk to at most this many pixels (1280x1280's worth) before detection. The
# short-range detector sees a 128x128 version anyway, and a face it can find in such a photo still
# spans far more than the model's 64 pixels; a 12-megapixel phone photo at full size would cost more
# to decode and reframe than everything else. An area limit rather than a side limit keeps a usable
# height for panoramas (a 20000x436 one becomes 8666x189, not 1280x28).
PHOTO_MAX_PIXELS = 1280 * 1280


def is_photo_file(path: str | Path) -> bool:
    """Whether a file name has one of ``PHOTO_EXTENSIONS`` (any case)."""
    return Path(path).suffix.lower().lstrip(".") in PHOTO_EXTENSIONS


def open_photo(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """Open an uploaded photo for prediction: upright RGB, at most ``PHOTO_MAX_PIXELS`` pixels.

    ``image.info["source_size"]`` holds the upright size before shrinking.
    """
    return open_image(source, name=name, max_area=PHOTO_MAX_PIXELS)


@dataclass
class FramedPhoto:
    """What the detector and the framing made of a photo: the model's input still to be computed."""

    faces: list[Detection]  # every face found, most prominent first
    face: Detection | None  # the one predicted (the most prominent), None when there is none
    face_image: Image.Image | None  # that face in the training framing (or the whole image), None: nothing to predict
    used_whole_image: bool = False


@dataclass
class PhotoPrediction:
    """The outcome for one photo: which face, how it was framed, and the model's answer."""

    faces: list[Detection]  # every face found, most prominent first
    face: Detection | None  # the one predicted (the most prominent), None when there is none
    face_image: Image.Image | None  # that face in the training framing, upright
    prediction: ImagePrediction | None  # None when no face was found and the whole image was not asked for
    used_whole_image: bool = False


def frame_photo(image: Image.Image, detector: FaceDetector, whole_image_if_no_face: bool = False) -> FramedPhoto:
    """Detect faces in an RGB photo and cut the most prominent one out in the training framing.

    With no face found there is nothing to predict unless ``whole_image_if_no_face`` asks for the
    whole image (its center square would be guesswork; the caller tells the user what happened).
    """
    faces = detector.detect(image)
    if faces:
        face = faces[0]  # detect() returns the most prominent first (largest box x score)
        return FramedPhoto(faces, face, align_face(image, face))
    if whole_image_if_no_face:
        return FramedPhoto(faces, None, image, used_whole_image=True)
    return FramedPhoto(faces, None, None)


def predict_photo(image: Image.Image, predictor: Predictor, detector: FaceDetector,
                  whole_image_if_no_face: bool = False) -> PhotoPrediction:
    """Detect faces in an RGB photo and predict the most prominent one (see ``frame_photo``)."""
    framed = frame_photo(image, detector, whole_image_if_no_face)
    prediction = None if framed.face_image is None else predictor.predict(framed.face_image, WHOLE_IMAGE)
    return PhotoPrediction(framed.faces, framed.face, framed.face_image, prediction, framed.used_whole_image)
