"""The shipped models: which one the dashboard opens on and photos are predicted with (chosen on
validation, never on test), the summary files that describe them, and how shipped artifacts name
their images."""

from __future__ import annotations

import json

import pytest

from celeba_model.catalogue import Catalogue
from celeba_model.errors import ConfigError
from celeba_model.models.header import read_checkpoint_meta
from celeba_model.models.summary import (
    AT_05,
    EXPERIMENTS_FILE,
    PAPER_FAMILY_FILE,
    SUMMARY_FORMAT,
    ModelRecord,
    ModelSummary,
    OperatingPoint,
    TuningCheck,
    read_summary,
    write_summary,
)
from celeba_model.workspace import ARTIFACT_FILE, REPO_ROOT, Workspace


def _ship(root, name: str) -> None:
    folder = root / "checkpoints" / "celeba"
    (folder / "runs" / name / "test").mkdir(parents=True, exist_ok=True)
    (folder / "runs" / name / "test" / ARTIFACT_FILE).write_bytes(b"")
    (folder / f"{name}.safetensors").write_bytes(b"")


def _record(name: str, best_val_macro_f1: float, shipped: bool = True) -> ModelRecord:
    return ModelRecord(name=name, checkpoint=f"{name}.safetensors" if shipped else None, arch="paper", options={},
                       best_epoch=1, best_val_macro_f1=best_val_macro_f1)


def test_default_model_is_the_best_on_validation_across_both_shipped_families(tmp_path):
    folder = tmp_path / "checkpoints" / "celeba"
    folder.mkdir(parents=True)
    for name in ("paper", "paper_rgb", "attrnet"):
        _ship(tmp_path, name)
    write_summary(folder / PAPER_FAMILY_FILE, ModelSummary(models=[
        _record("paper", 0.74), _record("paper_rgb", 0.79),
        _record("gone", 0.99),  # listed, but its file is not shipped
    ]))
    write_summary(folder / EXPERIMENTS_FILE, ModelSummary(models=[
        _record("attrnet", 0.84),
        _record("cnn4", 0.95, shipped=False),  # never shipped: not a candidate
    ]))
    catalogue = Catalogue(Workspace(tmp_path))
    assert catalogue.real_data_validation_scores() == {"paper": 0.74, "paper_rgb": 0.79, "attrnet": 0.84}
    assert catalogue.default_model() == folder / "attrnet.safetensors"
    assert catalogue.default_run() == folder / "runs" / "attrnet" / "test"

    # A model chosen on real photos (default.json) comes first, and the dashboard opens on those photos.
    _ship(tmp_path, "photo_pick")
    (folder / "runs" / "photo_pick" / "wild_val").mkdir()
    (folder / "runs" / "photo_pick" / "wild_val" / ARTIFACT_FILE).write_bytes(b"")
    (folder / "default.json").write_text(json.dumps({"checkpoint": "photo_pick.safetensors", "split": "wild_val"}))
    assert catalogue.default_model() == folder / "photo_pick.safetensors"
    assert catalogue.default_run() == folder / "runs" / "photo_pick" / "wild_val"
    for broken in ('{"checkpoint": "gone.safetensors"}', "not json", '["photo_pick.safetensors"]'):
        (folder / "default.json").write_text(broken)  # a choice that cannot be used: validation decides
        assert catalogue.default_model() == folder / "attrnet.safetensors"
    (folder / "default.json").unlink()

    # Without the experiments summary the paper family decides.
    (folder / EXPERIMENTS_FILE).unlink()
    assert catalogue.default_model() == folder / "paper_rgb.safetensors"


