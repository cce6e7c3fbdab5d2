"""Face detection for uploaded photos: mediapipe's BlazeFace short-range model, fully offline.

The model file ships inside the package (``celeba_model/photo/assets/face_detector/``, package data read
with importlib.resources, rebuilt by ``scripts/build_face_detector.py``); nothing is downloaded at
run time. It runs through mediapipe's Tasks ``FaceDetector`` on the CPU. When mediapipe cannot be
imported or fails to start, the detector falls back to OpenCV's bundled Haar cascade (slower,
weaker, no keypoints) with a ``FaceDetectorFallbackWarning``; ``FaceDetector.backend`` says which
one is in use.

    detector = FaceDetector()             # load once (about 0.5 s), reuse for every image
    faces = detector.detect(image)        # PIL image -> list[Detection], most prominent first
    face = most_prominent(faces)          # or None when no face was found

Boxes and keypoints are in pixels of the image given to ``detect``. BlazeFace boxes are square (in
pixels), span brows to chin, and may extend past the image border (they are not clipped). The box
follows the visible face outline, so it shifts sideways with head turn (on aligned CelebA its
center varies by 5% of the image width, the eyes' midpoint by 1%): to frame a crop, the eye and
mouth keypoints are the steadier reference.

Images the short-range model handles badly, and what is done (measured on CelebA):

* small images (89x109 half-resolution CelebA, even 44x54) are detected as they are: the model
  sees a 128x128 letterboxed copy anyway, so upscaling does not help;
* a face filling nearly the whole image (a tight face crop) is sometimes missed; when nothing is
  found, the image is retried with a gray border of 25% of its longer side and the boxes are
  mapped back (central 50% x 40% of aligned CelebA: 98.5% -> 99.3% detected);
* large photos are first shrunk by an integer box-filter reduction so the longer side is at most
  ``max_side`` (768) pixels: detection rates do not change (the model input is 128 px) and a
  12-megapixel photo takes about 11 ms, mostly the reduction;
* faces narrower than about 9% of the image width are beyond the short-range model; when nothing
  is found on an image of at least 480 px, it is retried on 3x3 overlapping half-size tiles (a
  face 7% of the width: 12% -> 95% found; 6%: 0% -> 89%);
* a long thin image (a panorama, more than ``WINDOW_ASPECT`` = 2 times as long as it is high)
  would be letterboxed into a sliver of the model's 128x128 input, its faces a few pixels high:
  it is cut into overlapping windows 1.5 times as long as the short side, half a short side apart
  (so any face up to the short side lies whole in one window), each detected like an image of its
  own, and their detections merged by non-maximum suppression.

Retries and windows only accept detections scoring ``retry_min_confidence`` (0.75) or more, so they
add no false positives on noise images; an image with no face costs all eleven passes, about 20-30 ms.

mediapipe's native code logs to file descriptor 2 when a detector starts, is first used and is
closed ("Created TensorFlow Lite XNNPACK delegate", LiteRT INFO lines, a tensor-alignment warning).
``FaceDetector(quiet=True)`` (the default) sends fd 2 to /dev/null around those moments only.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from ..data.images import to_rgb
from ..errors import CelebAModelError

# Package data (see pyproject.toml), so a plain `pip install .` ships it.
MODEL_RESOURCE = ("assets", "face_detector", "face_detection_short_range.tflite")
DEFAULT_MODEL_PATH = Path(str(resources.files(__package__).joinpath(*MODEL_RESOURCE)))
BUILD_SCRIPT = "scripts/build_face_detector.py"

BACKENDS = ("mediapipe", "opencv-haar")

# Keypoint order of BlazeFace (and of Detection.keypoints). "Right" is the person's right, which is
# on the left of the image for a frontal face.
KEYPOINT_NAMES = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
)

# Retry settings (see the module docstring for the measurements behind them).
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

_HAAR_MAX_SIDE = 640  # the cascade runs on a copy at most this large (its cost grows with area)
_HAAR_MIN_FACE = 0.15  # smallest face it looks for, as a fraction of the shorter side (speed: 21 -> 17 ms)
# The Haar cascade's square box sits higher and is larger than BlazeFace's. Paired on the same
# faces (776 aligned CelebA images, 581 loose crops), BlazeFace's box center is 0.00 (x) and 0.08-0.09
# (y, downwards) cascade-box widths from the cascade's, and its side is 0.92-0.93 of the cascade's.
# Haar boxes are moved by (dx, dy) and scaled by this factor so that code mapping a box to a crop
# works with either backend. Haar boxes still vary more in size and height (aligned CelebA: width
# std 0.048 vs 0.034 of the image width), while BlazeFace's slide more sideways with head turn.
_HAAR_TO_BLAZEFACE = (0.0, 0.085, 0.93)


class FaceDetectorError(CelebAModelError):
    """The face detector cannot be set up (missing model file, unknown backend)."""


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
    whole image, or for a panorama overlapping windows along its long side (module docstring)."""
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


