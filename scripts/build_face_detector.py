"""Rebuild celeba_model/photo/assets/face_detector/face_detection_short_range.tflite from the mediapipe 0.10.21 wheel.

    python scripts/build_face_detector.py [--venv /tmp/mediapipe-0.10.21-build] [--keep-venv]

Why a build step: mediapipe 1.2.x (the project's version) ships no .tflite models and its metadata
writer does not import (it needs ``mediapipe.tasks.cc``), while its Tasks ``FaceDetector`` needs a
model carrying TFLite metadata (input normalization). Google's BlazeFace short-range model ships,
with that metadata, inside the mediapipe 0.10.21 wheel (the last line with the legacy solutions
API; it wants numpy<2 and protobuf<5, so it cannot live in the project venv).

What the script does:

1. creates a throwaway virtualenv (``--venv``, default under /tmp), downloads the
   ``mediapipe==0.10.21`` wheel from PyPI with pip, records its SHA-256, and installs it there
   with ``numpy<2`` and ``protobuf<5`` pinned;
2. in that venv, reads the model's metadata with 0.10.21's own ``MetadataDisplayer`` and checks
   that the input tensor says RGB with normalization mean 127.5 / std 127.5 (input in [-1, 1]);
   only when it does not (or with ``--rewrite-metadata``) it writes that metadata with 0.10.21's
   generic ``metadata_writers.metadata_writer.MetadataWriter``;
3. copies the model and the wheel's Apache-2.0 LICENSE to ``celeba_model/photo/assets/face_detector/``
   (package data, so a plain ``pip install .`` ships it), loads the model with this interpreter's
   mediapipe Tasks ``FaceDetector`` as a check (optionally detecting a face on ``--check-image``),
   and writes ``celeba_model/photo/assets/face_detector/README.md`` with the origin, license and SHA-256,
   keeping its "Calibration" section (the measurements behind the detector's settings, which a
   rebuild does not redo) as it was.

Needs network access to PyPI; takes about a minute and ~1 GB in the throwaway venv (mediapipe
0.10.21 pulls jax and opencv), which is deleted afterwards unless ``--keep-venv`` is given. The
shipped package never downloads anything: it only reads the committed model file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = REPO_ROOT / "celeba_model" / "photo" / "assets" / "face_detector"  # package data, see pyproject.toml
MODEL_NAME = "face_detection_short_range.tflite"
MEDIAPIPE_VERSION = "0.10.21"
PATH_IN_WHEEL = "mediapipe/modules/face_detection/face_detection_short_range.tflite"
PINS = ["numpy<2", "protobuf<5"]

# Runs inside the throwaway venv (mediapipe 0.10.21). argv: output model path, output JSON path, "rewrite"|"keep".
_INSIDE_VENV = r'''
import json, sys
from pathlib import Path
import mediapipe
from mediapipe.tasks.python.metadata import metadata

out_model, out_json, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
package_root = Path(mediapipe.__file__).resolve().parent
model_path = package_root / "modules" / "face_detection" / "face_detection_short_range.tflite"
original = model_path.read_bytes()

def read_metadata(buffer):
    try:
        return json.loads(metadata.MetadataDisplayer.with_model_buffer(buffer).get_metadata_json())
    except ValueError:  # "The model does not have metadata."
        return None

def normalization(md):
    try:
        tensor = md["subgraph_metadata"][0]["input_tensor_metadata"][0]
        units = [u for u in tensor.get("process_units", []) if u["options_type"] == "NormalizationOptions"]
        return {"mean": units[0]["options"]["mean"], "std": units[0]["options"]["std"],
                "color_space": tensor["content"]["content_properties"].get("color_space")}
    except (KeyError, IndexError, TypeError):
        return None

found = read_metadata(original)
found_norm = normalization(found) if found else None
ok = found_norm == {"mean": [127.5], "std": [127.5], "color_space": "RGB"}
written = None
if mode == "rewrite" or not ok:
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer
    writer = metadata_writer.MetadataWriter.create(bytearray(original))
    writer.add_general_info("Short Range Face Detection", "Detects human face with frontal camera")
    writer.add_image_input(norm_mean=[127.5], norm_std=[127.5],
                           color_space_type=metadata_writer.MetadataWriter.color_space_types.RGB)
    writer.add_feature_output("raw boxes/keypoints", "Undecoded face bboxes location and keypoints")
    writer.add_feature_output("scores", "Scores of the detected bboxes.")
    model, _ = writer.populate()
    written = read_metadata(bytes(model))
    out_model.write_bytes(bytes(model))
else:
    out_model.write_bytes(original)
out_json.write_text(json.dumps({
    "mediapipe_version": mediapipe.__version__,
    "model_path_in_package": str(model_path.relative_to(package_root.parent)),
    "original_size": len(original),
    "original_metadata": found,
    "original_normalization": found_norm,
    "metadata_written": written,
    "written_normalization": normalization(written) if written else None,
}, indent=2))
'''


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        for block in iter(lambda: fp.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def make_venv(venv: Path) -> tuple[Path, Path]:
    """Create the venv, download the wheel into it, install the wheel with the pins; return (python, wheel)."""
    python = venv / "bin" / "python"
    if not python.exists():
        run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)])
    wheels = venv / "wheels"
    run([str(python), "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         f"mediapipe=={MEDIAPIPE_VERSION}", "-d", str(wheels)])
    found = sorted(wheels.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if not found:
        sys.exit(f"pip did not leave a mediapipe {MEDIAPIPE_VERSION} wheel in {wheels}")
    wheel = found[-1]
    run([str(python), "-m", "pip", "install", "--quiet", str(wheel), *PINS])
    return python, wheel


def license_from_wheel(wheel: Path, dest: Path) -> None:
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.endswith(".dist-info/LICENSE")]
        if not names:
            sys.exit(f"{wheel.name} holds no dist-info/LICENSE")
        dest.write_bytes(archive.read(names[0]))


def check_with_project_mediapipe(model: Path, image: Path | None) -> str:
    """Load the model with this interpreter's mediapipe Tasks FaceDetector; describe what happened."""
    try:
        import mediapipe as mp
        import numpy as np
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as err:
        return f"not checked: this interpreter cannot import mediapipe ({err})"
    options = vision.FaceDetectorOptions(
        base_options=BaseOptions(model_asset_buffer=model.read_bytes()),
        running_mode=vision.RunningMode.IMAGE,
    )
    detector = vision.FaceDetector.create_from_options(options)
    try:
        blank = np.full((240, 320, 3), 128, np.uint8)
        found_blank = len(detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=blank)).detections)
        text = f"loaded by mediapipe {mp.__version__} Tasks FaceDetector; {found_blank} faces on a blank image"
        if image is not None:
            from PIL import Image

            pixels = np.ascontiguousarray(np.asarray(Image.open(image).convert("RGB")))
            faces = detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels)).detections
            text += f"; {len(faces)} face(s) on {image.name}" + (
                f" (score {faces[0].categories[0].score:.2f})" if faces else "")
    finally:
        detector.close()
    return text


