"""Upload prediction latency: decode, detect, reframe and predict one photo, model and detector loaded once.

    python bench/bench_upload.py --photos ../shared/celeba_wild/faces [--checkpoint ...] [--count 200]

Without --photos it uses the demo dataset's images (data/demo, generated if needed). Prints the
median and 95th percentile per photo and the one-off loading times.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from celeba_model.face_detection import FaceDetector
from celeba_model.images import open_image
from celeba_model.inference import Predictor
from celeba_model.photo import predict_photo
from celeba_model.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default=None)
    parser.add_argument("--checkpoint", default=None, help="default: the dashboard's upload default")
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    workspace = Workspace()
    if args.photos:
        photos = sorted(Path(args.photos).iterdir())[: args.count]
    else:
        from celeba_model.demo import make_demo_dataset

        make_demo_dataset(workspace.demo_data, num_images=10000, progress=False)
        photos = sorted((workspace.demo_data / "img_align_celeba").glob("*.jpg"))[: args.count]
    checkpoint = args.checkpoint or workspace.default_upload_checkpoint()
    started = time.perf_counter()
    predictor = Predictor(checkpoint)
    model_load = time.perf_counter() - started
    started = time.perf_counter()
    detector = FaceDetector()
    detector_load = time.perf_counter() - started
    times = []
    for photo in photos:
        data = photo.read_bytes()  # what an upload hands over
        started = time.perf_counter()
        predict_photo(open_image(data, name=photo.name), predictor, detector, whole_image_if_no_face=True)
        times.append(time.perf_counter() - started)
    times = 1000 * np.array(times[1:])  # the first call warms caches
    print(f"{checkpoint} (flip averaging {'on' if predictor.flip_tta else 'off'}), detector {detector.backend}")
    print(f"load once: model {model_load * 1000:.0f} ms, face detector {detector_load * 1000:.0f} ms")
    print(f"per photo ({len(times)} photos): median {np.median(times):.1f} ms, p95 {np.percentile(times, 95):.1f} ms, "
          f"max {times.max():.1f} ms (target < 150 ms)")


if __name__ == "__main__":
    main()