def test_with_a_data_root_the_dashboard_opens_on_that_folders_newest_test_run(tmp_path):
    _ship(tmp_path, "attrnet")
    data = tmp_path / "my_celeba"
    data.mkdir()

    def run(folder, roots):
        folder.mkdir(parents=True)
        (folder / ARTIFACT_FILE).write_bytes(b"")
        (folder / "meta.json").write_text(json.dumps({"data_roots": [str(r) for r in roots]}))
        return folder

    catalogue = Catalogue(Workspace(tmp_path))
    shipped = tmp_path / "checkpoints" / "celeba" / "runs" / "attrnet" / "test"
    assert catalogue.default_run(data) == shipped  # no run of it yet: the usual default
    val = run(tmp_path / "runs" / "mine" / "val", [data])
    assert catalogue.default_run(data) == val
    test = run(tmp_path / "runs" / "mine" / "test", [tmp_path / "elsewhere", data / "." ])
    run(tmp_path / "runs" / "other" / "test", [tmp_path / "elsewhere"])
    assert catalogue.runs_on(data) == [test, val] and catalogue.default_run(data) == test
    # Runs kept in the CelebA folder itself (evaluated with --workspace there) count too.
    own = run(data / "runs" / "theirs" / "test", [data])
    assert catalogue.runs_on(data)[0] == own
    assert catalogue.default_run(None) == shipped and catalogue.runs_on(tmp_path / "nowhere") == []


