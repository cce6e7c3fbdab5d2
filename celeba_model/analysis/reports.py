"""Report tables built from predictions artifacts: per-attribute metrics and ablation comparisons.

The numbers come from the pure functions in ``metrics``, ``curves`` and ``bootstrap``; this module
only arranges them (as pandas DataFrames and JSON-ready dicts) next to the paper's published values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..evaluation.predictions import Predictions
from ..metrics.bootstrap import bootstrap_ci
from ..metrics.counts import attribute_metrics, summarize
from ..metrics.curves import average_precision, expected_calibration_error, roc_auc
from ..metrics.paper_reference import PAPER_ABLATIONS, PAPER_AVERAGE, PAPER_TABLE
from ..models.summary import AT_05, AT_05_FLIP, TUNED, TUNED_FLIP, ModelRecord
from ..models.thresholds import CHECKPOINT, thresholds_for
from ..utils.fileio import atomic_write_text
from ..workspace import default_workspace_root
from .thresholds import evaluated_checkpoint

SUMMARY_KEYS = ("macro_precision", "macro_recall", "macro_f1", "paper_f", "micro_f1", "macro_accuracy",
                "macro_balanced_accuracy")


def resolve_thresholds(
    choice: str | float | dict | None, predictions: Predictions, workspace_root: Path | None = None
) -> tuple[np.ndarray, str]:
    """Per-attribute thresholds for an artifact and a label saying where they came from.

    ``choice`` is a number (one threshold for all), ``"checkpoint"`` (the tuned thresholds stored for
    the checkpoint that made the artifact, read from it now, see ``thresholds.stored_thresholds``),
    a path to a thresholds JSON file (as written by ``tune``), or a dict.
    """
    root = default_workspace_root(workspace_root)
    checkpoint = evaluated_checkpoint(predictions, root) if choice == CHECKPOINT else None
    return thresholds_for(choice, predictions.attributes, checkpoint, root)


def attribute_report(
    predictions: Predictions,
    thresholds: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Per-attribute metrics with bootstrap intervals, summary figures, and the paper's numbers."""
    labels, scores = predictions.labels, predictions.probabilities
    per = attribute_metrics(labels, scores, thresholds)
    summary = summarize(per)
    ci = bootstrap_ci(labels, scores, thresholds, groups=predictions.identity, n_boot=n_boot, seed=seed)
    ap = average_precision(labels, scores)
    auc = roc_auc(labels, scores)
    ece = expected_calibration_error(labels, scores)
    rows = []
    for i, name in enumerate(predictions.attributes):
        paper = PAPER_TABLE.get(name)
        rows.append({
            "attribute": name,
            "threshold": float(thresholds[i]),
            "tp": int(per["tp"][i]), "fp": int(per["fp"][i]), "fn": int(per["fn"][i]), "tn": int(per["tn"][i]),
            "positives": int(per["support"][i]),
            "precision": float(per["precision"][i]),
            "recall": float(per["recall"][i]),
            "f1": float(per["f1"][i]),
            "accuracy": float(per["accuracy"][i]),
            "balanced_accuracy": float(per["balanced_accuracy"][i]),
            "average_precision": float(ap[i]),
            "roc_auc": None if np.isnan(auc[i]) else float(auc[i]),
            "ece": float(ece[i]),
            "precision_ci": [float(v) for v in ci["precision"][i]],
            "recall_ci": [float(v) for v in ci["recall"][i]],
            "f1_ci": [float(v) for v in ci["f1"][i]],
            "paper_tp": paper[0] if paper else None,
            "paper_positives": paper[1] if paper else None,
            "paper_precision": paper[2] if paper else None,
            "paper_recall": paper[3] if paper else None,
            "paper_f": paper[4] if paper else None,
        })
    summary_out = {k: float(summary[k]) for k in summary}
    for key in ("macro_precision", "macro_recall", "macro_f1", "paper_f"):
        summary_out[f"{key}_ci"] = [float(v) for v in ci[key]]
    return {
        "run": predictions.name,
        "folder": str(predictions.folder) if predictions.folder else None,
        "split": predictions.meta.get("split"),
        "checkpoint": _made_by(predictions.meta),
        "arch": predictions.meta.get("checkpoint", {}).get("arch"),
        "images": len(predictions),
        "bootstrap": {"replicates": n_boot, "resampled": ci["resampled"], "groups": int(ci["n_groups"]), "confidence": 0.95},
        "attributes": rows,
        "summary": summary_out,
        "paper_average": PAPER_AVERAGE,
    }


