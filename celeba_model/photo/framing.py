"""From a detected face to the training framing: the crop an aligned CelebA image would have given.

Aligned CelebA was made by rotating, scaling and shifting each photo so the eyes and mouth land at
fixed places; training then cuts ``ALIGNED_FACE_CROP`` out of it. For an uploaded photo we redo
that from the detector's keypoints: the eye line gives the rotation, the eyes' midpoint the
position, and d = sqrt(eye distance x eye-to-mouth distance) the scale (the eye distance shrinks
when the head turns, the mouth moves with expression; their geometric mean varies least, 6.5% on
aligned CelebA against 9.4% and 7.0%). The constants below relate those to the training crop; they
were measured by running the detector over aligned CelebA (``scripts/fit_face_framing.py``), so a
CelebA image sent through the upload path gets nearly the crop training used.

Without keypoints (OpenCV's fallback detector) the box alone sets position and scale, with no
rotation: coarser, since the box shifts with head turn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..data.crop import ALIGNED_FACE_CROP, CropBox
from .detection import Detection

# Outside the photo (a face at its border) the crop is filled with mid gray, about zero after the
# model's normalization.
FILL = (128, 128, 128)


@dataclass(frozen=True)
class FaceFraming:
    """The training crop relative to a face's keypoints (and, as a fallback, its box).

    Keypoint frame: origin at the eyes' midpoint, x along the eye line, y towards the mouth, unit
    d = sqrt(eye distance x distance from the eyes' midpoint to the mouth center).
    """

    center_x_per_d: float  # crop center, in the keypoint frame
    center_y_per_d: float
    side_per_d: float  # crop side
    box_center_dx: float  # crop center minus box center, in box sides
    box_center_dy: float
    box_side_ratio: float  # crop side / box side


# Measured on 2,000 aligned CelebA train images by scripts/fit_face_framing.py (medians).
FACE_FRAMING = FaceFraming(
    center_x_per_d=-0.002,
    center_y_per_d=0.0171,
    side_per_d=3.4681,
    box_center_dx=-0.0049,
    box_center_dy=-0.1924,
    box_side_ratio=1.4644,
)


@dataclass(frozen=True)
class FaceRegion:
    """A square in the photo: center, side (pixels) and rotation (radians, the eye line's angle)."""

    center: tuple[float, float]
    side: float
    angle: float


def _keypoint_frame(detection: Detection) -> tuple[np.ndarray, float, float] | None:
    """(eyes' midpoint, unit d, eye-line angle) from the keypoints, or None without usable ones."""
    if detection.keypoints is None:
        return None
    right, left, mouth = (detection.keypoint(n) for n in ("right_eye", "left_eye", "mouth_center"))
    if right is None or left is None or mouth is None:
        return None
    right, left, mouth = np.asarray(right, float), np.asarray(left, float), np.asarray(mouth, float)
    eyes = (right + left) / 2
    d = math.sqrt(float(np.linalg.norm(left - right)) * float(np.linalg.norm(mouth - eyes)))
    if d < 1e-6:
        return None
    # The person's right eye is on the image's left: the eye line points right, y points down.
    return eyes, d, math.atan2(left[1] - right[1], left[0] - right[0])


def face_region(detection: Detection, framing: FaceFraming = FACE_FRAMING) -> FaceRegion:
    """Where the training framing lies in the photo for this detection."""
    frame = _keypoint_frame(detection)
    if frame is not None:
        eyes, d, angle = frame
        axis_x = np.array([math.cos(angle), math.sin(angle)])
        axis_y = np.array([-math.sin(angle), math.cos(angle)])
        center = eyes + d * (framing.center_x_per_d * axis_x + framing.center_y_per_d * axis_y)
        return FaceRegion(center=(float(center[0]), float(center[1])), side=framing.side_per_d * d, angle=angle)
    side = max(detection.width, detection.height)
    cx, cy = detection.center
    return FaceRegion(
        center=(cx + framing.box_center_dx * side, cy + framing.box_center_dy * side),
        side=framing.box_side_ratio * side,
        angle=0.0,
    )


def align_face(image: Image.Image, detection: Detection, size: int | None = None,
               framing: FaceFraming = FACE_FRAMING) -> Image.Image:
    """Cut the detection's training-framed square out of ``image``, rotated upright.

    ``size`` is the output side in pixels (default: the square's side in the photo, so no detail is
    lost before the model's own resize).
    """
    region = face_region(detection, framing)
    out = size or max(8, round(region.side))
    scale = region.side / out
    cos, sin = math.cos(region.angle), math.sin(region.angle)
    cx, cy = region.center
    # PIL's affine transform maps each output pixel (x, y) to the input pixel (a x + b y + c, d x + e y + f).
    half = out / 2
    a, b = scale * cos, -scale * sin
    d, e = scale * sin, scale * cos
    c = cx - a * half - b * half
    f = cy - d * half - e * half
    return image.convert("RGB").transform((out, out), Image.Transform.AFFINE, (a, b, c, d, e, f),
                                          resample=Image.Resampling.BILINEAR, fillcolor=FILL)


def fit_framing(detections: Sequence[Detection], sizes: Sequence[tuple[int, int]],
                crop: CropBox = ALIGNED_FACE_CROP) -> FaceFraming:
    """Measure ``FaceFraming`` from detections on aligned images (``sizes`` = their width, height).

    Each image's training crop is ``crop`` in its own pixels; the medians of its center and side,
    expressed in each detection's keypoint frame and box units, are the framing.
    """
    kp_rows, box_rows = [], []
    for detection, (width, height) in zip(detections, sizes):
        left, top, right, bottom = crop.left * width, crop.top * height, crop.right * width, crop.bottom * height
        target = np.array([(left + right) / 2, (top + bottom) / 2])
        side = ((right - left) + (bottom - top)) / 2
        box_side = max(detection.width, detection.height)
        box_rows.append([*(target - np.asarray(detection.center)) / box_side, side / box_side])
        frame = _keypoint_frame(detection)
        if frame is None:
            continue
        eyes, d, angle = frame
        rotate = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
        offset = rotate @ (target - eyes) / d
        kp_rows.append([offset[0], offset[1], side / d])
    if not kp_rows:
        raise ValueError("no detection with keypoints to fit the framing on")
    kp = np.median(np.array(kp_rows), axis=0)
    box = np.median(np.array(box_rows), axis=0)
    return FaceFraming(
        center_x_per_d=round(float(kp[0]), 4), center_y_per_d=round(float(kp[1]), 4), side_per_d=round(float(kp[2]), 4),
        box_center_dx=round(float(box[0]), 4), box_center_dy=round(float(box[1]), 4), box_side_ratio=round(float(box[2]), 4),
    )
