"""The README's "Python API" example runs as written (only the data paths stand for test data)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_python_example() -> str:
    body = (REPO / "README.md").read_text().split("## Python API\n", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", body, flags=re.S)
    return code


def test_the_python_api_example_runs(demo_root, tmp_path, monkeypatch, capsys):
    workspace = tmp_path / "checkout"
    shipped = workspace / "checkpoints" / "celeba"
    shipped.mkdir(parents=True)
    for name in ("attrnet.safetensors", "results.json", "experiments.json"):
        shutil.copyfile(REPO / "checkpoints" / "celeba" / name, shipped / name)
    photos = workspace / "photos"
    photos.mkdir()
    for face in sorted((demo_root / "img_align_celeba").glob("*.jpg"))[:2]:
        shutil.copyfile(face, photos / face.name)
    (photos / "notes.txt").write_text("not a photo")  # ignored: not a photo file name
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("CELEBA_WORKSPACE", str(workspace))
    monkeypatch.setenv("CELEBA_MODEL_CACHE", str(tmp_path / "cache"))

    code = readme_python_example().replace('"/data/celeba"', repr(str(demo_root)))
    exec(compile(code, "README.md (Python API)", "exec"), {})

    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("images, ['Eyeglasses', 'Bangs', 'Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Gray_Hair', "
                           "'Male', 'Pale_Skin', 'Smiling', 'Young']")
    assert out[1].startswith("macro-F1 at 0.5: 0.") and out[2].startswith("macro-F1 tuned: 0.") and "95% CI [0." in out[2]
    assert [line.split()[0] for line in out[3:5]] == [f"photos/{p.name}" for p in sorted(photos.glob("*.jpg"))]
    assert out[5].startswith("runs/my-paper/best.safetensors 0.")
    assert (workspace / "runs" / "attrnet" / "val" / "predictions.npz").is_file()
