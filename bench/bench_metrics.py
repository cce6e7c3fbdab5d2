"""Benchmark of the metric functions at CelebA test-set size: python bench/bench_metrics.py

Builds 20,000 x 10 random predictions (CelebA-like base rates, scores correlated with labels),
then times what the dashboard and the CLI do: recomputing every attribute's metrics at new
thresholds through a ThresholdSweep (the slider path; target under 5 ms), a naive full pass for
comparison, a 1000-replicate bootstrap over 1,000 people, and threshold tuning. Exits 1 if the
slider path misses its target.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from celeba_model.metrics.bootstrap import bootstrap_ci  # noqa: E402
from celeba_model.metrics.counts import attribute_metrics, summarize  # noqa: E402
from celeba_model.metrics.sweep import ThresholdSweep, tune_thresholds  # noqa: E402

N, A, PEOPLE = 20_000, 10, 1_000
# Test-set rates of the 10 paper attributes (Eyeglasses ... Young), from the paper's table.
BASE_RATES = np.array([1289, 3109, 5422, 2660, 3587, 636, 7715, 840, 9987, 15114]) / 19_962
TARGET_MS = 5.0


def timed(fn, repeat: int) -> np.ndarray:
    """Wall times in ms of ``repeat`` calls of fn()."""
    out = np.empty(repeat)
    for i in range(repeat):
        start = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - start) * 1e3
    return out


def main() -> int:
    rng = np.random.default_rng(0)
    labels = (rng.random((N, A)) < BASE_RATES).astype(np.uint8)
    # Logistic scores whose logit is shifted by the label: AUC around 0.9.
    logits = rng.normal(size=(N, A)) + np.where(labels == 1, 1.5, -1.5)
    scores = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    groups = rng.integers(0, PEOPLE, size=N)
    print(f"data: {N:,} images x {A} attributes, {PEOPLE:,} people, numpy {np.__version__}")

    def show(name: str, text: str) -> None:
        print(f"{name:<34s}{text}")

    build = timed(lambda: ThresholdSweep(labels, scores), 5)
    sweep = ThresholdSweep(labels, scores)
    show("ThresholdSweep build (once):", f"median {np.median(build):7.2f} ms")

    reps = 2000
    new_thresholds = rng.random((reps, A))
    it = iter(new_thresholds)
    metrics_only = timed(lambda: sweep.metrics_at(next(it)), reps)
    it = iter(new_thresholds)
    slider = timed(lambda: summarize(sweep.metrics_at(next(it))), reps)
    it = iter(new_thresholds[:50])
    naive = timed(lambda: summarize(attribute_metrics(labels, scores, next(it))), 50)
    show("metrics_at, new thresholds:", f"median {np.median(metrics_only):7.3f} ms, p95 {np.percentile(metrics_only, 95):.3f} ms")
    show(
        "  + summarize (slider path):",
        f"median {np.median(slider):7.3f} ms, p95 {np.percentile(slider, 95):.3f} ms (target < {TARGET_MS:g} ms)",
    )
    show(
        "naive attribute_metrics + summ.:",
        f"median {np.median(naive):7.2f} ms ({np.median(naive) / np.median(slider):.0f}x the slider path)",
    )

    boot = timed(lambda: bootstrap_ci(labels, scores, 0.5, groups=groups, n_boot=1000, seed=0), 3)
    boot_images = timed(lambda: bootstrap_ci(labels, scores, 0.5, n_boot=1000, seed=0), 3)
    show("bootstrap_ci, 1000 replicates:", f"median {np.median(boot):7.1f} ms by {PEOPLE:,} people")
    show("", f"median {np.median(boot_images):7.1f} ms by {N:,} images")

    for objective, target in (("f1", None), ("precision", 0.9), ("recall", 0.9)):
        tune = timed(lambda: tune_thresholds(labels, scores, objective, target), 5)
        reuse = timed(lambda: tune_thresholds(labels, scores, objective, target, sweep=sweep), 5)
        show(f"tune_thresholds {objective}:", f"median {np.median(tune):7.1f} ms ({np.median(reuse):.1f} ms reusing the sweep)")

    p95 = float(np.percentile(slider, 95))
    if p95 >= TARGET_MS:
        print(f"FAIL: slider path p95 {p95:.3f} ms >= {TARGET_MS:g} ms")
        return 1
    print(f"OK: slider path p95 {p95:.3f} ms < {TARGET_MS:g} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
