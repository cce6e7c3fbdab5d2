"""Face detection backends: mediapipe's BlazeFace and OpenCV's Haar cascade, one RGB array at a time.

Each backend turns an RGB uint8 array into ``RawFace`` tuples in its pixels; ``FaceDetector``
(``photo/detection.py``) picks the backend, shrinks, retries and merges. mediapipe's native code logs
to file descriptor 2, which ``native_stderr_silenced`` hides around the moments it does.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import CelebAModelError

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

_HAAR_MAX_SIDE = 640  # the cascade runs on a copy at most this large (its cost grows with area)
_HAAR_MIN_FACE = 0.15  # smallest face it looks for, as a fraction of the shorter side (speed: 21 -> 17 ms)
# (dx, dy, scale): moves the cascade's square box (higher and larger than BlazeFace's) to BlazeFace's
# framing, in cascade-box widths, so code mapping a box to a crop works with either backend.
# Measured on paired detections: see assets/face_detector/README.md, "Haar cascade to BlazeFace".
_HAAR_TO_BLAZEFACE = (0.0, 0.085, 0.93)


class FaceDetectorError(CelebAModelError):
    """The face detector cannot be set up (missing model file, unknown backend)."""


class RawFace(NamedTuple):
    """One face as a backend reports it, in pixels of the array it was given (``Detection``'s fields)."""

    left: float
    top: float
    width: float
    height: float
    score: float
    keypoints: tuple[tuple[float, float], ...] | None


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


_NATIVE_STDERR = _NativeStderr()  # one per process: file descriptor 2 is


@contextmanager
def native_stderr_silenced(quiet: bool = True) -> Iterator[None]:
    """File descriptor 2 sent to /dev/null inside the block when ``quiet`` (see ``_NativeStderr``)."""
    if quiet:
        with _NATIVE_STDERR.silenced():
            yield
    else:
        yield


class MediapipeBackend:
    """mediapipe Tasks FaceDetector in IMAGE mode on a BlazeFace model (loaded once)."""

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
        with native_stderr_silenced(quiet):
            self._detector = vision.FaceDetector.create_from_options(options)
        # Closed when this backend is garbage collected or at exit (see _close_quietly): left to
        # mediapipe's own __del__, it prints a TypeError traceback during interpreter shutdown.
        self._finalizer = weakref.finalize(self, _close_quietly, self._detector, quiet)

    def detect(self, pixels: np.ndarray) -> list[RawFace]:
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
            found.append(RawFace(float(box.origin_x), float(box.origin_y), float(box.width), float(box.height),
                                 score, keypoints))
        return found

    def close(self) -> None:
        self._finalizer()


def _close_quietly(detector, quiet: bool = True) -> None:  # noqa: ANN001 - a mediapipe FaceDetector
    try:
        with native_stderr_silenced(quiet):  # closing logs "DestroyAccelerator"
            detector.close()
    except Exception:  # noqa: BLE001 - best effort
        # At interpreter exit the dispatcher's thread pool is already shut down ("cannot schedule
        # new futures after shutdown"), so the graph cannot be closed; the process is ending anyway.
        # Forget the handle so mediapipe's __del__ does not retry during module teardown and print
        # a TypeError traceback.
        detector._handle = None


class HaarBackend:
    """OpenCV's bundled frontal-face Haar cascade: no keypoints, boxes moved to BlazeFace's framing."""

    name = "opencv-haar"

    def __init__(self) -> None:
        import cv2

        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cv2 = cv2
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FaceDetectorError(f"OpenCV could not load its Haar cascade {path}")

    def detect(self, pixels: np.ndarray) -> list[RawFace]:
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
            found.append(RawFace(float(cx - side / 2) / scale, float(cy - side / 2) / scale,
                                 float(side) / scale, float(side) / scale, score, None))
        return found

    def close(self) -> None:
        pass


BACKENDS = (MediapipeBackend.name, HaarBackend.name)
