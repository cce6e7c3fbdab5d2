"""Every dashboard page through Streamlit's AppTest, on the built-in demo."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from celeba_model.catalogue import Catalogue
from celeba_model.models.thresholds import stored_thresholds
from celeba_model.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboard" / "app.py"
TIMEOUT = 180


@pytest.fixture(scope="module")
def workspace_root(dashboard_workspace) -> Path:
    return dashboard_workspace


@pytest.fixture(scope="module")
def first_run(workspace_root):
    """The very first start: the Overview opens at once on the shipped runs, while the app generates the
    demo and evaluates the demo checkpoints in the background; this waits for that to end."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CELEBA_WORKSPACE", str(workspace_root))
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        ready_at_first = Catalogue(Workspace(workspace_root)).demo_is_ready()
        job = sys.modules["demo_job"].wait(workspace_root, timeout=TIMEOUT)  # the app's own module
        after = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    return SimpleNamespace(at=at, ready_at_first=ready_at_first, job=job, after=after)


@pytest.fixture
def app(first_run, workspace_root, monkeypatch):
    monkeypatch.setenv("CELEBA_WORKSPACE", str(workspace_root))
    monkeypatch.delenv("CELEBA_ROOT", raising=False)
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()


def _open(at: AppTest, page: str) -> AppTest:
    return at.switch_page(f"views/{page}.py").run()


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_first_start_shows_the_overview_at_once_and_prepares_the_demo_in_the_background(first_run, workspace_root):
    at = first_run.at
    assert not at.exception
    # The first page did not wait for the demo: it shows the shipped real-data run, the demo's progress beside it.
    assert not first_run.ready_at_first
    assert at.title[0].value == "Overview" and at.sidebar.selectbox(key="run_choice").value.endswith("(shipped)")
    assert any("Preparing the built-in demo" in c.value for c in at.sidebar.caption)
    assert first_run.job is not None and first_run.job.done and first_run.job.error is None
    assert Catalogue(Workspace(workspace_root)).demo_is_ready()
    runs = {Workspace(workspace_root).run_label(p) for p in Workspace(workspace_root).list_runs()}
    assert {"demo/paper/test", "demo/no_conv3/val", "demo/no_conv3_no_fc1/test", "demo/paper_rgb/test"} <= runs
    assert {"celeba/paper/test (shipped)", "celeba/paper_rgb/val (shipped)"} <= runs
    # Once ready, the demo runs are in the sidebar's list and the progress is gone.
    after = first_run.after
    assert not after.exception and "demo/paper/test" in after.sidebar.selectbox(key="run_choice").options
    assert not any("Preparing the built-in demo" in c.value for c in after.sidebar.caption)


def test_started_on_a_celeba_folder_it_opens_on_that_folders_runs(first_run, workspace_root, monkeypatch):
    demo = workspace_root / "data" / "demo"
    monkeypatch.setenv("CELEBA_WORKSPACE", str(workspace_root))
    monkeypatch.setenv("CELEBA_ROOT", str(demo))  # as `-- --data-root` does
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception
    workspace = Workspace(workspace_root)
    own = {workspace.run_label(r) for r in Catalogue(workspace).runs_on(demo) if r.name == "test"}
    assert "demo/paper/test" in own and at.sidebar.selectbox(key="run_choice").value in own


def test_overview_shows_metrics_table_chart_and_the_paper(app):
    assert not app.exception
    labels = [m.label for m in app.metric]
    assert {"Macro precision", "Macro recall", "F (paper's AVG.)", "Macro-F1"} <= set(labels)
    assert float(_metric(app, "Macro-F1")) > 0.3
    tables = [df.value for df in app.dataframe]
    assert any("Eyeglasses" in t.iloc[:, 0].tolist() for t in tables)
    assert any("AVG." in t.iloc[:, 0].tolist() for t in tables)  # the paper's table
    assert app.get("plotly_chart")


def test_sidebar_switches_the_run(app):
    app.sidebar.selectbox[0].set_value("demo/paper_rgb/test").run()
    assert not app.exception
    assert "paper_rgb/test" in app.markdown[0].value and "paper_rgb.safetensors" in app.markdown[0].value