CALIBRATION_HEADING = "## Calibration"  # from this heading to the end, the README is kept across rebuilds

README = """# Face detector model

`{model}`: Google's **BlazeFace short-range** face detector (MediaPipe), a 128x128-input TFLite
model for faces within about 2 m of the camera (faces filling a good part of the image). Used by
`celeba_model/photo/detection.py` through mediapipe's Tasks `FaceDetector`; the package only reads
this file and never downloads anything.

| | |
|---|---|
| File | `{model}`, {size:,} bytes |
| SHA-256 | `{sha}` |
| Origin | PyPI wheel `{wheel}` (SHA-256 `{wheel_sha}`), path inside the wheel `{path_in_wheel}` |
| License | Apache License 2.0 (mediapipe's license; the wheel's `LICENSE` is copied here as `LICENSE`) |
| Metadata | {metadata_note} |

Why it comes from an old wheel: mediapipe 1.2.x ships no `.tflite` models, and its metadata writer
cannot be imported (it needs `mediapipe.tasks.cc`), while the Tasks `FaceDetector` requires a model
with TFLite metadata giving the input normalization. mediapipe 0.10.21 still bundles the legacy
solutions' models; it needs numpy<2 and protobuf<5, so it is only installed in a throwaway venv.

Input normalization recorded in the model's metadata: {norm}.

Check: {check}

Rebuild (needs PyPI; about a minute; the throwaway venv is deleted afterwards):

```bash
.venv/bin/python scripts/build_face_detector.py
```
"""


