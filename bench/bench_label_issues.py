"""Benchmark of the label audit at CelebA test-set size: python bench/bench_label_issues.py

Writes a 20,000 x 10 predictions artifact (CelebA-like base rates, 2% planted label flips, 1,000
people) into a temporary workspace, then times cleanlab's ranking (find_label_issues) and the
Labels page's first render on that run through Streamlit's AppTest (a cold server: artifact load,
ranking, the suspects' grid), and a page rerun after a decision. Target: the page ranks and shows
20,000 x 10 in under 5 s; exits 1 if it does not.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from celeba_model.analysis.label_issues import find_label_issues  # noqa: E402
from celeba_model.attributes import PAPER_ATTRIBUTES  # noqa: E402
from celeba_model.evaluation.predictions import Predictions, save_predictions  # noqa: E402

N, PEOPLE = 20_000, 1_000
BASE_RATES = np.array([1289, 3109, 5422, 2660, 3587, 636, 7715, 840, 9987, 15114]) / 19_962
TARGET_S = 5.0


def synthetic_run(seed: int = 0) -> tuple[Predictions, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = (rng.random((N, len(BASE_RATES))) < BASE_RATES).astype(np.uint8)
    probabilities = np.where(truth == 1, rng.beta(6, 2, truth.shape), rng.beta(2, 6, truth.shape)).astype(np.float32)
    flips = rng.random(truth.shape) < 0.02
    labels = np.where(flips, 1 - truth, truth).astype(np.uint8)
    files = np.array([f"{i + 1:06d}.jpg" for i in range(N)])
    meta = {"attributes": list(PAPER_ATTRIBUTES), "split": "test", "checkpoint": {"arch": "synthetic"}}
    return Predictions(probabilities, labels, files, files, rng.integers(0, PEOPLE, N), meta=meta), flips


def main() -> int:
    from streamlit.testing.v1 import AppTest

    run, flips = synthetic_run()
    start = time.perf_counter()
    issues = find_label_issues(run)
    ranking = time.perf_counter() - start
    caught = (issues.flagged & flips).sum() / flips.sum()
    print(f"find_label_issues, {N:,} x {len(BASE_RATES)}: {ranking:.2f} s; flags {issues.flagged.sum():,} labels, "
          f"{caught:.0%} of the {flips.sum():,} planted flips")

    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        (workspace / "checkpoints").mkdir()
        save_predictions(workspace / "runs" / "synthetic" / "test", run)
        save_predictions(workspace / "runs" / "synthetic-copy" / "test", run)
        os.environ["CELEBA_WORKSPACE"] = str(workspace)
        at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=120).run()
        at.switch_page("views/labels.py").run()
        # Switching to a run no page has opened: its load and ranking happen in this rerun.
        start = time.perf_counter()
        at.sidebar.selectbox(key="run_choice").set_value("synthetic-copy/test").run()
        page = time.perf_counter() - start
        if at.exception:
            print(at.exception)
            return 1
        cards = sum("· person" in m.value for m in at.markdown)
        print(f"Labels page on a run not opened before (load, rank, grid of {cards} suspects): {page:.2f} s (target < {TARGET_S:.0f} s)")
        first = next(b for b in at.button if b.label == "Wrong")
        start = time.perf_counter()
        first.click().run()
        print(f"Labels page, rerun after a decision: {time.perf_counter() - start:.2f} s")
    return 0 if page < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
