"""ThresholdSweep, tune_thresholds, curves and bootstrap against scikit-learn and slow references."""

from __future__ import annotations

import itertools
import time
import warnings

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from celeba_model.metrics.bootstrap import bootstrap_ci, bootstrap_counts
from celeba_model.metrics.counts import attribute_metrics, confusion_counts, metrics_from_counts, summarize
from celeba_model.metrics.curves import (
    average_precision,
    expected_calibration_error,
    pr_curve,
    reliability_curve,
    roc_auc,
    roc_curve_points,
)
from celeba_model.metrics.sweep import ThresholdChoice, ThresholdSweep, heldout_tuning_gain, tune_thresholds

# Our functions must never warn; sklearn reference calls that would warn are made inside
# warnings.catch_warnings() below.
pytestmark = pytest.mark.filterwarnings("error")


def random_case(seed: int, n: int, a: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with varied base rates (sometimes all 0 or all 1) and scores in [0, 1] with ties."""
    rng = np.random.default_rng(seed)
    rates = rng.choice([0.0, 0.05, 0.3, 0.5, 0.9, 1.0], size=a)
    labels = (rng.random((n, a)) < rates).astype(np.uint8)
    scores = np.clip(0.5 * labels + 0.7 * rng.random((n, a)) - 0.1, 0, 1)
    return labels, np.round(scores, int(rng.integers(1, 4)))


CASES = [(seed, n, a) for seed, (n, a) in enumerate(itertools.product([1, 2, 5, 37, 500], [1, 3, 5]))]


def quiet_sklearn(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ----- ThresholdSweep -----------------------------------------------------------------------


@pytest.mark.parametrize("seed,n,a", CASES)
def test_sweep_counts_equal_confusion_counts(seed: int, n: int, a: int) -> None:
    labels, scores = random_case(seed, n, a)
    sweep = ThresholdSweep(labels, scores)
    assert (sweep.num_samples, sweep.num_attributes) == (n, a)
    np.testing.assert_array_equal(sweep.positives, labels.sum(axis=0))
    rng = np.random.default_rng(seed)
    candidates = [0.0, 1.0, 0.5, -0.5, 1.5, np.inf, -np.inf, np.nan, rng.random(a), rng.random(a) * 3 - 1]
    candidates += [scores[i] for i in rng.integers(0, n, size=5)]  # exact score values: ties
    candidates += [np.nextafter(scores[0], np.inf), np.nextafter(scores[0], -np.inf)]
    for t in candidates:
        got, want = sweep.counts_at(t), confusion_counts(labels, scores, t)
        for key in ("tp", "fp", "fn", "tn"):
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{key} at {t}")
            assert got[key].dtype == np.int64 and got[key].shape == (a,)
        got_m, want_m = sweep.metrics_at(t), attribute_metrics(labels, scores, t)
        assert set(got_m) == set(want_m)
        for key in want_m:
            np.testing.assert_array_equal(got_m[key], want_m[key])
    # Many threshold vectors at once: (K, A).
    many = rng.random((4, a))
    got = sweep.counts_at(many)
    for k in range(4):
        np.testing.assert_array_equal(got["tp"][k], confusion_counts(labels, scores, many[k])["tp"])


def test_sweep_float32_nan_and_1d() -> None:
    rng = np.random.default_rng(5)
    labels = (rng.random((300, 2)) < 0.4).astype(bool)
    scores = rng.random((300, 2)).astype(np.float32)
    scores[::7, 0] = np.nan  # never predicted positive, as with score >= threshold
    sweep = ThresholdSweep(labels, scores)
    for t in [0.3, np.float32(scores[1, 0]), scores[3], -np.inf, np.nan, 2.0]:
        got, want = sweep.counts_at(t), confusion_counts(labels, scores, t)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
    one = ThresholdSweep(labels[:, 1], scores[:, 1])
    assert one.num_attributes == 1
    assert one.counts_at(0.5)["tp"][0] == confusion_counts(labels[:, 1], scores[:, 1], 0.5)["tp"][0]


@pytest.mark.parametrize("seed,n,a", CASES)
def test_curve_matches_precision_recall_curve(seed: int, n: int, a: int) -> None:
    labels, scores = random_case(seed, n, a)
    sweep = ThresholdSweep(labels, scores)
    for j in range(a):
        c = sweep.curve(j)
        precision, recall, thresholds = quiet_sklearn(precision_recall_curve, labels[:, j], scores[:, j])
        np.testing.assert_array_equal(c["thresholds"], thresholds)
        np.testing.assert_allclose(c["precision"], precision[:-1], atol=1e-12)
        if labels[:, j].any():
            np.testing.assert_allclose(c["recall"], recall[:-1], atol=1e-12)
        else:
            assert not c["recall"].any()  # ours: 0/0 -> 0; sklearn: 1 with a warning
        for i in range(0, len(thresholds), max(1, len(thresholds) // 5)):
            cc = confusion_counts(labels[:, j], scores[:, j], thresholds[i])
            assert (c["tp"][i], c["fp"][i], c["fn"][i], c["tn"][i]) == (cc["tp"][0], cc["fp"][0], cc["fn"][0], cc["tn"][0])
        m = metrics_from_counts(c["tp"], c["fp"], c["fn"], c["tn"])
        np.testing.assert_array_equal(m["f1"], c["f1"])


def test_curve_all_tied_and_empty() -> None:
    sweep = ThresholdSweep(np.array([1, 0, 1]), np.array([0.4, 0.4, 0.4]))
    c = sweep.curve(0)
    np.testing.assert_array_equal(c["thresholds"], [0.4])
    assert (c["tp"][0], c["fp"][0]) == (2, 1)
    empty = ThresholdSweep(np.zeros((0, 2)), np.zeros((0, 2)))
    assert empty.curve(1)["thresholds"].size == 0
    assert empty.counts_at(0.5)["tp"].tolist() == [0, 0]
    with pytest.raises(IndexError):
        sweep.curve(1)


# ----- tune_thresholds ----------------------------------------------------------------------


def brute_force(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, dict]:
    """Every distinct score of one attribute and the metrics there, by full passes."""
    candidates = np.unique(scores)
    rows = [attribute_metrics(labels, scores, t) for t in candidates]
    return candidates, {k: np.array([r[k][0] for r in rows]) for k in ("precision", "recall", "f1")}


@pytest.mark.parametrize("seed,n,a", CASES)
def test_tune_f1_is_optimal(seed: int, n: int, a: int) -> None:
    labels, scores = random_case(seed, n, a)
    choice = tune_thresholds(labels, scores, "f1")
    assert isinstance(choice, ThresholdChoice) and choice.thresholds.dtype == np.float64
    assert choice.thresholds.shape == choice.achieved.shape == choice.feasible.shape == (a,)
    np.testing.assert_array_equal(choice.achieved, attribute_metrics(labels, scores, choice.thresholds)["f1"])
    for j in range(a):
        if not labels[:, j].any():
            assert choice.thresholds[j] == 0.5 and not choice.feasible[j]
            continue
        candidates, m = brute_force(labels[:, j], scores[:, j])
        best = m["f1"].max()
        assert choice.feasible[j]
        assert choice.achieved[j] == pytest.approx(best, abs=1e-12)
        assert choice.thresholds[j] == candidates[np.flatnonzero(np.isclose(m["f1"], best, rtol=0, atol=1e-12))[-1]]


@pytest.mark.parametrize("seed,n,a", CASES)
@pytest.mark.parametrize("target", [0.0, 0.3, 0.6, 0.9, 1.0])
def test_tune_precision_and_recall_targets(seed: int, n: int, a: int, target: float) -> None:
    labels, scores = random_case(seed, n, a)
    by_precision = tune_thresholds(labels, scores, "precision", target)
    by_recall = tune_thresholds(labels, scores, "recall", target)
    at_p = attribute_metrics(labels, scores, by_precision.thresholds)
    at_r = attribute_metrics(labels, scores, by_recall.thresholds)
    np.testing.assert_array_equal(by_precision.achieved, at_p["precision"])
    np.testing.assert_array_equal(by_recall.achieved, at_r["recall"])
    for j in range(a):
        if not labels[:, j].any():
            assert by_precision.thresholds[j] == by_recall.thresholds[j] == 0.5
            assert not by_precision.feasible[j] and not by_recall.feasible[j]
            continue
        candidates, m = brute_force(labels[:, j], scores[:, j])
        p, r = m["precision"], m["recall"]
        # precision >= target with the highest recall (then the highest precision)
        ok = p >= target
        assert by_precision.feasible[j] == ok.any()
        if ok.any():
            assert at_p["precision"][j] >= target
            assert at_p["recall"][j] == r[ok].max()
            assert at_p["precision"][j] == p[ok & (r == r[ok].max())].max()
        else:
            assert at_p["precision"][j] == p.max()
        # recall >= target with the highest precision (then the highest recall)
        ok = r >= target
        assert ok.any() and by_recall.feasible[j]  # the lowest score always gives recall 1
        assert at_r["recall"][j] >= target
        assert at_r["precision"][j] == p[ok].max()
        assert at_r["recall"][j] == r[ok & (p == p[ok].max())].max()
        assert by_precision.thresholds[j] in candidates and by_recall.thresholds[j] in candidates


def test_tune_unreachable_and_arguments() -> None:
    labels = np.array([1, 0, 1, 0, 0, 0])
    scores = np.array([0.3, 0.9, 0.2, 0.8, 0.7, 0.1])  # every negative above every positive
    choice = tune_thresholds(labels, scores, "precision", 0.6)
    assert not choice.feasible[0]
    assert choice.achieved[0] == pytest.approx(2 / 5)  # the best precision reachable, at 0.2
    assert choice.thresholds[0] == 0.2
    # Recall unreachable only when positives have NaN scores (never predicted positive).
    choice = tune_thresholds(labels, np.array([np.nan, 0.9, 0.2, 0.8, 0.7, 0.1]), "recall", 0.9)
    assert not choice.feasible[0] and choice.achieved[0] == 0.5
    with pytest.raises(ValueError):
        tune_thresholds(labels, scores, "precision")
    with pytest.raises(ValueError):
        tune_thresholds(labels, scores, "recall", 1.5)
    with pytest.raises(ValueError):
        tune_thresholds(labels, scores, "accuracy")
    sweep = ThresholdSweep(labels, scores)
    assert tune_thresholds(labels, scores, sweep=sweep).as_dict() == tune_thresholds(labels, scores).as_dict()
    d = tune_thresholds(labels, scores).as_dict()
    assert d["objective"] == "f1" and isinstance(d["thresholds"][0], float) and isinstance(d["feasible"][0], bool)


def test_tune_f1_tie_takes_higher_threshold() -> None:
    labels = np.array([1, 0, 0, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    # F1 at 0.9: 2/(2+0+1) = 2/3; at 0.6: 4/(4+2+0) = 2/3 (others lower): the tie goes to 0.9.
    choice = tune_thresholds(labels, scores)
    assert choice.thresholds[0] == 0.9 and choice.achieved[0] == 2 / 3


# ----- curves -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,n,a", CASES)
def test_curves_match_sklearn(seed: int, n: int, a: int) -> None:
    labels, scores = random_case(seed, n, a)
    ap, auc = average_precision(labels, scores), roc_auc(labels, scores)
    assert ap.shape == auc.shape == (a,)
    for j in range(a):
        y, s = labels[:, j], scores[:, j]
        pr = pr_curve(y, s)
        precision, recall, thresholds = quiet_sklearn(precision_recall_curve, y, s)
        np.testing.assert_array_equal(pr["thresholds"], thresholds)
        np.testing.assert_allclose(pr["precision"], precision)
        roc = roc_curve_points(y, s)
        fpr, tpr, roc_t = quiet_sklearn(roc_curve, y, s)
        np.testing.assert_array_equal(roc["thresholds"], roc_t)
        if y.any():
            np.testing.assert_allclose(pr["recall"], recall)
            assert ap[j] == pytest.approx(average_precision_score(y, s))
        else:
            assert not pr["recall"].any() and ap[j] == 0.0
        if y.any() and not y.all():
            assert auc[j] == pytest.approx(roc_auc_score(y, s))
            np.testing.assert_allclose(roc["fpr"], fpr)
            np.testing.assert_allclose(roc["tpr"], tpr)
        else:
            assert np.isnan(auc[j])  # undefined with one class: the only documented NaN
            assert not np.isnan(roc["fpr"]).any() and not np.isnan(roc["tpr"]).any()


def test_curves_edge_cases() -> None:
    assert average_precision(np.ones(4), np.array([0.1, 0.2, 0.2, 0.9]))[0] == 1.0
    assert np.isnan(roc_auc(np.ones(4), np.linspace(0, 1, 4))[0])
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5]))[0] == 0.5  # all tied
    assert pr_curve(np.zeros(0), np.zeros(0))["thresholds"].size == 0
    assert roc_auc(np.zeros((0, 2)), np.zeros((0, 2))).shape == (2,)
    with pytest.raises(ValueError):
        pr_curve(np.zeros((3, 2)), np.zeros((3, 2)))


def slow_reliability(y: np.ndarray, s: np.ndarray, bins: int) -> list[tuple[int, float, float]]:
    """(count, mean score, fraction positive) per bin, with sklearn's rule: a score on an inner
    edge belongs to the lower bin."""
    edges = np.linspace(0, 1, bins + 1)
    out = []
    for b in range(bins):
        lo, hi = edges[b], edges[b + 1]
        inside = [(si, yi) for si, yi in zip(s, y) if (lo < si <= hi) or (b == 0 and si == 0.0)]
        if inside:
            out.append((len(inside), float(np.mean([si for si, _ in inside])), float(np.mean([yi for _, yi in inside]))))
        else:
            out.append((0, np.nan, np.nan))
    return out


@pytest.mark.parametrize("seed,n,bins", [(0, 1, 10), (1, 7, 10), (2, 200, 10), (3, 500, 15), (4, 50, 1), (5, 300, 4)])
def test_reliability_and_ece(seed: int, n: int, bins: int) -> None:
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, 1, bins + 1)
    scores = np.round(rng.random((n, 3)), 2)
    scores[: n // 3, 0] = rng.choice(edges, size=n // 3)  # exactly on bin edges, including 0 and 1
    labels = (rng.random((n, 3)) < scores).astype(np.uint8)
    labels[:, 2] = 0
    ece = expected_calibration_error(labels, scores, bins)
    assert ece.shape == (3,)
    for j in range(3):
        rc = reliability_curve(labels[:, j], scores[:, j], bins)
        assert all(v.shape == (bins,) for v in rc.values())
        np.testing.assert_allclose(rc["bin_lower"], edges[:-1])
        np.testing.assert_allclose(rc["bin_upper"], edges[1:])
        assert rc["count"].sum() == n
        filled = rc["count"] > 0
        assert np.isnan(rc["mean_score"][~filled]).all() and np.isnan(rc["fraction_positive"][~filled]).all()
        prob_true, prob_pred = quiet_sklearn(calibration_curve, labels[:, j], scores[:, j], n_bins=bins, strategy="uniform")
        np.testing.assert_allclose(rc["fraction_positive"][filled], prob_true)
        np.testing.assert_allclose(rc["mean_score"][filled], prob_pred)
        slow = slow_reliability(labels[:, j], scores[:, j], bins)
        np.testing.assert_array_equal(rc["count"], [c for c, _, _ in slow])
        np.testing.assert_allclose(rc["mean_score"], [m for _, m, _ in slow])
        np.testing.assert_allclose(rc["fraction_positive"], [f for _, _, f in slow])
        slow_ece = sum(c / n * abs(f - m) for c, m, f in slow if c)
        assert ece[j] == pytest.approx(slow_ece, abs=1e-12)


def test_calibration_rejects_non_probabilities() -> None:
    with pytest.raises(ValueError):
        expected_calibration_error(np.array([0, 1]), np.array([0.2, 1.2]))
    with pytest.raises(ValueError):
        reliability_curve(np.array([0, 1]), np.array([0.2, np.nan]))
    assert expected_calibration_error(np.zeros((0, 2)), np.zeros((0, 2))).tolist() == [0.0, 0.0]
    perfect = expected_calibration_error(np.array([0, 1]), np.array([0.0, 1.0]))
    assert perfect[0] == 0.0


# ----- bootstrap ----------------------------------------------------------------------------

INTERVAL_KEYS = ("precision", "recall", "f1")
MACRO_KEYS = ("macro_precision", "macro_recall", "macro_f1", "paper_f")


def typical(seed: int = 0, n: int = 2000, a: int = 4, people: int = 200):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, a)) < np.linspace(0.1, 0.6, a)).astype(np.uint8)
    scores = np.clip(0.35 * labels + 0.65 * rng.random((n, a)), 0, 1)
    return labels, scores, rng.integers(0, people, size=n)


def test_bootstrap_shapes_deterministic_and_contains_estimate() -> None:
    labels, scores, groups = typical()
    r1 = bootstrap_ci(labels, scores, 0.5, groups=groups, n_boot=500, seed=3)
    r2 = bootstrap_ci(labels, scores, 0.5, groups=groups, n_boot=500, seed=3)
    r3 = bootstrap_ci(labels, scores, 0.5, groups=groups, n_boot=500, seed=4)
    point = attribute_metrics(labels, scores, 0.5)
    summary = summarize(point)
    for key in INTERVAL_KEYS:
        assert r1[key].shape == (4, 2)
        np.testing.assert_array_equal(r1[key], r2[key])
        assert not np.array_equal(r1[key], r3[key])
        assert (r1[key][:, 0] <= point[key]).all() and (point[key] <= r1[key][:, 1]).all()
        assert (r1[key][:, 0] < r1[key][:, 1]).all()
        np.testing.assert_array_equal(r1["estimate"][key], point[key])
    for key in MACRO_KEYS:
        assert r1[key].shape == (2,)
        assert r1[key][0] <= summary[key] <= r1[key][1]
        assert r1["estimate"][key] == pytest.approx(summary[key])
    assert r1["n_groups"] == len(np.unique(groups)) and r1["resampled"] == "groups"
    assert r1["n_boot"] == 500 and r1["confidence"] == 0.95
    narrow = bootstrap_ci(labels, scores, 0.5, groups=groups, n_boot=500, confidence=0.5, seed=3)
    assert (np.diff(narrow["f1"], axis=1) < np.diff(r1["f1"], axis=1)).all()


def test_bootstrap_keeps_groups_together() -> None:
    # 30 people with 7 images each; within a person every image has the same label and prediction,
    # so every replicate's counts are multiples of 7 when people are resampled.
    rng = np.random.default_rng(1)
    person_label = rng.random((30, 3)) < 0.5
    person_score = rng.random((30, 3))
    labels = np.repeat(person_label, 7, axis=0)
    scores = np.repeat(person_score, 7, axis=0)
    groups = np.repeat(rng.permutation(1000)[:30], 7)
    reps, full, info = bootstrap_counts(labels, scores, 0.5, groups=groups, n_boot=200, seed=0)
    assert reps.shape == (200, 3, 4) and info == {"n_groups": 30, "resampled": "groups"}
    assert (reps % 7 == 0).all()
    assert (reps.sum(axis=2) == 210).all()
    c = confusion_counts(labels, scores, 0.5)
    np.testing.assert_array_equal(full, np.stack([c["tp"], c["fp"], c["fn"], c["tn"]], axis=1))
    image_reps, _, image_info = bootstrap_counts(labels, scores, 0.5, n_boot=200, seed=0)
    assert image_info == {"n_groups": 210, "resampled": "images"}
    assert (image_reps % 7 != 0).any()


def test_group_resampling_is_wider_than_image_resampling() -> None:
    # Twenty people, 50 images each: the model is right on every image of half the people and
    # wrong on every image of the others. Image resampling sees 1,000 independent images; person
    # resampling sees 20, so its intervals must be much wider.
    people, per = 20, 50
    labels = np.ones((people * per, 1), dtype=np.uint8)
    good = np.repeat(np.arange(people) % 2 == 0, per)
    scores = np.where(good, 0.9, 0.1)[:, None]
    groups = np.repeat(np.arange(people), per)
    by_people = bootstrap_ci(labels, scores, 0.5, groups=groups, n_boot=1000, seed=0)
    by_images = bootstrap_ci(labels, scores, 0.5, n_boot=1000, seed=0)
    width_people = np.diff(by_people["recall"][0])[0]
    width_images = np.diff(by_images["recall"][0])[0]
    assert by_people["resampled"] == "groups" and by_images["resampled"] == "images"
    assert width_people > 3 * width_images
    assert width_images == pytest.approx(2 * 1.96 * np.sqrt(0.25 / 1000), rel=0.25)


def test_bootstrap_negative_ids_are_own_groups_and_edge_cases() -> None:
    labels, scores, groups = typical(n=300, people=10)
    none = bootstrap_ci(labels, scores, n_boot=50, seed=1)
    minus = bootstrap_ci(labels, scores, groups=np.full(300, -1), n_boot=50, seed=1)
    assert minus["resampled"] == "images" and minus["n_groups"] == 300
    for key in INTERVAL_KEYS + MACRO_KEYS:
        np.testing.assert_array_equal(none[key], minus[key])
    mixed = groups.copy()
    mixed[:100] = -1
    r = bootstrap_ci(labels, scores, groups=mixed, n_boot=50)
    assert r["n_groups"] == 100 + len(np.unique(groups[100:])) and r["resampled"] == "groups"
    as_float = mixed.astype(np.float64)
    as_float[:50] = np.nan  # a missing id read from a table
    f = bootstrap_ci(labels, scores, groups=as_float, n_boot=50)
    assert f["n_groups"] == r["n_groups"]
    for key in INTERVAL_KEYS:
        np.testing.assert_array_equal(f[key], r[key])
    # No positives in one attribute, N = 1 and N = 0: defined values, no warnings.
    labels[:, 0] = 0
    r = bootstrap_ci(labels, scores, n_boot=50)
    np.testing.assert_array_equal(r["recall"][0], [0.0, 0.0])
    r = bootstrap_ci(np.array([1]), np.array([0.9]), n_boot=20)
    np.testing.assert_array_equal(r["f1"], [[1.0, 1.0]])
    r = bootstrap_ci(np.zeros((0, 2)), np.zeros((0, 2)), n_boot=20)
    assert r["n_groups"] == 0 and not r["f1"].any() and not r["paper_f"].any()
    with pytest.raises(ValueError):
        bootstrap_ci(labels, scores, n_boot=0)
    with pytest.raises(ValueError):
        bootstrap_ci(labels, scores, confidence=1.0)
    with pytest.raises(ValueError):
        bootstrap_ci(labels, scores, groups=np.zeros(5))


def test_bootstrap_is_fast() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random((20_000, 10)) < 0.3).astype(np.uint8)
    scores = np.clip(0.4 * labels + 0.6 * rng.random((20_000, 10)), 0, 1)
    groups = rng.integers(0, 1000, size=20_000)
    start = time.perf_counter()
    bootstrap_ci(labels, scores, 0.5, groups=groups, n_boot=1000)
    assert time.perf_counter() - start < 2.0  # about 0.03 s on a 2-core CPU; generous for CI


def test_heldout_tuning_gain_sees_a_shifted_operating_point_and_a_calibrated_one():
    rng = np.random.default_rng(3)
    people = np.repeat(np.arange(40), 25)
    labels = (rng.random((1000, 3)) < 0.3).astype(np.uint8)
    # Under-confident scores: positives sit around 0.35, so 0.5 misses most of them.
    shifted = np.clip(np.where(labels == 1, 0.35, 0.1) + rng.normal(0, 0.05, labels.shape), 0, 1)
    gain = heldout_tuning_gain(labels, shifted, people, repeats=10)
    assert gain["mean_gain"] > 0.3 and gain["share_improved"] == 1.0 and gain["comparisons"] == 20
    # Well separated around 0.5: tuning on half the people has nothing to add on the other half.
    calibrated = np.clip(np.where(labels == 1, 0.8, 0.2) + rng.normal(0, 0.05, labels.shape), 0, 1)
    assert abs(heldout_tuning_gain(labels, calibrated, people, repeats=10)["mean_gain"]) < 0.01
    assert heldout_tuning_gain(labels, shifted, people, repeats=10, seed=1) == heldout_tuning_gain(
        labels, shifted, people, repeats=10, seed=1)
    with pytest.raises(ValueError, match="at least 4 groups"):
        heldout_tuning_gain(labels, shifted, people % 3)


@pytest.mark.parametrize("threshold", [0.0, 0.123, 0.5, 0.97, 1.0])
def test_a_curve_for_display_has_a_few_thousand_points_and_the_operating_point(threshold: float) -> None:
    from celeba_model.metrics.curves import pr_curve_for_display

    rng = np.random.default_rng(3)
    truth = rng.random((200_000, 1)) < 0.1
    scores = np.clip(rng.normal(0.3 + 0.4 * truth, 0.2), 0, 1).round(6)
    sweep = ThresholdSweep(truth, scores)
    full = sweep.curve(0)
    shown = pr_curve_for_display(full, threshold)
    assert len(full["thresholds"]) > 100_000 and 1_000 <= len(shown["recall"]) <= 2_001
    # Exact at the operating point: the metrics at the threshold are a point of the drawn line.
    at = sweep.metrics_at(np.array([threshold]))
    k = int(shown["operating"])
    assert shown["recall"][k] == at["recall"][0] and shown["precision"][k] == at["precision"][0]
    assert shown["thresholds"][k] >= threshold and (k == 0 or shown["thresholds"][k - 1] < threshold)
    # Kept points are points of the curve, in order, from its first to its last.
    assert np.all(np.diff(shown["thresholds"]) > 0)
    assert shown["thresholds"][0] == full["thresholds"][0] and shown["thresholds"][-1] == full["thresholds"][-1]
    # Drawn neighbours are close along the curve (or neighbours on it already): no detail is lost at chart size.
    steps = np.hypot(np.diff(shown["recall"]), np.diff(shown["precision"]))
    full_steps = np.hypot(np.diff(full["recall"]), np.diff(full["precision"]))
    assert steps.max() <= max(2 * full_steps.sum() / 1999, full_steps.max()) + 1e-12


def test_thin_curve_keeps_short_curves_whole_and_checks_its_arguments() -> None:
    from celeba_model.metrics.curves import pr_curve_for_display, thin_curve

    x = np.linspace(0, 1, 50)
    assert thin_curve(x, x**2, max_points=100).tolist() == list(range(50))
    assert thin_curve(np.zeros(5000), np.zeros(5000), max_points=10).tolist() == [0, 4999]
    assert 4321 in thin_curve(np.linspace(0, 1, 10_000), np.zeros(10_000), max_points=10, keep=[4321])
    with pytest.raises(ValueError):
        thin_curve(x, x, max_points=1)
    with pytest.raises(IndexError):
        thin_curve(x, x, keep=[50])
    # Above every score nothing is predicted positive: no point of the curve is the operating point.
    assert pr_curve_for_display(ThresholdSweep(np.array([1, 0]), np.array([0.2, 0.4])).curve(0), 0.9)["operating"] == -1
