"""Metrics at any thresholds without another pass over the data, and threshold tuning.

``ThresholdSweep`` sorts each attribute's scores once and keeps cumulative positive counts, so the
confusion counts at new thresholds cost one ``np.searchsorted`` per attribute: cheap enough for a
dashboard slider that recomputes on every move. Conventions are those of ``celeba_model.metrics.counts``:
a prediction is positive when ``score >= threshold``; ratios with a zero denominator are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .counts import _as_2d, f1_from_counts, metrics_from_counts, safe_divide

OBJECTIVES = ("f1", "precision", "recall")
# Threshold returned for an attribute without positives: every threshold has precision, recall
# and F1 of 0 there, so none is better; the usual default keeps the choice predictable.
NO_POSITIVES_THRESHOLD = 0.5


class ThresholdSweep:
    """Confusion counts and metrics of (labels, scores) at any thresholds, after one sort.

    ``labels`` (N, A) 0/1 and ``scores`` (N, A), or (N,) for one attribute. NaN scores are never
    predicted positive, as with ``score >= threshold`` in ``metrics.confusion_counts``.
    """

    def __init__(self, labels: np.ndarray, scores: np.ndarray) -> None:
        truth, scores = _as_2d(labels, scores)
        self.num_samples, self.num_attributes = truth.shape
        self.positives = truth.sum(axis=0).astype(np.int64)
        # One row per attribute: scores ascending (NaN last, as np.sort puts them), and the number
        # of positives among the first k sorted samples at column k.
        scores_t = np.ascontiguousarray(scores.T, dtype=np.float64)
        order = np.argsort(scores_t, axis=1, kind="stable")
        self._sorted = np.take_along_axis(scores_t, order, axis=1)
        sorted_truth = np.take_along_axis(np.ascontiguousarray(truth.T), order, axis=1)
        self._cum_pos = np.zeros((self.num_attributes, self.num_samples + 1), dtype=np.int64)
        np.cumsum(sorted_truth, axis=1, out=self._cum_pos[:, 1:])
        self._valid = (~np.isnan(self._sorted)).sum(axis=1).astype(np.int64)  # non-NaN scores
        self._arange = np.arange(self.num_attributes)
        self._valid_pos = self._cum_pos[self._arange, self._valid]  # positives among them
        # Views of the non-NaN part of each row, made once: slicing on every call costs more
        # than the search itself.
        self._rows = [self._sorted[a, :v] for a, v in enumerate(self._valid)]

    def _num_below(self, thresholds: float | np.ndarray) -> np.ndarray:
        """Number of non-NaN scores strictly below each threshold: shape (A,) or (..., A)."""
        t = np.asarray(thresholds, dtype=np.float64)
        if t.ndim == 0:
            t = np.full(self.num_attributes, float(t))
        else:
            t = np.broadcast_to(t, t.shape[:-1] + (self.num_attributes,))
        below = np.empty(t.shape, dtype=np.int64)
        for a in range(self.num_attributes):
            # side="left" counts scores < t, so a score equal to the threshold is predicted
            # positive. A NaN threshold lands after the last valid score: nothing predicted, as
            # ``score >= nan`` is False.
            below[..., a] = np.searchsorted(self._rows[a], t[..., a], side="left")
        return below

    def counts_at(self, thresholds: float | np.ndarray) -> dict[str, np.ndarray]:
        """TP, FP, FN, TN (int64) at ``thresholds`` (a float, an (A,) array, or (..., A) for many at once)."""
        below = self._num_below(thresholds)
        cum_below = self._cum_pos[self._arange, below]
        tp = self._valid_pos - cum_below
        fp = (self._valid - below) - tp
        fn = self.positives - tp
        tn = (self.num_samples - self.positives) - fp
        return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}

    def metrics_at(self, thresholds: float | np.ndarray) -> dict[str, np.ndarray]:
        """Per-attribute metrics at ``thresholds``, keys of ``metrics.attribute_metrics``."""
        c = self.counts_at(thresholds)
        return metrics_from_counts(c["tp"], c["fp"], c["fn"], c["tn"])

    def curve(self, attribute: int) -> dict[str, np.ndarray]:
        """Counts and metrics at every distinct (non-NaN) score of one attribute, ascending.

        Keys: thresholds, tp, fp, fn, tn, precision, recall, f1; entry i is for predicting
        positive when ``score >= thresholds[i]``. Unlike scikit-learn's precision_recall_curve,
        no (precision 1, recall 0) end point is appended, and recall is 0 without positives.
        """
        if not -self.num_attributes <= attribute < self.num_attributes:
            raise IndexError(f"attribute {attribute} out of range for {self.num_attributes} attributes")
        valid = int(self._valid[attribute])
        s = self._sorted[attribute, :valid]
        # The first sorted position of each distinct score: predicting positive from there on.
        starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1]))) if valid else np.zeros(0, dtype=np.int64)
        tp = self._valid_pos[attribute] - self._cum_pos[attribute, starts]
        fp = (valid - starts) - tp
        positives = self.positives[attribute]
        return {
            "thresholds": s[starts],
            "tp": tp,
            "fp": fp,
            "fn": positives - tp,
            "tn": (self.num_samples - positives) - fp,
            "precision": safe_divide(tp, tp + fp),
            "recall": safe_divide(tp, np.full_like(tp, positives)),
            "f1": f1_from_counts(tp, fp, positives - tp),
        }


@dataclass
class ThresholdChoice:
    """Thresholds chosen per attribute by ``tune_thresholds``.

    ``achieved`` is the objective's value at the chosen thresholds on the tuning data; ``feasible``
    is False where the target could not be reached or the attribute has no positives (the
    threshold is then still defined: see ``tune_thresholds``). precision, recall and f1 are the
    metrics at the chosen thresholds on the tuning data.
    """

    thresholds: np.ndarray
    objective: str
    target: float | None
    achieved: np.ndarray
    feasible: np.ndarray
    precision: np.ndarray | None = None
    recall: np.ndarray | None = None
    f1: np.ndarray | None = None

    def as_dict(self) -> dict:
        """Plain JSON-serializable form (lists of floats and bools)."""
        out = {"objective": self.objective, "target": self.target}
        for key in ("thresholds", "achieved", "feasible", "precision", "recall", "f1"):
            value = getattr(self, key)
            out[key] = None if value is None else np.asarray(value).tolist()
        return out


def _pick(primary: np.ndarray, secondary: np.ndarray, mask: np.ndarray) -> int:
    """Index maximising (primary, secondary) among ``mask``; remaining ties go to the highest index."""
    idx = np.flatnonzero(mask)
    best = idx[primary[idx] == primary[idx].max()]
    best = best[secondary[best] == secondary[best].max()]
    return int(best[-1])


def tune_thresholds(
    labels: np.ndarray,
    scores: np.ndarray,
    objective: str = "f1",
    target: float | None = None,
    sweep: ThresholdSweep | None = None,
) -> ThresholdChoice:
    """Choose one threshold per attribute among the distinct scores (as precision_recall_curve does).

    - ``"f1"``: the highest F1; ties go to the higher threshold.
    - ``"precision"``: precision >= target with the highest recall; among thresholds with that
      recall, the highest precision (the highest of them). If no threshold reaches the target:
      the highest precision (then highest recall), ``feasible`` False.
    - ``"recall"``: recall >= target with the highest precision; ties go to the higher recall
      (the lower threshold). If unreachable (only possible when some positives have NaN scores):
      the highest recall (then highest precision), ``feasible`` False.

    An attribute without positives (or without any non-NaN score) gets ``NO_POSITIVES_THRESHOLD``
    (0.5) and ``feasible`` False. Pass ``sweep`` to reuse a ``ThresholdSweep`` of the same data.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if objective == "f1":
        if target is not None:
            raise ValueError("the f1 objective takes no target")
    else:
        if target is None or not 0.0 <= float(target) <= 1.0:
            raise ValueError(f"objective {objective!r} needs a target in [0, 1], got {target!r}")
        target = float(target)
    sweep = ThresholdSweep(labels, scores) if sweep is None else sweep
    num = sweep.num_attributes
    thresholds = np.full(num, NO_POSITIVES_THRESHOLD, dtype=np.float64)
    feasible = np.zeros(num, dtype=bool)
    for a in range(num):
        curve = sweep.curve(a)
        if sweep.positives[a] == 0 or curve["thresholds"].size == 0:
            continue
        p, r, f = curve["precision"], curve["recall"], curve["f1"]
        everywhere = np.ones(p.shape, dtype=bool)
        if objective == "f1":
            # Equal F1 values are equal fractions, which divide to the same float: exact ties.
            i = _pick(f, curve["thresholds"], everywhere)
            feasible[a] = True
        elif objective == "precision":
            ok = p >= target
            i = _pick(r, p, ok) if ok.any() else _pick(p, r, everywhere)
            feasible[a] = bool(ok.any())
        else:
            ok = r >= target
            i = _pick(p, r, ok) if ok.any() else _pick(r, p, everywhere)
            feasible[a] = bool(ok.any())
        thresholds[a] = curve["thresholds"][i]
    m = sweep.metrics_at(thresholds)
    return ThresholdChoice(
        thresholds=thresholds,
        objective=objective,
        target=target,
        achieved=m[objective].copy(),
        feasible=feasible,
        precision=m["precision"],
        recall=m["recall"],
        f1=m["f1"],
    )


