"""Upload prediction latency: decode, detect, reframe and predict one photo, model and detector loaded once.

    python bench/bench_upload.py --photos ../shared/celeba_wild/faces [--checkpoint ...] [--count 200]

Without --photos it uses the demo dataset's images (data/demo, generated if needed). Prints the
median and 95th percentile per photo and the one-off loading times, for the photos as they are and
for each pasted into a 12-megapixel (4032x3024) JPEG scene, as a phone would upload it.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from celeba_model.catalogue import Catalogue
from celeba_model.photo import FaceDetector, Predictor, open_photo, predict_photo
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
        from celeba_model.data.demo import make_demo_dataset

        make_demo_dataset(workspace.demo_data, num_images=10000, progress=False)
        photos = sorted((workspace.demo_data / "img_align_celeba").glob("*.jpg"))[: args.count]
    checkpoint = args.checkpoint or Catalogue(workspace).default_model()
    started = time.perf_counter()
    predictor = Predictor(checkpoint)
    model_load = time.perf_counter() - started
    started = time.perf_counter()
    detector = FaceDetector()
    detector_load = time.perf_counter() - started
    print(f"{checkpoint} (flip averaging {'on' if predictor.flip_tta else 'off'}), detector {detector.backend}")
    print(f"load once: model {model_load * 1000:.0f} ms, face detector {detector_load * 1000:.0f} ms")
    for label, uploads in (("as they are", [p.read_bytes() for p in photos]),
                           ("in a 12 MP phone photo", [_phone_photo(p) for p in photos[:50]])):
        times = []
        for data in uploads:  # bytes: what an upload hands over
            started = time.perf_counter()
            predict_photo(open_photo(data, name="upload"), predictor, detector, whole_image_if_no_face=True)
            times.append(time.perf_counter() - started)
        times = 1000 * np.array(times[1:])  # the first call warms caches
        print(f"per photo, {label} ({len(times)} photos): median {np.median(times):.1f} ms, "
              f"p95 {np.percentile(times, 95):.1f} ms, max {times.max():.1f} ms (target < 150 ms)")


def _phone_photo(path: Path) -> bytes:
    """The face photo enlarged into a 4032x3024 JPEG, about a third of the frame high."""
    face = Image.open(path).convert("RGB")
    scale = 1000 / face.height
    scene = Image.new("RGB", (4032, 3024), (90, 110, 130))
    scene.paste(face.resize((round(face.width * scale), 1000), Image.Resampling.BICUBIC), (1500, 900))
    buffer = io.BytesIO()
    scene.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()

if __name__ == "__main__":
    main()
