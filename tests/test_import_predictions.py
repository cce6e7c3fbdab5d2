"""Importing another tool's predictions (CSV or NPZ) as predictions artifacts, and exporting them back."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from celeba_model.analysis.reports import attribute_report, resolve_thresholds
from celeba_model.analysis.slices import slice_report
from celeba_model.analysis.thresholds import tune_run
from celeba_model.attributes import CELEBA_ATTRIBUTES, PAPER_ATTRIBUTES
from celeba_model.cli import main
from celeba_model.data.index import load_index
from celeba_model.data.transforms import PreprocessConfig
from celeba_model.errors import CelebAModelError, ConfigError
from celeba_model.evaluation.evaluate import EvalConfig, evaluate_checkpoint
from celeba_model.evaluation.imported import (
    ImportColumnsError,
    ImportFormatError,
    ImportRowsError,
    ImportValuesError,
    export_predictions,
    export_predictions_csv,
    import_predictions,
)
from celeba_model.evaluation.predictions import PredictionsError, load_predictions
from celeba_model.models.checkpoint import save_checkpoint
from celeba_model.models.registry import create_model, model_spec
from celeba_model.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ours(demo_root, tmp_path_factory) -> dict:
    """Our own artifacts on the demo's val and test splits, from a small seeded (untrained) checkpoint."""
    base = tmp_path_factory.mktemp("ours")
    torch.manual_seed(0)
    spec = model_spec("paper", 3, len(PAPER_ATTRIBUTES), 32)
    meta = {"model": spec.to_dict(), "attributes": list(PAPER_ATTRIBUTES),
            "preprocess": PreprocessConfig(image_size=32, color="rgb").to_dict()}
    save_checkpoint(base / "ours.safetensors", create_model(spec).eval(), meta)
    index = load_index([demo_root])
    return {split: evaluate_checkpoint(base / "ours.safetensors", index, base / split,
                                       EvalConfig(split=split, cache_dir=str(base / "cache"), progress=False))
            for split in ("val", "test")}


def _import(tmp_path: Path, source, demo_root: Path, **options):
    options.setdefault("name", "mine")
    return import_predictions(source, demo_root, workspace=tmp_path / "ws", **options)


def _csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")
    return path


def _same_metrics(a: dict, b: dict) -> None:
    assert a["attributes"] == b["attributes"] and a["summary"] == b["summary"] and a["images"] == b["images"]