class _NativeStderr:
    """Sends what native code writes to file descriptor 2 to /dev/null while ``silenced()`` is held.

    mediapipe's C++ logging bypasses Python's ``sys.stderr``, so only redirecting the descriptor
    hides it. Re-entrant and shared by threads (a count of holders): worker threads starting their
    own detectors at once restore fd 2 only when the last one is done. Python output written in
    that window (it is short: a detector's start or first call) is lost too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._saved: int | None = None

    @contextmanager
    def silenced(self) -> Iterator[None]:
        self._enter()
        try:
            yield
        finally:
            self._exit()

    def _enter(self) -> None:
        with self._lock:
            self._holders += 1
            if self._holders > 1:
                return
            _flush_stderr()
            try:
                saved = os.dup(2)
            except OSError:  # no fd 2 at all (a daemon): nothing to hide
                return
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(devnull, 2)
                finally:
                    os.close(devnull)
            except OSError:
                os.close(saved)
                return
            self._saved = saved

    def _exit(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders > 0 or self._saved is None:
                return
            _flush_stderr()
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._saved = None


def _flush_stderr() -> None:
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):  # replaced, closed or None
        pass


_NATIVE_STDERR = _NativeStderr()


@contextmanager
def _maybe_silenced(quiet: bool) -> Iterator[None]:
    if quiet:
        with _NATIVE_STDERR.silenced():
            yield
    else:
        yield


class _MediapipeBackend:
    """mediapipe Tasks FaceDetector in IMAGE mode on the shipped model (loaded once)."""

    name = "mediapipe"

    def __init__(self, model: bytes, min_detection_confidence: float, quiet: bool = True) -> None:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=model, delegate=BaseOptions.Delegate.CPU),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=min_detection_confidence,
        )
        with _maybe_silenced(quiet):
            self._detector = vision.FaceDetector.create_from_options(options)
        # Closed when this backend is garbage collected or at exit (see _close_quietly): left to
        # mediapipe's own __del__, it prints a TypeError traceback during interpreter shutdown.
        self._finalizer = weakref.finalize(self, _close_quietly, self._detector, quiet)

    def detect(self, pixels: np.ndarray) -> list[Detection]:
        height, width = pixels.shape[:2]
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(pixels))
        result = self._detector.detect(image)
        found = []
        for d in result.detections:
            box = d.bounding_box
            keypoints = None
            if d.keypoints and len(d.keypoints) == len(KEYPOINT_NAMES):
                keypoints = tuple((float(k.x) * width, float(k.y) * height) for k in d.keypoints)
            score = float(d.categories[0].score) if d.categories else 1.0
            found.append(Detection(float(box.origin_x), float(box.origin_y), float(box.width), float(box.height),
                                   score, keypoints))
        return found

    def close(self) -> None:
        self._finalizer()


def _close_quietly(detector, quiet: bool = True) -> None:  # noqa: ANN001 - a mediapipe FaceDetector
    try:
        with _maybe_silenced(quiet):  # closing logs "DestroyAccelerator"
            detector.close()
    except Exception:  # noqa: BLE001 - best effort
        # At interpreter exit the dispatcher's thread pool is already shut down ("cannot schedule
        # new futures after shutdown"), so the graph cannot be closed; the process is ending anyway.
        # Forget the handle so mediapipe's __del__ does not retry during module teardown and print
        # a TypeError traceback.
        detector._handle = None


class _HaarBackend:
    """OpenCV's bundled frontal-face Haar cascade: no keypoints, boxes of a different framing."""

    name = "opencv-haar"

    def __init__(self) -> None:
        import cv2

        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cv2 = cv2
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FaceDetectorError(f"OpenCV could not load its Haar cascade {path}")

    def detect(self, pixels: np.ndarray) -> list[Detection]:
        height, width = pixels.shape[:2]
        scale = min(1.0, _HAAR_MAX_SIDE / max(width, height))
        gray = self._cv2.cvtColor(pixels, self._cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            gray = self._cv2.resize(gray, (max(1, round(width * scale)), max(1, round(height * scale))),
                                    interpolation=self._cv2.INTER_AREA)
        min_side = max(20, round(_HAAR_MIN_FACE * min(gray.shape)))
        boxes, _, weights = self._cascade.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side), outputRejectLevels=True
        )
        found = []
        for (x, y, w, h), weight in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            score = float(weight) / (float(weight) + 4.0) if weight > 0 else 0.0
            # Move the cascade's box to BlazeFace's framing (see _HAAR_TO_BLAZEFACE).
            side = w * _HAAR_TO_BLAZEFACE[2]
            cx = x + w / 2 + _HAAR_TO_BLAZEFACE[0] * w
            cy = y + h / 2 + _HAAR_TO_BLAZEFACE[1] * w
            found.append(Detection(float(cx - side / 2) / scale, float(cy - side / 2) / scale,
                                   float(side) / scale, float(side) / scale, score, None))
        return found

    def close(self) -> None:
        pass


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
    the confidences and retries. ``quiet`` hides mediapipe's native log lines (module docstring).
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
        self._backend: _MediapipeBackend | _HaarBackend
        if backend == "opencv-haar":
            self._backend = _HaarBackend()
        else:
            model = self._read_model()
            try:
                self._backend = _MediapipeBackend(model, self.min_detection_confidence, quiet)
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
                self._backend = _HaarBackend()

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
            with _maybe_silenced(self.quiet and self._first_call):
                found = self._detect_pixels(pixels, min_score)
            self._first_call = False
        if factor > 1:  # reduce() averages factor x factor blocks (a partial block at the edge)
            found = [d._transformed(factor, factor, 0.0, 0.0) for d in found]
        return found

    def _detect_pixels(self, pixels: np.ndarray, min_score: float) -> list[Detection]:
        found = self._backend.detect(pixels)
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
            found = [d._transformed(1.0, 1.0, -pad, -pad) for d in self._backend.detect(padded)
                     if d.score >= self.retry_min_confidence]
            if found:
                return found
        if self.tile_retry and max(width, height) >= TILE_MIN_SIDE and min(width, height) >= TILE_MIN_SIDE // 2:
            tile_w, tile_h = math.ceil(width / 2), math.ceil(height / 2)
            tiles = []
            for y in (0, (height - tile_h) // 2, height - tile_h):
                for x in (0, (width - tile_w) // 2, width - tile_w):
                    tile = pixels[y:y + tile_h, x:x + tile_w]
                    tiles += [d._transformed(1.0, 1.0, x, y) for d in self._backend.detect(tile)
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
