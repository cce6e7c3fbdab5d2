"""A corpus of bad inputs, generated here: each gets a clear, specific message and nothing crashes.

Uploads go through the package (``open_image`` and ``predict_photo``) and through the dashboard's
Upload page (AppTest); dataset files and checkpoints go through the CLI. The README counts these
cases.
"""

from __future__ import annotations

import io
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from celeba_model.cli import main
from celeba_model.data.images import ImageReadError, open_image
from celeba_model.photo import FaceDetector, Predictor, predict_photo

REPO = Path(__file__).resolve().parents[1]
DEMO_RGB = REPO / "checkpoints" / "demo" / "paper_rgb.safetensors"


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _face(demo_root: Path, k: int = 0) -> Image.Image:
    return open_image(sorted((demo_root / "img_align_celeba").glob("*.jpg"))[k])


def _broken_crc_png() -> bytes:
    data = bytearray(_encode(Image.new("RGB", (16, 16), (1, 2, 3)), "PNG"))
    data[data.index(b"IDAT") + 6] ^= 0xFF
    return bytes(data)


def _animated_gif(face: Image.Image) -> bytes:
    frames = [face.convert("P"), Image.new("P", face.size)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _exif_rotated(face: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(face.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif)


# Upload cases that must be refused: (name, bytes, words the message must contain).
REFUSED_UPLOADS = [
    ("empty file", lambda face: b"", "empty"),
    ("text file named .jpg", lambda face: b"hello, this is not a picture", "not an image file"),
    ("truncated JPEG", lambda face: _encode(face, "JPEG")[:400], "corrupt or truncated"),
    ("PNG with a wrong CRC", lambda face: _broken_crc_png(), "corrupt or truncated"),
    ("decompression bomb (12,000 x 12,000 declared)", lambda face: _encode(Image.new("1", (12000, 12000)), "PNG"),
     "limit"),
]

# Upload cases that must work: (name, bytes, expect a face?).
ACCEPTED_UPLOADS = [
    ("1x1 image", lambda face: _encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), False),
    ("16-bit grayscale PNG", lambda face: _encode(Image.fromarray((np.asarray(face.convert("L"), dtype=np.uint16) * 257)), "PNG"), True),
    ("CMYK JPEG", lambda face: _encode(face.convert("CMYK"), "JPEG"), True),
    ("RGBA PNG", lambda face: _encode(face.convert("RGBA"), "PNG"), True),
    ("palette PNG", lambda face: _encode(face.convert("P"), "PNG"), True),
    ("animated GIF (first frame used)", _animated_gif, True),
    ("EXIF-rotated photo", _exif_rotated, True),
    ("no face (a gradient)", lambda face: _encode(Image.linear_gradient("L").convert("RGB"), "PNG"), False),
    ("very dark photo", lambda face: _encode(face.point(lambda v: v // 12), "JPEG"), None),
]


@pytest.fixture(scope="module")
def face(demo_root):
    return _face(demo_root)


@pytest.mark.parametrize("case", REFUSED_UPLOADS, ids=[c[0] for c in REFUSED_UPLOADS])
def test_bad_uploads_are_refused_with_a_clear_message(case, face):
    name, make, words = case
    with pytest.raises(ImageReadError) as error:
        open_image(make(face), name="upload.jpg")
    assert words in str(error.value) and "upload.jpg" in str(error.value)


@pytest.fixture(scope="module")
def pipeline():
    with FaceDetector() as detector:
        yield Predictor(DEMO_RGB), detector


@pytest.mark.parametrize("case", ACCEPTED_UPLOADS, ids=[c[0] for c in ACCEPTED_UPLOADS])
def test_odd_but_valid_uploads_are_predicted(case, face, pipeline):
    name, make, has_face = case
    predictor, detector = pipeline
    image = open_image(make(face), name=name)
    result = predict_photo(image, predictor, detector, whole_image_if_no_face=True)
    assert result.prediction is not None and np.isfinite(result.prediction.probabilities).all()
    if has_face is not None:
        assert (result.face is not None) == has_face, name


def test_several_faces_use_the_most_prominent(demo_root, pipeline):
    predictor, detector = pipeline
    canvas = Image.new("RGB", (420, 240), (90, 90, 90))
    canvas.paste(_face(demo_root, 1).resize((89, 109)), (10, 60))
    canvas.paste(_face(demo_root, 2), (230, 10))
    result = predict_photo(canvas, predictor, detector)
    assert len(result.faces) == 2 and result.face.center[0] > 230


# ---- The dashboard's Upload page with the same files ------------------------------------------------

@pytest.fixture(scope="module")
def upload_page(dashboard_workspace):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CELEBA_WORKSPACE", str(dashboard_workspace))
        at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=180).run()
        yield at.switch_page("views/upload.py").run()


@pytest.mark.parametrize("case", REFUSED_UPLOADS + [(n, m, None) for n, m, _ in ACCEPTED_UPLOADS],
                         ids=[c[0] for c in REFUSED_UPLOADS + ACCEPTED_UPLOADS])
def test_the_upload_page_survives_every_case(case, face, upload_page, dashboard_workspace, monkeypatch):
    monkeypatch.setenv("CELEBA_WORKSPACE", str(dashboard_workspace))
    name, make, words = case
    at = upload_page
    at.get("file_uploader")[0].upload("case.png", make(face), "image/png").run()
    assert not at.exception, name
    messages = [e.value for e in at.error] + [w.value for w in at.warning] + [m.value for m in at.markdown]
    if isinstance(words, str):
        assert any(words in m for m in messages), (name, messages)
    else:
        assert any("Predicted present" in m or "No face found" in m for m in messages), (name, messages)


def test_the_upload_limit_is_configured():
    config = (REPO / ".streamlit" / "config.toml").read_text()
    assert "maxUploadSize = 10" in config


# ---- Dataset files and checkpoints through the CLI -------------------------------------------------

def _cli_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


@pytest.fixture
def dataset(celeba_factory):
    return celeba_factory(n=20)


def test_attribute_file_with_a_wrong_column_count(dataset, capsys):
    path = dataset / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[5] += " 1 1"
    path.write_text("\n".join(lines) + "\n")
    assert "list_attr_celeba.txt:6: expected 41 fields" in _cli_error(capsys, ["info", "--data-root", str(dataset)])


def test_attribute_file_with_an_unknown_attribute(dataset, capsys):
    path = dataset / "list_attr_celeba.txt"
    path.write_text(path.read_text().replace("Smiling", "Grinning"))
    assert "unknown attribute name 'Grinning'" in _cli_error(capsys, ["info", "--data-root", str(dataset)])


def test_partition_file_missing_rows_and_images_missing_on_disk(celeba_factory, capsys):
    root = celeba_factory(n=20, on_disk=set(range(15)))
    path = root / "list_eval_partition.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:-8]) + "\n")
    with pytest.warns(UserWarning) as warned:
        assert main(["info", "--data-root", str(root)]) == 0
    text = " ".join(str(w.message) for w in warned)
    assert "5 are not on disk" in text and "no row for" in text


def test_unreadable_image_in_the_middle_of_a_dataset_is_left_out(dataset, tmp_path, capsys):
    (dataset / "img_align_celeba" / "000007.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.warns(UserWarning, match="000007.jpg"):
        code = main(["train", "--data-root", str(dataset), "--out", str(tmp_path / "run"), "--epochs", "1",
                     "--arch", "no_conv3_no_fc1", "--image-size", "32", "--cache-dir", str(tmp_path / "cache"),
                     "--no-progress"])
    assert code == 0


def test_cache_from_different_settings_is_not_reused(dataset, tmp_path, capsys):
    cache = tmp_path / "cache"
    for size in ("32", "48"):
        assert main(["train", "--data-root", str(dataset), "--out", str(tmp_path / f"run{size}"), "--epochs", "1",
                     "--arch", "cnn4", "--image-size", size, "--cache-dir", str(cache), "--no-progress"]) == 0
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 2


@pytest.fixture
def checkpoint_files(tmp_path, dataset):
    good = tmp_path / "good.safetensors"
    shutil.copyfile(DEMO_RGB, good)
    other = tmp_path / "other_arch.safetensors"
    from celeba_model.models.checkpoint import load_checkpoint, save_checkpoint
    from celeba_model.models.registry import create_model, model_spec

    meta = load_checkpoint(DEMO_RGB).meta
    save_checkpoint(other, create_model(model_spec("no_conv3", 3, 10, 64)), meta)  # weights disagree with meta
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(DEMO_RGB.read_bytes()[:100_000])
    pickled = tmp_path / "pickled.safetensors"
    torch.save(create_model(model_spec("paper", 3, 10, 64)).state_dict(), pickled)
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"surprise": 1}))
    return {"other": other, "truncated": truncated, "pickled": pickled, "evil": evil}


@pytest.mark.parametrize("kind, words", [
    ("other", "do not fit architecture 'paper'"),
    ("truncated", "truncated or corrupt"),
    ("pickled", "pickle-based PyTorch file"),
    ("evil", "pickle-based PyTorch file"),
])
def test_bad_checkpoints_are_refused_by_evaluate(kind, words, checkpoint_files, dataset, tmp_path, capsys):
    err = _cli_error(capsys, ["evaluate", "--checkpoint", str(checkpoint_files[kind]), "--data-root", str(dataset),
                              "--out", str(tmp_path / "eval"), "--no-progress"])
    assert words in err
    assert not (tmp_path / "eval").exists()


# ---- The same data-path failures in the dashboard ------------------------------------------------

@pytest.fixture
def bad_workspace(dashboard_workspace, tmp_path, monkeypatch):
    """The shared dashboard workspace with a pickle posing as a checkpoint (removed afterwards)."""
    bad = dashboard_workspace / "checkpoints" / "zz_pickled.safetensors"
    torch.save({"weights": torch.zeros(2)}, bad)
    monkeypatch.setenv("CELEBA_WORKSPACE", str(dashboard_workspace))
    yield dashboard_workspace
    bad.unlink()


def test_dashboard_reports_a_pickled_checkpoint_and_a_malformed_dataset(bad_workspace, celeba_factory):
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=180).run()
    upload = at.switch_page("views/upload.py").run()
    upload.selectbox(key="upload_checkpoint").set_value("checkpoints/zz_pickled.safetensors").run()
    assert not upload.exception
    assert any("cannot be used" in e.value and "pickle-based" in e.value for e in upload.error)

    root = celeba_factory(n=8)
    path = root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[3] = lines[3] + " -1"
    path.write_text("\n".join(lines) + "\n")
    before = sorted(p for p in (bad_workspace / "runs").rglob("*") if p.is_file())
    at.sidebar.text_input(key="data_root").set_value(str(root)).run()
    at.sidebar.selectbox(key="eval_checkpoint").set_value("checkpoints/demo/paper.safetensors").run()
    next(b for b in at.sidebar.button if b.label == "Evaluate").click().run()
    assert not at.exception
    assert any("list_attr_celeba.txt:4: expected 41 fields" in e.value for e in at.sidebar.error)
    assert sorted(p for p in (bad_workspace / "runs").rglob("*") if p.is_file()) == before