def _made_by(meta: dict) -> str | None:
    """What made the predictions: the checkpoint's path, else the imported file, else crossfit's models."""
    if "imported" in meta:
        return f"none: predictions imported from {meta['imported'].get('source')}"
    if "crossfit" in meta:
        return f"none: out-of-fold predictions of {meta['crossfit'].get('folds')} crossfit models"
    return meta.get("checkpoint", {}).get("path")


def report_frame(report: dict) -> pd.DataFrame:
    """The per-attribute table as a DataFrame (one row per attribute plus the paper-style average row)."""
    frame = pd.DataFrame(report["attributes"])
    for key in ("precision_ci", "recall_ci", "f1_ci"):
        frame[f"{key}_low"] = frame[key].map(lambda v: v[0])
        frame[f"{key}_high"] = frame[key].map(lambda v: v[1])
    return frame.drop(columns=["precision_ci", "recall_ci", "f1_ci"])


def report_table(report: dict) -> pd.DataFrame:
    """The per-attribute table as shown to people: counts, metrics with their 95% intervals, AP, ROC
    AUC and calibration error, one row per attribute (``report_frame`` is the machine-readable form)."""
    rows = report["attributes"]
    return pd.DataFrame({
        "attribute": [r["attribute"] for r in rows],
        "threshold": [r["threshold"] for r in rows],
        "TP/positives": [f"{r['tp']}/{r['positives']}" for r in rows],
        "precision": [r["precision"] for r in rows],
        "P 95% CI": [f"{r['precision_ci'][0]:.2f}-{r['precision_ci'][1]:.2f}" for r in rows],
        "recall": [r["recall"] for r in rows],
        "R 95% CI": [f"{r['recall_ci'][0]:.2f}-{r['recall_ci'][1]:.2f}" for r in rows],
        "F1": [r["f1"] for r in rows],
        "F1 95% CI": [f"{r['f1_ci'][0]:.2f}-{r['f1_ci'][1]:.2f}" for r in rows],
        "accuracy": [r["accuracy"] for r in rows],
        "balanced acc.": [r["balanced_accuracy"] for r in rows],
        "support": [r["positives"] for r in rows],
        "AP": [r["average_precision"] for r in rows],
        "ROC AUC": [r["roc_auc"] for r in rows],
        "ECE": [r["ece"] for r in rows],
    })


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def _with_ci(value: float, ci: Sequence[float]) -> str:
    return f"{value:.3f} [{ci[0]:.2f}-{ci[1]:.2f}]"


