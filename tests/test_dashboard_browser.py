"""End to end: `streamlit run` on a local port, driven in headless Chromium through every page.

Screenshots of each page go to artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from celeba_model.analysis.embedding_map import MAP_FORMAT, EmbeddingMap, MapParams, save_map
from celeba_model.catalogue import Catalogue
from celeba_model.evaluation.embeddings import files_digest
from celeba_model.evaluation.predictions import load_predictions
from celeba_model.workspace import Workspace
from dashboard.server import CHROMIUM, chromium, dashboard_server

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "artifacts" / "screenshots"

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is not installed (Debian package 'chromium'; .ci/run installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(dashboard_workspace):
    Catalogue(Workspace(dashboard_workspace)).ensure_demo()  # normally done by the AppTest first start already
    with dashboard_server(dashboard_workspace) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    with chromium(CHROMIUM) as browser:
        yield browser


def _open_tab(browser, server):
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    tab = context.new_page()
    tab.set_default_timeout(90_000)  # a fresh server's first page load is slow
    tab.goto(server)
    return tab


@pytest.fixture(scope="module")
def page(browser, server):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return _open_tab(browser, server)


HEADINGS = {"Misclassified": "Misclassified examples", "Upload": "Upload an image"}


def _go(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=HEADINGS.get(title, title), exact=True).wait_for()


def _choose_run(page, label: str) -> None:
    """Pick a run in the sidebar's selector by typing its label, once the page has finished running: a
    choice made while the script still draws the previous run can be lost when the selector is redrawn."""
    page.wait_for_timeout(300)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")  # Streamlit's "Running..." indicator
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Run").click()
    page.keyboard.type(label)
    page.keyboard.press("Enter")


def _shot(page, name: str) -> None:
    page.wait_for_timeout(800)  # let charts finish drawing
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_overview_renders_real_numbers(page):
    page.get_by_role("heading", name="Overview", exact=True).wait_for()
    page.get_by_text("Macro precision").first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    assert page.get_by_text("The paper's table").is_visible()
    _shot(page, "1-overview")


def test_thresholds_page_reacts_to_the_global_slider(page):
    _go(page, "Thresholds")
    metric = page.get_by_test_id("stMetric").filter(has_text="Macro recall").get_by_test_id("stMetricValue")
    before = metric.inner_text()
    slider = page.get_by_test_id("stSlider").filter(has_text="Set every attribute to").get_by_role("slider")
    slider.focus()
    for _ in range(30):
        page.keyboard.press("ArrowLeft")
    page.wait_for_function(
        "([before]) => { const el = [...document.querySelectorAll('[data-testid=stMetric]')]"
        ".find(e => e.innerText.includes('Macro recall')); "
        "return el && !el.innerText.includes(before); }", arg=[before], timeout=30_000)
    assert float(metric.inner_text()) > float(before)
    _shot(page, "2-thresholds")


def _global_threshold(tab) -> float:
    slider = tab.get_by_test_id("stSlider").filter(has_text="Set every attribute to")
    return float(slider.get_by_test_id("stSliderThumbValue").inner_text())


def test_a_second_browser_session_does_not_see_the_first_ones_thresholds(page, browser, server):
    assert _global_threshold(page) < 0.5  # moved by the previous test in this session
    other = _open_tab(browser, server)
    _go(other, "Thresholds")
    assert _global_threshold(other) == pytest.approx(0.5)
    assert _global_threshold(page) < 0.5
    other.context.close()


def test_ablations_page_shows_the_comparison(page):
    _go(page, "Ablations")
    page.get_by_text("The paper's ablation table").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    _shot(page, "3-ablations")


def test_misclassified_page_shows_face_crops(page):
    # This browser session moved the global threshold earlier; errors are counted at 0.5 here.
    _go(page, "Thresholds")
    page.get_by_role("button", name="Reset to 0.5").click()
    page.wait_for_function("() => !!document.querySelector('[data-testid=stApp][data-test-script-state=notRunning]')")
    _go(page, "Misclassified")
    # The shipped real-data run opens by default; its images are not in this workspace.
    page.get_by_text("image(s) are not on this machine").wait_for()
    _choose_run(page, "demo/paper/test")
    page.get_by_test_id("stImage").first.wait_for()
    assert page.get_by_test_id("stImage").count() > 3
    _shot(page, "4-misclassified")


def test_upload_of_an_image_file_gives_a_prediction(page, dashboard_workspace, tmp_path):
    _go(page, "Upload")
    image = next((dashboard_workspace / "data" / "demo" / "img_align_celeba").glob("*.jpg"))
    upload = tmp_path / "someone.jpg"
    shutil.copyfile(image, upload)
    page.get_by_test_id("stMainBlockContainer").locator("input[type=file]").set_input_files(str(upload))
    page.get_by_text("Predicted present").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    _shot(page, "5-upload")


def test_a_file_over_the_upload_limit_is_refused(page, tmp_path):
    _go(page, "Upload")
    big = tmp_path / "huge.jpg"
    big.write_bytes(b"\xff" * (11 * 1024 * 1024))  # over the 10 MB limit of .streamlit/config.toml
    page.get_by_test_id("stMainBlockContainer").locator("input[type=file]").set_input_files(str(big))
    page.get_by_text("or smaller").first.wait_for()  # Streamlit: "File must be 10.0MB or smaller."
    page.screenshot(path=str(SCREENSHOTS / "6-upload-too-large.png"))


def test_slices_page_shows_the_blond_men_of_the_shipped_run(page):
    _go(page, "Slices")
    _choose_run(page, "celeba/attrnet/test")
    page.get_by_text("660 test images of 22 people").wait_for()
    # The default slice, Blond_Hair by Male: its worst cell is the blond men the model misses.
    page.get_by_text("Worst cell: Blond_Hair, Male").wait_for()
    page.get_by_text("Cells: Blond_Hair x group").wait_for()
    page.get_by_text("Strongest pairs:").wait_for()
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=60_000)
    _shot(page, "7-slices")


def test_labels_page_lists_suspects_to_decide(page):
    _go(page, "Labels")
    page.get_by_text("Flagged labels per attribute").wait_for()
    attribute = page.get_by_test_id("stSelectbox").filter(has_text="Attribute")
    attribute.click()
    page.keyboard.type("Bangs")
    page.keyboard.press("Enter")
    page.get_by_text("flagged labels of Bangs").wait_for()
    assert page.get_by_role("button", name="Wrong").count() > 3
    _shot(page, "8-labels")


def test_training_page_shows_the_curves_of_the_shipped_model(page):
    _go(page, "Training")
    page.get_by_text("Runs and shipped checkpoints").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()  # the default model's history, from its checkpoint
    page.get_by_text("Validation macro-F1").first.wait_for()
    _shot(page, "9-training")


def test_map_page_draws_the_shipped_map_and_a_box_opens_a_gallery(page):
    _go(page, "Map")
    _choose_run(page, "celeba/attrnet/test")
    page.get_by_text("660 images placed by").wait_for()  # the shipped map: no images, no UMAP needed
    chart = page.locator(".js-plotly-plot").first
    chart.locator("canvas").first.wait_for(state="attached")  # Scattergl draws with WebGL
    page.wait_for_timeout(1000)
    _lasso(page, chart.bounding_box())
    page.get_by_text("selected images").first.wait_for()
    _shot(page, "10-map")


def _lasso(page, box: dict) -> None:
    """Draw a lasso (the map's drag mode) over a chart's box through its top left, top right and bottom
    right: a triangle of points."""
    corners = [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75)]
    page.mouse.move(box["x"] + box["width"] * corners[0][0], box["y"] + box["height"] * corners[0][1])
    page.mouse.down()
    for fx, fy in corners[1:]:
        page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, steps=8)
    page.mouse.up()


def test_map_page_shows_the_face_of_the_point_under_the_pointer(page, dashboard_workspace):
    # A demo run, whose images are on this machine, with a stored map (UMAP itself is tested elsewhere).
    folder = Catalogue(Workspace(dashboard_workspace)).demo_run("paper", "test")
    predictions = load_predictions(folder)
    coordinates = np.random.default_rng(0).uniform(size=(len(predictions), 2)).astype(np.float32)
    save_map(folder, EmbeddingMap(coordinates, {"format": MAP_FORMAT, "files_sha256": files_digest(predictions.files),
                                                "params": MapParams().to_dict(), "layer": "classifier"}))
    _go(page, "Map")
    _choose_run(page, "demo/paper/test")
    page.get_by_text(f"{len(predictions):,} images placed by").wait_for()
    frame = page.frame_locator("iframe[title='hover_scatter.hover_scatter']")
    frame.locator("#chart canvas").first.wait_for(state="attached")
    box = page.locator("iframe[title='hover_scatter.hover_scatter']").bounding_box()
    face = frame.locator("#face")
    # Sweep the pointer over the points until one is under it (its face is written in the background).
    for attempt in range(60):
        fx, fy = 0.3 + 0.4 * ((attempt * 7) % 10) / 10, 0.3 + 0.4 * ((attempt * 3) % 10) / 10
        page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, steps=4)
        page.wait_for_timeout(500)
        if face.is_visible():
            break
    assert face.is_visible(), "no face appeared while hovering over the map"
    source = frame.locator("#face-img").get_attribute("src")
    assert source.startswith("thumbs/") and source.endswith(".jpg")
    assert frame.locator("#face-img").evaluate("img => img.naturalWidth") > 0  # a real image was served
    _shot(page, "10-map-hover")
    page.mouse.move(box["x"] + 2, box["y"] + 2)  # off the points: the face goes
    face.wait_for(state="hidden")

    # A lasso in this chart opens the gallery too, with the images.
    _lasso(page, box)
    page.get_by_text("selected images").first.wait_for()
    page.get_by_test_id("stImage").first.wait_for()


def test_a_fresh_clone_opens_at_once_and_prepares_the_demo_in_the_background(browser, tmp_path):
    workspace = tmp_path / "clone"
    shutil.copytree(REPO / "checkpoints", workspace / "checkpoints")
    with dashboard_server(workspace) as url:
        tab = browser.new_page(viewport={"width": 1500, "height": 1100})
        tab.set_default_timeout(90_000)
        tab.goto(url)
        tab.get_by_text("Macro precision").first.wait_for()  # the shipped run's numbers: no demo needed
        assert not Catalogue(Workspace(workspace)).demo_is_ready()
        progress = tab.get_by_test_id("stSidebar").get_by_text("Preparing the built-in demo")
        progress.wait_for()
        progress.wait_for(state="detached", timeout=400_000)  # done: the app reran with the demo's runs
        assert Catalogue(Workspace(workspace)).demo_is_ready()
        tab.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Run").first.click()
        tab.keyboard.type("demo/paper/test")  # the list is long (every shipped run): filter it
        tab.get_by_role("option", name="demo/paper/test").wait_for()
        tab.close()
