"""Face detection for uploaded photos: mediapipe's BlazeFace short-range model, fully offline.

The model file ships inside the package (``celeba_model/photo/assets/face_detector/``, package data
read with importlib.resources, rebuilt by ``scripts/build_face_detector.py``); nothing is downloaded
at run time. When mediapipe cannot be imported or fails to start, the detector falls back to
OpenCV's Haar cascade (slower, weaker, no keypoints) with a ``FaceDetectorFallbackWarning``; the
backends themselves live in ``photo/backends.py``.

    detector = FaceDetector()             # load once (about 0.5 s), reuse for every image
    faces = detector.detect(image)        # PIL image -> list[Detection], most prominent first
    face = most_prominent(faces)          # or None when no face was found

Boxes and keypoints are in pixels of the image given to ``detect``; BlazeFace boxes are square,
span brows to chin, are not clipped to the image, and shift sideways with head turn (the eye and
mouth keypoints are the steadier reference for framing a crop). Large photos are shrunk before
detection; when nothing is found, the image is retried with a gray border (tight face crops) and
on overlapping tiles (small faces), and a panorama is detected on overlapping windows. The
measurements behind these settings (detection rates, costs, the Haar-to-BlazeFace box offsets) are
in ``assets/face_detector/README.md``, "Calibration".
"""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from ..data.images import to_rgb

# KEYPOINT_NAMES and FaceDetectorError are defined beside the backends (which fill and raise them)
# and are part of this module's API too.
from .backends import (
    BACKENDS,
    KEYPOINT_NAMES,
    FaceDetectorError,
    HaarBackend,
    MediapipeBackend,
    native_stderr_silenced,
)

# Package data (see pyproject.toml), so a plain `pip install .` ships it.
MODEL_RESOURCE = ("assets", "face_detector", "face_detection_short_range.tflite")
DEFAULT_MODEL_PATH = Path(str(resources.files(__package__).joinpath(*MODEL_RESOURCE)))
BUILD_SCRIPT = "scripts/build_face_detector.py"

# Retry settings (assets/face_detector/README.md, "Calibration", has the measurements behind them).
PAD_FRACTION = 0.25  # border added on each side, as a fraction of the longer side
PAD_FILL = (128, 128, 128)  # mid gray: about zero after the model's [-1, 1] normalization
TILE_MIN_SIDE = 480  # tiled only when the longer side is at least this and the shorter at least half
# Retries look at more (and odder) pixels, so they need a surer detection: real faces score 0.8-0.95
# (1st percentile 0.8 on CelebA), while structured noise reaches 0.5-0.67 in padded or tiled views.
RETRY_MIN_CONFIDENCE = 0.75
NMS_IOU = 0.3  # detections of one face from overlapping tiles are merged above this overlap
# Panoramas: an image more than WINDOW_ASPECT times as long as it is high (or the reverse) is
# detected on windows WINDOW_LENGTH short sides long, half a short side apart. Below
# WINDOW_MIN_SIDE pixels on the short side there is no face to find, and MAX_WINDOWS bounds the cost.
WINDOW_ASPECT = 2.0
WINDOW_LENGTH = 1.5
WINDOW_MIN_SIDE = 32
MAX_WINDOWS = 256


class FaceModelMissingError(FaceDetectorError, FileNotFoundError):
    """The shipped model file is not where it should be."""


class FaceDetectorFallbackWarning(UserWarning):
    """mediapipe was unavailable, so the weaker OpenCV Haar cascade is used."""


