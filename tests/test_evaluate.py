"""Batched evaluation, the predictions artifact, tuning, reports and comparisons."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from celeba_model.analysis.reports import attribute_report, compare_runs
from celeba_model.analysis.thresholds import save_thresholds_to_checkpoint, tune_run
from celeba_model.cli import main
from celeba_model.data.images import open_image
from celeba_model.data.index import load_index
from celeba_model.data.transforms import PreprocessConfig, image_to_array, normalize, to_model_input, to_unit_float
from celeba_model.errors import ConfigError
from celeba_model.evaluation.evaluate import EvalConfig, evaluate_checkpoint, evaluate_checkpoints
from celeba_model.evaluation.predictions import Predictions, PredictionsError, load_predictions, save_predictions
from celeba_model.models.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def test_artifacts(trained_runs, demo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    checkpoints = [trained_runs[a] / "best.safetensors" for a in ("paper", "no_conv3", "no_conv3_no_fc1")]
    options = EvalConfig(split="test", cache_dir=str(out / "cache"), progress=False)
    return evaluate_checkpoints(checkpoints, [demo_root], out / "ablation", options)


def test_artifact_holds_probabilities_labels_names_and_metadata(test_artifacts, demo_root):
    predictions = load_predictions(test_artifacts[0].folder)
    index = load_index([demo_root])
    rows = index.split_indices("test")
    assert predictions.probabilities.shape == (len(rows), 10) and predictions.probabilities.dtype == np.float32
    assert predictions.probabilities.min() >= 0 and predictions.probabilities.max() <= 1
    assert np.array_equal(predictions.labels, index.attribute_labels(predictions.attributes, rows))
    assert predictions.files.tolist() == [index.files[i] for i in rows]
    assert np.array_equal(predictions.identity, index.identity[rows])
    meta = json.loads((predictions.folder / "meta.json").read_text())
    assert meta["split"] == "test" and meta["checkpoint"]["arch"] == "paper"
    assert meta["counts"]["images"] == len(rows) and set(meta["counts"]["positives"]) == set(predictions.attributes)
    assert meta["timing"]["images_per_s"] > 0 and meta["timing"]["device"] == "cpu"


def test_each_checkpoint_gets_its_own_artifact(test_artifacts):
    assert [p.folder.name for p in test_artifacts] == ["paper", "no_conv3", "no_conv3_no_fc1"]
    assert [p.meta["checkpoint"]["arch"] for p in test_artifacts] == ["paper", "no_conv3", "no_conv3_no_fc1"]


def test_cached_batches_match_predicting_each_image_from_disk(test_artifacts, trained_runs):
    predictions = test_artifacts[0]
    checkpoint = load_checkpoint(trained_runs["paper"] / "best.safetensors")
    for i in (0, len(predictions) - 1):
        pixels = image_to_array(open_image(predictions.paths[i]), checkpoint.preprocess)
        with torch.no_grad():
            x = to_model_input(torch.from_numpy(pixels[None].copy()), checkpoint.preprocess)
            probs = torch.sigmoid(checkpoint.model(x)).numpy()[0]
        assert np.allclose(probs, predictions.probabilities[i], atol=1e-5)


def test_batch_size_does_not_change_results_and_flip_averaging_does(trained_runs, demo_root, tmp_path):
    index = load_index([demo_root])
    ckpt = trained_runs["no_conv3"] / "best.safetensors"
    # Batches of one: over a hundred of them, so the heap is trimmed on the way (every 64 batches on CPU).
    small = evaluate_checkpoint(ckpt, index, tmp_path / "a", EvalConfig(split="val", batch_size=1, progress=False))
    large = evaluate_checkpoint(ckpt, index, tmp_path / "b", EvalConfig(split="val", batch_size=4096, progress=False))
    flip = evaluate_checkpoint(ckpt, index, tmp_path / "c", EvalConfig(split="val", flip_tta=True, progress=False))
    assert np.allclose(small.probabilities, large.probabilities, atol=1e-5)
    assert not np.allclose(flip.probabilities, large.probabilities, atol=1e-3)
    assert flip.meta["flip_tta"] is True


def test_bad_artifacts_are_refused_clearly(tmp_path, test_artifacts):
    with pytest.raises(PredictionsError, match="no predictions.npz"):
        load_predictions(tmp_path)
    (tmp_path / "predictions.npz").write_bytes(b"garbage")
    with pytest.raises(PredictionsError, match="not a readable predictions artifact"):
        load_predictions(tmp_path)


def _paper_like_predictions() -> Predictions:
    """Predictions whose confusion counts are the paper's table.

    30,000 images rather than the test split's 19,962: the paper's Young row (TP 14,843 at precision
    .571) implies 11,152 false positives, more than the 4,848 negatives the test split has.
    """
    from celeba_model.metrics.paper_reference import PAPER_TABLE

    n = 30_000
    labels = np.zeros((n, 10), dtype=np.uint8)
    scores = np.zeros((n, 10), dtype=np.float32)
    for j, (tp, positives, precision, _, _) in enumerate(PAPER_TABLE.values()):
        fp = round(tp / precision - tp)
        labels[:positives, j] = 1
        scores[:tp, j] = 0.9  # true positives
        scores[positives : positives + fp, j] = 0.8  # false positives
    meta = {"attributes": list(PAPER_TABLE), "split": "test", "checkpoint": {"arch": "paper"}}
    return Predictions(scores, labels, np.arange(n).astype(str), np.arange(n).astype(str), np.full(n, -1), meta)


def test_report_reproduces_the_papers_table_layout():
    predictions = _paper_like_predictions()
    report = attribute_report(predictions, np.full(10, 0.5), n_boot=50)
    s = report["summary"]
    assert round(s["macro_precision"], 3) == 0.878
    assert round(s["macro_recall"], 3) == 0.539
    assert round(s["paper_f"], 3) == 0.668
    eyeglasses = report["attributes"][0]
    assert (eyeglasses["tp"], eyeglasses["positives"]) == (1153, 1289)


def test_tune_on_val_save_to_checkpoint_and_report_with_them(trained_runs, demo_root, tmp_path, capsys):
    run = trained_runs["paper"]
    ckpt = tmp_path / "paper.safetensors"
    ckpt.write_bytes((run / "best.safetensors").read_bytes())
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data-root", str(demo_root), "--split", "val",
                 "--out", str(tmp_path / "val"), "--no-progress", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert main(["tune", "--run", str(tmp_path / "val"), "--save-to-checkpoint"]) == 0
    saved = json.loads((tmp_path / "val" / "thresholds.json").read_text())
    stored = load_checkpoint(ckpt).thresholds
    assert stored == saved["thresholds"] and set(stored) == set(load_checkpoint(ckpt).attributes)

    # Tuned F1 on val is at least the F1 at 0.5 for every attribute.
    val = load_predictions(tmp_path / "val")
    at_half = attribute_report(val, np.full(10, 0.5), n_boot=10)["attributes"]
    tuned = attribute_report(val, np.array([stored[a] for a in val.attributes]), n_boot=10)["attributes"]
    assert all(t["f1"] >= h["f1"] - 1e-12 for t, h in zip(tuned, at_half))

    assert main(["evaluate", "--checkpoint", str(ckpt), "--data-root", str(demo_root), "--out", str(tmp_path / "test"),
                 "--no-progress", "--cache-dir", str(tmp_path / "cache")]) == 0
    capsys.readouterr()
    assert main(["report", "--run", str(tmp_path / "test"), "--thresholds", "checkpoint", "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert "AVG." in out and "0.878" in out and "Eyeglasses" in out
    report = json.loads((tmp_path / "test" / "report.json").read_text())
    assert [r["threshold"] for r in report["attributes"]] == pytest.approx(list(stored.values()))
    assert len((tmp_path / "test" / "report.csv").read_text().splitlines()) == 11

    with pytest.raises(ConfigError, match="tune thresholds on the val split"):
        tune_run(load_predictions(tmp_path / "test"))


def test_thresholds_are_refused_for_a_changed_checkpoint(trained_runs, demo_root, tmp_path):
    index = load_index([demo_root])
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes((trained_runs["paper"] / "best.safetensors").read_bytes())
    val = evaluate_checkpoint(ckpt, index, tmp_path / "val", EvalConfig(split="val", progress=False))
    result = tune_run(val)
    # The checkpoint is retrained (here: one weight nudged) after the evaluation.
    checkpoint = load_checkpoint(ckpt)
    with torch.no_grad():
        next(checkpoint.model.parameters()).add_(0.01)
    save_checkpoint(ckpt, checkpoint.model, checkpoint.meta)
    with pytest.raises(ConfigError, match="different weights"):
        save_thresholds_to_checkpoint(val, result)
    assert load_checkpoint(ckpt).thresholds is None


def test_compare_prints_the_ablation_beside_the_paper(test_artifacts, tmp_path, capsys):
    comparison = compare_runs(test_artifacts, n_boot=50)
    assert comparison["reference"] == test_artifacts[0].name
    assert comparison["runs"][0]["delta_paper_f"] == 0
    assert [r["published_f"] for r in comparison["runs"]] == [0.668, 0.624, 0.642]
    assert main(["compare", *[str(p.folder) for p in test_artifacts], "--bootstrap", "50", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no_conv3_no_fc1" in out and "0.624" in out and "Per-attribute F1" in out
    assert (tmp_path / "comparison.csv").is_file()


def test_save_and_load_round_trip(tmp_path):
    predictions = _paper_like_predictions()
    save_predictions(tmp_path / "p", predictions)
    loaded = load_predictions(tmp_path / "p")
    assert np.array_equal(loaded.probabilities, predictions.probabilities)
    assert np.array_equal(loaded.labels, predictions.labels)
    assert loaded.attributes == predictions.attributes


def test_evaluation_input_equals_the_training_input_without_augmentation():
    # to_model_input fuses the two steps training takes (to [0, 1], then normalize); they must agree.
    batch = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    spec = PreprocessConfig(image_size=16, color="rgb")
    fused, stepwise = to_model_input(batch, spec), normalize(to_unit_float(batch), spec)
    assert torch.allclose(fused, stepwise, atol=1e-6)
    assert fused.is_contiguous(memory_format=torch.channels_last)

