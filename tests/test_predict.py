"""`python -m celeba_model predict`: many photos through the Upload page's path, batched and in parallel.

Real photos come from ../shared/celeba_wild (skipped with the reason when absent); generated faces
from the demo generator. The command runs in-process (``main``) except where the terminal's file
descriptor 2 is what is tested.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from celeba_model.cli import main
from celeba_model.errors import ConfigError
from celeba_model.models.checkpoint import update_checkpoint_meta
from celeba_model.models.thresholds import stored_thresholds
from celeba_model.photo import (
    PHOTO_EXTENSIONS,
    PHOTO_MAX_PIXELS,
    FaceDetector,
    PhotoBatchPredictor,
    PhotoResult,
    Predictor,
    expand_inputs,
    open_photo,
    predict_photo,
    predict_photos,
)
from celeba_model.catalogue import Catalogue
from celeba_model.photo.batch import write_results
from celeba_model.workspace import Workspace

from .conftest import shared_root

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "checkpoints" / "celeba" / "attrnet.safetensors"  # a shipped real-data model; flip averaging on
DEFAULT = Catalogue(Workspace(REPO)).default_model()  # the Upload page's (chosen on real photos)
DEMO_RGB = REPO / "checkpoints" / "demo" / "paper_rgb.safetensors"
ATTRIBUTES = Predictor(DEMO_RGB).attributes
# What mediapipe's native code prints to fd 2 when a detector starts, runs and closes.
NATIVE_LOG_MARKERS = ("XNNPACK", "LiteRT", "TensorFlow Lite", "InitGoogle", "absl::InitializeLog",
                      "W0000", "I0000", "INFO: [", "DestroyAccelerator", "memory alignment")


def _predict(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def _predict_json(capsys, *argv: str) -> tuple[int, list[dict]]:
    code, out, _ = _predict(capsys, "--json", *argv)
    return code, json.loads(out)  # stdout is nothing but the JSON list


@pytest.fixture(scope="module")
def faces(demo_root) -> list[Path]:
    """Generated 178x218 face photos."""
    return sorted((demo_root / "img_align_celeba").glob("*.jpg"))[:12]


@pytest.fixture
def workspace(tmp_path) -> Path:
    """An empty workspace: no threshold overrides from the checkout's runs/ leak into the tests."""
    root = tmp_path / "workspace"
    root.mkdir()
    return root


def _check_record(record: dict, thresholds: np.ndarray | float) -> None:
    assert set(record) == {"image", "face", "probabilities", "decisions"}, record
    assert list(record["probabilities"]) == ATTRIBUTES and list(record["decisions"]) == ATTRIBUTES
    probabilities = np.array(list(record["probabilities"].values()))
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert list(record["decisions"].values()) == list(probabilities >= thresholds)
    width, height = Image.open(record["image"]).size
    x, y, w, h = record["face"]
    assert 0.1 * width < x + w / 2 < 0.9 * width and 0.1 * height < y + h / 2 < 0.9 * height and w > 0.2 * width


# ---- The JSON contract ---------------------------------------------------------------------------


def test_json_contract_on_real_photos(capsys, workspace):
    photos = sorted(shared_root("celeba_wild").joinpath("faces").glob("*.jpg"))[:16]
    code, records = _predict_json(capsys, "--checkpoint", REAL, "--workspace", workspace, *photos)
    assert code == 0 and [r["image"] for r in records] == [str(p) for p in photos]
    thresholds = np.array(list(stored_thresholds(REAL, workspace).values.values()))  # the default: stored ones
    for record in records:
        _check_record(record, thresholds)


def test_json_contract_on_generated_photos_from_a_folder(capsys, faces, tmp_path, workspace):
    folder = tmp_path / "photos"
    folder.mkdir()
    for k, face in enumerate(reversed(faces[:5])):  # names sort differently from creation order
        shutil.copy(face, folder / f"face_{k}.jpg")
    Image.open(faces[5]).save(folder / "face_5.PNG")  # any case of a photo extension
    (folder / "notes.txt").write_text("not a photo: skipped in folders")
    code, records = _predict_json(capsys, "--checkpoint", DEMO_RGB, "--thresholds", "0.5", "--workspace", workspace,
                                  folder)
    assert code == 0
    assert [Path(r["image"]).name for r in records] == [f"face_{k}.jpg" for k in range(5)] + ["face_5.PNG"]
    for record in records:
        _check_record(record, 0.5)