@dataclass(frozen=True)
class Detection:
    """One face: a box in pixels of the image given to ``detect``, a score, and keypoints.

    ``keypoints`` holds the six BlazeFace points as (x, y) pixels in ``KEYPOINT_NAMES`` order
    (right eye, left eye, nose tip, mouth center, right ear tragion, left ear tragion), or is
    ``None`` for the Haar backend. ``score`` is the model's confidence in [0, 1]; for the Haar
    backend it is a monotone squashing of the cascade's level weight, not a probability.
    """

    left: float
    top: float
    width: float
    height: float
    score: float
    keypoints: tuple[tuple[float, float], ...] | None = None

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @property
    def center(self) -> tuple[float, float]:
        return (self.left + self.width / 2, self.top + self.height / 2)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def prominence(self) -> float:
        """Box area (px^2) times score: what ``most_prominent`` ranks by."""
        return self.area * self.score

    def keypoint(self, name: str) -> tuple[float, float] | None:
        """The (x, y) pixel position of one of ``KEYPOINT_NAMES``, or None when there are no keypoints."""
        if name not in KEYPOINT_NAMES:
            raise KeyError(f"unknown keypoint {name!r}; known: {', '.join(KEYPOINT_NAMES)}")
        return None if self.keypoints is None else self.keypoints[KEYPOINT_NAMES.index(name)]

    def relative(self, width: int, height: int) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) as fractions of an image of ``width`` x ``height`` (may lie outside [0, 1])."""
        return (self.left / width, self.top / height, self.right / width, self.bottom / height)

    def _transformed(self, scale_x: float, scale_y: float, dx: float, dy: float) -> "Detection":
        """x -> x * scale_x + dx, y -> y * scale_y + dy for the box and keypoints."""
        keypoints = None
        if self.keypoints is not None:
            keypoints = tuple((x * scale_x + dx, y * scale_y + dy) for x, y in self.keypoints)
        return Detection(
            left=self.left * scale_x + dx,
            top=self.top * scale_y + dy,
            width=self.width * scale_x,
            height=self.height * scale_y,
            score=self.score,
            keypoints=keypoints,
        )


def most_prominent(detections: Iterable[Detection]) -> Detection | None:
    """The most prominent face, or None when there is none.

    Prominence is the box area times the detection score, so a large, confidently detected face
    (the subject of a portrait) wins over small faces in the background and over large but
    doubtful detections. Ties keep the earlier detection.
    """
    best = None
    for detection in detections:
        if best is None or detection.prominence > best.prominence:
            best = detection
    return best


def sort_by_prominence(detections: Iterable[Detection]) -> list[Detection]:
    """Most prominent first (see ``most_prominent``)."""
    return sorted(detections, key=lambda d: d.prominence, reverse=True)


def _iou(a: Detection, b: Detection) -> float:
    w = min(a.right, b.right) - max(a.left, b.left)
    h = min(a.bottom, b.bottom) - max(a.top, b.top)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a.area + b.area - inter)


def _windows(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """(left, top, width, height) of the views a ``width`` x ``height`` image is detected on: the
    whole image, or for a panorama overlapping windows along its long side (WINDOW_* settings)."""
    long_side, short_side = max(width, height), min(width, height)
    if long_side <= WINDOW_ASPECT * short_side or short_side < WINDOW_MIN_SIDE:
        return [(0, 0, width, height)]
    # Windows half a short side apart and 1.5 long hold any face up to the short side whole.
    length = max(round(WINDOW_LENGTH * short_side), math.ceil(3 * long_side / (MAX_WINDOWS + 2)))
    stride = max(1, round(length / 3))
    starts = list(range(0, long_side - length, stride)) + [long_side - length]
    if width >= height:
        return [(start, 0, length, height) for start in starts]
    return [(0, start, width, length) for start in starts]


def _suppress(detections: Sequence[Detection], iou: float = NMS_IOU) -> list[Detection]:
    """Greedy non-maximum suppression: keep the highest-scoring of overlapping detections."""
    kept: list[Detection] = []
    for detection in sorted(detections, key=lambda d: d.score, reverse=True):
        if all(_iou(detection, other) <= iou for other in kept):
            kept.append(detection)
    return kept


class FaceDetector:
    """Finds faces in PIL images; create once and reuse (the model is loaded in the constructor).

    ``model_path``: the BlazeFace model (default: the shipped ``DEFAULT_MODEL_PATH``).
    ``backend``: "auto" (mediapipe, else the Haar cascade with a ``FaceDetectorFallbackWarning``
    and the reason in ``fallback_reason``), "mediapipe" (a ``FaceDetectorError`` if it cannot
    start) or "opencv-haar". A missing model file is always an error (``FaceModelMissingError``,
    naming the build script) for "auto" and "mediapipe": it means a broken checkout, not a missing
    optional dependency. ``min_detection_confidence`` is the score a face needs on the first pass,
    ``retry_min_confidence`` on the padded and tiled retries (``pad_retry``, ``tile_retry``);
    ``max_side`` bounds the longer side of the copy the model looks at. The Haar backend ignores
    the confidences and retries. ``quiet`` hides the lines mediapipe's native code logs to file
    descriptor 2 when a detector starts, is first used and is closed (``native_stderr_silenced``).
    ``detect`` may be called from several threads (calls are serialized); for parallel detection
    give each thread its own detector.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        backend: str = "auto",
        min_detection_confidence: float = 0.5,
        max_side: int = 768,
        pad_retry: bool = True,
        tile_retry: bool = True,
        retry_min_confidence: float = RETRY_MIN_CONFIDENCE,
        quiet: bool = True,
    ) -> None:
        if backend not in ("auto", *BACKENDS):
            raise FaceDetectorError(f"unknown face detector backend {backend!r}; choose auto, {', '.join(BACKENDS)}")
        if not 0.0 <= min_detection_confidence <= 1.0:
            raise FaceDetectorError(f"min_detection_confidence must be in [0, 1], got {min_detection_confidence}")
        if max_side < 128:
            raise FaceDetectorError(f"max_side must be at least 128 (the model's input size), got {max_side}")
        self.model_path = Path(model_path) if model_path is not None else DEFAULT_MODEL_PATH
        self.min_detection_confidence = float(min_detection_confidence)
        self.max_side = int(max_side)
        self.pad_retry = pad_retry
        self.tile_retry = tile_retry
        self.retry_min_confidence = float(retry_min_confidence)
        self.quiet = quiet
        self._lock = threading.Lock()
        self._closed = False
        self._first_call = True  # mediapipe logs a warning or two on its first inference
        self.fallback_reason: str | None = None
        self._backend: MediapipeBackend | HaarBackend
        if backend == "opencv-haar":
            self._backend = HaarBackend()
        else:
            model = self._read_model()
            try:
                self._backend = MediapipeBackend(model, self.min_detection_confidence, quiet)
            except Exception as err:  # ImportError, or mediapipe failing to start its graph
                if backend == "mediapipe":
                    raise FaceDetectorError(f"mediapipe face detector could not start: {err}") from err
                self.fallback_reason = f"{type(err).__name__}: {err}"
                warnings.warn(
                    f"mediapipe face detection is unavailable ({self.fallback_reason}); using OpenCV's Haar "
                    "cascade instead, which is several times slower, misses more faces (turned heads, "
                    "small images) and gives no keypoints",
                    FaceDetectorFallbackWarning,
                    stacklevel=2,
                )
                self._backend = HaarBackend()

    @property
    def backend(self) -> str:
        """The backend in use: "mediapipe" or "opencv-haar"."""
        return self._backend.name

    def _read_model(self) -> bytes:
        try:
            if self.model_path == DEFAULT_MODEL_PATH:  # through importlib.resources: works from any install
                return resources.files(__package__).joinpath(*MODEL_RESOURCE).read_bytes()
            return self.model_path.read_bytes()
        except FileNotFoundError:
            raise FaceModelMissingError(
                f"face detector model not found: {self.model_path}. It ships with the package; "
                f"rebuild it with `python {BUILD_SCRIPT}` (needs PyPI access once)"
            ) from None
        except OSError as err:
            raise FaceDetectorError(f"cannot read the face detector model {self.model_path}: {err}") from err

    def detect(self, image: Image.Image) -> list[Detection]:
        """Faces in ``image``, most prominent first; boxes and keypoints in pixels of ``image``."""
        if self._closed:
            raise FaceDetectorError("this FaceDetector has been closed; create a new one")
        width, height = image.size
        if width < 1 or height < 1:
            return []
        rgb = to_rgb(image)  # transparency on white, 16-bit rescaled, as uploads are opened
        windows = _windows(width, height)
        if len(windows) == 1:
            return sort_by_prominence(self._detect_view(rgb, self.min_detection_confidence))
        # A panorama: windows are views the model would not see otherwise, so retry confidence.
        found = []
        for left, top, w, h in windows:
            view = rgb.crop((left, top, left + w, top + h))
            found += [d._transformed(1.0, 1.0, left, top) for d in self._detect_view(view, self.retry_min_confidence)]
        return sort_by_prominence(_suppress(found))

    def _detect_view(self, rgb: Image.Image, min_score: float) -> list[Detection]:
        """Detections in one RGB view, shrunk to ``max_side`` first; boxes in the view's pixels."""
        width, height = rgb.size
        factor = math.ceil(max(width, height) / self.max_side) if max(width, height) > self.max_side else 1
        if factor > 1:
            rgb = rgb.reduce(factor)
        pixels = np.asarray(rgb)
        with self._lock:
            with native_stderr_silenced(self.quiet and self._first_call):
                found = self._detect_pixels(pixels, min_score)
            self._first_call = False
        if factor > 1:  # reduce() averages factor x factor blocks (a partial block at the edge)
            found = [d._transformed(factor, factor, 0.0, 0.0) for d in found]
        return found

    def _backend_detect(self, pixels: np.ndarray) -> list[Detection]:
        # Backends report plain RawFace tuples in Detection's field order.
        return [Detection(*face) for face in self._backend.detect(pixels)]

    def _detect_pixels(self, pixels: np.ndarray, min_score: float) -> list[Detection]:
        found = self._backend_detect(pixels)
        if self.backend != "mediapipe":
            # The Haar cascade already scans every scale, and its scores cannot gate a retry.
            return found
        found = [d for d in found if d.score >= min_score]
        if found:
            return found
        height, width = pixels.shape[:2]
        if self.pad_retry:
            pad = max(1, round(PAD_FRACTION * max(width, height)))
            padded = np.empty((height + 2 * pad, width + 2 * pad, 3), np.uint8)
            padded[...] = PAD_FILL
            padded[pad:pad + height, pad:pad + width] = pixels
            found = [d._transformed(1.0, 1.0, -pad, -pad) for d in self._backend_detect(padded)
                     if d.score >= self.retry_min_confidence]
            if found:
                return found
        if self.tile_retry and max(width, height) >= TILE_MIN_SIDE and min(width, height) >= TILE_MIN_SIDE // 2:
            tile_w, tile_h = math.ceil(width / 2), math.ceil(height / 2)
            tiles = []
            for y in (0, (height - tile_h) // 2, height - tile_h):
                for x in (0, (width - tile_w) // 2, width - tile_w):
                    tile = pixels[y:y + tile_h, x:x + tile_w]
                    tiles += [d._transformed(1.0, 1.0, x, y) for d in self._backend_detect(tile)
                              if d.score >= self.retry_min_confidence]
            found = _suppress(tiles)
        return found

    def close(self) -> None:
        """Release the mediapipe graph now (it is also released when the detector is garbage collected)."""
        with self._lock:
            self._closed = True
            self._backend.close()

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaceDetector(backend={self.backend!r}, model_path={str(self.model_path)!r})"
