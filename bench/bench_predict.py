"""Batch prediction throughput: `python -m celeba_model predict`'s pipeline on a folder of photos.

    python bench/bench_predict.py [--photos DIR] [--checkpoint FILE] [--repeat 3] [--workers N] [--batch-size B]

Photos: --photos, else ../shared/celeba_wild/faces (581 loose face crops of about 190 px) when
present, else 600 generated demo faces (178x218) written to a temporary folder. Runs the
pipeline ``predict`` uses (PhotoBatchPredictor: threads open and detect, the model runs in
batches) over every photo, after a short warm-up, and prints photos per second (the best of
--repeat runs; each run includes starting its face detectors), beside the same photos sent one at
a time through the Upload page's path (open_photo + predict_photo).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from celeba_model.catalogue import Catalogue
from celeba_model.photo import FaceDetector, PhotoBatchPredictor, Predictor, is_photo_file, open_photo, predict_photo
from celeba_model.workspace import Workspace

SHARED_FACES = Path(__file__).resolve().parents[2] / "shared" / "celeba_wild" / "faces"


def _photos(folder: str | None, scratch: Path) -> tuple[list[str], str]:
    if folder is None and SHARED_FACES.is_dir():
        folder = str(SHARED_FACES)
    if folder is not None:
        return sorted(str(p) for p in Path(folder).iterdir() if is_photo_file(p)), folder
    from celeba_model.data.demo import make_demo_dataset

    make_demo_dataset(scratch, num_images=600, seed=0, progress=False)
    return sorted(str(p) for p in (scratch / "img_align_celeba").glob("*.jpg")), "generated demo faces (178x218)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default=None, help="a folder of photos (default: see above)")
    parser.add_argument("--checkpoint", default=None, help="default: the Upload page's default checkpoint")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best is reported (default: 3)")
    parser.add_argument("--workers", type=int, default=None, help="detection threads (default: the CPU count)")
    parser.add_argument("--batch-size", type=int, default=None, help="photos per model call (default: the pipeline's)")
    parser.add_argument("--one-at-a-time", type=int, default=200, metavar="N",
                        help="photos for the one-at-a-time reference (0: skip; default: 200)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        photos, where = _photos(args.photos, Path(scratch))
        checkpoint = args.checkpoint or Catalogue(Workspace()).default_model()
        predictor = Predictor(checkpoint)
        options = {"whole_image_if_no_face": True, "workers": args.workers}
        if args.batch_size:
            options["batch_size"] = args.batch_size
        batch = PhotoBatchPredictor(predictor, **options)
        print(f"{len(photos)} photos from {where}; {checkpoint} (flip averaging "
              f"{'on' if predictor.flip_tta else 'off'}); {batch.framer.workers} workers, batches of {batch.batch_size}")
        list(batch.predict(photos[:50]))  # warm-up: torch's kernels, file cache
        rates = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            results = list(batch.predict(photos))
            rates.append(len(photos) / (time.perf_counter() - started))
        failed = sum(not r.ok for r in results)
        print(f"batched: {max(rates):.0f} photos/s (runs: {', '.join(f'{r:.0f}' for r in rates)}; "
              f"{failed} without a usable face)")
        if args.one_at_a_time:
            with FaceDetector() as detector:
                subset = photos[: args.one_at_a_time]
                predict_photo(open_photo(subset[0]), predictor, detector, whole_image_if_no_face=True)
                started = time.perf_counter()
                for path in subset:
                    predict_photo(open_photo(path), predictor, detector, whole_image_if_no_face=True)
                rate = len(subset) / (time.perf_counter() - started)
            print(f"one at a time (the Upload page's path, {len(subset)} photos): {rate:.0f} photos/s")
        print(f"RESULT photos_per_s={max(rates):.0f}")


if __name__ == "__main__":
    main()
