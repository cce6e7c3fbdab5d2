"""Benchmark of the embedding map at CelebA test-set size: python bench/bench_map.py

Writes a 20,000-image predictions artifact with 768-dimensional float16 features (attrnet's size;
clusters that follow the labels, as real features do) into a temporary workspace, then times the
first map computation (PCA and UMAP, with umap-learn's numba compilation on first use in the
process), a second call (the cached map.npz), and the Map page's render of all 20,000 points through
Streamlit's AppTest on a run no page has opened (artifact load, map read, colour values, hover text,
the WebGL figure), and its rerun after a colour change. Target: the page renders in under 2 s after
the first computation; exits 1 if it does not.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from celeba_model.analysis.embedding_map import MAP_FILE, map_for  # noqa: E402
from celeba_model.attributes import PAPER_ATTRIBUTES  # noqa: E402
from celeba_model.evaluation.embeddings import Embeddings, save_embeddings  # noqa: E402
from celeba_model.evaluation.predictions import Predictions, save_predictions  # noqa: E402

N, PEOPLE, DIMENSIONS = 20_000, 1_000, 768
BASE_RATES = np.array([1289, 3109, 5422, 2660, 3587, 636, 7715, 840, 9987, 15114]) / 19_962
TARGET_S = 2.0


def synthetic_run(folder: Path, seed: int = 0, images: Path | None = None) -> Predictions:
    """A run with labels, probabilities and features whose directions follow the labels, plus noise; with
    ``images``, a folder of small JPEG files the run's paths point at (so the Map page shows faces on hover)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((N, len(BASE_RATES))) < BASE_RATES).astype(np.uint8)
    probabilities = np.where(labels == 1, rng.beta(6, 2, labels.shape), rng.beta(2, 6, labels.shape)).astype(np.float32)
    files = np.array([f"{i + 1:06d}.jpg" for i in range(N)])
    paths = files
    if images is not None:
        from PIL import Image

        images.mkdir(parents=True)
        colours = np.random.default_rng(seed + 1).integers(0, 256, (N, 3))  # not from rng: the features stay the same
        for name, colour in zip(files, colours):
            Image.new("RGB", (178, 218), tuple(int(v) for v in colour)).save(images / name)
        paths = np.array([str(images / name) for name in files])
    checkpoint = {"arch": "synthetic", "path": "none.safetensors", "weights_sha256": "0" * 64}
    meta = {"attributes": list(PAPER_ATTRIBUTES), "split": "test", "checkpoint": checkpoint}
    run = Predictions(probabilities, labels, files, paths, rng.integers(0, PEOPLE, N), meta=meta, folder=folder)
    save_predictions(folder, run)
    directions = rng.normal(size=(len(BASE_RATES), DIMENSIONS))
    features = np.maximum(labels @ directions * 2 + rng.normal(size=(N, DIMENSIONS)), 0)
    save_embeddings(folder, Embeddings(features.astype(np.float16), files, {"layer": "classifier",
                                                                           "checkpoint": checkpoint}))
    return run


def time_map_page(at, run: str, chart: str, title: str, colour: str) -> float | None:  # noqa: ANN001 - an AppTest
    """Seconds to render the Map page on a run no page has opened (its artifact, map and figure are all
    made in that rerun), printed with a rerun's after a colour change; None if the chart is missing."""
    start = time.perf_counter()
    at.sidebar.selectbox(key="run_choice").set_value(run).run()
    seconds = time.perf_counter() - start
    if at.exception or not at.get(chart):
        print(at.exception or f"no {chart} on the page")
        return None
    print(f"{title}, {N:,} points on a run not opened before: {seconds:.2f} s (target < {TARGET_S:.0f} s)")
    start = time.perf_counter()
    at.selectbox(key="map_color").set_value(colour).run()
    print(f"{title}, rerun coloured by {colour}: {time.perf_counter() - start:.2f} s")
    return seconds


def main() -> int:
    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        os.environ["CELEBA_MODEL_CACHE"] = str(workspace / ".cache")  # thumbnails go here, and go with it
        (workspace / "checkpoints").mkdir()
        run = synthetic_run(workspace / "runs" / "synthetic" / "test")
        synthetic_run(workspace / "runs" / "synthetic-copy" / "test")
        synthetic_run(workspace / "runs" / "synthetic-images" / "test", images=workspace / "images")

        start = time.perf_counter()
        drawn = map_for(run)
        first = time.perf_counter() - start
        print(f"First map of {N:,} x {DIMENSIONS} features (PCA, UMAP, numba compilation): {first:.1f} s "
              f"(UMAP itself {drawn.meta['seconds']:.1f} s)")
        start = time.perf_counter()
        map_for(run)
        print(f"Second call (map.npz reused): {time.perf_counter() - start:.3f} s")
        # The same features in the second run: its map is that one (the key matches), so no page draws one.
        for copy in ("synthetic-copy", "synthetic-images"):
            shutil.copyfile(run.folder / MAP_FILE, workspace / "runs" / copy / "test" / MAP_FILE)

        os.environ["CELEBA_WORKSPACE"] = str(workspace)
        at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=300).run()
        at.switch_page("views/map.py").run()
        page = time_map_page(at, "synthetic-copy/test", "plotly_chart", "Map page", "error")
        # The same with the images on this machine: the chart with faces on hover, while the run's
        # thumbnails are written in a background thread.
        hover_page = time_map_page(at, "synthetic-images/test", "component_instance",
                                   "Map page with faces on hover", "label")
        if page is None or hover_page is None:
            return 1
        thumbs = Path(os.environ.get("CELEBA_MODEL_CACHE", "")) / "dashboard" / "hover_scatter" / "thumbs"
        deadline = time.time() + 600
        start = time.perf_counter()
        while time.time() < deadline and sum(1 for _ in thumbs.rglob("*.jpg")) < N:
            time.sleep(0.5)
        print(f"All {N:,} hover thumbnails written {time.perf_counter() - start + hover_page:.0f} s after the page opened")
    return 0 if page < TARGET_S and hover_page < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
