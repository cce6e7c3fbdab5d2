"""Real photos: find the face, frame it as training saw faces, predict it, and show where the model looked.

- ``detection``: ``FaceDetector`` (BlazeFace, offline, with retries for tight crops, small faces and
  panoramas) and the ``Detection`` it returns; the calibration behind its settings is in
  ``assets/face_detector/README.md``;
- ``backends``: the detector's backends (mediapipe, OpenCV's Haar cascade as a fallback) and the
  silencing of mediapipe's native log lines;
- ``framing``: from a detection to the crop aligned CelebA would have given (``align_face``);
- ``predictor``: ``Predictor``, one checkpoint loaded once for image after image (``ImagePrediction``);
- ``pipeline``: one photo end to end, as the Upload page does it (``open_photo``, ``frame_photo``,
  ``predict_photo``, ``PHOTO_EXTENSIONS``);
- ``batch``: many photo files in parallel and in batches (``PhotoBatchPredictor``, ``predict_photos``)
  and the output formats of ``python -m celeba_model predict``;
- ``saliency``: Grad-CAM maps (``grad_cam``) and their overlay on the face;
- ``evaluate``: photo folders evaluated into predictions artifacts (``evaluate_photos``);
- ``embeddings``: a run's features as its evaluation read its images, photo or aligned (``embed_run``).
"""

from .backends import FaceDetectorError
from .batch import PhotoBatchPredictor, PhotoResult, expand_inputs, predict_photos
from .detection import (
    KEYPOINT_NAMES,
    Detection,
    FaceDetector,
    FaceDetectorFallbackWarning,
    FaceModelMissingError,
    most_prominent,
)
from .framing import FACE_FRAMING, align_face
from .pipeline import (
    PHOTO_EXTENSIONS,
    PHOTO_MAX_PIXELS,
    FramedPhoto,
    PhotoPrediction,
    frame_photo,
    is_photo_file,
    open_photo,
    predict_photo,
)
from .predictor import ImagePrediction, Predictor
from .saliency import grad_cam, overlay

__all__ = [
    "Detection", "FACE_FRAMING", "FaceDetector", "FaceDetectorError", "FaceDetectorFallbackWarning",
    "FaceModelMissingError", "FramedPhoto", "ImagePrediction", "KEYPOINT_NAMES", "PHOTO_EXTENSIONS",
    "PHOTO_MAX_PIXELS", "PhotoBatchPredictor", "PhotoPrediction", "PhotoResult", "Predictor", "align_face",
    "expand_inputs", "frame_photo", "grad_cam", "is_photo_file", "most_prominent", "open_photo", "overlay",
    "predict_photo", "predict_photos",
]