def format_report(report: dict) -> str:
    """Plain-text table: ours (with 95% intervals) beside the paper's published numbers."""
    lines = [
        f"{report['run']}: {report['images']:,} images, split {report['split']}, arch {report['arch']}",
        f"checkpoint {report['checkpoint']}",
        f"95% intervals from {report['bootstrap']['replicates']} bootstrap resamples of "
        f"{report['bootstrap']['groups']:,} {'people' if report['bootstrap']['resampled'] == 'groups' else 'images'}",
        "",
    ]
    header = (f"{'attribute':<12} {'thr':>5} {'TP/pos':>11} {'precision':>18} {'recall':>18} {'F1':>18} {'acc':>6}"
              f" {'AUC':>6} | {'paper TP/pos':>12} {'P':>6} {'R':>6} {'F':>6}")
    lines += [header, "-" * len(header)]
    for row in report["attributes"]:
        paper = (f"{row['paper_tp']:>6}/{row['paper_positives']:<5} {row['paper_precision']:>6.3f} "
                 f"{row['paper_recall']:>6.3f} {row['paper_f']:>6.3f}") if row["paper_tp"] is not None else f"{'-':>12}"
        lines.append(
            f"{row['attribute']:<12} {row['threshold']:>5.2f} {row['tp']:>5}/{row['positives']:<5} "
            f"{_with_ci(row['precision'], row['precision_ci']):>18} {_with_ci(row['recall'], row['recall_ci']):>18} "
            f"{_with_ci(row['f1'], row['f1_ci']):>18} {row['accuracy']:>6.3f} {_fmt(row['roc_auc']):>6} | {paper}"
        )
    s = report["summary"]
    tp = sum(r["tp"] for r in report["attributes"])
    pos = sum(r["positives"] for r in report["attributes"])
    pa = report["paper_average"]
    lines += [
        "-" * len(header),
        f"{'AVG.':<12} {'':>5} {tp:>5}/{pos:<5} {_with_ci(s['macro_precision'], s['macro_precision_ci']):>18} "
        f"{_with_ci(s['macro_recall'], s['macro_recall_ci']):>18} {_with_ci(s['paper_f'], s['paper_f_ci']):>18} "
        f"{s['macro_accuracy']:>6.3f} {'':>6} | {'':>12} {pa['precision']:>6.3f} {pa['recall']:>6.3f} {pa['f']:>6.3f}",
        "",
        "AVG. follows the paper: mean precision, mean recall, and F = 2PR/(P+R) of those two means.",
        f"macro-F1 (mean of per-attribute F1) {_with_ci(s['macro_f1'], s['macro_f1_ci'])}, micro-F1 {s['micro_f1']:.3f}, "
        f"mean accuracy {s['macro_accuracy']:.3f}, mean balanced accuracy {s['macro_balanced_accuracy']:.3f}",
    ]
    return "\n".join(lines)


def correction_effect(original: dict, corrected: dict, changed: dict[str, int] | None = None) -> pd.DataFrame:
    """How each attribute's figures move when the labels are corrected: two ``attribute_report``s of
    the same run and thresholds (dataset labels, corrected labels) side by side, with the number of
    labels the corrections changed (``changed``, from ``meta["label_corrections"]``), and a macro row."""
    rows = []
    for before, after in zip(original["attributes"], corrected["attributes"]):
        row = {"attribute": before["attribute"], "labels changed": (changed or {}).get(before["attribute"], 0),
               "positives": before["positives"], "positives corrected": after["positives"]}
        for metric in ("precision", "recall", "f1", "accuracy"):
            row[metric] = before[metric]
            row[f"{metric} corrected"] = after[metric]
        rows.append(row)
    frame = pd.DataFrame(rows)
    macro = {"attribute": "macro", "labels changed": int(frame["labels changed"].sum()),
             "positives": int(frame["positives"].sum()), "positives corrected": int(frame["positives corrected"].sum())}
    for metric, key in (("precision", "macro_precision"), ("recall", "macro_recall"), ("f1", "macro_f1"),
                        ("accuracy", "macro_accuracy")):
        macro[metric] = original["summary"][key]
        macro[f"{metric} corrected"] = corrected["summary"][key]
    return pd.concat([frame, pd.DataFrame([macro])], ignore_index=True)


def format_correction_effect(original: dict, corrected: dict, changed: dict[str, int] | None = None) -> str:
    """``correction_effect`` as plain text: each metric with the dataset's labels -> corrected labels."""
    frame = correction_effect(original, corrected, changed)
    lines = ["With the dataset's labels -> with the corrected labels",
             f"{'attribute':<12} {'changed':>7} {'positives':>11} {'precision':>15} {'recall':>15} {'F1':>15} {'accuracy':>15}"]
    for row in frame.to_dict("records"):
        cells = [f"{row[m]:.3f}->{row[m + ' corrected']:.3f}" for m in ("precision", "recall", "f1", "accuracy")]
        lines.append(f"{row['attribute']:<12} {row['labels changed']:>7} "
                     f"{str(row['positives']) + '->' + str(row['positives corrected']):>11} "
                     + " ".join(f"{c:>15}" for c in cells))
    return "\n".join(lines)


