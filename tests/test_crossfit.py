"""Cross-fitting (``celeba_model crossfit``): out-of-sample probabilities for every train image, each from
a model that never trained on it, with the folds dealt by person, saved as an ordinary artifact."""

from __future__ import annotations

import importlib
import json
import os
import socket
from dataclasses import replace

import numpy as np
import pytest

from celeba_model.analysis.reports import attribute_report
from celeba_model.analysis.thresholds import evaluated_checkpoint
from celeba_model.attributes import CELEBA_ATTRIBUTES
from celeba_model.cli import main
from celeba_model.data.index import load_index
from celeba_model.errors import CelebAModelError, ConfigError
from celeba_model.evaluation.predictions import PredictionsError, load_predictions
from celeba_model.training import CrossfitConfig, crossfit
from celeba_model.training.crossfit import assign_folds
from celeba_model.utils.run_lock import LOCK_FILE, RunLockedError
from celeba_model.workspace import Workspace

# The module (its name in celeba_model.training is the function, as train's is).
crossfit_module = importlib.import_module("celeba_model.training.crossfit")

# Tiny and fast: the smallest network, 32x32 RGB, one epoch, a few hundred images.
FAST = dict(arch="no_conv3_no_fc1", image_size=32, color="rgb", epochs=1, lr=3e-3, progress=False)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("crossfit-cache")


@pytest.fixture(scope="module")
def fitted(demo_root, shared_cache, tmp_path_factory):
    """One 3-fold cross-fit of 300 demo train images into a fresh workspace, recording which rows each
    fold's model trained on and which rows each model predicted."""
    workspace = tmp_path_factory.mktemp("crossfit-workspace")
    trained, predicted = [], []
    train_fold, predict = crossfit_module._train_fold, crossfit_module.predict_probabilities

    def spy_train(config, source, train_rows, *args, **kwargs):
        model = train_fold(config, source, train_rows, *args, **kwargs)
        trained.append(set(train_rows.tolist()))
        model.crossfit_train_rows = trained[-1]
        return model

    def spy_predict(model, images, rows, *args, **kwargs):
        predicted.append((model.crossfit_train_rows, rows.tolist()))
        return predict(model, images, rows, *args, **kwargs)

    config = CrossfitConfig(data_roots=[str(demo_root)], folds=3, max_images=300, cache_dir=str(shared_cache), **FAST)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(crossfit_module, "_train_fold", spy_train)
        patch.setattr(crossfit_module, "predict_probabilities", spy_predict)
        predictions = crossfit(config, workspace_root=workspace)
    return {"config": config, "predictions": predictions, "workspace": workspace, "trained": trained,
            "predicted": predicted}


def test_folds_are_dealt_by_person_and_balanced():
    rng = np.random.default_rng(0)
    identity = np.concatenate([np.repeat(np.arange(40), rng.integers(1, 30, size=40)), [-1] * 7])
    folds = assign_folds(identity, 5, seed=3)
    assert set(folds.tolist()) == set(range(5))
    for person in range(40):
        assert len(set(folds[identity == person].tolist())) == 1  # a person is in one fold
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 29, sizes  # the greedy deal: within one person's images
    assert np.array_equal(folds, assign_folds(identity, 5, seed=3))  # reproducible from the seed
    assert not np.array_equal(folds, assign_folds(identity, 5, seed=4))
    # Images without a person id are groups of their own: two unknown images can land apart.
    assert len(set(assign_folds(np.full(6, -1), 3, seed=0).tolist())) == 3
    with pytest.raises(ConfigError, match="3 folds need at least 3 people; these images show 2"):
        assign_folds(np.array([7, 7, 8]), 3, seed=0)


def test_every_image_is_predicted_once_by_a_model_that_never_saw_its_person(fitted):
    predictions, trained, predicted = fitted["predictions"], fitted["trained"], fitted["predicted"]
    index = load_index([fitted["config"].data_roots[0]])
    assert len(trained) == len(predicted) == 3
    held = [set(rows) for _, rows in predicted]
    every = set().union(*held)
    assert sum(len(h) for h in held) == len(every) == len(predictions) == 300  # disjoint, covering the split
    assert {index.files[r] for r in every} == set(predictions.files.tolist())
    for train_rows, rows in predicted:
        assert not train_rows & set(rows)  # never trained on what it predicts
        assert train_rows | set(rows) == every  # trained on all the other folds
        people_held = set(index.identity[rows].tolist())
        assert not people_held & set(index.identity[list(train_rows)].tolist())  # nor on another photo of them
    # The fold of each image is recomputable from the artifact, and matches the recorded fold sizes.
    meta = predictions.meta["crossfit"]
    folds = assign_folds(predictions.identity, meta["folds"], meta["seed"])
    assert np.bincount(folds).tolist() == [f["images"] for f in meta["per_fold"]]
    assert sorted(len(h) for h in held) == sorted(f["images"] for f in meta["per_fold"])