def test_threshold_sliders_change_the_metrics(app):
    at = _open(app, "thresholds")
    assert not at.exception
    before = _metric(at, "Macro recall")
    slider = next(s for s in at.slider if s.label == "Set every attribute to")
    slider.set_value(0.1).run()
    after = _metric(at, "Macro recall")
    assert float(after) > float(before)
    table = at.dataframe[0].value
    assert np.allclose(table["threshold"], 0.1)
    one = next(s for s in at.slider if s.label == "Smiling")
    one.set_value(0.95).run()
    assert at.dataframe[0].value.set_index("attribute").loc["Smiling", "threshold"] == pytest.approx(0.95)


def test_tuning_on_validation_and_saving_for_a_shipped_checkpoint(app, workspace_root):
    at = _open(app, "thresholds")
    default = Catalogue(Workspace(workspace_root)).default_model()  # whose test run the dashboard opens on
    shipped_bytes = default.read_bytes()
    next(b for b in at.button if b.label == "Tune on validation").click().run()
    assert not at.exception
    assert any(f"Tuned on celeba/{default.stem}/val (shipped)" in s.value for s in at.success)
    thresholds = at.dataframe[0].value["threshold"].to_numpy()
    assert not np.allclose(thresholds, 0.5)
    next(b for b in at.button if b.label == "Save for this checkpoint").click().run()
    assert any("Saved in" in s.value and "shipped, so its file is unchanged" in s.value for s in at.success)
    # The shipped, version-controlled file is byte-identical; the thresholds live in the workspace.
    assert default.read_bytes() == shipped_bytes
    stored = stored_thresholds(default, workspace_root)
    assert stored.source.parent == workspace_root / "runs" / "thresholds"
    assert np.allclose(list(stored.values.values()), thresholds, atol=1e-6)
    next(b for b in at.button if b.label == "Reset to 0.5").click().run()
    assert np.allclose(at.dataframe[0].value["threshold"], 0.5)
    next(b for b in at.button if b.label == "Use checkpoint's").click().run()
    assert np.allclose(at.dataframe[0].value["threshold"], thresholds, atol=1e-6)
    stored.source.unlink()  # leave the shipped thresholds in place for the other pages' tests
    next(b for b in at.button if b.label == "Reset to 0.5").click().run()


def test_ablations_compare_the_demo_runs(app):
    at = _open(app, "ablations")
    assert not at.exception
    table = at.dataframe[0].value
    assert {"paper", "no_conv3", "no_conv3_no_fc1"} <= set(table["arch"])
    assert table.loc[table["arch"] == "paper", "ΔF"].abs().min() == pytest.approx(0.0, abs=1e-9)
    assert at.get("plotly_chart")


def test_shipped_real_runs_open_by_default_and_need_the_dataset_for_images(app, workspace_root):
    # The real-data model chosen on real photos, the one uploads use as well, on those photos.
    catalogue = Catalogue(Workspace(workspace_root))
    default, run = catalogue.default_model(), catalogue.default_run()
    assert default.parent.name == "celeba" and run.parent.name == default.stem
    assert f"celeba/{default.stem}/{run.name} (shipped)" == app.sidebar.selectbox(key="run_choice").value
    assert f"{default.stem}/{run.name}" in app.markdown[0].value and "of 326 people" in app.markdown[0].value
    at = _open(app, "misclassified")
    assert not at.exception
    assert not at.get("image")
    assert any("not on this machine" in w.value for w in at.warning)


def test_misclassified_gallery_pages_through_errors(app):
    app.sidebar.selectbox(key="run_choice").set_value("demo/paper/test").run()
    at = _open(app, "misclassified")
    assert not at.exception
    at.selectbox(key="mis_attribute").set_value("Pale_Skin").run()
    images = at.get("image")
    assert images, "face crops are shown"
    assert any("true `" in m.value and "pred `" in m.value for m in at.markdown)
    assert any("Grad-CAM for Pale_Skin" in (c or "") for img in at.get("image") for c in _captions(img))
    at.radio(key="mis_kind").set_value("false_positive").run()
    assert not at.exception


def _captions(image_element) -> list[str]:
    return [img.caption for img in image_element.proto.imgs]