def write_report(report: dict, folder: str | Path, name: str = "report") -> tuple[Path, Path]:
    """Write ``NAME.csv`` (one row per attribute) and ``NAME.json`` (everything) into ``folder``."""
    folder = Path(folder)
    csv_path, json_path = folder / f"{name}.csv", folder / f"{name}.json"
    atomic_write_text(csv_path, report_frame(report).to_csv(index=False))
    atomic_write_text(json_path, json.dumps(report, indent=2))
    return csv_path, json_path


def compare_runs(
    runs: Sequence[Predictions],
    thresholds: str | float | Sequence[np.ndarray] | None = 0.5,
    n_boot: int = 1000,
    names: Sequence[str] | None = None,
    workspace_root: Path | None = None,
) -> dict:
    """Macro figures per run (with intervals), per-attribute F1 per run, and the paper's ablation table.

    ``thresholds``: one choice for every run (see ``resolve_thresholds``) or one array per run.
    ``names`` label the runs (default: each artifact's folder name and split).
    """
    if not runs:
        raise ConfigError("compare needs at least one run")
    if names is not None and len(set(names)) != len(runs):
        raise ConfigError("compare needs one distinct name per run")
    attributes = runs[0].attributes
    for run in runs[1:]:
        if run.attributes != attributes:
            raise ConfigError(f"{run.name} predicts {run.attributes}, {runs[0].name} predicts {attributes}: not comparable")
    if isinstance(thresholds, (list, tuple)):
        if len(thresholds) != len(runs):
            raise ConfigError(f"{len(thresholds)} threshold arrays for {len(runs)} runs")
        per_run = [np.asarray(t, dtype=np.float64) for t in thresholds]
    else:
        per_run = [resolve_thresholds(thresholds, r, workspace_root)[0] for r in runs]
    reports = [attribute_report(r, t, n_boot=n_boot) for r, t in zip(runs, per_run)]
    for report, name in zip(reports, names or [r["run"] for r in reports]):
        report["run"] = name
    reference = next((i for i, r in enumerate(reports) if r["arch"] == "paper"), 0)
    base = reports[reference]["summary"]
    summary_rows = []
    for rep in reports:
        s = rep["summary"]
        paper = PAPER_ABLATIONS.get(rep["arch"] or "")
        summary_rows.append({
            "run": rep["run"], "arch": rep["arch"], "images": rep["images"],
            **{k: s[k] for k in SUMMARY_KEYS},
            "paper_f_ci": s["paper_f_ci"], "macro_f1_ci": s["macro_f1_ci"],
            "delta_paper_f": s["paper_f"] - base["paper_f"],
            "delta_macro_f1": s["macro_f1"] - base["macro_f1"],
            "published_precision": paper["precision"] if paper else None,
            "published_recall": paper["recall"] if paper else None,
            "published_f": paper["f"] if paper else None,
        })
    f1_rows = [{"attribute": a, **{rep["run"]: rep["attributes"][i]["f1"] for rep in reports}} for i, a in enumerate(attributes)]
    return {"reference": reports[reference]["run"], "runs": summary_rows, "f1_by_attribute": f1_rows,
            "paper_ablations": PAPER_ABLATIONS}


def format_comparison(comparison: dict) -> str:
    """Plain-text ablation comparison beside the paper's ablation table."""
    lines = [f"Deltas are against {comparison['reference']}.", ""]
    width = max(28, *(len(r["run"]) for r in comparison["runs"]))
    header = (f"{'run':<{width}} {'arch':<16} {'macro P':>8} {'macro R':>8} {'F (paper)':>20} {'dF':>7} {'macro-F1':>9}"
              f" | {'published P':>11} {'R':>6} {'F':>6}")
    lines += [header, "-" * len(header)]
    for row in comparison["runs"]:
        published = (f"{row['published_precision']:>11.3f} {row['published_recall']:>6.3f} {row['published_f']:>6.3f}"
                     if row["published_f"] is not None else f"{'-':>11}")
        lines.append(
            f"{row['run']:<{width}} {row['arch'] or '-':<16} {row['macro_precision']:>8.3f} {row['macro_recall']:>8.3f} "
            f"{_with_ci(row['paper_f'], row['paper_f_ci']):>20} {row['delta_paper_f']:>+7.3f} {row['macro_f1']:>9.3f} | {published}"
        )
    lines += ["", "Per-attribute F1:"]
    frame = pd.DataFrame(comparison["f1_by_attribute"]).set_index("attribute")
    lines.append(frame.to_string(float_format=lambda v: f"{v:.3f}"))
    return "\n".join(lines)