def heldout_tuning_gain(
    labels: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    repeats: int = 50,
    seed: int = 0,
    default: float = 0.5,
) -> dict[str, float]:
    """Does max-F1 tuning on this split help on data it was not tuned on? Answered within the split.

    Each repeat splits the groups (people) at random into two halves, tunes per-attribute thresholds
    on one half and scores macro-F1 on the other, against ``default`` on that same half, both ways
    round. Returns the mean gain and its spread over the 2 x ``repeats`` comparisons, and the share
    of them where tuning won. A small validation split (tens of people) often gives thresholds
    that fit its noise: this says so before the test split is touched.
    """
    labels, scores = _as_2d(labels, scores)
    people = np.unique(groups)
    if len(people) < 4:
        raise ValueError(f"need at least 4 groups to split in halves, got {len(people)}")
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(repeats):
        half = np.isin(groups, rng.permutation(people)[: len(people) // 2])
        for fit, held in ((half, ~half), (~half, half)):
            tuned = tune_thresholds(labels[fit], scores[fit]).thresholds
            held_sweep = ThresholdSweep(labels[held], scores[held])
            gains.append(float(held_sweep.metrics_at(tuned)["f1"].mean())
                         - float(held_sweep.metrics_at(np.full(labels.shape[1], default))["f1"].mean()))
    gains = np.asarray(gains)
    return {"mean_gain": float(gains.mean()), "std_gain": float(gains.std()), "share_improved": float((gains > 0).mean()),
            "comparisons": int(gains.size)}