def test_an_exported_csv_imports_back_to_the_same_artifact_and_metrics(ours, demo_root, tmp_path):
    run = ours["test"]
    source = export_predictions_csv(run, tmp_path / "ours_test.csv")
    imported, summary = _import(tmp_path, source, demo_root, split="test")
    assert imported.folder == tmp_path / "ws" / "runs" / "mine" / "test"
    back = load_predictions(imported.folder)
    assert np.array_equal(back.probabilities, run.probabilities)  # to the bit: float32 through 9 digits
    for name in ("labels", "files", "identity", "celeba_labels", "paths"):
        assert np.array_equal(getattr(back, name), getattr(run, name)), name
    assert back.attributes == run.attributes and back.name == "mine/test"
    assert back.meta["checkpoint"] == {"path": None, "arch": "imported", "best_epoch": None,
                                       "weights_sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    assert back.meta["imported"]["source"] == str(source.resolve()) and back.meta["split"] == "test"
    assert back.meta["counts"] == {k: run.meta["counts"][k] for k in ("images", "positives", "identities")}
    thresholds = np.linspace(0.3, 0.7, len(run.attributes))
    _same_metrics(attribute_report(back, thresholds, n_boot=50), attribute_report(run, thresholds, n_boot=50))
    assert (summary.rows, summary.matched, summary.split, summary.split_images) == (len(run), len(run), "test", len(run))
    assert summary.people == run.meta["counts"]["identities"] and not summary.logits
    assert summary.attributes == list(PAPER_ATTRIBUTES) and summary.folder == imported.folder
    (tmp_path / "ours_test.csv.gz").write_bytes(gzip.compress(source.read_bytes()))
    zipped, _ = _import(tmp_path, tmp_path / "ours_test.csv.gz", demo_root, name="zipped")
    assert np.array_equal(zipped.probabilities, run.probabilities)


def test_logits_paths_and_any_column_case_import(ours, demo_root, tmp_path):
    run = ours["val"]
    p = np.clip(run.probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    logits = np.log(p) - np.log1p(-p)
    # Folders dropped, and another extension matches by the image's name (000123.png is 000123.jpg).
    rows = [[f"img_align_celeba/{Path(f).stem}.png", *(f"{v:.17g}" for v in row)] for f, row in zip(run.files, logits)]
    source = _csv(tmp_path / "logits.csv", ["image_id", *(a.lower() for a in run.attributes)], rows)
    imported, summary = _import(tmp_path, source, demo_root, logits=True)  # the split: the rows' own
    assert summary.logits and summary.split == "val" and imported.attributes == run.attributes
    assert np.allclose(imported.probabilities, run.probabilities, atol=1e-6)
    assert np.array_equal(imported.labels, run.labels)


def test_npz_files_import_with_probabilities_or_logits(ours, demo_root, tmp_path):
    run = ours["test"]
    export_predictions(run, tmp_path / "ours.npz")
    imported, summary = _import(tmp_path, tmp_path / "ours.npz", demo_root, split="test")
    assert summary.format == "npz" and np.array_equal(imported.probabilities, run.probabilities)
    # Paths with folders, two attributes only, as logits (the array's name says so).
    columns = [run.attributes.index(a) for a in ("Male", "Smiling")]
    p = np.clip(run.probabilities[:, columns].astype(np.float64), 1e-7, 1 - 1e-7)
    np.savez(tmp_path / "logits.npz", files=np.array([f"/elsewhere/celeba/{f}" for f in run.files]),
             attributes=np.array(["Male", "Smiling"]), logits=np.log(p) - np.log1p(-p))
    imported, summary = _import(tmp_path, tmp_path / "logits.npz", demo_root, name="two")
    assert summary.logits and imported.attributes == ["Male", "Smiling"]
    assert np.allclose(imported.probabilities, run.probabilities[:, columns], atol=1e-6)


def test_a_file_object_imports_as_an_upload(ours, demo_root, tmp_path):
    buffer = io.BytesIO(export_predictions_csv(ours["test"], tmp_path / "x.csv").read_bytes())
    buffer.name = "my model's test.csv"
    imported, summary = import_predictions(buffer, demo_root, workspace=tmp_path / "ws")
    assert summary.source == "my model's test.csv" and imported.folder.parent.name == "my-model-s-test"


def test_rows_of_other_splits_are_refused_kept_apart_or_imported_together(ours, demo_root, tmp_path):
    val, test = ours["val"], ours["test"]
    header = ["file", *test.attributes]
    rows = [[f, *r] for run in (val, test) for f, r in zip(run.files, run.probabilities.round(4))]
    source = _csv(tmp_path / "both.csv", header, rows)
    with pytest.raises(ImportRowsError, match=r"several splits \(val: \d+, test: \d+\)"):
        _import(tmp_path, source, demo_root)
    with pytest.raises(ImportRowsError, match=rf"{len(val):,} of {len(rows):,} rows are not images of the test split"):
        _import(tmp_path, source, demo_root, split="test")
    assert not (tmp_path / "ws").exists()
    kept, summary = _import(tmp_path, source, demo_root, split="test", drop_other_splits=True)
    assert kept.files.tolist() == test.files.tolist() and summary.dropped_other_splits == len(val)
    assert "Left out" in str(summary)
    together, _ = _import(tmp_path, source, demo_root, split="all")
    assert len(together) == len(rows) and together.folder.name == "all"
    with pytest.raises(ConfigError, match="needs --split"):
        _import(tmp_path, source, demo_root, drop_other_splits=True)


def test_another_files_run_is_kept_unless_overwrite(ours, demo_root, tmp_path):
    first = export_predictions_csv(ours["test"], tmp_path / "first.csv")
    _import(tmp_path, first, demo_root)
    _import(tmp_path, first, demo_root)  # the same file again replaces its own run
    second = tmp_path / "second.csv"
    second.write_text(first.read_text().replace("\n", "\r\n"))
    with pytest.raises(PredictionsError, match="pass --overwrite"):
        _import(tmp_path, second, demo_root)
    _import(tmp_path, second, demo_root, overwrite=True)


# One bad file per case: (file name, content or a writer, options, error class, message pattern).
def _bad_cases(test_files: list[str], val_file: str):
    a, b = test_files[:2]
    return {
        "empty": ("p.csv", "", {}, ImportFormatError, "is empty"),
        "header only": ("p.csv", "file,Male\n", {}, ImportFormatError, "a header but no rows"),
        "unknown format": ("p.json", '{"file": 1}', {}, ImportFormatError, "unknown format '.json'"),
        "binary csv": ("p.csv", b"\x89PNG\r\n\x1a\n\x00\x00\xff", {}, ImportFormatError, "not a text CSV"),
        "corrupt npz": ("p.npz", b"PK\x03\x04garbage", {}, ImportFormatError, "not a readable .npz"),
        "npz objects": ("p.npz", {"files": np.array([a], dtype=object), "attributes": np.array(["Male"]),
                                  "probabilities": np.array([[0.5]])}, {}, ImportFormatError, "object arrays"),
        "npz no values": ("p.npz", {"files": np.array([a]), "attributes": np.array(["Male"])}, {}, ImportFormatError,
                          "no probabilities or logits"),
        "no file column": ("p.csv", f"name,Male\n{a},0.5\n", {}, ImportColumnsError, "no file-name column"),
        "no attributes": ("p.csv", f"file,score\n{a},0.5\n", {}, ImportColumnsError, "no attribute columns"),
        "misspelled": ("p.csv", f"file,Male,Smilling\n{a},0.5,0.5\n", {}, ImportColumnsError,
                       r"'Smilling' \(did you mean Smiling\?\)"),
        "npz unknown name": ("p.npz", {"files": np.array([a]), "attributes": np.array(["Sunglasses"]),
                                       "probabilities": np.array([[0.5]])}, {}, ImportColumnsError, "'Sunglasses'"),
        "missing attribute": ("p.csv", f"file,Male\n{a},0.5\n", {"attributes": ["Male", "Young"]}, ImportColumnsError,
                              "no column for Young"),
        "unknown images": ("p.csv", f"file,Male\n{a},0.5\nnot_ours.jpg,0.5\n", {}, ImportRowsError,
                           r"1 of 2 file names are not images of .*: not_ours.jpg \(line 3\)"),
        "duplicates": ("p.csv", f"file,Male\n{a},0.5\n{b},0.5\nimg/{a},0.6\n", {}, ImportRowsError,
                       rf"1 image\(s\) appear more than once: {a} \(line 2, line 4\)"),
        "other split": ("p.csv", f"file,Male\n{a},0.5\n{val_file},0.5\n", {"split": "test"}, ImportRowsError,
                        rf"1 of 2 rows are not images of the test split .*{val_file} \(val\)"),
        "not a probability": ("p.csv", f"file,Male\n{a},0.5\n{b},1.5\n", {}, ImportValuesError,
                              r"column Male, line 3: 1.5 is not a probability .*pass --logits"),
        "nan": ("p.csv", f"file,Male\n{a},nan\n{b},0.5\n", {}, ImportValuesError, "column Male, line 2: nan .*NaN or inf"),
        "inf": ("p.csv", f"file,Male\n{a},0.5\n{b},-inf\n", {"logits": True}, ImportValuesError, "line 3: -inf"),
        "not a number": ("p.csv", f"file,Male\n{a},yes\n", {}, ImportValuesError, "line 2: 'yes' is not a number"),
        "empty value": ("p.csv", f"file,Male,Young\n{a},,0.5\n", {}, ImportValuesError, "column Male, line 2: is empty"),
        "ragged row": ("p.csv", f"file,Male\n{a},0.5,0.1\n", {}, ImportFormatError, "line 2: 3 fields, but the header has 2"),
        "bad name": ("p.csv", f"file,Male\n{a},0.5\n", {"name": "../elsewhere"}, ConfigError, "not a usable run name"),
        "logits of probabilities": ("p.npz", {"files": np.array([a]), "attributes": np.array(["Male"]),
                                              "probabilities": np.array([[0.5]])}, {"logits": True}, ConfigError,
                                    "drop --logits"),
    }


@pytest.fixture(scope="module")
def bad_cases(ours):
    return _bad_cases(ours["test"].files.tolist(), ours["val"].files[0])


@pytest.mark.parametrize("case", list(_bad_cases(["a.jpg", "b.jpg"], "c.jpg")))
def test_each_bad_file_is_one_specific_error_and_writes_nothing(case, bad_cases, demo_root, tmp_path):
    file_name, content, options, error, pattern = bad_cases[case]
    path = tmp_path / file_name
    if isinstance(content, dict):
        np.savez(path.with_suffix(""), **content)
    else:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(error, match=pattern) as caught:
        _import(tmp_path, path, demo_root, **{"name": "bad", **options})
    assert isinstance(caught.value, CelebAModelError) and "\n" not in str(caught.value)
    assert not (tmp_path / "ws").exists()


def test_the_commands_import_export_and_refuse_bad_files_in_one_line(ours, demo_root, tmp_path, capsys):
    ws = tmp_path / "ws"
    assert main(["export-predictions", "--run", str(ours["test"].folder), "--out", str(tmp_path / "p.csv")]) == 0
    assert "Wrote" in capsys.readouterr().out
    assert main(["import-predictions", str(tmp_path / "p.csv"), "--data-root", str(demo_root), "--split", "test",
                 "--name", "cli", "--workspace", str(ws)]) == 0
    out = capsys.readouterr().out
    assert f"Matched {len(ours['test']):,} images" in out and f"Wrote {ws / 'runs' / 'cli' / 'test'}" in out
    assert main(["report", "--run", str(ws / "runs" / "cli" / "test"), "--bootstrap", "20"]) == 0
    capsys.readouterr()
    bad = _csv(tmp_path / "bad.csv", ["file", "Male"], [["nobody.jpg", 0.5]])
    assert main(["import-predictions", str(bad), "--data-root", str(demo_root), "--name", "bad",
                 "--workspace", str(ws)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "nobody.jpg" in err[0]
    assert not (ws / "runs" / "bad").exists()


def test_an_imported_run_works_in_the_analysis_functions(ours, demo_root, tmp_path):
    val, _ = _import(tmp_path, export_predictions_csv(ours["val"], tmp_path / "val.csv"), demo_root, split="val")
    test, _ = _import(tmp_path, export_predictions_csv(ours["test"], tmp_path / "test.csv"), demo_root, split="test")
    tuned = tune_run(val)
    thresholds, source = resolve_thresholds(tuned["file"], test)
    assert source and len(attribute_report(test, thresholds, n_boot=20)["attributes"]) == len(test.attributes)
    assert len(slice_report(test, "Smiling", "Male", n_boot=20).groups) == 2
    with pytest.raises(ConfigError, match="imported from .* no checkpoint stores their thresholds"):
        resolve_thresholds("checkpoint", test, tmp_path / "ws")
    assert test.folder in Workspace(tmp_path / "ws").list_runs()


def test_the_public_api_has_them():
    import celeba_model as cm

    assert cm.import_predictions is import_predictions and cm.export_predictions_csv is export_predictions_csv


def test_the_readme_snippet_writes_a_file_the_readme_command_imports(demo_root, tmp_path, monkeypatch, capsys):
    """The README's "Your own model's predictions": its Python with torchvision's CelebA stood in for by
    the demo's test split and a made-up model, then its command."""
    import torchvision

    body = (REPO / "README.md").read_text().split("## Your own model's predictions\n", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", body, flags=re.S)
    [command] = re.findall(r"```bash\n(.*?)```", body, flags=re.S)
    index = load_index([demo_root])
    test_files = [index.files[i] for i in index.split_indices("test")]

    class DemoCelebA(torch.utils.data.Dataset):
        def __init__(self, root, split, target_type, transform):
            assert split == "test" and target_type == "attr"
            self.filename, self.attr_names = test_files, [*CELEBA_ATTRIBUTES, ""]  # torchvision's trailing ''

        def __len__(self):
            return len(self.filename)

        def __getitem__(self, i):
            return torch.full((3,), float(i)), torch.zeros(40)

    monkeypatch.setattr(torchvision.datasets, "CelebA", DemoCelebA)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CELEBA_WORKSPACE", str(tmp_path))
    exec(compile(code, "README.md", "exec"), {"model": lambda x: x[:, :1] * torch.linspace(-1, 1, 40) / 100,
                                                "transform": None})
    words = shlex.split(command.replace("/data/celeba", str(demo_root)))
    assert words[:3] == ["python", "-m", "celeba_model"]
    assert main(words[3:]) == 0, capsys.readouterr().err
    run = load_predictions(tmp_path / "runs" / "my-model" / "test")
    assert run.attributes == list(CELEBA_ATTRIBUTES) and run.files.tolist() == test_files


def test_val_and_test_imported_from_two_files_pair_up_for_tuning(ours, demo_root, tmp_path):
    from celeba_model.catalogue import sibling_run

    val, _ = _import(tmp_path, export_predictions_csv(ours["val"], tmp_path / "val.csv"), demo_root)
    test, _ = _import(tmp_path, export_predictions_csv(ours["test"], tmp_path / "test.csv"), demo_root)
    assert sibling_run(test, "val") == val.folder  # one import name is one model, though two files
    other, _ = _import(tmp_path, export_predictions_csv(ours["val"], tmp_path / "other.csv"), demo_root, name="other")
    assert sibling_run(test, "val") == val.folder and sibling_run(other, "test") is None
    with pytest.raises(ConfigError, match="imported from .*test.csv: no checkpoint stores their thresholds"):
        resolve_thresholds("checkpoint", test, tmp_path / "ws")
