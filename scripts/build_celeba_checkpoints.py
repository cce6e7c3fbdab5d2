"""Train the real-data checkpoints shipped in checkpoints/celeba/ and their evaluation artifacts.

    python scripts/build_celeba_checkpoints.py --data-root ../shared/celeba --data-root ../shared/celeba_half

For each variant (the paper model, its two ablations, an RGB paper model): train on the train
partition (val partition for picking the best epoch), evaluate val and test, tune thresholds for F1
on val and store them in the checkpoint, then copy the best checkpoint to
checkpoints/celeba/NAME.safetensors and its predictions (no images) to
checkpoints/celeba/runs/NAME/{val,test}. A summary with data counts, commands, times and metrics at
0.5 and at the tuned thresholds goes to checkpoints/celeba/results.json (the model card's source).
"""

from __future__ import annotations

import argparse
import json
import shlex
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
from celeba_model.training import TrainConfig, train
from celeba_model.utils.fileio import atomic_write_text
from celeba_model.workspace import REPO_ROOT

# name -> training options. Paper defaults otherwise: batch 100, no class balancing, no augmentation.
VARIANTS: dict[str, dict] = {
    "paper": {"arch": "paper", "color": "gray"},
    "no_conv3": {"arch": "no_conv3", "color": "gray"},
    "no_conv3_no_fc1": {"arch": "no_conv3_no_fc1", "color": "gray"},
    "paper_rgb": {"arch": "paper", "color": "rgb"},
}


def _metrics(predictions, thresholds) -> dict:
    per = attribute_metrics(predictions.labels, predictions.probabilities, thresholds)
    summary = summarize(per)
    return {
        "summary": {k: float(v) for k, v in summary.items()},
        "per_attribute": {
            a: {k: float(per[k][i]) for k in ("precision", "recall", "f1", "accuracy", "tp", "support")}
            for i, a in enumerate(predictions.attributes)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", dest="data_roots", action="append", required=True)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="build only these variants")
    parser.add_argument("--work", default=str(REPO_ROOT / "runs" / "celeba-build"), help="folder for the training runs")
    args = parser.parse_args()

    out_dir = REPO_ROOT / "checkpoints" / "celeba"
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {"variants": {}}
    index = load_index(args.data_roots)
    results["data"] = {"roots": args.data_roots, **index.summary()}
    for name in args.only or list(VARIANTS):
        options = VARIANTS[name]
        run = Path(args.work) / name
        if run.exists():
            shutil.rmtree(run)
        config = TrainConfig(data_roots=args.data_roots, out=str(run), epochs=args.epochs, patience=args.patience,
                             progress=False, **options)
        command = ("python -m celeba_model train " + " ".join(f"--data-root {shlex.quote(r)}" for r in args.data_roots)
                   + f" --arch {options['arch']} --color {options['color']} --epochs {args.epochs}"
                   + f" --patience {args.patience} --out {run}")
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
        results["variants"][name] = {
            "options": options,
            "command": command,
            "train_seconds": seconds,
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "best_val_macro_f1": result.best_val_macro_f1,
            "thresholds": tuned["thresholds"],
            "test_at_0.5": _metrics(test, 0.5),
            "test_at_tuned": _metrics(test, tuned_values),
            "test_tuned_ci": {
                "summary": {k: report["summary"][k] for k in report["summary"] if k.endswith("_ci")},
                "f1_ci": {r["attribute"]: r["f1_ci"] for r in report["attributes"]},
            },
        }
        atomic_write_text(results_path, json.dumps(results, indent=2) + "\n")
        s05 = results["variants"][name]["test_at_0.5"]["summary"]
        print(f"{name}: {seconds / 60:.1f} min, best epoch {result.best_epoch}, test macro-F1 at 0.5 "
              f"{s05['macro_f1']:.3f}, P/R/F {s05['macro_precision']:.3f}/{s05['macro_recall']:.3f}/{s05['paper_f']:.3f}",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
