"""Predicting a real photo: detect the face, reframe it as training saw faces, run the model."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from .crop import CropBox
from .face_detection import Detection, FaceDetector
from .face_framing import align_face
from .inference import ImagePrediction, Predictor

WHOLE_IMAGE = CropBox(0.0, 0.0, 1.0, 1.0)


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