def kept_calibration(*readmes: Path) -> str | None:
    """The calibration section (its heading to the end of the file) of the first README holding one."""
    for readme in readmes:
        try:
            text = readme.read_text()
        except FileNotFoundError:
            continue
        at = text.find("\n" + CALIBRATION_HEADING + "\n")
        if at >= 0:
            return text[at + 1:]
    return None


def render_readme(calibration: str | None, **fields: object) -> str:
    """The README: the generated sections (``README`` filled with ``fields``), then the kept calibration."""
    text = README.format(**fields)
    return text if calibration is None else f"{text}\n{calibration}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", type=Path, default=None,
                        help="throwaway virtualenv to create or reuse (default: a new folder under /tmp, "
                             "deleted afterwards)")
    parser.add_argument("--keep-venv", action="store_true", help="do not delete the throwaway venv at the end")
    parser.add_argument("--out", type=Path, default=OUT_DIR,
                        help="output folder (default: celeba_model/photo/assets/face_detector)")
    parser.add_argument("--rewrite-metadata", action="store_true",
                        help="write fresh normalization metadata even when the wheel's model already has it")
    parser.add_argument("--check-image", type=Path, default=None, help="an image with a face to check the result on")
    args = parser.parse_args()

    # Read before anything is written: the output folder's README, else the package's.
    calibration = kept_calibration(args.out / "README.md", OUT_DIR / "README.md")
    venv = args.venv or Path(tempfile.mkdtemp(prefix="mediapipe-0.10.21-build-"))
    delete_venv = not args.keep_venv and args.venv is None
    try:
        python, wheel = make_venv(venv)
        args.out.mkdir(parents=True, exist_ok=True)
        model = args.out / MODEL_NAME
        info_path = venv / "model_info.json"
        script = venv / "extract_face_model.py"
        script.write_text(_INSIDE_VENV)
        tmp_model = args.out / (MODEL_NAME + ".tmp")
        run([str(python), str(script), str(tmp_model), str(info_path), "rewrite" if args.rewrite_metadata else "keep"])
        info = json.loads(info_path.read_text())
        tmp_model.replace(model)
        license_from_wheel(wheel, args.out / "LICENSE")
        wheel_sha = sha256(wheel)
    finally:
        if delete_venv:
            shutil.rmtree(venv, ignore_errors=True)

    if info["metadata_written"] is None:
        metadata_note = ("none added: the wheel's copy already carries TFLite metadata (\"Short Range Face "
                         "Detection\") with the input normalization; the file is byte-identical to the wheel's")
        norm = info["original_normalization"]
    else:
        reason = "on request (--rewrite-metadata)" if args.rewrite_metadata else "the wheel's copy lacked it"
        metadata_note = (f"written by mediapipe {info['mediapipe_version']}'s generic "
                         f"`metadata_writers.metadata_writer.MetadataWriter` ({reason}): general info, an RGB "
                         "image input with normalization, two feature outputs (raw boxes/keypoints, scores)")
        norm = info["written_normalization"]
    norm_text = f"{norm['color_space']}, mean {norm['mean']}, std {norm['std']} (pixels to [-1, 1])"
    check = check_with_project_mediapipe(model, args.check_image)
    readme = render_readme(
        calibration,
        model=MODEL_NAME, size=model.stat().st_size, sha=sha256(model), wheel=wheel.name, wheel_sha=wheel_sha,
        path_in_wheel=PATH_IN_WHEEL, metadata_note=metadata_note, norm=norm_text, check=check,
    )
    (args.out / "README.md").write_text(readme)
    if calibration is None:
        print(f"warning: no '{CALIBRATION_HEADING}' section found to keep; restore it in {args.out / 'README.md'} "
              "from version control", file=sys.stderr)
    print(f"wrote {model} ({model.stat().st_size:,} bytes, sha256 {sha256(model)})")
    print(f"metadata: {metadata_note}")
    print(f"check: {check}")


if __name__ == "__main__":
    main()
