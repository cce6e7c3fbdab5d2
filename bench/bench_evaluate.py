"""Evaluation throughput: images/s of batched inference from the uint8 cache, per model and device.

    python bench/bench_evaluate.py [--images 5000] [--device auto] [--batch-size N] [--arch paper cnn4 ...]

Prints, per architecture and color, the images/s of `predict_probabilities` (the evaluate
command's inner loop: uint8 cache rows -> normalized tensors -> model -> sigmoid) and of the
model alone on tensors already in memory, so the data overhead is visible.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from celeba_model.data.transforms import PreprocessConfig, to_model_input
from celeba_model.evaluation.batched import predict_probabilities
from celeba_model.models.registry import create_model, model_spec
from celeba_model.utils.devices import autocast, default_eval_batch_size, resolve_device


def _best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--color", nargs="+", default=["gray", "rgb"])
    parser.add_argument("--arch", nargs="+", default=["paper", "no_conv3", "no_conv3_no_fc1", "cnn4", "attrnet"])
    args = parser.parse_args()
    device = resolve_device(args.device)
    batch = args.batch_size or default_eval_batch_size(device)
    print(f"device {device}, {torch.get_num_threads()} threads, {args.images:,} images of 64x64, batch {batch}")
    rng = np.random.default_rng(0)
    for color in args.color:
        spec = PreprocessConfig(image_size=64, color=color)
        images = rng.integers(0, 256, size=(args.images, 64, 64, spec.channels), dtype=np.uint8)
        rows = np.arange(args.images)
        for arch in args.arch:
            model = create_model(model_spec(arch, spec.channels, 10, 64)).to(device).eval()
            model = model.to(memory_format=torch.channels_last)
            predict_probabilities(model, images, rows[:batch], spec, device, batch_size=batch)  # warm-up
            tensors = [to_model_input(torch.from_numpy(images[i : i + batch]).to(device), spec)
                       for i in range(0, args.images, batch)]

            @torch.inference_mode()
            def compute_only():
                with autocast(device):
                    for x in tensors:
                        torch.sigmoid(model(x).float())
                if device.type == "cuda":
                    torch.cuda.synchronize()

            # Alternate the two and keep the best of each: this VM's speed drifts from second to second.
            full = compute = float("inf")
            for _ in range(args.repeats):
                full = min(full, _best_of(lambda: predict_probabilities(model, images, rows, spec, device, batch_size=batch), 1))
                compute = min(compute, _best_of(compute_only, 1))
            print(f"{arch:<16} {color:<4}  evaluate {args.images / full:>9,.0f} img/s   "
                  f"model only {args.images / compute:>9,.0f} img/s   data overhead {100 * (full / compute - 1):+5.1f}%")


if __name__ == "__main__":
    main()
