"""Cache build speed: decode + crop + resize images/s with 1 worker and with all cores.

    python bench/bench_cache.py --data-root data/demo [--images 4000]

Builds the preprocessed uint8 cache into a temporary folder (so nothing is reused) for the first
--images images of the data roots, once per worker count, and prints images/s and the speed-up,
then where one worker's time goes: reading + JPEG decoding against cropping + resizing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from celeba_model.data.cache import load_or_build_cache
from celeba_model.data.images import open_image
from celeba_model.data.index import load_index
from celeba_model.data.transforms import PreprocessConfig, image_to_array


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", dest="data_roots", action="append", required=True)
    parser.add_argument("--images", type=int, default=4000)
    args = parser.parse_args()
    paths = load_index(args.data_roots).paths[: args.images]
    spec = PreprocessConfig(image_size=64, color="rgb")
    cores = os.cpu_count() or 1
    print(f"{len(paths):,} images, 64x64 RGB, {cores} cores")
    base = None
    for workers in sorted({1, cores}):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            load_or_build_cache(paths, spec, folder, workers=workers, progress=False)
            rate = len(paths) / (time.perf_counter() - started)
        base = base or rate
        print(f"{workers} worker(s): {rate:8,.0f} images/s  ({rate / base:.2f}x)")
    sample = paths[:1000]
    started = time.perf_counter()
    images = [open_image(p) for p in sample]
    decode = (time.perf_counter() - started) / len(sample)
    started = time.perf_counter()
    for image in images:
        image_to_array(image, spec)
    resize = (time.perf_counter() - started) / len(sample)
    print(f"one worker, per image: read + decode {decode * 1e6:.0f} us, crop + resize {resize * 1e6:.0f} us "
          f"({100 * decode / (decode + resize):.0f}% decoding)")


if __name__ == "__main__":
    main()
