"""The label audit: cleanlab's suspects, the corrections file, and metrics and training with corrections."""

from __future__ import annotations

import json
import multiprocessing
import sys
from pathlib import Path

import numpy as np
import pytest

from celeba_model.analysis.label_issues import find_label_issues, suspects
from celeba_model.analysis.reports import attribute_report, correction_effect
from celeba_model.attributes import CELEBA_ATTRIBUTES
from celeba_model.cli import main
from celeba_model.data import corrections as corrections_module
from celeba_model.data.corrections import (
    Correction,
    CorrectionsError,
    corrected_index,
    parse_corrections,
    read_corrections,
    record_decisions,
)
from celeba_model.data.index import load_index
from celeba_model.evaluation.predictions import Predictions, load_predictions, save_predictions
from celeba_model.utils.fileio import FileWriteError

REPO = Path(__file__).resolve().parents[1]
ATTRIBUTES = ["Eyeglasses", "Gray_Hair", "Smiling"]


def _noisy_run(n: int = 3000, flip_rate: float = 0.03, seed: int = 0) -> tuple[Predictions, np.ndarray]:
    """A run of a good model (probabilities near the true labels) whose stored labels have planted flips."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, len(ATTRIBUTES))) < [0.07, 0.04, 0.45]).astype(np.uint8)
    probabilities = np.where(truth == 1, rng.beta(8, 2, truth.shape), rng.beta(2, 8, truth.shape)).astype(np.float32)
    flips = rng.random(truth.shape) < flip_rate
    labels = np.where(flips, 1 - truth, truth).astype(np.uint8)
    files = np.array([f"{i + 1:06d}.jpg" for i in range(n)])
    run = Predictions(probabilities, labels, files, files, np.arange(n) // 10,
                      meta={"attributes": list(ATTRIBUTES), "split": "test"})
    return run, flips


def test_cleanlab_ranks_planted_label_flips_first():
    run, flips = _noisy_run()
    issues = find_label_issues(run)
    assert not issues.in_sample
    for j, attribute in enumerate(ATTRIBUTES):
        planted = int(flips[:, j].sum())
        ranked = suspects(run, issues, attribute, flagged_only=False)
        top = ranked["row"].to_numpy()[:planted]
        # Most planted flips rank at the top, and confident learning flags most of them.
        assert flips[top, j].mean() >= 0.8, attribute
        flagged = np.flatnonzero(issues.flagged[:, j])
        assert flips[flagged, j].sum() >= 0.6 * planted, attribute
        assert flips[flagged, j].mean() >= 0.6, attribute  # and mostly those
        # Ranked most suspicious first, the flagged table being a subset in the same order.
        assert np.all(np.diff(ranked["quality"].to_numpy()) >= 0)
        table = suspects(run, issues, attribute)
        assert set(table["row"]) == set(flagged) and table["flagged"].all()


def test_attributes_with_too_few_of_a_value_are_scored_but_not_flagged():
    run, _ = _noisy_run(n=200)
    run.labels[:, 1] = 0
    run.labels[:3, 1] = 1  # three positives: too few to estimate noise rates from
    issues = find_label_issues(run)
    assert not issues.flagged[:, 1].any()
    assert issues.quality.shape == (200, 3)


def test_a_models_own_train_split_is_marked_in_sample():
    run, _ = _noisy_run(n=100)
    run.meta["split"] = "train"
    assert find_label_issues(run).in_sample
    run.meta["crossfit"] = {"folds": 5}
    assert not find_label_issues(run).in_sample


def test_corrections_file_parsing_and_its_errors():
    text = ("\ufefffile,attribute,corrected_value,original_value,note\n"
            "img_align_celeba/000001.jpg,Gray_Hair,0,1,looks blond\n"
            "000002.jpg,Bangs,-1,,\n"
            "000001.jpg,Gray_Hair,1,1,checked again\n")
    parsed = parse_corrections(text)
    assert len(parsed) == 2
    assert parsed.get("000001.jpg", "Gray_Hair").note == "checked again"  # the later row wins
    assert not parsed.get("000001.jpg", "Gray_Hair").label_wrong
    assert parsed.get("000002.jpg", "Bangs").corrected_value == 0 and parsed.get("000002.jpg", "Bangs").original_value is None
    with pytest.raises(CorrectionsError, match="line 2.*'Grey_Hair' is not one of the 40"):
        parse_corrections("file,attribute,corrected_value\n1.jpg,Grey_Hair,1\n")
    with pytest.raises(CorrectionsError, match="line 3.*corrected_value must be 0 or 1.*'yes'"):
        parse_corrections("file,attribute,corrected_value\n1.jpg,Bangs,1\n2.jpg,Bangs,yes\n")
    with pytest.raises(CorrectionsError, match="no corrected_value column"):
        parse_corrections("file,attribute\n1.jpg,Bangs\n")


def test_a_missing_corrections_file_is_an_error_unless_not_written_yet(tmp_path):
    with pytest.raises(CorrectionsError, match="no such corrections file"):
        read_corrections(tmp_path / "nope.csv")
    assert len(read_corrections(tmp_path / "nope.csv", missing_ok=True)) == 0


def test_decisions_survive_a_restart_and_can_be_undone(tmp_path):
    path = tmp_path / "labels" / "corrections.csv"
    record_decisions(path, [Correction("000001.jpg", "Gray_Hair", 0, 1, "looks blond")])
    record_decisions(path, [Correction("000002.jpg", "Bangs", 1, 1)])
    again = read_corrections(path)  # what a restarted session reads
    assert {c.key for c in again} == {("000001.jpg", "Gray_Hair"), ("000002.jpg", "Bangs")}
    assert again.get("000001.jpg", "Gray_Hair").label_wrong and again.get("000001.jpg", "Gray_Hair").decided_at
    assert again.summary()["Gray_Hair"] == {"decisions": 1, "wrong": 1, "to_negative": 1, "to_positive": 0}
    record_decisions(path, remove=[("000001.jpg", "Gray_Hair")])
    assert {c.key for c in read_corrections(path)} == {("000002.jpg", "Bangs")}
    assert [p.name for p in path.parent.iterdir()] == ["corrections.csv"]  # no lock or temporary files left


def _record_many(path: str, worker: int, count: int) -> None:
    for k in range(count):
        record_decisions(path, [Correction(f"{worker:02d}{k:04d}.jpg", "Smiling", 1, 0, f"worker {worker}")])


def test_concurrent_sessions_lose_no_decisions(tmp_path):
    path = tmp_path / "corrections.csv"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_record_many, args=(str(path), w, 25)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    assert len(read_corrections(path)) == 100


def test_a_failed_write_keeps_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "corrections.csv"
    record_decisions(path, [Correction("000001.jpg", "Bangs", 1, 0)])
    before = path.read_bytes()

    def disk_full(target, text):
        raise FileWriteError(f"disk full: could not write {target}")

    monkeypatch.setattr(corrections_module, "atomic_write_text", disk_full)
    with pytest.raises(FileWriteError, match="disk full"):
        record_decisions(path, [Correction("000002.jpg", "Bangs", 1, 0)])
    assert path.read_bytes() == before


def test_metrics_with_corrections_move_as_the_labels_do():
    run, flips = _noisy_run(n=600)
    j = ATTRIBUTES.index("Gray_Hair")
    wrong = np.flatnonzero(flips[:, j])
    fixes = [Correction(str(run.files[i]), "Gray_Hair", int(1 - run.labels[i, j]), int(run.labels[i, j])) for i in wrong]
    fixes.append(Correction("not-in-this-run.jpg", "Gray_Hair", 1, 0))  # other files are ignored
    corrected = run.with_corrections(corrections_module.LabelCorrections({c.key: c for c in fixes}))
    assert corrected.meta["label_corrections"]["changed"] == len(wrong)
    assert corrected.meta["label_corrections"]["changed_per_attribute"] == {"Eyeglasses": 0, "Gray_Hair": len(wrong),
                                                                            "Smiling": 0}
    assert np.array_equal(corrected.labels[:, j], np.where(flips[:, j], 1 - run.labels[:, j], run.labels[:, j]))
    assert np.array_equal(run.labels[:, 0], corrected.labels[:, 0]) and (run.labels != corrected.labels).sum() == len(wrong)
    thresholds = np.full(3, 0.5)
    before, after = attribute_report(run, thresholds, n_boot=10), attribute_report(corrected, thresholds, n_boot=10)
    effect = correction_effect(before, after, corrected.meta["label_corrections"]["changed_per_attribute"])
    row = effect.set_index("attribute").loc["Gray_Hair"]
    assert row["labels changed"] == len(wrong)
    assert row["f1 corrected"] > row["f1"]  # the planted flips were what the good model got "wrong"
    assert effect.set_index("attribute").loc["Smiling", "f1"] == effect.set_index("attribute").loc["Smiling", "f1 corrected"]


def test_corrections_reach_all_forty_labels_and_the_training_index(demo_root):
    index = load_index([demo_root])
    file = index.files[0]
    column = CELEBA_ATTRIBUTES.index("Wearing_Hat")
    flipped = 1 - int(index.labels[0, column])
    fixes = parse_corrections(f"file,attribute,corrected_value\n{file},Wearing_Hat,{flipped}\n")
    corrected, changed = corrected_index(index, fixes)
    assert changed == 1 and corrected.labels[0, column] == flipped
    assert index.labels[0, column] != flipped  # the original index is unchanged
    assert np.array_equal(np.delete(corrected.labels, 0, axis=0), np.delete(index.labels, 0, axis=0))


def _tiny_train_args(demo_root, out, cache) -> list[str]:
    return ["-q", "train", "--data-root", str(demo_root), "--out", str(out), "--epochs", "1", "--image-size", "32",
            "--max-train-images", "64", "--batch-size", "32", "--cache-dir", str(cache), "--no-progress",
            "--attributes", "Smiling", "Male"]


def test_train_with_label_corrections_trains_on_the_corrected_labels(demo_root, tmp_path, monkeypatch):
    from celeba_model.training import batches

    index = load_index([demo_root])
    rows = index.split_indices("train")[:5]
    column = CELEBA_ATTRIBUTES.index("Smiling")
    lines = [f"{index.files[r]},Smiling,{1 - int(index.labels[r, column])}" for r in rows]
    fixes = tmp_path / "fixes.csv"
    fixes.write_text("file,attribute,corrected_value\n" + "\n".join(lines) + "\n")
    seen = {}
    real = batches.prepare_data

    def spy(config, spec, info=batches.DistInfo()):
        seen["data"] = real(config, spec, info)
        return seen["data"]

    monkeypatch.setattr(sys.modules["celeba_model.training.train"], "prepare_data", spy)
    assert main([*_tiny_train_args(demo_root, tmp_path / "run", tmp_path / "cache"), "--label-corrections", str(fixes)]) == 0
    labels = seen["data"].labels
    assert np.array_equal(labels[rows, 0], 1 - index.labels[rows, column])  # what training used
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["label_corrections"] == str(fixes.resolve())


def test_train_with_a_bad_corrections_file_writes_nothing(demo_root, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,attribute,corrected_value\n000001.jpg,Smilling,1\n")
    out = tmp_path / "run"
    assert main([*_tiny_train_args(demo_root, out, tmp_path / "cache"), "--label-corrections", str(bad)]) == 2
    assert "'Smilling' is not one of the 40 CelebA attributes" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_report_with_label_corrections_prints_both_and_keeps_the_plain_report(tmp_path, capsys):
    run, flips = _noisy_run(n=300)
    folder = save_predictions(tmp_path / "run", run)
    j = ATTRIBUTES.index("Eyeglasses")
    row = int(np.flatnonzero(flips[:, j])[0])
    fixes = tmp_path / "fixes.csv"
    fixes.write_text(f"file,attribute,corrected_value\n{run.files[row]},Eyeglasses,{1 - run.labels[row, j]}\n")
    assert main(["report", "--run", str(folder), "--bootstrap", "20"]) == 0
    plain = (folder / "report.json").read_text()
    capsys.readouterr()
    assert main(["report", "--run", str(folder), "--bootstrap", "20", "--label-corrections", str(fixes)]) == 0
    out = capsys.readouterr().out
    assert "1 of this run's labels changed" in out and "With the dataset's labels -> with the corrected labels" in out
    assert (folder / "report.json").read_text() == plain  # the dataset-label report is not replaced
    corrected = json.loads((folder / "report_corrected.json").read_text())
    assert [r["positives"] for r in corrected["attributes"]][j] == int(run.labels[:, j].sum()) + (1 - 2 * int(run.labels[row, j]))


def test_label_issues_command_lists_suspects_and_skips_decided_ones(tmp_path, capsys):
    run, _ = _noisy_run(n=500)
    folder = save_predictions(tmp_path / "run", run)
    assert main(["label-issues", "--run", str(folder), "--attribute", "Smiling", "--top", "3",
                 "--csv", str(tmp_path / "all.csv")]) == 0
    out = capsys.readouterr().out
    first = out.split("quality")[1].split()[0]
    assert "Smiling:" in out and first.endswith(".jpg")
    decided = tmp_path / "decided.csv"
    decided.write_text(f"file,attribute,corrected_value\n{first},Smiling,1\n")
    assert main(["label-issues", "--run", str(folder), "--attribute", "Smiling", "--label-corrections", str(decided)]) == 0
    assert first not in capsys.readouterr().out
    assert main(["label-issues", "--run", str(folder), "--attribute", "Bangs"]) == 2
    assert "not predicted by this run" in capsys.readouterr().err


def test_the_review_sheet_of_label_issues_reads_as_corrections_once_filled_in(tmp_path, capsys):
    import pandas as pd

    run, _ = _noisy_run(n=500)
    folder = save_predictions(tmp_path / "run", run)
    sheet = tmp_path / "review.csv"
    assert main(["label-issues", "--run", str(folder), "--csv", str(sheet)]) == 0
    assert len(read_corrections(sheet)) == 0  # nothing decided yet
    table = pd.read_csv(sheet, dtype={"corrected_value": "string"})
    assert len(table) == int(find_label_issues(run).flagged.sum())
    table.loc[0, "corrected_value"] = str(1 - int(table.loc[0, "original_value"]))
    table.to_csv(sheet, index=False)
    decided = read_corrections(sheet)
    assert len(decided) == 1 and next(iter(decided)).label_wrong
    capsys.readouterr()
    assert main(["report", "--run", str(folder), "--bootstrap", "10", "--label-corrections", str(sheet)]) == 0
    assert "1 of this run's labels changed" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["test", "wild_val"])
def test_shipped_label_audits_match_the_shipped_runs(name):
    """Every shipped decision names an image of the audited run and the label it shows."""
    audit = read_corrections(REPO / "checkpoints" / "celeba" / "labels" / f"{name}.csv")
    run = load_predictions(REPO / "checkpoints" / "celeba" / "runs" / "attrnet" / name)
    row = {str(f): i for i, f in enumerate(run.files)}
    assert len(audit) > 20
    for c in audit:
        assert c.file in row, c
        assert c.original_value == run.group_labels(c.attribute)[row[c.file]], c
        assert c.attribute in ("Gray_Hair", "Pale_Skin", "Eyeglasses", "Bangs")