def write_comparison(comparison: dict, folder: str | Path) -> tuple[Path, Path]:
    folder = Path(folder)
    csv_path, json_path = folder / "comparison.csv", folder / "comparison.json"
    atomic_write_text(csv_path, pd.DataFrame(comparison["runs"]).to_csv(index=False))
    atomic_write_text(json_path, json.dumps(comparison, indent=2))
    return csv_path, json_path


# Experiments named ``{prefix}{arch}_s{seed}`` repeat the paper's ablation over seeds (seed_spread).
SEED_RUNS_PREFIX = "ablation_"


def experiment_rows(records: Iterable[ModelRecord]) -> list[dict]:
    """One table row per finished experiment (records of a ``models.summary`` file): what it changed, its
    training time, its best validation macro-F1 (what a choice may look at), and its test figures at
    0.5, with flip averaging, at val-tuned thresholds, and tuned with flip averaging. Per-attribute
    F1 and the lowest recall are at 0.5 with flip averaging, the operating point we ship."""
    rows = []
    for record in records:
        test = record.test
        shipped_point = test[AT_05_FLIP]
        recalls = {a: v["recall"] for a, v in shipped_point.per_attribute.items()}
        weakest = min(recalls, key=recalls.get)
        rows.append({
            "experiment": record.name,
            "what changes": record.description,
            "train minutes": record.train_seconds / 60,
            "val macro-F1": record.best_val_macro_f1,
            "macro-F1 @0.5": test[AT_05].summary["macro_f1"],
            "95% CI @0.5": test[AT_05].macro_f1_ci,
            "macro-F1 @0.5+flip": shipped_point.summary["macro_f1"],
            "95% CI @0.5+flip": shipped_point.macro_f1_ci,
            "mean accuracy @0.5+flip": shipped_point.summary["macro_accuracy"],
            "lowest recall @0.5+flip": f"{weakest} {recalls[weakest]:.2f}",
            "macro-F1 tuned": test[TUNED].summary["macro_f1"],
            "macro-F1 tuned+flip": test[TUNED_FLIP].summary["macro_f1"],
            "95% CI tuned+flip": test[TUNED_FLIP].macro_f1_ci,
            # Mean macro-F1 gain of val-tuned thresholds on val people they were not tuned on.
            "tuning gain on held-out val": record.tuning_check.mean_gain if record.tuning_check else float("nan"),
            "F1 @0.5+flip": {a: v["f1"] for a, v in shipped_point.per_attribute.items()},
        })
    return rows


def seed_spread(records: Iterable[ModelRecord], prefix: str = SEED_RUNS_PREFIX) -> list[dict]:
    """Mean, standard deviation and range over seeds of each architecture's test F (the paper's AVG.)
    and macro-F1 at 0.5, from the experiments named ``{prefix}{arch}_s{seed}``."""
    by_arch: dict[str, list[dict[str, float]]] = {}
    for record in records:
        if record.name.startswith(prefix):
            by_arch.setdefault(record.name[len(prefix):].rsplit("_s", 1)[0], []).append(record.test[AT_05].summary)
    rows = []
    for arch, runs in by_arch.items():
        f = np.array([run["paper_f"] for run in runs])
        m = np.array([run["macro_f1"] for run in runs])
        rows.append({"arch": arch, "seeds": len(runs), "F mean": float(f.mean()), "F std": float(f.std(ddof=1)) if len(f) > 1 else 0.0,
                     "F min": float(f.min()), "F max": float(f.max()), "macro-F1 mean": float(m.mean()),
                     "macro-F1 std": float(m.std(ddof=1)) if len(m) > 1 else 0.0,
                     "published F": PAPER_ABLATIONS.get(arch, {}).get("f")})
    return rows