def _png(size=(178, 218), color=(200, 150, 120)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def test_upload_detects_the_face_and_predicts(app, workspace_root):
    at = _open(app, "upload")
    assert not at.exception
    face = next((workspace_root / "data" / "demo" / "img_align_celeba").glob("*.jpg")).read_bytes()
    at.get("file_uploader")[0].upload("face.jpg", face, "image/jpeg").run()
    assert not at.exception
    assert at.get("plotly_chart")
    assert any("Predicted present" in m.value for m in at.markdown)
    captions = [c for img in at.get("image") for c in _captions(img)]
    assert any("training framing" in c for c in captions) and any("Grad-CAM for" in c for c in captions)


def test_upload_without_a_face_says_so_and_can_use_the_whole_image(app):
    at = _open(app, "upload")
    at.get("file_uploader")[0].upload("wall.png", _png(), "image/png").run()
    assert not at.exception
    assert any("No face found" in w.value for w in at.warning)
    assert not any("Predicted present" in m.value for m in at.markdown)
    at.checkbox(key="upload_whole").check().run()
    assert any("Predicted present" in m.value for m in at.markdown)


def test_upload_of_a_broken_file_is_a_clear_error(app):
    at = _open(app, "upload")
    at.get("file_uploader")[0].upload("broken.jpg", b"not an image", "image/jpeg").run()
    assert not at.exception
    assert any("broken.jpg" in e.value for e in at.error)


def test_evaluating_a_checkpoint_on_a_user_folder_lands_as_a_run(app, workspace_root):
    # The demo folder stands in for a user's CelebA copy: same on-disk layout.
    app.sidebar.text_input(key="data_root").set_value(str(workspace_root / "data" / "demo")).run()
    app.sidebar.selectbox(key="eval_checkpoint").set_value("checkpoints/demo/no_conv3_no_fc1.safetensors").run()
    app.sidebar.selectbox(key="eval_split").set_value("val").run()
    next(b for b in app.sidebar.button if b.label == "Evaluate").click().run()
    assert not app.exception
    folder = workspace_root / "runs" / "no_conv3_no_fc1" / "val"
    assert (folder / "predictions.npz").is_file()
    assert app.sidebar.selectbox(key="run_choice").value == "no_conv3_no_fc1/val"
    assert "no_conv3_no_fc1/val" in app.markdown[0].value


def test_a_failing_evaluation_shows_an_error_and_keeps_the_runs(app, workspace_root):
    before = sorted(p for p in (workspace_root / "runs").rglob("*") if p.is_file())
    app.sidebar.text_input(key="data_root").set_value(str(workspace_root / "no-such-folder")).run()
    next(b for b in app.sidebar.button if b.label == "Evaluate").click().run()
    assert not app.exception
    assert any("Evaluation failed" in e.value and "does not exist" in e.value for e in app.sidebar.error)
    assert sorted(p for p in (workspace_root / "runs").rglob("*") if p.is_file()) == before


def _frame(at: AppTest, *columns: str):
    """The first table on the page with these columns."""
    return next(df.value for df in at.dataframe if set(columns) <= set(df.value.columns))


def test_slices_show_blond_men_by_default_with_cells_bias_map_and_group_thresholds(app):
    app.sidebar.selectbox(key="run_choice").set_value("celeba/attrnet/test (shipped)").run()
    at = _open(app, "slices")
    assert not at.exception
    assert at.title[0].value == "Slices"
    # The shipped real-data run stores all 40 labels: the default is CelebA's blond-men slice.
    assert at.selectbox(key="slice_target").value == "Blond_Hair"
    assert at.multiselect(key="slice_by").value == ["Male"]
    assert {"Average accuracy", "Worst group", "Worst cell", "Equalized odds diff."} <= {m.label for m in at.metric}
    groups = _frame(at, "group", "TPR (recall)")
    assert groups["group"].tolist() == ["not Male", "Male"] and groups["images"].sum() == 660
    cells = _frame(at, "cell", "note").set_index("cell")
    assert cells.loc["Blond_Hair, Male", "note"].startswith("small")  # flagged, not hidden
    assert any("Worst cell: **Blond_Hair, Male**" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 3  # groups, cells, bias map
    assert any(m.value.startswith("Strongest pairs:") for m in at.markdown)

    # Any of the 40 attributes groups, two at a time; person too.
    at.multiselect(key="slice_by").set_value(["Male", "Wearing_Hat"]).run()
    assert not at.exception and len(_frame(at, "group", "TPR (recall)")) == 4
    at.multiselect(key="slice_by").set_value(["person"]).run()
    assert len(_frame(at, "group", "TPR (recall)")) == 22
    assert any("within each person" in c.value for c in at.caption)

    # Per-group thresholds, fitted on the val run of the same checkpoint. Its val split has no blond
    # man, so that fit is explained; Smiling by Male fits.
    at.multiselect(key="slice_by").set_value(["Male"]).run()
    at.toggle(key="slice_fit_thresholds").set_value(True).run()
    assert any("every group needs images with and without Blond_Hair" in w.value for w in at.warning)
    at.selectbox(key="slice_target").set_value("Smiling").run()
    assert not at.exception and not at.warning
    tradeoff = _frame(at, "thresholds")
    assert tradeoff["thresholds"].tolist() == ["before", "after"]
    assert set(_frame(at, "group", "rule")["group"]) == {"Male", "not Male"}


def test_slices_of_a_run_without_all_40_labels_offer_its_own_attributes(app, workspace_root):
    from celeba_model.evaluation.predictions import load_predictions, save_predictions

    run = load_predictions(workspace_root / "checkpoints" / "celeba" / "runs" / "paper" / "test")
    run.celeba_labels = None  # as an artifact written before they were kept
    folder = workspace_root / "runs" / "older" / "test"
    save_predictions(folder, run)
    try:
        app.run()  # the sidebar lists the new run
        app.sidebar.selectbox(key="run_choice").set_value("older/test").run()
        at = _open(app, "slices")
        assert not at.exception
        assert any("stores only its model's 10 labels" in i.value for i in at.info)
        options = at.multiselect(key="slice_by").options
        assert "Wearing_Hat" not in options and {"Male", "Young", "person"} <= set(options)
        assert _frame(at, "group", "TPR (recall)")["group"].tolist() == ["not Male", "Male"]
    finally:
        import shutil

        shutil.rmtree(workspace_root / "runs" / "older")


def test_slices_show_the_blond_men_failure_on_real_photos(app):
    # attrnet's test split has one blond man: the page points to the same model's run on celeba_wild_val
    # through the photo path (all 40 labels and people), and one click opens it.
    app.sidebar.selectbox(key="run_choice").set_value("celeba/attrnet/test (shipped)").run()
    at = _open(app, "slices")
    assert any("celeba/attrnet/wild_val (shipped)" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Open celeba/attrnet/wild_val (shipped)").click().run()
    assert not at.exception
    assert at.sidebar.selectbox(key="run_choice").value == "celeba/attrnet/wild_val (shipped)"
    assert at.selectbox(key="slice_target").value == "Blond_Hair" and at.multiselect(key="slice_by").value == ["Male"]
    cells = _frame(at, "cell", "note").set_index("cell")
    blond_men = cells.loc["Blond_Hair, Male"]
    assert blond_men["images"] > 30 and blond_men["accuracy"] < 0.8
    assert blond_men["accuracy"] < cells.loc["Blond_Hair, not Male", "accuracy"] - 0.2
    assert any("Worst cell: **Blond_Hair, Male**" in c.value for c in at.caption)


def test_labels_page_records_decisions_that_survive_a_restart_and_correct_every_page(app, workspace_root):
    from celeba_model.data.corrections import read_corrections

    app.sidebar.selectbox(key="run_choice").set_value("celeba/attrnet/test (shipped)").run()
    at = _open(app, "labels")
    assert not at.exception
    assert at.title[0].value == "Labels"
    at.selectbox(key="labels_attribute").set_value("Gray_Hair").run()
    cards = [m.value for m in at.markdown if "· person" in m.value]
    assert cards, "cleanlab flags Gray_Hair labels of attrnet's test run"
    first = cards[0].split("`")[1]  # most suspicious first
    at.text_input(key="labels_note").set_value("dark hair").run()
    at.button(key=f"wrong::Gray_Hair::{first}").click().run()
    assert not at.exception
    mine = workspace_root / "runs" / "labels" / "corrections.csv"
    decision = read_corrections(mine).get(first, "Gray_Hair")
    assert decision.label_wrong and decision.note == "dark hair"
    assert first not in " ".join(m.value for m in at.markdown if "· person" in m.value)  # decided ones are hidden

    # A new session (a restart) sees the decision, and every page can use it.
    again = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    again.sidebar.selectbox(key="run_choice").set_value("celeba/attrnet/test (shipped)").run()
    again = _open(again, "labels")
    again.selectbox(key="labels_attribute").set_value("Gray_Hair").run()
    again.checkbox(key="labels_hide_decided").uncheck().run()
    assert any(first in m.value and "you: label wrong** (dark hair)" in m.value for m in again.markdown)
    assert _frame(again, "attribute", "wrong").set_index("attribute").loc["Gray_Hair", "wrong"] == 1
    again.sidebar.toggle(key="corrections_on").set_value(True).run()
    overview = _open(again, "overview")
    assert not overview.exception
    assert any("corrected labels** (1 changed" in m.value for m in overview.markdown)
    effect = _frame(overview, "labels changed").set_index("attribute")
    assert effect.loc["Gray_Hair", "labels changed"] == 1 and effect.loc["Smiling", "labels changed"] == 0
    assert effect.loc["Gray_Hair", "positives corrected"] == effect.loc["Gray_Hair", "positives"] + 1

    # The shipped audit of this split is one choice away; Undo removes a decision.
    overview.sidebar.selectbox(key="corrections_choice").set_value("checkpoints/celeba/labels/test.csv").run()
    assert any("corrected labels** (20 changed" in m.value for m in overview.markdown)
    overview.sidebar.selectbox(key="corrections_choice").set_value("runs/labels/corrections.csv").run()
    labels = _open(overview, "labels")
    labels.selectbox(key="labels_attribute").set_value("Gray_Hair").run()
    labels.checkbox(key="labels_hide_decided").uncheck().run()
    labels.button(key=f"undo::Gray_Hair::{first}").click().run()
    assert read_corrections(mine).get(first, "Gray_Hair") is None


def _file_uploader(at: AppTest, key: str):
    return next(u for u in at.get("file_uploader") if u.key == key)


def test_predictions_of_another_framework_import_from_the_sidebar(app, workspace_root, tmp_path):
    from celeba_model.evaluation.imported import export_predictions_csv
    from celeba_model.evaluation.predictions import load_predictions

    ours = load_predictions(workspace_root / "runs" / "demo" / "paper" / "test")
    csv_file = export_predictions_csv(ours, tmp_path / "timm_model.csv")
    app.sidebar.text_input(key="data_root").set_value(str(workspace_root / "data" / "demo")).run()

    # A bad file: a clear error, and no run appears.
    _file_uploader(app, "import_file").upload("broken.csv", b"file,Smilling\n000001.jpg,0.3\n", "text/csv").run()
    app.sidebar.button(key="import_button").click().run()
    assert any("Import failed" in e.value and "Smiling" in e.value for e in app.sidebar.error)
    assert not (workspace_root / "runs" / "broken").exists()

    _file_uploader(app, "import_file").upload("timm_model.csv", csv_file.read_bytes(), "text/csv").run()
    app.sidebar.button(key="import_button").click().run()
    assert not app.exception
    assert app.sidebar.selectbox(key="run_choice").value == "timm_model/test"
    assert any("Matched" in s.value for s in app.sidebar.success)
    assert any("predictions imported from `timm_model.csv`" in m.value for m in app.markdown)
    imported = load_predictions(workspace_root / "runs" / "timm_model" / "test")
    assert np.allclose(imported.probabilities, ours.probabilities) and np.array_equal(imported.labels, ours.labels)
    for page in ("thresholds", "misclassified", "slices", "labels"):  # every page works on it
        assert not _open(app, page).exception, page
    imported_f1 = _metric(_open(app, "overview"), "Macro-F1")
    app.sidebar.selectbox(key="run_choice").set_value("demo/paper/test").run()
    assert _metric(app, "Macro-F1") == imported_f1  # the same figures as our own run of that model
