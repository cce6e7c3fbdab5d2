"""Screenshots of the dashboard's pages for the README: docs/images/<page>.png.

    .venv/bin/python scripts/screenshots.py                      # this checkout as the workspace
    .venv/bin/python scripts/screenshots.py --workspace DIR      # another workspace
    .venv/bin/python scripts/screenshots.py --image face.jpg     # the photo the Upload page gets

It starts `streamlit run dashboard/app.py` on a free localhost port against the workspace, waits for
the server, and drives headless Chromium (Debian's /usr/bin/chromium through playwright; nothing is
downloaded) through Overview, Thresholds, Ablations, Misclassified, Slices, Labels, Map, Training
and Upload. Each page is shot
once its real content is drawn (its numbers, charts or images, and the app idle), not on the first
blank render. The server is stopped by its own process id at the end.

The demo dataset and the demo checkpoints' evaluations are prepared first (about a minute in a fresh
workspace, where the dashboard would otherwise prepare them in the background while the shots are
taken). The Misclassified page is shot on the demo run `demo/paper/test`,
whose images are in the workspace, and so is the Labels page (no CelebA image lands in docs/); Slices
on the shipped real photos' run `celeba/attrnet/wild_val` (charts only); the Upload page gets the
first demo image unless --image is given. Map shows the shipped test run's map (points only), Training
the shipped checkpoints' curves.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # dashboard.server, run as `python scripts/screenshots.py`
    sys.path.insert(0, str(REPO))

from dashboard.server import chromium, dashboard_server  # noqa: E402

HEADINGS = {"Overview": "Overview", "Thresholds": "Thresholds", "Ablations": "Ablations",
            "Misclassified": "Misclassified examples", "Slices": "Slices", "Labels": "Labels", "Map": "Map", "Training": "Training",
            "Upload": "Upload an image"}
MISCLASSIFIED_RUN = "demo/paper/test"
SLICES_RUN = "celeba/attrnet/wild_val (shipped)"


def wait_idle(page) -> None:
    """Until the app script has finished and nothing is left loading."""
    page.wait_for_function(
        "() => !!document.querySelector('[data-testid=stApp][data-test-script-state=notRunning]')"
        " && !document.querySelector('[data-testid=stSpinner], [data-testid=stSkeleton]')")
    page.wait_for_timeout(1500)  # charts and images finish drawing


def go(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=HEADINGS[title], exact=True).wait_for()


def shoot(page, out: Path, name: str) -> Path:
    page.evaluate("() => document.activeElement && document.activeElement.blur()")  # no focus ring
    page.mouse.move(page.viewport_size["width"] - 5, page.viewport_size["height"] - 5)  # no hover effects
    wait_idle(page)
    path = out / f"{name}.png"
    page.screenshot(path=str(path))
    optimise(path)
    print(f"{path}  {path.stat().st_size / 1024:.0f} KB")
    return path


def optimise(path: Path) -> None:
    """Lossless PNG recompression; a palette version instead when that is still large (over 300 KB)."""
    with Image.open(path) as image:
        image.load()
    image.save(path, optimize=True)
    if path.stat().st_size > 300 * 1024:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def overview(page, out: Path) -> None:
    page.get_by_role("heading", name="Overview", exact=True).wait_for()
    page.get_by_text("Macro precision").first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    shoot(page, out, "overview")


def thresholds(page, out: Path) -> None:
    go(page, "Thresholds")
    page.get_by_test_id("stMetric").filter(has_text="Macro recall").first.wait_for()
    page.get_by_test_id("stSlider").filter(has_text="Set every attribute to").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    shoot(page, out, "thresholds")


def ablations(page, out: Path) -> None:
    go(page, "Ablations")
    page.get_by_text("The paper's ablation table").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    shoot(page, out, "ablations")


def misclassified(page, out: Path) -> None:
    go(page, "Misclassified")
    wait_idle(page)
    run = page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Run")
    run.click()
    page.keyboard.type(MISCLASSIFIED_RUN)
    page.keyboard.press("Enter")
    page.get_by_test_id("stImage").nth(3).wait_for()
    shoot(page, out, "misclassified")


def choose_run(page, label: str) -> None:
    run = page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Run")
    run.click()
    page.keyboard.type(label)
    page.keyboard.press("Enter")
    wait_idle(page)


def slices(page, out: Path) -> None:
    go(page, "Slices")
    choose_run(page, SLICES_RUN)
    page.get_by_text("Worst cell: Blond_Hair, Male").wait_for()
    page.locator(".js-plotly-plot").nth(1).wait_for()
    shoot(page, out, "slices")
    choose_run(page, MISCLASSIFIED_RUN)


def labels(page, out: Path) -> None:
    go(page, "Labels")  # on the demo run chosen before: its images are in the workspace
    page.get_by_text("Flagged labels per attribute").wait_for()
    attribute = page.get_by_test_id("stSelectbox").filter(has_text="Attribute")
    attribute.click()
    page.keyboard.type("Smiling")
    page.keyboard.press("Enter")
    page.get_by_text("flagged labels of Smiling").wait_for()
    page.get_by_test_id("stImage").nth(3).wait_for()
    shoot(page, out, "labels")


def embedding_map(page, out: Path) -> None:
    go(page, "Map")
    choose_run(page, "celeba/attrnet/test (shipped)")
    page.locator(".js-plotly-plot").first.wait_for()
    shoot(page, out, "map")


def training(page, out: Path) -> None:
    go(page, "Training")
    page.locator(".js-plotly-plot").first.wait_for()
    shoot(page, out, "training")


def upload(page, out: Path, image: Path) -> None:
    go(page, "Upload")
    wait_idle(page)
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / f"face{image.suffix.lower()}"  # the page shows the file name
        shutil.copyfile(image, photo)
        page.get_by_test_id("stMainBlockContainer").locator("input[type=file]").set_input_files(str(photo))
        page.get_by_text("Predicted present").wait_for()
        page.locator(".js-plotly-plot").first.wait_for()
        shoot(page, out, "upload")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, default=REPO, help="workspace the dashboard opens (default: this checkout)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="folder for the PNGs (default: docs/images)")
    parser.add_argument("--image", type=Path, help="face photo for the Upload page (default: the first demo image)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for any one page (default 300)")
    args = parser.parse_args(argv)

    workspace = args.workspace.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    from celeba_model.catalogue import Catalogue
    from celeba_model.workspace import Workspace

    Catalogue(Workspace(workspace)).ensure_demo()  # no sidebar progress in the shots, demo runs to shoot
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "streamlit.log"
        with log_path.open("wb") as log:
            try:
                with dashboard_server(workspace, log, timeout=120) as url, chromium(args.chromium) as browser:
                    print(f"streamlit on {url}, workspace {workspace}")
                    context = browser.new_context(viewport={"width": args.width, "height": args.height})
                    page = context.new_page()
                    page.set_default_timeout(args.timeout * 1000)
                    page.goto(url)
                    overview(page, args.out)
                    demo_images = sorted((workspace / "data" / "demo" / "img_align_celeba").glob("*.jpg"))
                    image = args.image or (demo_images[0] if demo_images else None)
                    if image is None:
                        raise SystemExit(f"no demo image in {workspace}/data/demo; give the Upload page one with --image")
                    thresholds(page, args.out)
                    ablations(page, args.out)
                    misclassified(page, args.out)
                    slices(page, args.out)
                    labels(page, args.out)
                    embedding_map(page, args.out)
                    training(page, args.out)
                    upload(page, args.out, image)
            except Exception:
                print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
                raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
