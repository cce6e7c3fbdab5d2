"""The Map page through Streamlit's AppTest: a generated run embedded from the page's button, colour
choices, a selection opening the gallery, and the shipped run's map without its images."""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest

import celeba_model.analysis.embedding_map as embedding_map
from celeba_model.attributes import PAPER_ATTRIBUTES
from celeba_model.data.index import load_index
from celeba_model.data.transforms import PreprocessConfig
from celeba_model.evaluation.embeddings import EMBEDDINGS_FILE
from celeba_model.evaluation.evaluate import EvalConfig, evaluate_checkpoint
from celeba_model.evaluation.predictions import load_predictions
from celeba_model.models.checkpoint import save_checkpoint
from celeba_model.models.registry import create_model, model_spec
from celeba_model.photo.embeddings import embed_run
from celeba_model.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboard" / "app.py"
TIMEOUT = 120


@pytest.fixture(scope="module")
def workspace(demo_root, tmp_path_factory) -> Path:
    """A workspace with the shipped real-data models and runs (maps included, images not) and one run of
    our own on the demo: an untrained cnn4 over the test split, without embeddings yet."""
    root = tmp_path_factory.mktemp("map-workspace")
    shutil.copytree(REPO / "checkpoints" / "celeba", root / "checkpoints" / "celeba")
    torch.manual_seed(0)
    spec = model_spec("cnn4", 3, len(PAPER_ATTRIBUTES), 32)
    meta = {"model": spec.to_dict(), "attributes": list(PAPER_ATTRIBUTES),
            "preprocess": PreprocessConfig(image_size=32, color="rgb").to_dict()}
    checkpoint = root / "runs" / "mine" / "best.safetensors"
    checkpoint.parent.mkdir(parents=True)
    save_checkpoint(checkpoint, create_model(spec).eval(), meta)
    evaluate_checkpoint(checkpoint, load_index([demo_root]), root / "runs" / "mine" / "test",
                        EvalConfig(split="test", cache_dir=str(root / ".cache"), progress=False))
    return root


@pytest.fixture
def app(workspace, monkeypatch):
    monkeypatch.setenv("CELEBA_WORKSPACE", str(workspace))
    monkeypatch.delenv("CELEBA_ROOT", raising=False)
    # UMAP itself is tested in test_embedding_map.py; here a quick stand-in keeps the page tests fast.
    monkeypatch.setattr(embedding_map, "compute_map", lambda features, params: features[:, :2].astype(np.float32))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    return at.switch_page("views/map.py").run()


def _chart(at: AppTest):
    """The map: Streamlit's Plotly chart, or the hover chart (a custom component) where the images are here."""
    charts = at.get("plotly_chart") or [e for e in at.get("component_instance")
                                        if e.proto.component_name.endswith("hover_scatter")]
    assert charts, "no map on the page"
    return charts[0]


def _figure(at: AppTest) -> dict:
    chart = _chart(at)
    if chart.type == "plotly_chart":
        return json.loads(chart.proto.spec)
    return json.loads(chart.proto.json_args)["figure"]


def _traces(at: AppTest) -> list[dict]:
    return _figure(at)["data"]


def _points(trace: dict) -> int:
    """How many points a trace holds (plotly sends numpy arrays as typed arrays: dtype and base64 bytes)."""
    x = trace["x"]
    if isinstance(x, dict):
        return len(base64.b64decode(x["bdata"])) // np.dtype(x["dtype"]).itemsize
    return len(x)


def _select(at: AppTest, rows: list[int]) -> AppTest:
    """What the browser sends after a click, box or lasso on the chart: the selected points (AppTest has no
    plotly interaction, so the widget state is handed to the next run directly)."""
    states = at._tree.get_widget_states()
    points = [{"curve_number": 0, "point_index": i, "point_number": i, "customdata": r} for i, r in enumerate(rows)]
    chart = _chart(at)
    if chart.type == "plotly_chart":
        value = {"selection": {"points": points, "point_indices": list(range(len(rows))), "box": [], "lasso": []}}
        states.widgets.append(WidgetState(id=chart.proto.id, string_value=json.dumps(value)))
    else:  # what the hover chart's page sends (components/hover_scatter/index.html)
        states.widgets.append(WidgetState(id=chart.proto.id, json_value=json.dumps({"selection": {"points": points}})))
    return at._run(states)


def test_a_run_without_embeddings_offers_to_compute_them(app, workspace):
    folder = workspace / "runs" / "mine" / "test"
    app.sidebar.selectbox(key="run_choice").set_value("mine/test").run()
    assert not app.exception
    assert any("no embeddings yet" in i.value for i in app.info) and not app.get("plotly_chart")
    assert not app.get("component_instance")
    app.button(key="map_embed").click().run()
    assert not app.exception
    assert (folder / EMBEDDINGS_FILE).is_file() and (folder / embedding_map.MAP_FILE).is_file()
    assert all(t["type"] == "scattergl" for t in _traces(app))


