"""Slices: where a model fails, by group (CelebA's spurious correlations, e.g. blond men).

For one target attribute of a run, grouped by one or two of the 40 CelebA attributes (G=0 / G=1,
or their four combinations) or by person:

- ``slice_report``: per group support, positives, accuracy, TPR, FPR, precision and F1 at the
  target's threshold, with 95% bootstrap intervals over people; the "cells" (target value x group,
  e.g. blond men, blond women, non-blond men, non-blond women) with their accuracy, whose minimum
  is the worst-group accuracy of Sagawa et al. 2020; the worst group and cell and their gaps to the
  average accuracy; fairlearn's equalized-odds and demographic-parity differences.
- ``bias_map``: every target of the run x every other attribute as a binary group: the average
  accuracy minus the worst target x group cell's accuracy (cells under a minimum support ignored).
- ``fit_group_thresholds``: per-group thresholds for a target (fairlearn's ThresholdOptimizer)
  fitted on one artifact (validation) and applied to another, with the accuracy trade-off.

Conventions, as in ``metrics.counts``: a ratio with a zero denominator is 0 (TPR of a group with no
positives, precision of a group with no positive predictions, every rate of an empty group), never
NaN; the counts beside each row (support, positives) say when that happened. Empty groups are
listed with support 0 and left out of the worst-group figures; groups under ``SMALL_GROUP`` images
are flagged ``small``, never hidden. Bootstrap intervals are percentiles over the replicates in
which the metric is defined (its denominator is not 0): a replicate that drew none of a small
group's people says nothing about that group, where counting it as 0 would drag the interval down.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, demographic_parity_difference, equalized_odds_difference
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.base import BaseEstimator
from sklearn.utils import Bunch
from threadpoolctl import threadpool_limits

from ..errors import CelebAModelError
from ..evaluation.predictions import Predictions, PredictionsError
from ..metrics.bootstrap import bootstrap_counts
from ..metrics.counts import confusion_counts, metrics_from_counts, safe_divide

PERSON = "person"  # grouping by identity instead of by an attribute
SMALL_GROUP = 30  # groups with fewer images are flagged small
BIAS_MAP_MIN_SUPPORT = 10  # cells with fewer images are left out of the bias map's worst cell
GROUP_METRICS = ("accuracy", "tpr", "fpr", "precision", "f1")


class SliceError(CelebAModelError, ValueError):
    """A slice that cannot be made: unknown target or grouping, no images, a fit that fails."""


# --- per-group point metrics: metrics.counts's conventions, disaggregated by fairlearn's MetricFrame ---

def _counts(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray]:
    c = confusion_counts(np.asarray(y_true), np.asarray(y_pred, dtype=np.float64), 0.5)
    return metrics_from_counts(c["tp"], c["fp"], c["fn"], c["tn"])


def _fpr(m: dict[str, np.ndarray]) -> np.ndarray:
    return safe_divide(m["fp"], m["fp"] + m["tn"])


def _metric(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """A MetricFrame metric (y_true, y_pred) -> float from ``metrics.counts``, so groups, bootstrap
    replicates and the package's other tables share one convention (zero denominators give 0)."""

    def metric(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        if name == "support":
            return float(len(y_true))
        m = _counts(y_true, y_pred)
        value = {"positives": m["support"], "tpr": m["recall"], "fpr": _fpr(m)}.get(name)
        return float((m[name] if value is None else value)[0])

    metric.__name__ = name
    return metric


POINT_METRICS = {name: _metric(name) for name in ("support", "positives", *GROUP_METRICS)}


def _metric_frame(truth: np.ndarray, predicted: np.ndarray, features: pd.DataFrame, metrics: dict) -> pd.DataFrame:
    """``MetricFrame(...).by_group`` as a flat frame with one column per feature."""
    frame = MetricFrame(metrics=metrics, y_true=truth.astype(int), y_pred=predicted.astype(int),
                        sensitive_features=features)
    return frame.by_group.reset_index()


# --- groups and labels ---

def _value_label(name: str, value: int) -> str:
    if name == PERSON:
        return f"person {value}" if value >= 0 else "person unknown"
    return name if value else f"not {name}"


def _label(names: Sequence[str], values: Sequence[int]) -> str:
    return ", ".join(_value_label(n, int(v)) for n, v in zip(names, values))


def _all_groups(features: pd.DataFrame) -> list[tuple[int, ...]]:
    """Every group to list: each 0/1 combination of attributes (empty ones too), or every person seen."""
    if list(features.columns) == [PERSON]:
        return [(int(v),) for v in np.unique(features[PERSON])]
    return list(itertools.product((0, 1), repeat=features.shape[1]))


def group_features(predictions: Predictions, by: str | Sequence[str]) -> pd.DataFrame:
    """The grouping columns of an artifact: 0/1 per attribute (``Predictions.group_labels``), or the
    person id for ``"person"`` (alone)."""
    names = [by] if isinstance(by, str) else list(by)
    if not 1 <= len(names) <= 2 or len(set(names)) != len(names):
        raise SliceError(f"Group by one or two different attributes (or {PERSON!r}), got {names}")
    if PERSON in names and len(names) > 1:
        raise SliceError(f"{PERSON!r} groups stand alone: a person already fixes most attributes")
    if names == [PERSON]:
        return pd.DataFrame({PERSON: np.asarray(predictions.identity, dtype=np.int64)})
    try:
        return pd.DataFrame({name: predictions.group_labels(name).astype(np.int64) for name in names})
    except PredictionsError as err:
        raise SliceError(str(err)) from err


def _target_column(predictions: Predictions, target: str) -> int:
    if target not in predictions.attributes:
        raise SliceError(f"{target!r} is not an attribute of {predictions.name} "
                         f"(its model predicts {', '.join(predictions.attributes)})")
    return predictions.attributes.index(target)


# --- bootstrap intervals over people for any subsets of images ---

def _slice_intervals(
    truth: np.ndarray, predicted: np.ndarray, masks: np.ndarray, people: np.ndarray | None,
    n_boot: int, seed: int, confidence: float,
) -> tuple[dict[str, np.ndarray], str]:
    """Percentile intervals ({metric: (S, 2)}) of each subset's metrics, resampling people
    (``metrics.bootstrap``; images without a person id, or all with ``people=None``, are their own).

    ``bootstrap_counts`` counts whole columns, so each subset s gets two columns: its confusion
    (images outside it count as true negatives) and its size (inside ones as true positives); the
    subset's own true negatives are its size minus the other three. All columns share each draw.
    """
    num = masks.shape[1]
    inside = masks.astype(bool)
    truth_cols = np.concatenate([inside & truth[:, None], inside], axis=1)
    score_cols = np.concatenate([inside & predicted[:, None], inside], axis=1).astype(np.float64)
    replicates, _, info = bootstrap_counts(truth_cols, score_cols, 0.5, people, n_boot, seed)
    tp, fp, fn = (replicates[:, :num, k] for k in range(3))
    size = replicates[:, num:, 0]
    tn = size - tp - fp - fn
    m = metrics_from_counts(tp, fp, fn, tn)
    values = {"accuracy": m["accuracy"], "tpr": m["recall"], "fpr": _fpr(m), "precision": m["precision"],
              "f1": m["f1"]}
    defined = {"accuracy": size > 0, "tpr": tp + fn > 0, "fpr": fp + tn > 0, "precision": tp + fp > 0,
               "f1": 2 * tp + fp + fn > 0}
    alpha = (1.0 - confidence) / 2.0
    out = {}
    for name, value in values.items():
        kept = np.where(defined[name], value, np.nan)
        ok = defined[name].any(axis=0)
        bounds = np.zeros((num, 2))
        if ok.any():
            bounds[ok] = np.nanquantile(kept[:, ok], [alpha, 1.0 - alpha], axis=0).T
        out[name] = bounds
    return out, info["resampled"]


# --- the slice report ---

@dataclass(frozen=True)
class SliceReport:
    """One target's metrics by group, its cells, and the summary figures.

    ``groups``: one row per group (label ``group``, a column per grouping attribute with its value,
    ``support``, ``positives``, each of ``GROUP_METRICS`` with ``_low`` / ``_high`` interval bounds,
    ``small``). ``cells``: one row per target value x group (``cell``, ``target``, the grouping
    columns, ``group``, ``support``, ``accuracy`` with bounds, ``small``), target present first.
    Worst figures are over groups / cells with at least ``min_support`` images (never empty ones);
    NaN and "" when none qualifies. Gaps are the average accuracy minus the worst. The fairness
    differences are fairlearn's over the groups (NaN for person groups).
    """

    target: str
    by: tuple[str, ...]
    threshold: float
    groups: pd.DataFrame
    cells: pd.DataFrame
    average_accuracy: float
    worst_group: str
    worst_group_accuracy: float
    worst_cell: str
    worst_cell_accuracy: float
    equalized_odds_difference: float
    demographic_parity_difference: float
    resampled: str  # "groups" (people) or "images", as metrics.bootstrap says
    n_boot: int
    confidence: float
    small: int
    min_support: int

    @property
    def worst_group_gap(self) -> float:
        return self.average_accuracy - self.worst_group_accuracy

    @property
    def worst_cell_gap(self) -> float:
        return self.average_accuracy - self.worst_cell_accuracy


def _worst(table: pd.DataFrame, label: str, min_support: int) -> tuple[str, float]:
    eligible = table[table["support"] >= max(1, min_support)]
    if eligible.empty:
        return "", float("nan")
    row = eligible.loc[eligible["accuracy"].idxmin()]
    return str(row[label]), float(row["accuracy"])


def _fill(found: pd.DataFrame, names: list[str], groups: list[tuple[int, ...]]) -> pd.DataFrame:
    """MetricFrame's rows for the groups present, with empty groups added as zeros, in ``groups`` order."""
    if len(names) > 1:
        index = pd.MultiIndex.from_tuples(groups, names=names)
    else:
        index = pd.Index([g[0] for g in groups], name=names[0])
    return found.set_index(names).reindex(index).fillna(0.0).reset_index()


def _point_tables(
    truth: np.ndarray, predicted: np.ndarray, features: pd.DataFrame, target: str
) -> tuple[pd.DataFrame, pd.DataFrame, list[tuple[int, ...]]]:
    """Per-group and per-cell point metrics (MetricFrame), with empty groups and cells as zero rows."""
    names = [str(c) for c in features.columns]
    groups = _all_groups(features)
    rows = _fill(_metric_frame(truth, predicted, features, POINT_METRICS), names, groups)
    rows.insert(0, "group", [_label(names, g) for g in groups])
    cell_features = pd.concat([pd.DataFrame({target: truth.astype(np.int64)}), features], axis=1)
    cell_keys = [(t, *g) for g in groups for t in (1, 0)]
    cell_metrics = {"support": POINT_METRICS["support"], "accuracy": POINT_METRICS["accuracy"]}
    cells = _fill(_metric_frame(truth, predicted, cell_features, cell_metrics), [target, *names], cell_keys)
    cells = cells.rename(columns={target: "target"})
    cells.insert(0, "cell", [_label([target, *names], key) for key in cell_keys])
    cells.insert(len(names) + 2, "group", [_label(names, key[1:]) for key in cell_keys])
    for table in (rows, cells):
        table["support"] = table["support"].astype(np.int64)
    rows["positives"] = rows["positives"].astype(np.int64)
    return rows, cells, groups


def _fairness(truth: np.ndarray, predicted: np.ndarray, features: pd.DataFrame) -> dict[str, float]:
    """fairlearn's equalized-odds and demographic-parity differences over the groups."""
    sensitive = features if features.shape[1] > 1 else features.iloc[:, 0]
    y, decided = truth.astype(int), predicted.astype(int)
    return {
        "equalized_odds_difference": float(equalized_odds_difference(y, decided, sensitive_features=sensitive)),
        "demographic_parity_difference": float(demographic_parity_difference(y, decided, sensitive_features=sensitive)),
    }


# Across people the differences say little (most people lack one class, whose rate is then 0, so
# equalized odds is near 1) and cost seconds for a thousand people: not computed there.
_NO_FAIRNESS = {"equalized_odds_difference": float("nan"), "demographic_parity_difference": float("nan")}


def _check_inputs(truth: np.ndarray, features: pd.DataFrame) -> pd.DataFrame:
    if len(truth) == 0:
        raise SliceError("No images to slice")
    if len(features) != len(truth):
        raise SliceError(f"{len(features)} group rows for {len(truth)} images")
    features = features.reset_index(drop=True).astype(np.int64)
    features.columns = [str(c) for c in features.columns]
    return features


def slice_metrics(
    truth: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    features: pd.DataFrame,
    people: np.ndarray | None = None,
    *,
    target: str = "target",
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    small: int = SMALL_GROUP,
    min_support: int = 1,
) -> SliceReport:
    """Metrics of one binary target by group: ``truth`` (N,) 0/1, ``scores`` (N,) probabilities,
    ``features`` one column per grouping attribute (0/1) or a single ``"person"`` column of ids.

    Intervals resample ``people`` (person ids, -1 unknown; None resamples images); grouped by
    person, each person's images are resampled within it (a person cannot be resampled inside
    itself). Deterministic for a seed.
    """
    truth = np.asarray(truth).astype(bool)
    predicted = np.asarray(scores, dtype=np.float64) >= threshold
    features = _check_inputs(truth, features)
    names = list(features.columns)
    rows, cells, groups = _point_tables(truth, predicted, features, target)

    # Masks of every group, then of its two cells (target present, absent), for one bootstrap.
    values = features.to_numpy()
    group_masks = np.stack([(values == np.asarray(g)).all(axis=1) for g in groups], axis=1)
    cell_masks = np.stack([group_masks[:, i] & (truth == bool(t)) for i in range(len(groups)) for t in (1, 0)],
                          axis=1)
    masks = np.concatenate([group_masks, cell_masks], axis=1)
    if names == [PERSON]:
        bounds, resampled = _within_groups(truth, predicted, masks, len(groups), n_boot, seed, confidence)
    else:
        bounds, resampled = _slice_intervals(truth, predicted, masks, people, n_boot, seed, confidence)
    for name in GROUP_METRICS:
        rows[f"{name}_low"], rows[f"{name}_high"] = bounds[name][: len(groups)].T
    cells["accuracy_low"], cells["accuracy_high"] = bounds["accuracy"][len(groups):].T
    for table in (rows, cells):
        table["small"] = table["support"] < small
    rows = rows[["group", *names, "support", "positives",
                 *[f"{n}{s}" for n in GROUP_METRICS for s in ("", "_low", "_high")], "small"]]
    cells = cells[["cell", "target", *names, "group", "support", "accuracy", "accuracy_low", "accuracy_high", "small"]]

    worst_group, worst_group_accuracy = _worst(rows, "group", min_support)
    worst_cell, worst_cell_accuracy = _worst(cells, "cell", min_support)
    return SliceReport(
        target=target, by=tuple(names), threshold=float(threshold), groups=rows, cells=cells,
        average_accuracy=float(np.mean(truth == predicted)),
        worst_group=worst_group, worst_group_accuracy=worst_group_accuracy,
        worst_cell=worst_cell, worst_cell_accuracy=worst_cell_accuracy,
        **(_fairness(truth, predicted, features) if names != [PERSON] else _NO_FAIRNESS),
        resampled=resampled, n_boot=int(n_boot), confidence=float(confidence), small=int(small),
        min_support=int(min_support),
    )


def _within_groups(
    truth: np.ndarray, predicted: np.ndarray, masks: np.ndarray, num_groups: int, n_boot: int, seed: int,
    confidence: float,
) -> tuple[dict[str, np.ndarray], str]:
    """Intervals for person groups: each person's images resampled on their own (the group, then its
    two cells), one bootstrap per person so memory stays that of one person's images."""
    out = {name: np.zeros((masks.shape[1], 2)) for name in GROUP_METRICS}
    for i in range(num_groups):
        rows = np.flatnonzero(masks[:, i])
        columns = [i, num_groups + 2 * i, num_groups + 2 * i + 1]
        bounds, _ = _slice_intervals(truth[rows], predicted[rows], masks[np.ix_(rows, columns)], None,
                                     n_boot, seed, confidence)
        for name in GROUP_METRICS:
            out[name][columns] = bounds[name]
    return out, "images"


def slice_report(
    predictions: Predictions,
    target: str,
    by: str | Sequence[str],
    threshold: float = 0.5,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    small: int = SMALL_GROUP,
    min_support: int = 1,
) -> SliceReport:
    """``slice_metrics`` for a run: ``target`` one of its attributes, ``by`` one or two of the 40
    attributes (``Predictions.group_labels``) or ``"person"``; intervals resample its people."""
    j = _target_column(predictions, target)
    return slice_metrics(
        predictions.labels[:, j], predictions.probabilities[:, j], threshold, group_features(predictions, by),
        predictions.identity, target=target, n_boot=n_boot, confidence=confidence, seed=seed, small=small,
        min_support=min_support,
    )


# --- the bias map: every target x every attribute as a binary group ---

def worst_cell_gaps(
    truth: np.ndarray, predicted: np.ndarray, groups: np.ndarray, min_support: int = BIAS_MAP_MIN_SUPPORT
) -> dict[str, np.ndarray]:
    """For targets (N, A) 0/1 truth and decisions, and binary groups (N, G): per (target, group) the
    four cells target value x group value, and the worst one among those with ``min_support`` images.

    Returns (A, G) arrays: "gap" (the target's average accuracy minus the worst cell's accuracy),
    "worst_accuracy", "worst_cell" (0..3: 2 * target value + group value), "worst_support", and
    "average_accuracy" (A,). NaN (and worst_cell -1) where no cell has enough images.
    Every cell count comes from one matrix product over images: all pairs cost milliseconds.
    """
    present = np.asarray(truth).astype(bool)
    right = present == np.asarray(predicted).astype(bool)
    member = np.asarray(groups).astype(bool)
    num, num_groups = present.shape[1], member.shape[1]
    # One matrix product counts every cell: rows [absent, present, absent & right, present & right]
    # per target, columns [not in group, in group] per attribute. float32 sums of 0/1 are exact
    # below 2**24 images. One BLAS thread: the product is small, and BLAS threads waiting on each
    # other while other processes hold the cores cost far more than they save.
    rows = np.concatenate([~present, present, ~present & right, present & right], axis=1).astype(np.float32)
    columns = np.concatenate([~member, member], axis=1).astype(np.float32)
    with threadpool_limits(1, user_api="blas"):
        counts = (rows.T @ columns).astype(np.float64)
    counts = counts.reshape(4, num, 2, num_groups).transpose(0, 2, 1, 3)  # (row kind, group value, A, G)
    support = counts[:2].reshape(4, num, num_groups)  # cells ordered 2 * target value + group value
    correct = counts[2:].reshape(4, num, num_groups)
    eligible = support >= max(1, min_support)
    accuracy = np.where(eligible, safe_divide(correct, support), np.inf)
    worst = accuracy.argmin(axis=0)
    worst_accuracy = np.take_along_axis(accuracy, worst[None], axis=0)[0]
    none = ~eligible.any(axis=0)
    average = right.mean(axis=0) if len(right) else np.zeros(num)
    worst_accuracy = np.where(none, np.nan, worst_accuracy)
    return {
        "gap": average[:, None] - worst_accuracy,
        "worst_accuracy": worst_accuracy,
        "worst_cell": np.where(none, -1, worst),
        "worst_support": np.where(none, 0, np.take_along_axis(support, worst[None], axis=0)[0]).astype(np.int64),
        "average_accuracy": average,
    }


@dataclass(frozen=True)
class BiasMap:
    """Targets (rows) x grouping attributes (columns): how much worse the worst target x group
    cell is than the target's average accuracy. NaN on the diagonal (a target against itself) and
    where no cell has ``min_support`` images."""

    gap: pd.DataFrame
    worst_accuracy: pd.DataFrame
    worst_cell: pd.DataFrame  # its label, e.g. "Blond_Hair, Male"
    worst_support: pd.DataFrame
    average_accuracy: pd.Series
    min_support: int

    def strongest(self, n: int = 5) -> pd.DataFrame:
        """The ``n`` pairs with the largest gaps, largest first."""
        long = self.gap.stack().rename("gap").reset_index()
        long.columns = ["target", "group", "gap"]
        long = long.dropna().sort_values("gap", ascending=False, kind="stable").head(n)
        pick = list(zip(long["target"], long["group"]))
        long["worst_cell"] = [self.worst_cell.loc[t, g] for t, g in pick]
        long["worst_accuracy"] = [float(self.worst_accuracy.loc[t, g]) for t, g in pick]
        long["support"] = [int(self.worst_support.loc[t, g]) for t, g in pick]
        long["average_accuracy"] = [float(self.average_accuracy[t]) for t in long["target"]]
        return long.reset_index(drop=True)


def bias_map(
    predictions: Predictions,
    thresholds: float | np.ndarray = 0.5,
    min_support: int = BIAS_MAP_MIN_SUPPORT,
    attributes: Sequence[str] | None = None,
) -> BiasMap:
    """The worst-cell accuracy gap of every target of a run against every attribute it has labels
    of (``attributes``, default ``Predictions.labeled_attributes``: all 40 with celeba_labels)."""
    targets = predictions.attributes
    names = list(attributes) if attributes is not None else predictions.labeled_attributes
    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(targets),))
    try:
        groups = np.stack([predictions.group_labels(name) for name in names], axis=1) if names else \
            np.zeros((len(predictions), 0))
    except PredictionsError as err:
        raise SliceError(str(err)) from err
    found = worst_cell_gaps(predictions.labels, predictions.probabilities >= thresholds, groups, min_support)
    itself = np.array([[t == g for g in names] for t in targets], dtype=bool).reshape(len(targets), len(names))
    cell_names = np.full(itself.shape, "", dtype=object)
    for (i, k), code in np.ndenumerate(found["worst_cell"]):
        if code >= 0 and not itself[i, k]:
            cell_names[i, k] = _label([targets[i], names[k]], (code // 2, code % 2))

    def frame(values: np.ndarray, fill: float = np.nan) -> pd.DataFrame:
        values = values if values.dtype == object else np.where(itself, fill, values)
        return pd.DataFrame(values, index=pd.Index(targets, name="target"), columns=pd.Index(names, name="group"))

    return BiasMap(
        gap=frame(found["gap"]),
        worst_accuracy=frame(found["worst_accuracy"]),
        worst_cell=frame(cell_names),
        worst_support=frame(found["worst_support"], 0),
        average_accuracy=pd.Series(found["average_accuracy"], index=pd.Index(targets, name="target")),
        min_support=int(min_support),
    )


# --- per-group thresholds (post-processing) ---

class _Scores(BaseEstimator):
    """A fitted 'model' whose prediction is the score it is given: ThresholdOptimizer post-processes
    an estimator, and ours already ran (its scores are the artifact's probabilities)."""

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> _Scores:  # noqa: N803 - scikit-learn's names
        self.fitted_ = True
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        return np.asarray(X, dtype=np.float64)[:, 0]


@dataclass(frozen=True)
class GroupThresholds:
    """Per-group decision rules for one target, fitted on one artifact and applied to another.

    ``rules``: per group, ThresholdOptimizer's rule: with probability ``p0`` predict score >
    ``threshold0``, else (``p1``) score > ``threshold1``; then, with probability ``p_ignore``, the
    constant ``constant`` instead (``rule`` says it in words). ``tradeoff``: rows "before" (one
    threshold for everyone) and "after" on the applied artifact, with average, worst-group and
    worst-cell accuracy and fairlearn's two differences. ``cells``: each cell's accuracy before and
    after. ``decisions``: the applied artifact's decisions after (drawn with ``seed``: the rules
    are randomized where they mix two thresholds).
    """

    target: str
    by: tuple[str, ...]
    constraints: str
    objective: str
    fitted_on: str
    applied_to: str
    threshold: float
    rules: pd.DataFrame
    tradeoff: pd.DataFrame
    cells: pd.DataFrame
    decisions: np.ndarray
    seed: int


def _rule(found: Bunch) -> dict:
    """One group's interpolation (fairlearn's ``interpolation_dict`` entry) as numbers and words."""
    ops = [(float(found.p0), found.operation0), (float(found.p1), found.operation1)]
    p_ignore = float(found.get("p_ignore", 0.0))
    constant = float(found.get("prediction_constant", 0.0))
    words = " or ".join(f"score {op.operator} {op.threshold:.3f} ({p:.0%})" for p, op in ops if p >= 0.005)
    if p_ignore >= 0.005:
        words += f"; {p_ignore:.0%} of the time a coin with P(yes) {constant:.2f} instead"
    return {"rule": words, "p0": ops[0][0], "threshold0": float(ops[0][1].threshold), "p1": ops[1][0],
            "threshold1": float(ops[1][1].threshold), "p_ignore": p_ignore, "constant": constant}


def _tradeoff_row(truth: np.ndarray, predicted: np.ndarray, features: pd.DataFrame, target: str,
                  min_support: int) -> tuple[dict, pd.DataFrame]:
    rows, cells, _ = _point_tables(truth, predicted, features, target)
    return {
        "average_accuracy": float(np.mean(truth == predicted)),
        "worst_group_accuracy": _worst(rows, "group", min_support)[1],
        "worst_cell_accuracy": _worst(cells, "cell", min_support)[1],
        **_fairness(truth, predicted, features),
    }, cells


def fit_group_thresholds(
    fit_on: Predictions,
    apply_to: Predictions,
    target: str,
    by: str | Sequence[str],
    threshold: float = 0.5,
    *,
    constraints: str = "equalized_odds",
    objective: str = "accuracy_score",
    min_support: int = 1,
    seed: int = 0,
) -> GroupThresholds:
    """fairlearn's ThresholdOptimizer on ``fit_on``'s scores for ``target`` (a validation artifact),
    groups by ``by`` (attributes, not people: they differ between splits), applied to ``apply_to``
    and compared with one ``threshold`` for everyone.

    The default, equalized odds maximizing accuracy, equalizes TPR and FPR across groups, which are
    the accuracies of the target-present and target-absent cells: the worst cell rises, usually at
    some cost in average accuracy. Fails with a ``SliceError`` when a group lacks positives or
    negatives in ``fit_on`` (nothing to fit there).
    """
    names = [by] if isinstance(by, str) else list(by)
    if PERSON in names:
        raise SliceError("Per-group thresholds need attribute groups: the people of one split are not in another")
    j_fit, j_apply = _target_column(fit_on, target), _target_column(apply_to, target)
    fit_features = _check_inputs(fit_on.labels[:, j_fit], group_features(fit_on, names))
    features = _check_inputs(apply_to.labels[:, j_apply], group_features(apply_to, names))

    def labels(frame: pd.DataFrame) -> pd.Series:  # one combined group label, so rules are keyed by it
        return pd.Series([_label(names, g) for g in frame.itertuples(index=False)], name="group")

    optimizer = ThresholdOptimizer(estimator=_Scores().fit(None), constraints=constraints, objective=objective,
                                   prefit=True, predict_method="predict")
    try:
        optimizer.fit(fit_on.probabilities[:, [j_fit]], fit_on.labels[:, j_fit].astype(int),
                      sensitive_features=labels(fit_features))
        decisions = optimizer.predict(apply_to.probabilities[:, [j_apply]], sensitive_features=labels(features),
                                      random_state=seed).astype(bool)
    except ValueError as err:  # fairlearn: degenerate labels in a group, unknown constraint or objective
        hint = f" (every group needs images with and without {target} there)" if "Degenerate" in str(err) else ""
        raise SliceError(f"Per-group thresholds for {target} by {', '.join(names)} could not be fitted on "
                         f"{fit_on.name}: {err}{hint}") from err
    rules = pd.DataFrame([{"group": g, **_rule(found)}
                          for g, found in optimizer.interpolated_thresholder_.interpolation_dict.items()])

    truth = apply_to.labels[:, j_apply].astype(bool)
    before_row, before_cells = _tradeoff_row(truth, apply_to.probabilities[:, j_apply] >= threshold, features,
                                             target, min_support)
    after_row, after_cells = _tradeoff_row(truth, decisions, features, target, min_support)
    cells = before_cells[["cell", "support"]].assign(accuracy_before=before_cells["accuracy"],
                                                     accuracy_after=after_cells["accuracy"])
    return GroupThresholds(
        target=target, by=tuple(names), constraints=constraints, objective=objective, fitted_on=fit_on.name,
        applied_to=apply_to.name, threshold=float(threshold), rules=rules,
        tradeoff=pd.DataFrame([before_row, after_row], index=pd.Index(["before", "after"], name="thresholds")),
        cells=cells, decisions=decisions, seed=int(seed),
    )
