"""Train the real-data checkpoints shipped in checkpoints/celeba/ and their evaluation artifacts.

    python scripts/build_celeba_checkpoints.py --data-root ../shared/celeba --data-root ../shared/celeba_half

For each variant (the paper model, its two ablations, an RGB paper model): train on the train
partition (val partition for picking the best epoch), evaluate val and test, tune thresholds for F1
on val and store them in the checkpoint, then copy the best checkpoint to
checkpoints/celeba/NAME.safetensors and its predictions (no images) to
checkpoints/celeba/runs/NAME/{val,test}. A summary with data counts, commands, times and test metrics
at 0.5 and at the tuned thresholds goes to checkpoints/celeba/results.json (in celeba_model.models.summary's
format; the model card's source).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from celeba_model.analysis.reports import attribute_report
from celeba_model.analysis.thresholds import save_thresholds_to_checkpoint, tune_run
from celeba_model.catalogue import ship_artifact
from celeba_model.data.index import load_index
from celeba_model.evaluation.evaluate import EvalConfig, evaluate_checkpoint
from celeba_model.evaluation.predictions import load_predictions
from celeba_model.metrics.counts import attribute_metrics, summarize
from celeba_model.models.summary import (
    AT_05,
    PAPER_FAMILY_FILE,
    TUNED,
    ModelRecord,
    OperatingPoint,
    read_summary,
    train_command,
    write_summary,
)
from celeba_model.training import TrainConfig, train
from celeba_model.utils.logs import configure_logging
from celeba_model.workspace import REPO_ROOT

# name -> training options. Paper defaults otherwise: batch 100, no class balancing, no augmentation.
VARIANTS: dict[str, dict] = {
    "paper": {"arch": "paper", "color": "gray"},
    "no_conv3": {"arch": "no_conv3", "color": "gray"},
    "no_conv3_no_fc1": {"arch": "no_conv3_no_fc1", "color": "gray"},
    "paper_rgb": {"arch": "paper", "color": "rgb"},
}


def _figures(predictions, thresholds, report: dict | None = None, named: dict[str, float] | None = None) -> OperatingPoint:
    """Test figures at ``thresholds`` (``named``: the same by attribute), with the 95% intervals of
    ``report`` (an ``attribute_report`` at those thresholds) when given."""
    per = attribute_metrics(predictions.labels, predictions.probabilities, thresholds)
    return OperatingPoint(
        summary={k: float(v) for k, v in summarize(per).items()},
        per_attribute={
            a: {k: float(per[k][i]) for k in ("precision", "recall", "f1", "accuracy", "tp", "support")}
            for i, a in enumerate(predictions.attributes)
        },
        summary_ci={k.removesuffix("_ci"): v for k, v in report["summary"].items() if k.endswith("_ci")} if report else {},
        f1_ci={row["attribute"]: row["f1_ci"] for row in report["attributes"]} if report else {},
        thresholds=named,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", dest="data_roots", action="append", required=True)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="build only these variants")
    parser.add_argument("--work", default=str(REPO_ROOT / "runs" / "celeba-build"), help="folder for the training runs")
    args = parser.parse_args()
    configure_logging()  # the training runs' epoch lines on stderr, as the CLI shows them

    out_dir = REPO_ROOT / "checkpoints" / "celeba"
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / PAPER_FAMILY_FILE
    results = read_summary(results_path, missing_ok=True)
    index = load_index(args.data_roots)
    results.data = {"roots": args.data_roots, **index.summary()}
    for name in args.only or list(VARIANTS):
        options = VARIANTS[name]
        run = Path(args.work) / name
        if run.exists():
            shutil.rmtree(run)
        config = TrainConfig(data_roots=args.data_roots, out=str(run), epochs=args.epochs, patience=args.patience,
                             progress=False, **options)
        command = train_command(args.data_roots, {**options, "epochs": args.epochs, "patience": args.patience}, run)
        started = time.perf_counter()
        result = train(config)
        seconds = time.perf_counter() - started
        artifacts = {}
        for split in ("val", "test"):
            artifacts[split] = evaluate_checkpoint(run / "best.safetensors", index, run / split,
                                                   EvalConfig(split=split, progress=False))
        tuned = tune_run(artifacts["val"], "f1")
        save_thresholds_to_checkpoint(artifacts["val"], tuned, REPO_ROOT)
        shipped = out_dir / f"{name}.safetensors"
        shutil.copyfile(run / "best.safetensors", shipped)
        for split in ("val", "test"):
            ship_artifact(artifacts[split], str(shipped.relative_to(REPO_ROOT)), out_dir / "runs" / name / split)
        test = load_predictions(out_dir / "runs" / name / "test")
        tuned_values = np.array([tuned["thresholds"][a] for a in test.attributes])
        report = attribute_report(test, tuned_values, n_boot=1000)
        record = ModelRecord(
            name=name, checkpoint=shipped.name, arch=options["arch"], options=options, command=command,
            train_seconds=seconds, epochs_run=result.epochs_run, best_epoch=result.best_epoch,
            best_val_macro_f1=result.best_val_macro_f1,
            test={AT_05: _figures(test, 0.5), TUNED: _figures(test, tuned_values, report, tuned["thresholds"])},
        )
        results.put(record)
        write_summary(results_path, results)
        s05 = record.test[AT_05].summary
        print(f"{name}: {seconds / 60:.1f} min, best epoch {result.best_epoch}, test macro-F1 at 0.5 "
              f"{s05['macro_f1']:.3f}, P/R/F {s05['macro_precision']:.3f}/{s05['macro_recall']:.3f}/{s05['paper_f']:.3f}",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
