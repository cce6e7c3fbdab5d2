"""celeba_model.metrics.counts against scikit-learn on random and edge-case inputs, and the paper's AVG row."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    hamming_loss,
    precision_score,
    recall_score,
)

from celeba_model.metrics.counts import attribute_metrics, confusion_counts, metrics_from_counts, summarize
from celeba_model.metrics.paper_reference import PAPER_TABLE, PAPER_TEST_IMAGES

# Any warning (division by zero, sklearn's UndefinedMetricWarning from our own code) fails a test;
# the sklearn reference calls pass zero_division=0 and are made only where they do not warn.
pytestmark = pytest.mark.filterwarnings("error")

KEYS = {
    "tp", "fp", "fn", "tn", "support", "predicted_positive",
    "precision", "recall", "f1", "specificity", "accuracy", "balanced_accuracy",
}


def random_case(seed: int, n: int, a: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels with varied base rates (sometimes all 0 or all 1), scores with many ties, thresholds
    that are often exact score values."""
    rng = np.random.default_rng(seed)
    rates = rng.choice([0.0, 0.05, 0.3, 0.5, 0.9, 1.0], size=a)
    labels = (rng.random((n, a)) < rates).astype(np.uint8)
    scores = np.clip(0.5 * labels + 0.7 * rng.random((n, a)) - 0.1, 0, 1)
    scores = np.round(scores, int(rng.integers(1, 4)))  # ties
    thresholds = rng.random(a)
    exact = rng.random(a) < 0.5
    thresholds[exact] = scores[rng.integers(0, n, size=a), np.arange(a)][exact]
    return labels, scores, thresholds


CASES = [(seed, n, a) for seed, (n, a) in enumerate(itertools.product([1, 2, 5, 37, 500], [1, 2, 5]))]