def test_bad_files_are_error_entries_and_the_others_still_predicted(capsys, faces, tmp_path, workspace):
    good = tmp_path / "good.jpg"
    shutil.copy(faces[0], good)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello, this is not a picture")
    (tmp_path / "truncated.jpg").write_bytes(faces[1].read_bytes()[:600])
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(faces[2], mixed / "a.jpg")
    (mixed / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (mixed / "readme.txt").write_text("skipped")
    Image.linear_gradient("L").convert("RGB").save(mixed / "c_no_face.png")
    inputs = [tmp_path / "empty.jpg", good, tmp_path / "text.jpg", tmp_path / "truncated.jpg", mixed,
              tmp_path / "nothing*.jpg", tmp_path / "missing.jpg"]
    code, out, err = _predict(capsys, "--json", "--checkpoint", DEMO_RGB, "--workspace", workspace, *inputs)
    records = json.loads(out)
    assert code == 1 and "Traceback" not in err and "could not be used" in err
    by_name = {Path(r["image"]).name: r for r in records}
    assert [Path(r["image"]).name for r in records] == [
        "empty.jpg", "good.jpg", "text.jpg", "truncated.jpg", "a.jpg", "b.png", "c_no_face.png", "nothing*.jpg",
        "missing.jpg"]
    expected = {"empty.jpg": "empty", "text.jpg": "not an image file", "truncated.jpg": "corrupt or truncated",
                "b.png": "not an image file", "c_no_face.png": "no face found",
                "nothing*.jpg": "no file matches", "missing.jpg": "file not found"}
    for name, words in expected.items():
        assert set(by_name[name]) == {"image", "error"} and words in by_name[name]["error"], by_name[name]
    stored = np.array(list(stored_thresholds(DEMO_RGB, workspace).values.values()))
    for name in ("good.jpg", "a.jpg"):
        _check_record(by_name[name], stored)
    # With --whole-image-if-no-face the photo without a face is predicted, its face null.
    code, records = _predict_json(capsys, "--checkpoint", DEMO_RGB, "--workspace", workspace,
                                  "--whole-image-if-no-face", good, mixed / "c_no_face.png")
    assert code == 0 and records[1]["face"] is None and len(records[1]["probabilities"]) == len(ATTRIBUTES)


def test_table_and_csv(capsys, faces, tmp_path, workspace):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    inputs = [faces[0], tmp_path / "broken.jpg", faces[1]]
    out_csv = tmp_path / "out" / "predictions.csv"
    code, out, err = _predict(capsys, "--checkpoint", DEMO_RGB, "--thresholds", "0.5", "--workspace", workspace,
                              "--csv", out_csv, *inputs)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["image", "face"] and all(a in lines[0] for a in ATTRIBUTES)
    assert len(lines) == 1 + len(inputs) + 1  # header, one row per image, the legend
    assert str(faces[0]) in lines[1] and "error:" in lines[2] and "broken.jpg" in lines[2]
    _, records = _predict_json(capsys, "--checkpoint", DEMO_RGB, "--thresholds", "0.5", "--workspace", workspace,
                               faces[0], faces[1])
    for line, record in zip((lines[1], lines[3]), records):
        cells = line.split()[2:]
        assert len(cells) == len(ATTRIBUTES)
        for cell, attribute in zip(cells, ATTRIBUTES):
            assert float(cell.rstrip("*")) == pytest.approx(record["probabilities"][attribute], abs=0.006)
            assert cell.endswith("*") == record["decisions"][attribute]
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == [str(p) for p in inputs]
    assert rows[1]["error"] and rows[1]["face_x"] == "" and rows[1][f"{ATTRIBUTES[0]}_probability"] == ""
    for row, record in zip((rows[0], rows[2]), records):
        assert row["error"] == ""
        assert [float(row[k]) for k in ("face_x", "face_y", "face_width", "face_height")] == record["face"]
        for attribute in ATTRIBUTES:
            assert float(row[f"{attribute}_probability"]) == pytest.approx(record["probabilities"][attribute], abs=1e-6)
            assert row[f"{attribute}_present"] == str(int(record["decisions"][attribute]))
    assert not list(out_csv.parent.glob(".*.tmp"))  # written atomically: no temporary file left


def test_thresholds_number_checkpoint_file_and_default(capsys, faces, tmp_path, workspace):
    stored = np.array(list(stored_thresholds(DEMO_RGB, workspace).values.values()))
    assert not np.allclose(stored, 0.5)
    args = ["--checkpoint", DEMO_RGB, "--workspace", workspace, faces[0], faces[3]]

    def decisions(*options: str) -> list[list[bool]]:
        code, records = _predict_json(capsys, *options, *args)
        assert code == 0
        for record in records:
            probabilities = np.array(list(record["probabilities"].values()))
            assert list(record["decisions"].values()) == list(probabilities >= thresholds)
        return [list(r["decisions"].values()) for r in records]

    thresholds = 0.5
    decisions("--thresholds", "0.5")
    thresholds = stored
    assert decisions("--thresholds", "checkpoint") == decisions()  # the default when the checkpoint has some
    thresholds = np.linspace(0.05, 0.95, len(ATTRIBUTES))
    chosen = tmp_path / "thresholds.json"
    chosen.write_text(json.dumps({"thresholds": dict(zip(ATTRIBUTES, thresholds.tolist()))}))
    decisions("--thresholds", chosen)
    # A checkpoint without stored thresholds defaults to 0.5, and refuses --thresholds checkpoint.
    bare = tmp_path / "bare.safetensors"
    shutil.copy(DEMO_RGB, bare)
    update_checkpoint_meta(bare, {"thresholds": None})
    args[1] = bare
    thresholds = 0.5
    decisions()
    assert main(["predict", "--checkpoint", str(bare), "--workspace", str(workspace), "--thresholds", "checkpoint",
                 str(faces[0])]) == 2
    assert "has no tuned thresholds" in capsys.readouterr().err


def test_default_checkpoint_is_the_upload_pages_and_none_is_a_clear_error(capsys, faces, tmp_path):
    empty = tmp_path / "empty_workspace"
    empty.mkdir()
    assert main(["predict", "--workspace", str(empty), str(faces[0])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no checkpoint found") and "--checkpoint" in err and "--workspace" in err
    code, out, err = _predict(capsys, "-v", "--json", "--workspace", REPO, faces[0])
    assert code == 0 and f"checkpoint {DEFAULT}" in err  # -v says which; stdout stays pure JSON
    json.loads(out)


def test_predict_photos_is_predict_from_python(capsys, faces, tmp_path, workspace):
    (tmp_path / "broken.jpg").write_text("not a picture")
    inputs = [str(faces[0]), tmp_path / "broken.jpg", str(faces[1])]
    code, records = _predict_json(capsys, "--checkpoint", DEMO_RGB, "--workspace", workspace, *inputs)
    results = predict_photos(inputs, DEMO_RGB, workspace=workspace)
    assert code == 1 and [r.image for r in results] == [r["image"] for r in records]
    for result, record in zip(results, records):
        if "error" in record:
            assert not result.ok and result.error == record["error"] and result.decisions is None
            continue
        assert list(result.attributes) == list(record["probabilities"])
        assert np.abs(result.probabilities - np.array(list(record["probabilities"].values()))).max() < 1e-6
        assert list(result.decisions) == list(record["decisions"].values())
    one = predict_photos(faces[0], DEMO_RGB, thresholds=0.5, workspace=workspace)  # one path, not its characters
    assert [r.image for r in one] == [str(faces[0])] and list(one[0].decisions) == list(one[0].probabilities >= 0.5)
    with pytest.raises(ConfigError, match="needs a checkpoint"):
        predict_photos([faces[0]])


# ---- Same answers as the Upload page and as one photo at a time --------------------------------------


def _face_file(faces: list[Path]) -> Path:
    try:
        return sorted(shared_root("celeba_wild").joinpath("faces").glob("*.jpg"))[7]
    except pytest.skip.Exception:
        return faces[7]


def test_predict_agrees_with_the_upload_page(capsys, faces, tmp_path, monkeypatch):
    # A workspace with the shipped real-data checkpoints only: no demo to generate on the first start.
    workspace = tmp_path / "workspace"
    shutil.copytree(REPO / "checkpoints" / "celeba", workspace / "checkpoints" / "celeba")
    monkeypatch.setenv("CELEBA_WORKSPACE", str(workspace))
    photo = _face_file(faces)
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=180).run()
    at = at.switch_page("views/upload.py").run()
    uploader = at.get("file_uploader")[0]
    assert list(uploader.proto.type) == [f".{e}" for e in PHOTO_EXTENSIONS]  # one list for both
    uploader.upload(photo.name, photo.read_bytes(), "image/jpeg").run()
    assert not at.exception and not at.error
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    shown = bars["x"]
    if isinstance(shown, dict):  # plotly 7 sends arrays base64-encoded
        shown = np.frombuffer(base64.b64decode(shown["bdata"]), dtype=np.dtype(shown["dtype"]).newbyteorder("<"))
    code, records = _predict_json(capsys, photo)  # the same default checkpoint and thresholds, from $CELEBA_WORKSPACE
    assert code == 0 and bars["y"] == list(records[0]["probabilities"])
    assert np.abs(np.array(list(records[0]["probabilities"].values())) - np.asarray(shown, float)).max() < 1e-5
    present = [color == "seagreen" for color in bars["marker"]["color"]]
    assert present == list(records[0]["decisions"].values())


def test_batched_equals_one_at_a_time(faces):
    try:
        real = sorted(shared_root("celeba_wild").joinpath("faces").glob("*.jpg"))[:10]
    except pytest.skip.Exception:
        real = []
    photos = [str(p) for p in [*faces[:10], *real]]
    predictor = Predictor(REAL)
    batched = list(PhotoBatchPredictor(predictor, batch_size=4, whole_image_if_no_face=True).predict(photos))
    with FaceDetector() as detector:
        for photo, result in zip(photos, batched):
            single = predict_photo(open_photo(photo), predictor, detector, whole_image_if_no_face=True)
            assert result.ok and result.image == photo
            assert np.abs(result.probabilities - single.prediction.probabilities).max() < 1e-5
            assert (result.face is None) == (single.face is None)


def test_progress_bar_goes_to_stderr_and_stdout_stays_json(capsys):
    probabilities = np.linspace(0, 1, len(ATTRIBUTES), dtype=np.float32)
    results = [PhotoResult(f"{k}.jpg", face=(1.0, 2.0, 3.0, 4.0), probabilities=probabilities) for k in range(50)]
    results[7] = PhotoResult("7.jpg", error="7.jpg: the file is empty")
    failed = write_results(iter(results), ATTRIBUTES, np.full(len(ATTRIBUTES), 0.5), [r.image for r in results],
                           as_json=True, progress=True)
    out, err = capsys.readouterr()
    records = json.loads(out)
    assert [r["image"] for r in records] == [r.image for r in results] and records[7] == {
        "image": "7.jpg", "error": "7.jpg: the file is empty"}
    assert [f.image for f in failed] == ["7.jpg"] and "Predicting" in err and "50/50" in err


def test_inputs_expand_folders_and_patterns_in_order(faces, tmp_path):
    for k in (2, 0, 1):
        shutil.copy(faces[k], tmp_path / f"{k}.jpeg")
    (tmp_path / "x.txt").write_text("")
    found = list(expand_inputs([tmp_path, str(tmp_path / "[01].jpeg"), str(tmp_path / "*.gif"), tmp_path / "x.txt"]))
    assert [Path(i.path).name for i in found] == ["0.jpeg", "1.jpeg", "2.jpeg", "0.jpeg", "1.jpeg", "*.gif", "x.txt"]
    assert [i.error is not None for i in found] == [False] * 5 + [True, False]


# ---- Quiet detector, panoramas ------------------------------------------------------------------------


def test_detector_log_lines_stay_off_the_terminal_unless_verbose(faces, tmp_path):
    command = [sys.executable, "-m", "celeba_model", "predict", "--checkpoint", str(DEMO_RGB), "--json",
               "--workspace", str(tmp_path), str(faces[0]), str(faces[1])]
    quiet = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert quiet.returncode == 0, quiet.stderr
    assert len(json.loads(quiet.stdout)) == 2
    leaked = [line for line in quiet.stderr.splitlines() if any(m in line for m in NATIVE_LOG_MARKERS)]
    assert not leaked and quiet.stderr == "", quiet.stderr
    verbose = subprocess.run(command + ["-v"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert verbose.returncode == 0 and json.loads(verbose.stdout) == json.loads(quiet.stdout)
    assert any(m in verbose.stderr for m in NATIVE_LOG_MARKERS), verbose.stderr


def test_face_in_a_long_panorama_is_found(capsys, faces, tmp_path, workspace):
    try:
        face = Image.open(sorted(shared_root("celeba_wild").joinpath("faces").glob("*.jpg"))[3]).convert("RGB")
    except pytest.skip.Exception:
        face = Image.open(faces[3]).convert("RGB")
    face = face.resize((round(face.width * 400 / face.height), 400))
    panorama = Image.new("RGB", (20000, 436), (90, 110, 130))
    left = 13_500
    panorama.paste(face, (left, 18))
    path = tmp_path / "panorama.jpg"
    panorama.save(path, quality=90)
    assert open_photo(path).width * open_photo(path).height <= PHOTO_MAX_PIXELS
    code, records = _predict_json(capsys, "--checkpoint", REAL, "--workspace", workspace, path)
    assert code == 0, records
    x, y, w, h = records[0]["face"]  # in the file's own pixels, not the shrunk copy's
    assert left < x + w / 2 < left + face.width and 18 < y + h / 2 < 18 + face.height
    assert 0.3 * face.width < w < face.width
    # The same face alone gives nearly the same answer.
    alone = io.BytesIO()
    face.save(alone, "JPEG", quality=90)
    (tmp_path / "alone.jpg").write_bytes(alone.getvalue())
    _, single = _predict_json(capsys, "--checkpoint", REAL, "--workspace", workspace, tmp_path / "alone.jpg")
    difference = np.abs(np.array(list(records[0]["probabilities"].values()))
                        - np.array(list(single[0]["probabilities"].values())))
    assert difference.max() < 0.25, difference