def test_every_workspace_uses_the_one_image_cache_folder(tmp_path, monkeypatch):
    from celeba_model.data.cache import default_cache_dir

    monkeypatch.setenv("CELEBA_MODEL_CACHE", str(tmp_path / "cache"))
    assert Workspace(tmp_path / "a").cache_dir == Workspace(tmp_path / "b").cache_dir == tmp_path / "cache"
    assert default_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("CELEBA_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Workspace(tmp_path / "a").cache_dir == default_cache_dir() == tmp_path / "xdg" / "celeba_model"


def test_without_real_checkpoints_the_demo_model_is_the_default(tmp_path):
    demo = tmp_path / "checkpoints" / "demo"
    demo.mkdir(parents=True)
    (demo / "paper_rgb.safetensors").write_bytes(b"")
    (demo / "paper.safetensors").write_bytes(b"")
    assert Catalogue(Workspace(tmp_path)).default_model() == demo / "paper_rgb.safetensors"
    assert Catalogue(Workspace(tmp_path / "empty")).default_model() is None


def test_shipped_artifacts_name_images_beside_the_repository_relative_to_it(tmp_path):
    import numpy as np

    from celeba_model.catalogue import ship_artifact
    from celeba_model.evaluation.predictions import Predictions, load_predictions
    from celeba_model.workspace import REPO_ROOT

    beside = REPO_ROOT.parent / "shared" / "celeba" / "img_align_celeba" / "000001.jpg"
    elsewhere = tmp_path / "img_align_celeba" / "000002.jpg"
    if elsewhere.is_relative_to(REPO_ROOT.parent):
        pytest.skip(f"the temporary folder {tmp_path} lies beside the repository here")
    predictions = Predictions(
        probabilities=np.full((2, 1), 0.7, dtype=np.float32), labels=np.ones((2, 1), dtype=np.uint8),
        files=np.array(["000001.jpg", "000002.jpg"]), paths=np.array([str(beside), str(elsewhere)]),
        identity=np.array([1, 2]), meta={"attributes": ["Smiling"], "checkpoint": {"path": "x"}, "split": "test",
                                         "data_roots": [str(beside.parents[1])],
                                         "photos": {"source": [str(beside.parent)], "labels_root": str(beside.parents[1])}},
    )
    ship_artifact(predictions, "checkpoints/celeba/m.safetensors", tmp_path / "run")
    shipped = load_predictions(tmp_path / "run")
    assert list(shipped.paths) == ["../shared/celeba/img_align_celeba/000001.jpg", str(elsewhere)]
    assert shipped.meta["data_roots"] == ["../shared/celeba"] and shipped.meta["photos"]["labels_root"] == "../shared/celeba"
    assert shipped.meta["photos"]["source"] == ["../shared/celeba/img_align_celeba"]  # no machine's own folders
    assert shipped.meta["checkpoint"]["path"] == "checkpoints/celeba/m.safetensors"


def test_a_summary_reads_back_as_written_and_other_formats_are_refused(tmp_path):
    record = ModelRecord(
        name="attrnet", checkpoint="attrnet.safetensors", arch="attrnet", options={"arch": "attrnet", "augment": True},
        best_epoch=16, best_val_macro_f1=0.84, command="python -m celeba_model train ...", train_seconds=1361.4,
        test={AT_05: OperatingPoint(summary={"macro_f1": 0.76}, per_attribute={"Smiling": {"f1": 0.9}},
                                    summary_ci={"macro_f1": [0.72, 0.79]}, f1_ci={"Smiling": [0.85, 0.93]})},
        tuning_check=TuningCheck(mean_gain=-0.026, std_gain=0.028, share_improved=0.2, comparisons=100),
    )
    path = tmp_path / "experiments.json"
    write_summary(path, ModelSummary(models=[record, _record("cnn4", 0.82, shipped=False)], data={"images": 660}))
    summary = read_summary(path)
    assert summary.models[0] == record and summary.data == {"images": 660}
    assert [r.name for r in summary.shipped()] == ["attrnet"] and summary.get("cnn4").checkpoint is None
    assert summary.models[0].test[AT_05].macro_f1_ci == [0.72, 0.79]

    assert read_summary(tmp_path / "absent.json", missing_ok=True).models == []
    with pytest.raises(ConfigError, match="model summary not found"):
        read_summary(tmp_path / "absent.json")
    path.write_text(json.dumps({"variants": {}}))  # the layout before this format
    with pytest.raises(ConfigError, match="not a model summary of this version"):
        read_summary(path)
    path.write_text(json.dumps({"format": SUMMARY_FORMAT, "models": [{"name": "x", "shipped_as": "x"}]}))
    with pytest.raises(ConfigError, match="unknown ModelRecord field.*shipped_as"):
        read_summary(path)


def test_the_shipped_default_is_chosen_on_real_photos_and_opens_on_them():
    catalogue = Catalogue(Workspace(REPO_ROOT))
    scores = catalogue.real_data_validation_scores()
    assert set(scores) == {"paper", "no_conv3", "no_conv3_no_fc1", "paper_rgb", "attrnet"}
    choice = catalogue.default_choice()
    assert choice is not None and choice["split"] == "wild_val"
    default = catalogue.default_model()
    assert default == REPO_ROOT / "checkpoints" / "celeba" / choice["checkpoint"]
    assert catalogue.default_run() == default.parent / "runs" / default.stem / "wild_val"
    for split in ("val", "test", "wild_val"):  # its predictions ship on both aligned splits and the photos
        assert (default.parent / "runs" / default.stem / split / ARTIFACT_FILE).is_file()
    # An ensemble has no training of its own: its shipped member's history stands for it (Training page).
    trained = catalogue.trained_default()
    assert trained != default and trained.name in {m["checkpoint"] for m in read_checkpoint_meta(default).meta["ensemble"]}
    assert [r.name for r in catalogue.demo_manifest().shipped()] == ["paper", "no_conv3", "no_conv3_no_fc1", "paper_rgb"]


def test_a_recorded_train_command_parses_back_to_its_options():
    import shlex

    from celeba_model.cli import build_parser
    from celeba_model.models.summary import train_command

    options = {"attributes": ["Blond_Hair", "Male"], "group_by": ["Male"], "arch": "paper", "augment": True,
               "weight_decay": 0.1, "epochs": 12, "model_config": {"widths": [48, 96]}, "aux_attributes": ["all"]}
    words = shlex.split(train_command(["/data/celeba"], options, "runs/x"))
    args = build_parser().parse_args(words[3:])
    assert args.model_config == {"widths": [48, 96]} and args.aux_attributes == ["all"]
    assert (args.attributes, args.group_by, args.arch, args.augment) == (["Blond_Hair", "Male"], ["Male"], "paper", True)
    assert (args.weight_decay, args.epochs, args.out, args.data_roots) == (0.1, 12, "runs/x", ["/data/celeba"])
