"""Measure how the face detector's keypoints and box relate to the training crop of aligned CelebA.

    python scripts/fit_face_framing.py --data-root ../shared/celeba [--images 2000]

Runs the shipped detector over aligned CelebA train-partition images, fits ``FaceFraming`` (medians,
see celeba_model/face_framing.py) and prints it, with how closely the upload path's crop then
matches the training crop (mean absolute pixel difference of 64x64 RGB crops, 0-255 scale). Paste
the printed constants into ``FACE_FRAMING``.
"""

from __future__ import annotations

import argparse

import numpy as np

from celeba_model.data.crop import ALIGNED_FACE_CROP, CropBox, crop_and_resize
from celeba_model.data.images import open_image
from celeba_model.data.index import load_index
from celeba_model.photo.detection import FaceDetector, most_prominent
from celeba_model.photo.framing import FACE_FRAMING, align_face, fit_framing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", dest="data_roots", action="append", required=True)
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()
    index = load_index(args.data_roots)
    rows = index.split_indices("train")[: args.images]
    detector = FaceDetector()
    detections, sizes, images = [], [], []
    for i in rows:
        image = open_image(index.paths[i])
        face = most_prominent(detector.detect(image))
        if face is not None:
            detections.append(face)
            sizes.append(image.size)
            images.append(image)
    print(f"{len(detections)} of {len(rows)} images with a face ({detector.backend})")
    framing = fit_framing(detections, sizes)
    print("FACE_FRAMING =", framing)
    whole = CropBox(0.0, 0.0, 1.0, 1.0)
    for name, candidate in (("fitted", framing), ("current", FACE_FRAMING)):
        diffs = []
        for image, face in zip(images[:300], detections[:300]):
            training = np.asarray(crop_and_resize(image, ALIGNED_FACE_CROP, 64, "rgb"), dtype=float)
            upload = np.asarray(crop_and_resize(align_face(image, face, framing=candidate), whole, 64, "rgb"), dtype=float)
            diffs.append(np.abs(training - upload).mean())
        print(f"{name}: upload crop vs training crop, mean |difference| {np.mean(diffs):.2f} "
              f"(median {np.median(diffs):.2f}, 95th percentile {np.percentile(diffs, 95):.2f})")


if __name__ == "__main__":
    main()