def reference_binary(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Per-attribute values from scikit-learn (zero_division=0)."""
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    out = {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision_score(y, pred, zero_division=0),
        "recall": recall_score(y, pred, zero_division=0),
        "f1": f1_score(y, pred, zero_division=0),
        "specificity": recall_score(y, pred, pos_label=0, zero_division=0),
        "accuracy": accuracy_score(y, pred),
    }
    if len(np.unique(y)) == 2:  # sklearn's balanced accuracy matches ours only with both classes present
        out["balanced_accuracy"] = balanced_accuracy_score(y, pred)
    return out


@pytest.mark.parametrize("seed,n,a", CASES)
def test_attribute_metrics_match_sklearn(seed: int, n: int, a: int) -> None:
    labels, scores, thresholds = random_case(seed, n, a)
    m = attribute_metrics(labels, scores, thresholds)
    assert set(m) == KEYS
    assert all(v.shape == (a,) for v in m.values())
    pred = (scores >= thresholds).astype(np.uint8)
    for j in range(a):
        ref = reference_binary(labels[:, j], pred[:, j])
        for key, value in ref.items():
            assert m[key][j] == pytest.approx(value, abs=1e-12), (key, j)
        assert m["support"][j] == labels[:, j].sum()
        assert m["predicted_positive"][j] == pred[:, j].sum()
        expected_ba = (m["recall"][j] + m["specificity"][j]) / 2
        assert m["balanced_accuracy"][j] == pytest.approx(expected_ba)


@pytest.mark.parametrize("seed,n,a", [c for c in CASES if c[2] >= 2])
def test_summarize_matches_sklearn_macro_and_micro(seed: int, n: int, a: int) -> None:
    labels, scores, thresholds = random_case(seed, n, a)
    pred = (scores >= thresholds).astype(np.uint8)
    s = summarize(attribute_metrics(labels, scores, thresholds))
    # Multilabel indicator arrays (N, A) with A >= 2, as sklearn reads them.
    for name, fn in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        assert s["micro_" + name] == pytest.approx(fn(labels, pred, average="micro", zero_division=0), abs=1e-12)
        assert s["macro_" + name] == pytest.approx(fn(labels, pred, average="macro", zero_division=0), abs=1e-12)
    # micro accuracy is element-wise (1 - Hamming loss), not sklearn's subset accuracy.
    assert s["micro_accuracy"] == pytest.approx(accuracy_score(labels.ravel(), pred.ravel()))
    assert s["micro_accuracy"] == pytest.approx(1 - hamming_loss(labels, pred))
    assert s["macro_accuracy"] == pytest.approx(np.mean([accuracy_score(labels[:, j], pred[:, j]) for j in range(a)]))
    m = attribute_metrics(labels, scores, thresholds)
    assert s["macro_balanced_accuracy"] == pytest.approx(m["balanced_accuracy"].mean())
    p, r = s["macro_precision"], s["macro_recall"]
    assert s["paper_f"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)
    assert all(isinstance(v, float) for v in s.values())


@pytest.mark.parametrize("seed", range(4))
def test_single_attribute_1d_input(seed: int) -> None:
    labels, scores, thresholds = random_case(seed, 60, 1)
    m2 = attribute_metrics(labels, scores, thresholds)
    m1 = attribute_metrics(labels[:, 0], scores[:, 0], float(thresholds[0]))
    for key in KEYS:
        np.testing.assert_array_equal(m1[key], m2[key])
    s = summarize(m1)
    pred = scores[:, 0] >= thresholds[0]
    assert s["micro_f1"] == pytest.approx(f1_score(labels[:, 0], pred, zero_division=0))
    assert s["macro_f1"] == s["micro_f1"]


def test_edge_cases_match_sklearn() -> None:
    n = 8
    labels = np.zeros((n, 6), dtype=np.uint8)
    scores = np.zeros((n, 6))
    labels[:, 0] = 0  # no positives, some predicted
    scores[:, 0] = np.linspace(0, 1, n)
    labels[:, 1] = 1  # all positives
    scores[:, 1] = np.linspace(0, 1, n)
    labels[::2, 2] = 1  # no predicted positives
    scores[:, 2] = 0.1
    labels[:3, 3] = 1  # all scores tied at the threshold: all predicted positive
    scores[:, 3] = 0.5
    labels[:, 4] = 0  # no positives and nothing predicted: every ratio is 0/0 -> 0
    scores[:, 4] = 0.2
    labels[1::2, 5] = 1  # ties exactly at the threshold on both sides
    scores[:, 5] = [0.5, 0.5, 0.4999999, 0.5000001, 0.5, 0.1, 0.9, 0.5]
    m = attribute_metrics(labels, scores, 0.5)
    pred = (scores >= 0.5).astype(np.uint8)
    for j in range(6):
        for key, value in reference_binary(labels[:, j], pred[:, j]).items():
            assert m[key][j] == pytest.approx(value), (key, j)
    np.testing.assert_array_equal(m["predicted_positive"], [4, 4, 0, 8, 0, 6])
    assert m["precision"][4] == m["recall"][4] == m["f1"][4] == 0.0
    assert m["specificity"][4] == 1.0 and m["accuracy"][4] == 1.0


def test_balanced_accuracy_definition_with_one_class() -> None:
    """Ours is always (recall + specificity) / 2 with 0 for an empty part; sklearn averages only the
    classes present in y_true (and says 1.0 when one class is the only truth and prediction)."""
    y = np.array([1, 1, 1, 1])
    s = np.array([0.9, 0.8, 0.2, 0.1])
    m = attribute_metrics(y, s, 0.5)
    assert m["recall"][0] == 0.5 and m["specificity"][0] == 0.0
    assert m["balanced_accuracy"][0] == 0.25
    with pytest.warns(UserWarning):  # sklearn: "y_pred contains classes not in y_true", gives recall
        assert balanced_accuracy_score(y, s >= 0.5) == 0.5
    m = attribute_metrics(np.zeros(3), np.zeros(3), 0.5)
    assert m["balanced_accuracy"][0] == 0.5  # specificity 1, recall 0 (no positives)
    with pytest.warns(UserWarning):  # sklearn: "A single label was found in 'y_true' and 'y_pred'"
        assert balanced_accuracy_score(np.zeros(3), np.zeros(3)) == 1.0


def test_n1_and_empty() -> None:
    for y, s in ((1, 0.7), (1, 0.2), (0, 0.7), (0, 0.2), (1, 0.5)):
        m = attribute_metrics(np.array([y]), np.array([s]), 0.5)
        ref = reference_binary(np.array([y]), np.array([int(s >= 0.5)]))
        for key, value in ref.items():
            assert m[key][0] == pytest.approx(value)
    m = attribute_metrics(np.zeros((0, 3), dtype=np.uint8), np.zeros((0, 3)), 0.5)
    assert all(v.shape == (3,) and not v.any() for v in m.values())
    s = summarize(m)
    assert all(v == 0.0 for v in s.values())


def test_metrics_from_counts_elementwise_any_shape() -> None:
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 4, size=(4, 7, 5))  # (B, A) arrays with many zeros
    tp, fp, fn, tn = counts
    m = metrics_from_counts(tp, fp, fn, tn)
    assert set(m) == KEYS and all(v.shape == (7, 5) for v in m.values())
    for i, j in itertools.product(range(7), range(5)):
        one = metrics_from_counts(tp[i, j], fp[i, j], fn[i, j], tn[i, j])
        for key in KEYS:
            assert one[key] == m[key][i, j]
        # The same numbers from sklearn on a made-up sample with these counts.
        y = np.repeat([1, 0, 1, 0], [tp[i, j], fp[i, j], fn[i, j], tn[i, j]])
        pred = np.repeat([1, 1, 0, 0], [tp[i, j], fp[i, j], fn[i, j], tn[i, j]])
        if y.size:
            for key, value in reference_binary(y, pred).items():
                assert m[key][i, j] == pytest.approx(value), key
    zero = metrics_from_counts(0, 0, 0, 0)
    assert all(float(v) == 0.0 for v in zero.values())


def test_confusion_counts_and_thresholds_per_attribute() -> None:
    labels, scores, _ = random_case(11, 100, 3)
    t = np.array([0.2, 0.5, 0.8])
    c = confusion_counts(labels, scores, t)
    for j in range(3):
        tn, fp, fn, tp = confusion_matrix(labels[:, j], scores[:, j] >= t[j], labels=[0, 1]).ravel()
        assert (c["tp"][j], c["fp"][j], c["fn"][j], c["tn"][j]) == (tp, fp, fn, tn)
    assert all(v.dtype == np.int64 for v in c.values())


def test_paper_avg_row() -> None:
    tp, positives, precision = (np.array([row[i] for row in PAPER_TABLE.values()]) for i in range(3))
    fp = np.rint(tp / precision - tp).astype(np.int64)
    fn = positives - tp
    # Young's precision implies more false positives than the 19,962-image test split has negatives,
    # so TN is clipped at 0; it does not enter precision, recall or F.
    tn = np.maximum(PAPER_TEST_IMAGES - positives - fp, 0)
    m = metrics_from_counts(tp, fp, fn, tn)
    np.testing.assert_allclose(m["precision"], precision, atol=1.5e-3)
    s = summarize(m)
    assert round(s["macro_precision"], 3) == 0.878
    assert round(s["macro_recall"], 3) == 0.539
    assert round(s["paper_f"], 3) == 0.668
    # The mean of per-attribute F1 is not the paper's F: that is why paper_f exists.
    assert round(s["macro_f1"], 3) == 0.594
    # The paper's "Accuracy (TP)" column is TP / positives, i.e. recall.
    np.testing.assert_allclose(m["recall"], tp / positives)