def test_colour_choices_and_a_selection_opening_the_gallery(app, workspace):
    embed_run(workspace / "runs" / "mine" / "test", cache_dir=workspace / ".cache")  # done by the test above
    app.sidebar.selectbox(key="run_choice").set_value("mine/test").run()
    assert _chart(app).type != "plotly_chart"  # the images are here: the chart with faces on hover
    traces = _traces(app)
    assert [t["name"].split(" (")[0] for t in traces] == ["not Male", "Male"]
    assert sum(_points(t) for t in traces) == len(load_predictions(workspace / "runs" / "mine" / "test"))
    app.selectbox(key="map_color").set_value("error").run()
    app.selectbox(key="map_attribute").set_value("Smiling").run()
    assert {t["name"].split(" (")[0] for t in _traces(app)} <= {"TP", "FP", "FN", "TN"}
    assert "Smiling: label" in _traces(app)[0]["text"][0]  # the hover text names the chosen attribute
    app.selectbox(key="map_color").set_value("probability").run()
    assert len(_traces(app)) == 1 and "colorbar" in _traces(app)[0]["marker"]
    app.selectbox(key="map_color").set_value("group").run()
    app.multiselect(key="map_group_by").set_value(["Male", "Wearing_Hat"]).run()
    assert {t["name"].split(" (")[0] for t in _traces(app)} <= {"not Male, not Wearing_Hat", "not Male, Wearing_Hat",
                                                                 "Male, not Wearing_Hat", "Male, Wearing_Hat"}
    app.selectbox(key="map_color").set_value("person").run()
    assert not app.exception

    # A lasso around 30 points: a gallery of their images, 24 a page, with labels and predictions.
    gallery = _select(app, list(range(30)))
    assert not gallery.exception
    assert any(s.value == "30 selected images" for s in gallery.subheader)
    assert len(gallery.get("image")) == 24 and gallery.number_input[0].label == "Page (of 2)"
    assert any("label **" in m.value and "predicted **" in m.value for m in gallery.markdown)
    # One click: that image's face, with every attribute's label and prediction.
    one = _select(gallery, [4])
    assert any(s.value.startswith("`") for s in one.subheader) and len(one.get("image")) == 1
    assert one.dataframe[0].value["attribute"].tolist() == list(PAPER_ATTRIBUTES)


def test_the_shipped_run_shows_its_map_without_images(app):
    app.sidebar.selectbox(key="run_choice").set_value("celeba/attrnet/test (shipped)").run()
    # No image here: Streamlit's own chart (points, tooltips and selections), not the hover-face one.
    assert not app.exception and app.get("plotly_chart") and not app.get("component_instance")
    assert sum(_points(t) for t in _traces(app)) == 660
    gallery = _select(app, [0, 1, 2])
    assert any(s.value == "3 selected images" for s in gallery.subheader)
    assert any("not on this machine" in w.value for w in gallery.warning)
    # The photo run ships its map only (its features are large): the page shows it all the same.
    app.sidebar.selectbox(key="run_choice").set_value("celeba/attrnet/wild_val (shipped)").run()
    assert not app.exception and sum(_points(t) for t in _traces(app)) == 5763


def test_hover_faces_are_written_for_every_image_and_served_beside_the_chart(app, workspace):
    folder = workspace / "runs" / "mine" / "test"
    embed_run(folder, cache_dir=workspace / ".cache")
    app.sidebar.selectbox(key="run_choice").set_value("mine/test").run()
    args = json.loads(_chart(app).proto.json_args)
    predictions = load_predictions(folder)
    # Every point carries its run row, which names its face's file.
    rows = np.concatenate([_decoded(t["customdata"]) for t in args["figure"]["data"]])
    assert sorted(rows.tolist()) == list(range(len(predictions)))

    from dashboard.hover_scatter import component_folder

    component = component_folder(Workspace(workspace).cache_dir)  # the dashboard's cache rule
    assert (component / "index.html").is_file() and (component / "plotly.min.js").stat().st_size > 1_000_000
    thumbs = component / args["thumbs"]
    deadline = time.time() + 60  # written in a background thread
    while len(list(thumbs.glob("*.jpg"))) < len(predictions) and time.time() < deadline:
        time.sleep(0.2)
    assert sorted(int(p.stem) for p in thumbs.glob("*.jpg")) == list(range(len(predictions)))
    with Image.open(thumbs / "0.jpg") as face:
        assert max(face.size) <= 128 and face.mode == "RGB"
    # A rerun sends the same figure key: the browser keeps the drawn chart (zoom, selection).
    again = json.loads(_chart(app.run()).proto.json_args)
    assert again["figure_key"] == args["figure_key"] and again["thumbs"] == args["thumbs"]


def _decoded(values) -> np.ndarray:
    """A Plotly array: a list, or a typed array (dtype and base64 bytes)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
    return np.asarray(values)
