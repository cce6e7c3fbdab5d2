"""Predicting a real photo: detect the face, reframe it as training saw faces, run the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .crop import CropBox
from .face_detection import Detection, FaceDetector
from .face_framing import align_face
from .images import open_image
from .inference import ImagePrediction, Predictor

WHOLE_IMAGE = CropBox(0.0, 0.0, 1.0, 1.0)
# Photos are shrunk to this side before detection. The short-range detector sees a 128x128 version
# anyway, and a face it can find in a 1280 px photo still spans far more than the model's 64 pixels;
# a 12-megapixel phone photo at full size would cost more to decode and reframe than everything else.
PHOTO_MAX_SIDE = 1280


def open_photo(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """Open an uploaded photo for prediction: upright RGB, at most ``PHOTO_MAX_SIDE`` on a side."""
    return open_image(source, name=name, max_side=PHOTO_MAX_SIDE)


@dataclass
class PhotoPrediction:
    """The outcome for one photo: which face, how it was framed, and the model's answer."""

    faces: list[Detection]  # every face found, most prominent first
    face: Detection | None  # the one predicted (the most prominent), None when there is none
    face_image: Image.Image | None  # that face in the training framing, upright
    prediction: ImagePrediction | None  # None when no face was found and the whole image was not asked for
    used_whole_image: bool = False


def predict_photo(image: Image.Image, predictor: Predictor, detector: FaceDetector,
                  whole_image_if_no_face: bool = False) -> PhotoPrediction:
    """Detect faces in an RGB photo and predict the most prominent one.

    With no face found, the prediction is skipped unless ``whole_image_if_no_face`` asks for the
    whole image (its centre square would be guesswork; the caller shows the user what happened).
    """
    faces = detector.detect(image)
    if faces:
        face = faces[0]  # detect() returns the most prominent first (largest box x score)
        face_image = align_face(image, face)
        return PhotoPrediction(faces, face, face_image, predictor.predict(face_image, WHOLE_IMAGE))
    if whole_image_if_no_face:
        return PhotoPrediction(faces, None, image, predictor.predict(image, WHOLE_IMAGE), used_whole_image=True)
    return PhotoPrediction(faces, None, None, None)
