"""Slices: all 40 labels in artifacts, metrics by group against scikit-learn and fairlearn, intervals
over people, the bias map and per-group thresholds."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference, false_positive_rate
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from celeba_model.analysis.slices import (
    SliceError,
    bias_map,
    fit_group_thresholds,
    slice_metrics,
    slice_report,
    worst_cell_gaps,
)
from celeba_model.attributes import CELEBA_ATTRIBUTES
from celeba_model.data.index import load_index
from celeba_model.evaluation.evaluate import EvalConfig, evaluate_checkpoint
from celeba_model.evaluation.predictions import Predictions, PredictionsError, load_predictions, save_predictions

REPO = Path(__file__).resolve().parents[1]
SHIPPED_RUNS = sorted((REPO / "checkpoints" / "celeba" / "runs").glob("*/*/predictions.npz"))
TARGETS = ["Eyeglasses", "Bangs", "Blond_Hair", "Male", "Smiling", "Young"]


def _column(name: str) -> int:
    return CELEBA_ATTRIBUTES.index(name)


def _generated(n: int = 2000, people: int = 200, seed: int = 0, *, blond_men_missed: bool = True,
               with_celeba: bool = True, name: str = "gen") -> Predictions:
    """A run on generated data: all 40 labels random, Blond_Hair rare among men; with
    ``blond_men_missed`` the model scores blond men low (the spurious "blond means woman")."""
    rng = np.random.default_rng(seed)
    person = rng.integers(0, people, n)
    celeba = (rng.random((n, 40)) < 0.4).astype(np.uint8)
    male = (rng.random(people) < 0.5)[person]  # one sex per person, as in CelebA
    celeba[:, _column("Male")] = male
    celeba[:, _column("Blond_Hair")] = rng.random(n) < np.where(male, 0.05, 0.4)
    labels = celeba[:, [_column(a) for a in TARGETS]]
    scores = np.clip(labels + rng.normal(0, 0.3, labels.shape), 0, 1).astype(np.float32)
    if blond_men_missed:
        blond_men = male & (labels[:, TARGETS.index("Blond_Hair")] == 1)
        scores[blond_men, TARGETS.index("Blond_Hair")] = rng.uniform(0, 0.45, blond_men.sum())
    meta = {"attributes": TARGETS, "split": "test", "checkpoint": {"arch": name}}
    return Predictions(scores, labels, np.array([f"{i:06d}.jpg" for i in range(n)]), np.array([""] * n), person,
                       meta, celeba_labels=celeba if with_celeba else None)


# --- the artifact's 40 labels ---

def test_celeba_labels_round_trip_and_older_artifacts_still_load(tmp_path):
    run = _generated(100)
    save_predictions(tmp_path / "with", run)
    loaded = load_predictions(tmp_path / "with")
    assert loaded.celeba_labels.dtype == np.uint8 and np.array_equal(loaded.celeba_labels, run.celeba_labels)
    assert np.array_equal(loaded.group_labels("Wavy_Hair"), run.celeba_labels[:, _column("Wavy_Hair")])
    assert loaded.labeled_attributes == list(CELEBA_ATTRIBUTES)

    older = _generated(100, with_celeba=False)
    save_predictions(tmp_path / "without", older)
    with np.load(tmp_path / "without" / "predictions.npz") as data:
        assert "celeba_labels" not in data.files
    loaded = load_predictions(tmp_path / "without")
    assert loaded.celeba_labels is None and loaded.labeled_attributes == TARGETS
    assert np.array_equal(loaded.group_labels("Male"), older.labels[:, TARGETS.index("Male")])


def test_group_labels_names_an_attribute_it_does_not_know():
    run = _generated(50, with_celeba=False)
    with pytest.raises(PredictionsError, match="no labels of Wavy_Hair"):
        run.group_labels("Wavy_Hair")
    with pytest.raises(PredictionsError, match="'Hair_Colour' is not a CelebA attribute"):
        run.group_labels("Hair_Colour")
    with pytest.raises(SliceError, match="no labels of Wavy_Hair"):
        slice_report(run, "Blond_Hair", "Wavy_Hair", n_boot=10)


def test_bad_celeba_labels_are_refused():
    run = _generated(20)
    with pytest.raises(PredictionsError, match=r"celeba_labels \(20, 10\) is not \(20, 40\)"):
        Predictions(run.probabilities, run.labels, run.files, run.paths, run.identity, run.meta,
                    celeba_labels=run.celeba_labels[:, :10])
    unknown = run.celeba_labels.astype(np.int8)
    unknown[0, 0] = -1
    with pytest.raises(PredictionsError, match="only 0 and 1"):
        Predictions(run.probabilities, run.labels, run.files, run.paths, run.identity, run.meta, celeba_labels=unknown)


def test_evaluation_stores_all_40_labels_only_when_every_root_has_them(celeba_factory, tmp_path):
    checkpoint = REPO / "checkpoints" / "demo" / "paper.safetensors"
    root = celeba_factory(n=10)
    options = EvalConfig(split="all", cache_dir=str(tmp_path / "cache"), progress=False)
    index = load_index([root])
    run = evaluate_checkpoint(checkpoint, index, tmp_path / "full", options)
    assert np.array_equal(load_predictions(tmp_path / "full").celeba_labels, index.labels)
    assert np.array_equal(run.celeba_labels[:, [_column(a) for a in run.attributes]], run.labels)

    # A second root whose list file lacks a column: its rows have -1 there, so nothing is stored.
    partial = celeba_factory(n=10, seed=1)
    lines = (partial / "list_attr_celeba.txt").read_text().splitlines()
    keep = [i for i, name in enumerate(CELEBA_ATTRIBUTES) if name != "Wavy_Hair"]
    rows = [lines[0], " ".join(CELEBA_ATTRIBUTES[i] for i in keep)]
    for line in lines[2:]:
        fields = line.split()
        rows.append(" ".join([fields[0].replace("0000", "1000", 1)] + [fields[1 + i] for i in keep]))
    (partial / "list_attr_celeba.txt").write_text("\n".join(rows) + "\n")
    for image in (partial / "img_align_celeba").glob("*.jpg"):
        image.rename(image.with_name(image.name.replace("0000", "1000", 1)))
    for name in ("list_eval_partition.txt", "identity_CelebA.txt"):
        (partial / name).unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the seeded split of the root without a partition file
        index = load_index([root, partial])
    run = evaluate_checkpoint(checkpoint, index, tmp_path / "mixed", options)
    assert len(run) == 20 and run.celeba_labels is None
    assert load_predictions(tmp_path / "mixed").celeba_labels is None


@pytest.mark.parametrize("path", SHIPPED_RUNS, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_shipped_artifacts_carry_all_40_labels(path):
    run = load_predictions(path.parent)
    assert run.celeba_labels is not None and run.celeba_labels.shape == (len(run), 40)
    assert np.array_equal(run.celeba_labels[:, [_column(a) for a in run.attributes]], run.labels)


# --- slice metrics ---

def _quiet_report(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division or fairlearn warnings on empty or one-class groups
        return slice_metrics(*args, **kwargs)


def test_slice_metrics_match_scikit_learn_and_fairlearn():
    run = _generated()
    j = TARGETS.index("Blond_Hair")
    truth, scores = run.labels[:, j], run.probabilities[:, j]
    features = pd.DataFrame({"Male": run.group_labels("Male"), "Young": run.group_labels("Young")})
    report = _quiet_report(truth, scores, 0.4, features, run.identity, target="Blond_Hair", n_boot=200)
    predicted = (scores >= 0.4).astype(int)
    assert len(report.groups) == 4 and len(report.cells) == 8
    for _, row in report.groups.iterrows():
        inside = (features["Male"] == row["Male"]).to_numpy() & (features["Young"] == row["Young"]).to_numpy()
        y, p = truth[inside], predicted[inside]
        assert row["support"] == inside.sum() and row["positives"] == y.sum()
        assert row["accuracy"] == pytest.approx(accuracy_score(y, p))
        assert row["tpr"] == pytest.approx(recall_score(y, p, zero_division=0))
        assert row["fpr"] == pytest.approx(false_positive_rate(y, p))
        assert row["precision"] == pytest.approx(precision_score(y, p, zero_division=0))
        assert row["f1"] == pytest.approx(f1_score(y, p, zero_division=0))
        for metric in ("accuracy", "tpr", "fpr", "precision", "f1"):
            assert row[f"{metric}_low"] <= row[metric] + 1e-9 and row[metric] <= row[f"{metric}_high"] + 1e-9
    for _, cell in report.cells.iterrows():
        inside = ((features["Male"] == cell["Male"]) & (features["Young"] == cell["Young"])).to_numpy() \
            & (truth == cell["target"])
        assert cell["support"] == inside.sum()
        assert cell["accuracy"] == pytest.approx(accuracy_score(truth[inside], predicted[inside]))
    assert report.average_accuracy == pytest.approx(accuracy_score(truth, predicted))
    assert report.equalized_odds_difference == pytest.approx(
        equalized_odds_difference(truth, predicted, sensitive_features=features))
    assert report.demographic_parity_difference == pytest.approx(
        demographic_parity_difference(truth, predicted, sensitive_features=features))
    # Sagawa et al.'s worst group is the worst cell: blond men here, missed on purpose.
    assert report.worst_cell.startswith("Blond_Hair, Male")
    assert report.worst_cell_accuracy == report.cells["accuracy"].min()
    assert report.worst_group_accuracy == report.groups["accuracy"].min()
    assert report.worst_cell_gap == pytest.approx(report.average_accuracy - report.worst_cell_accuracy)


def test_one_grouping_attribute_gives_two_groups_and_four_labelled_cells():
    run = _generated()
    report = slice_report(run, "Blond_Hair", "Male", 0.5, n_boot=100)
    assert report.groups["group"].tolist() == ["not Male", "Male"]
    assert report.cells["cell"].tolist() == ["Blond_Hair, not Male", "not Blond_Hair, not Male",
                                             "Blond_Hair, Male", "not Blond_Hair, Male"]
    assert report.worst_cell == "Blond_Hair, Male" and report.worst_cell_accuracy < 0.2
    assert report.by == ("Male",) and report.resampled == "groups"


def test_empty_and_single_class_groups_give_zeros_and_are_flagged_not_hidden():
    truth = np.array([1, 0, 1, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.2, 0.3, 0.6, 0.1, 0.1, 0.7, 0.2])
    # Glasses: nobody wears them (group 1 empty). Hat: the hat wearers have no positives.
    features = pd.DataFrame({"Eyeglasses": np.zeros(8, int), "Wearing_Hat": [0, 0, 0, 0, 1, 1, 1, 1]})
    report = _quiet_report(truth, scores, 0.5, features, np.arange(8), n_boot=50)
    rows = report.groups.set_index("group")
    assert list(rows.index) == ["not Eyeglasses, not Wearing_Hat", "not Eyeglasses, Wearing_Hat",
                                "Eyeglasses, not Wearing_Hat", "Eyeglasses, Wearing_Hat"]
    empty = rows.loc["Eyeglasses, Wearing_Hat"]
    assert empty["support"] == 0 and empty["small"]
    assert all(empty[m] == 0 and empty[f"{m}_low"] == 0 and empty[f"{m}_high"] == 0
               for m in ("accuracy", "tpr", "fpr", "precision", "f1"))
    hats = rows.loc["not Eyeglasses, Wearing_Hat"]
    assert hats["positives"] == 0 and hats["tpr"] == 0 and hats["f1"] == 0  # zero denominators give 0
    assert hats["fpr"] == pytest.approx(0.25) and hats["accuracy"] == pytest.approx(0.75)
    # Empty groups and cells are listed but never the worst.
    assert report.worst_group == "not Eyeglasses, not Wearing_Hat"
    assert (report.cells["support"] == 0).sum() == 5 and report.cells["small"].all()
    assert report.worst_cell_accuracy == pytest.approx(0.5)
    # A worst figure over no eligible group is NaN, not a crash.
    none = _quiet_report(truth, scores, 0.5, features, None, n_boot=10, min_support=100)
    assert np.isnan(none.worst_group_accuracy) and none.worst_group == ""


def test_one_class_and_one_group_data_do_not_crash():
    report = _quiet_report(np.zeros(10, int), np.full(10, 0.2), 0.5, pd.DataFrame({"Male": np.ones(10, int)}),
                           None, n_boot=20)
    assert report.groups["support"].tolist() == [0, 10] and report.average_accuracy == 1.0
    assert report.equalized_odds_difference == 0.0


def _clustered(people: int = 40, per_person: int = 20, seed: int = 0):
    """Each person is either always right or always wrong: errors cluster by person."""
    rng = np.random.default_rng(seed)
    person = np.repeat(np.arange(people), per_person)
    truth = rng.integers(0, 2, len(person))
    right = (rng.random(people) < 0.7)[person]
    scores = np.where(right == truth.astype(bool), 0.9, 0.1)
    return truth, scores, pd.DataFrame({"Male": (person % 2 == 0).astype(int)}), person


def test_intervals_resample_people_and_are_wider_than_over_images_when_people_cluster():
    truth, scores, features, person = _clustered()
    by_people = slice_metrics(truth, scores, 0.5, features, person, n_boot=500)
    by_images = slice_metrics(truth, scores, 0.5, features, None, n_boot=500)
    assert by_people.resampled == "groups" and by_images.resampled == "images"
    width = {name: (r.groups["accuracy_high"] - r.groups["accuracy_low"]).to_numpy()
             for name, r in (("people", by_people), ("images", by_images))}
    assert (width["people"] > 1.5 * width["images"]).all()
    assert np.array_equal(by_people.groups["accuracy"], by_images.groups["accuracy"])  # same point estimates
    again = slice_metrics(truth, scores, 0.5, features, person, n_boot=500)
    assert again.groups.equals(by_people.groups)  # deterministic for a seed


def test_person_groups_resample_images_within_each_person():
    truth, scores, _, person = _clustered(people=5, per_person=12)
    report = slice_metrics(truth, scores, 0.5, pd.DataFrame({"person": person}), person, n_boot=200)
    assert report.resampled == "images" and len(report.groups) == 5 and len(report.cells) == 10
    assert report.groups["group"].tolist() == [f"person {p}" for p in range(5)]
    assert np.isnan(report.equalized_odds_difference)  # not meaningful across people
    # A person always right (or wrong) has a zero-width interval at 1 (or 0).
    assert ((report.groups["accuracy_high"] - report.groups["accuracy_low"]) == 0).all()


def test_slice_report_refuses_what_it_cannot_slice():
    run = _generated(100)
    with pytest.raises(SliceError, match="'Wavy_Hair' is not an attribute of gen"):
        slice_report(run, "Wavy_Hair", "Male")
    with pytest.raises(SliceError, match="stand alone"):
        slice_report(run, "Blond_Hair", ["person", "Male"])
    with pytest.raises(SliceError, match="one or two different"):
        slice_report(run, "Blond_Hair", ["Male", "Young", "Bald"])


# --- the bias map ---

def test_bias_map_finds_the_planted_spurious_correlation():
    run = _generated(4000, people=400)
    found = bias_map(run, 0.5, min_support=10)
    assert found.gap.shape == (len(TARGETS), 40) and np.isnan(found.gap.loc["Male", "Male"])
    assert found.gap.loc["Blond_Hair"].idxmax() == "Male"
    assert found.worst_cell.loc["Blond_Hair", "Male"] == "Blond_Hair, Male"
    top = found.strongest(3)
    assert (top.loc[0, "target"], top.loc[0, "group"]) == ("Blond_Hair", "Male") and top.loc[0, "gap"] > 0.5
    clean = bias_map(_generated(4000, people=400, blond_men_missed=False), 0.5)
    assert clean.gap.loc["Blond_Hair", "Male"] < 0.2


def test_bias_map_equals_the_cells_counted_one_by_one():
    rng = np.random.default_rng(3)
    truth, predicted, groups = (rng.random((300, 3)) < 0.3), (rng.random((300, 3)) < 0.3), rng.random((300, 5)) < 0.5
    found = worst_cell_gaps(truth, predicted, groups, min_support=15)
    for a in range(3):
        average = np.mean(truth[:, a] == predicted[:, a])
        for g in range(5):
            cells = [(t, v) for t in (0, 1) for v in (0, 1)]
            accuracy = {}
            for t, v in cells:
                inside = (truth[:, a] == t) & (groups[:, g] == v)
                if inside.sum() >= 15:
                    accuracy[(t, v)] = np.mean(truth[inside, a] == predicted[inside, a])
            worst = min(accuracy, key=accuracy.get)
            assert found["worst_accuracy"][a, g] == pytest.approx(accuracy[worst])
            assert found["gap"][a, g] == pytest.approx(average - accuracy[worst])
            assert found["worst_cell"][a, g] == 2 * worst[0] + worst[1]


def test_bias_map_leaves_out_small_cells_and_says_nan_when_none_is_left():
    truth = np.array([[1], [1], [0], [0]])
    found = worst_cell_gaps(truth, truth, np.array([[1], [0], [1], [0]]), min_support=2)
    assert np.isnan(found["gap"][0, 0]) and found["worst_cell"][0, 0] == -1


def test_bias_map_takes_well_under_a_second_for_20000_images_10_targets_40_attributes():
    rng = np.random.default_rng(0)
    n = 20_000
    celeba = (rng.random((n, 40)) < 0.4).astype(np.uint8)
    names = list(CELEBA_ATTRIBUTES[:10])
    meta = {"attributes": names, "split": "test"}
    run = Predictions(rng.random((n, 10)).astype(np.float32), celeba[:, :10], np.arange(n).astype(str),
                      np.arange(n).astype(str), np.full(n, -1), meta, celeba_labels=celeba)
    bias_map(run, 0.5)  # warm up
    started = time.perf_counter()
    found = bias_map(run, np.full(10, 0.5))
    seconds = time.perf_counter() - started
    assert found.gap.shape == (10, 40)
    assert seconds < 0.5, f"{seconds:.3f} s"


# --- per-group thresholds ---

def _shifted(n: int, seed: int) -> Predictions:
    """Smiling scores shifted down for men: at one threshold men's smiles are missed."""
    rng = np.random.default_rng(seed)
    run = _generated(n, people=n // 10, seed=seed, blond_men_missed=False)
    j = TARGETS.index("Smiling")
    male = run.group_labels("Male").astype(bool)
    run.probabilities[:, j] = np.clip(run.labels[:, j] * 0.5 + rng.normal(0.3, 0.15, n) - 0.25 * male, 0, 1)
    return run


def test_group_thresholds_fit_on_one_run_and_close_the_gap_on_another():
    val, test = _shifted(3000, seed=1), _shifted(3000, seed=2)
    result = fit_group_thresholds(val, test, "Smiling", "Male", 0.5)
    assert set(result.rules["group"]) == {"Male", "not Male"}
    assert result.rules[["p0", "p1"]].sum(axis=1).tolist() == pytest.approx([1.0, 1.0])
    before, after = result.tradeoff.loc["before"], result.tradeoff.loc["after"]
    assert after["worst_cell_accuracy"] > before["worst_cell_accuracy"] + 0.1
    assert after["equalized_odds_difference"] < before["equalized_odds_difference"] / 2
    assert result.decisions.shape == (len(test),) and result.fitted_on == "gen" and len(result.cells) == 4
    # Randomized rules are drawn with the seed: the same seed, the same decisions.
    assert np.array_equal(fit_group_thresholds(val, test, "Smiling", "Male", 0.5).decisions, result.decisions)


def test_group_thresholds_explain_what_cannot_be_fitted():
    val, test = _shifted(500, seed=1), _shifted(500, seed=2)
    val.labels[val.group_labels("Male") == 1, TARGETS.index("Smiling")] = 0  # no smiling man to fit on
    with pytest.raises(SliceError, match="could not be fitted on gen: Degenerate labels"):
        fit_group_thresholds(val, test, "Smiling", "Male")
    with pytest.raises(SliceError, match="people of one split are not in another"):
        fit_group_thresholds(val, test, "Smiling", "person")
