"""The Training page through Streamlit's AppTest: curves of shipped checkpoints and of a finished run
overlaid, a run started from the page and found again after a reload, and the Stop button."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from celeba_model.catalogue import Catalogue
from celeba_model.training import TrainConfig, train
from celeba_model.training.background import (
    FINISHED,
    RUNNING,
    STOPPED,
    start_training,
    stop_training,
    training_runs,
    training_status,
)
from celeba_model.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboard" / "app.py"
TIMEOUT = 180
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def workspace(dashboard_workspace) -> Workspace:
    """The dashboard tests' workspace with the demo data the runs train on (normally prepared by the
    dashboard tests' first start already); whatever still trains in it when this module ends is stopped."""
    workspace = Workspace(dashboard_workspace)
    Catalogue(workspace).ensure_demo()
    yield workspace
    for folder in training_runs(workspace.runs_dir):
        if training_status(folder).stoppable:
            stop_training(folder, wait_s=30)


@pytest.fixture
def page(workspace, monkeypatch):
    """Opens the Training page in a new session, as a reload or another browser does."""
    monkeypatch.setenv("CELEBA_WORKSPACE", str(workspace.root))
    monkeypatch.delenv("CELEBA_ROOT", raising=False)
    monkeypatch.delenv("CELEBA_DASHBOARD_READ_ONLY", raising=False)

    def open_page() -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        at.switch_page("views/training.py").run()
        assert not at.exception, at.exception
        return at

    return open_page


def _config(workspace: Workspace, name: str, epochs: int) -> TrainConfig:
    # The demo checkpoints' input (64x64 gray): the image cache their evaluation built is reused.
    return TrainConfig(data_roots=[str(workspace.demo_data)], out=str(workspace.runs_dir / name), epochs=epochs,
                       max_train_images=200, cache_dir=str(workspace.cache_dir), progress=False)


def _rows(at: AppTest) -> list[str]:
    """Each run's status line: the progress bars' text of running runs and the others' lines."""
    return [p.proto.text for p in at.get("progress")] + [m.value for m in at.markdown] + [e.value for e in at.error]


def _row(at: AppTest, name: str) -> str:
    return next(r for r in _rows(at) if r.startswith(f"**{name}**"))


def _wait(out: Path, until, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while not until(status := training_status(out)):
        assert time.monotonic() < deadline, f"timed out; last status: {status}"
        time.sleep(0.1)
    return status


def test_curves_of_shipped_checkpoints_and_a_finished_run_overlaid(page, workspace):
    train(_config(workspace, "page-finished", epochs=2))
    at = page()
    assert "**page-finished**: :green[finished: 2 epochs]" in _rows(at)
    chosen = ["page-finished", "celeba/attrnet (shipped)", "demo/paper_rgb (shipped)"]
    at.multiselect(key="training_sources").set_value(chosen).run()
    at.selectbox(key="training_attribute").set_value("Smiling").run()
    assert not at.exception
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert {t["name"] for t in traces} == set(chosen)
    assert len([t for t in traces if t["name"] == "page-finished"]) == 6  # two losses, F1s, lr, speed
    assert {t["name"] for t in traces if t.get("yaxis") == "y3"} == set(chosen)  # Smiling's F1 of each
    summary = at.dataframe[0].value.set_index("run")
    assert summary.loc["page-finished", "epochs"] == 2 and summary.loc["celeba/attrnet (shipped)", "epochs"] == 16
    assert summary.loc["demo/paper_rgb (shipped)", "best val macro-F1"] > 0.8


def test_a_run_started_from_the_page_is_found_again_after_a_reload(page, workspace):
    at = page()
    at.text_input(key="train_name").set_value("page-live")
    at.number_input(key="train_epochs").set_value(2)
    at.number_input(key="train_max_images").set_value(200)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception and not at.error
    assert "Started **page-live**" in at.success[0].value
    out = workspace.runs_dir / "page-live"
    assert _row(at, "page-live").startswith("**page-live**: running")
    assert at.button(key="training_stop::page-live")

    reloaded = page()  # a new session: the state comes from the run folder
    assert _row(reloaded, "page-live").startswith(("**page-live**: running", "**page-live**: :green[finished"))
    _wait(out, lambda s: s.state != RUNNING)
    reloaded = page()
    assert _row(reloaded, "page-live") == "**page-live**: :green[finished: 2 epochs]"
    assert "page-live" in reloaded.multiselect(key="training_sources").value  # the latest runs' curves show

    # The same name again is refused with training's own reason, and nothing starts.
    reloaded.text_input(key="train_name").set_value("page-live")
    next(b for b in reloaded.button if b.label == "Start training").click().run()
    assert "already holds a training run" in reloaded.error[0].value
    assert training_status(out).state == FINISHED


def test_the_stop_button_stops_a_running_run_and_offers_resume(page, workspace):
    out = workspace.runs_dir / "page-stop"
    start_training(_config(workspace, "page-stop", epochs=300), env=ENV)
    _wait(out, lambda s: s.epoch >= 1 or s.state != RUNNING)
    at = page()
    assert "left" in _row(at, "page-stop")  # epoch k of n, with an ETA
    at.button(key="training_stop::page-stop").click().run()
    status = training_status(out)
    assert status.state == STOPPED and 1 <= status.epoch < 300, status
    assert _row(at, "page-stop").startswith("**page-stop**: :orange[stopped after epoch")
    at.button(key="training_resume::page-stop").click().run()
    assert at.success[0].value == "Resumed page-stop." and training_status(out).state == RUNNING
    stop_training(out, wait_s=30)


def test_read_only_shows_curves_but_starts_and_stops_nothing(page, monkeypatch):
    monkeypatch.setenv("CELEBA_DASHBOARD_READ_ONLY", "1")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page("views/training.py").run()
    assert not at.exception and at.get("plotly_chart")
    labels = [b.label for b in at.button]
    assert "Start training" not in labels and "Stop" not in labels and "Resume" not in labels