def test_artifact_loads_everywhere(fitted):
    predictions, workspace = fitted["predictions"], fitted["workspace"]
    folder = workspace / "runs" / "crossfit-no_conv3_no_fc1" / "train"  # the default: like evaluate's rule
    assert predictions.folder == folder and not (folder / LOCK_FILE).exists()
    loaded = load_predictions(folder)
    assert np.array_equal(loaded.probabilities, predictions.probabilities)
    assert loaded.celeba_labels is not None and loaded.celeba_labels.shape == (300, len(CELEBA_ATTRIBUTES))
    assert loaded.attributes == fitted["config"].attributes and loaded.meta["split"] == "train"
    assert ((loaded.probabilities > 0) & (loaded.probabilities < 1)).all()
    assert np.array_equal(loaded.labels, loaded.celeba_labels[:, [CELEBA_ATTRIBUTES.index(a) for a in loaded.attributes]])
    heldout = loaded.meta["crossfit"]["heldout"]
    assert 0.5 < heldout["macro_auc"] <= 1 and 0 <= heldout["macro_f1"] <= 1
    assert loaded.meta["checkpoint"]["kind"] == "crossfit" and "path" not in loaded.meta["checkpoint"]
    # Readers: the run list, the report, and a clear refusal where a single checkpoint is needed.
    assert folder in Workspace(workspace).list_runs()
    report = attribute_report(loaded, [0.5] * len(loaded.attributes), n_boot=20)
    assert report["images"] == 300 and report["arch"] == "no_conv3_no_fc1"
    with pytest.raises(CelebAModelError):  # a clear message, no traceback
        evaluated_checkpoint(loaded, workspace)


@pytest.mark.parametrize("options, message", [
    (dict(folds=1), "folds must be an integer of at least 2"),
    (dict(folds=True), "folds must be an integer"),
    (dict(split="holdout"), "split must be one of"),
    (dict(max_images=2), "max_images must be an integer of at least folds"),
    (dict(epochs=0), "epochs must be at least 1"),
    (dict(arch="resnet9000"), "Unknown architecture"),
    (dict(attributes=["Blue_Hair"]), "Blue_Hair"),
    (dict(color="sepia"), "color must be one of"),
])
def test_bad_options_are_refused_before_anything_is_written(demo_root, tmp_path, options, message):
    with pytest.raises(CelebAModelError, match=message):  # each a one-line `error:` in the CLI
        crossfit(CrossfitConfig(**{**dict(data_roots=[str(demo_root)], out=str(tmp_path / "out"),
                                          cache_dir=str(tmp_path / "cache")), **FAST, **options}))
    assert list(tmp_path.iterdir()) == []


def test_data_problems_are_refused_before_anything_is_written(demo_root, celeba_factory, tmp_path):
    people = len(np.unique(load_index([demo_root]).identity[load_index([demo_root]).split_indices("train")]))
    base = dict(data_roots=[str(demo_root)], out=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"), **FAST)
    with pytest.raises(ConfigError, match=f"{people + 1} folds need at least {people + 1} people"):
        crossfit(CrossfitConfig(**{**base, "folds": people + 1}))
    with pytest.raises(ConfigError, match="Unknown device"):
        crossfit(CrossfitConfig(**{**base, "device": "tpu9"}))
    # 12 images of 4 people, 7 in train (3 people): too few for 4 folds.
    small = celeba_factory(n=12)
    with pytest.raises(ConfigError, match="4 folds need at least 4 people; these images show 3"):
        crossfit(CrossfitConfig(**{**base, "data_roots": [str(small)], "folds": 4}))
    # No output folder and no image cache: at most the parsed indexes of the data roots, kept beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) in (["celeba0"], ["cache", "celeba0"])
    assert [p.name for p in (tmp_path / "cache").glob("*")] in ([], ["index"])


def test_another_artifact_is_not_replaced_without_overwrite(fitted, demo_root, shared_cache, tmp_path):
    folder = fitted["predictions"].folder
    before = (folder / "predictions.npz").read_bytes()
    with pytest.raises(PredictionsError, match="already holds a cross-fit of other settings; pass --overwrite"):
        crossfit(replace(fitted["config"], seed=1, out=str(folder)))
    assert (folder / "predictions.npz").read_bytes() == before
    # The same settings may replace their own artifact, as evaluating the same checkpoint again does.
    crossfit_module._check_replaceable(folder, fitted["config"].settings(), overwrite=False)

    # A folder another live process is writing is refused as well.
    busy = tmp_path / "busy"
    busy.mkdir()
    owner = {"pid": os.getppid(), "host": socket.gethostname(), "started": "now"}
    (busy / LOCK_FILE).write_text(json.dumps(owner))
    with pytest.raises(RunLockedError):
        crossfit(CrossfitConfig(data_roots=[str(demo_root)], out=str(busy), cache_dir=str(shared_cache), **FAST))
    assert sorted(p.name for p in busy.iterdir()) == [LOCK_FILE]


def test_cli_end_to_end(demo_root, shared_cache, tmp_path, capsys):
    out = tmp_path / "cf"
    argv = ["crossfit", "--data-root", str(demo_root), "--folds", "2", "--arch", "no_conv3_no_fc1", "--epochs", "1",
            "--image-size", "32", "--color", "rgb", "--max-images", "200", "--out", str(out),
            "--cache-dir", str(shared_cache), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "held-out macro-F1" in printed and "macro ROC AUC" in printed
    loaded = load_predictions(out)
    assert len(loaded) == 200 and loaded.meta["crossfit"]["folds"] == 2

    assert main(argv[:-1] + ["--seed", "5", "--no-progress"]) == 2  # another cross-fit's folder
    assert "error:" in capsys.readouterr().err and load_predictions(out).meta["crossfit"]["seed"] == 0
    assert main(["crossfit", "--data-root", str(demo_root), "--folds", "1", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: folds must be an integer of at least 2") and not (tmp_path / "x").exists()


def test_an_interrupted_run_leaves_no_trace(demo_root, shared_cache, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C during training: nothing is written until the end

    monkeypatch.setattr(crossfit_module, "_crossfit_folds", interrupted)
    config = CrossfitConfig(data_roots=[str(demo_root)], max_images=100, cache_dir=str(shared_cache), **FAST)
    with pytest.raises(KeyboardInterrupt):
        crossfit(config, workspace_root=tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither runs/crossfit-.../train nor its lock
