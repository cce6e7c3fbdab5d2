"""Dashboard latency in a real browser: cold start, page switches, a slider move.

    python bench/bench_dashboard.py [--warm]

Copies the shipped checkpoints into a fresh temporary workspace (as a new clone has: no demo data,
no runs), starts `streamlit run dashboard/app.py` there and drives Debian's /usr/bin/chromium with
Playwright. Prints the time from starting the server to the first rendered page with numbers (the
demo is generated and evaluated in the background meanwhile, on a fresh workspace; --warm prepares
it first), then
the time of each page switch and of a threshold-slider move until the metrics show the new value.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # dashboard.server, run as `python bench/bench_dashboard.py`
    sys.path.insert(0, str(REPO))

from dashboard.server import chromium, dashboard_server  # noqa: E402

HEADINGS = {"Overview": "Overview", "Thresholds": "Thresholds", "Ablations": "Ablations",
            "Misclassified": "Misclassified examples", "Upload": "Upload an image"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm", action="store_true", help="prepare the demo before starting the clock")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder)
        shutil.copytree(REPO / "checkpoints", workspace / "checkpoints")
        if args.warm:
            from celeba_model.catalogue import Catalogue
            from celeba_model.workspace import Workspace

            Catalogue(Workspace(workspace)).ensure_demo()
        server_log = open(workspace / "server.log", "w")
        started = time.perf_counter()
        try:
            with dashboard_server(workspace, server_log, env={"CELEBA_DASHBOARD_TIMING": "1"}) as url, \
                    chromium() as browser:
                page = browser.new_page(viewport={"width": 1500, "height": 1100})
                page.set_default_timeout(300_000)
                page.goto(url)
                page.get_by_text("Macro precision").first.wait_for()
                print(f"{'warm' if args.warm else 'cold'} start to the first page with numbers: "
                      f"{time.perf_counter() - started:.1f} s")
                for title in ("Thresholds", "Ablations", "Misclassified", "Upload", "Overview", "Thresholds"):
                    t0 = time.perf_counter()
                    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
                    page.get_by_role("heading", name=HEADINGS[title], exact=True).wait_for()
                    heading = time.perf_counter() - t0
                    # The new page's script has started; done when Streamlit says it is no longer running.
                    page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for()
                    print(f"switch to {title:<14} {time.perf_counter() - t0:.2f} s (title shown after {heading:.2f} s)")
                metric = page.get_by_test_id("stMetric").filter(has_text="Macro recall").get_by_test_id("stMetricValue")
                before = metric.inner_text()
                slider = page.get_by_test_id("stSlider").filter(has_text="Set every attribute to").get_by_role("slider")
                slider.focus()
                t0 = time.perf_counter()
                page.keyboard.press("Home")  # to 0: the metrics must change
                page.wait_for_function(
                    "([before]) => { const el = [...document.querySelectorAll('[data-testid=stMetric]')]"
                    ".find(e => e.innerText.includes('Macro recall')); return el && !el.innerText.includes(before); }",
                    arg=[before])
                print(f"slider move to new metrics  {time.perf_counter() - t0:.2f} s (target < 1 s)")
                server_log.flush()
                runs = [line.split()[1:] for line in (workspace / "server.log").read_text().splitlines()
                        if line.startswith("page-timing")]
                print("server-side page script runs (s): " + ", ".join(f"{name} {float(t):.2f}" for name, t in runs))
        finally:
            server_log.close()


if __name__ == "__main__":
    main()
