"""Rebuild the demo checkpoints shipped in checkpoints/demo/ from the synthetic demo dataset.

    python scripts/build_demo_checkpoints.py [--epochs 15] [--work data/demo-build]

Generates the 10,000-image demo (seed 0), trains the paper model, its two ablations (grayscale, as
the paper) and an RGB paper model, tunes each one's thresholds for F1 on the val split, and copies
each best checkpoint (weights + metadata, no optimizer state) to checkpoints/demo/NAME.safetensors.
checkpoints/demo/manifest.json (in celeba_model.models.summary's format) records how each was trained
and the demo parameters the dashboard must regenerate to evaluate them on held-out people. Takes about
5 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from celeba_model.analysis.thresholds import save_thresholds_to_checkpoint, tune_run
from celeba_model.catalogue import DEMO_CHECKPOINTS, DEMO_DATASET
from celeba_model.data.demo import make_demo_dataset
from celeba_model.data.index import load_index
from celeba_model.evaluation.evaluate import EvalConfig, evaluate_checkpoint
from celeba_model.models.summary import DEMO_MANIFEST, ModelRecord, ModelSummary, train_command, write_summary
from celeba_model.training import TrainConfig, train
from celeba_model.utils.logs import configure_logging
from celeba_model.workspace import REPO_ROOT, Workspace

# name -> training options; the first three are the paper's ablation study, in grayscale as the paper.
VARIANTS = {
    "paper": {"arch": "paper", "color": "gray"},
    "no_conv3": {"arch": "no_conv3", "color": "gray"},
    "no_conv3_no_fc1": {"arch": "no_conv3_no_fc1", "color": "gray"},
    "paper_rgb": {"arch": "paper", "color": "rgb"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--work", default=str(REPO_ROOT / "data" / "demo-build"), help="scratch folder for the training runs")
    args = parser.parse_args()
    configure_logging()  # the training runs' epoch lines on stderr, as the CLI shows them
    work = Path(args.work)
    data = Workspace().demo_data  # the same folder the dashboard generates, so it is made once
    make_demo_dataset(data, **DEMO_DATASET)
    index = load_index([data])
    out_dir = REPO_ROOT / DEMO_CHECKPOINTS
    out_dir.mkdir(parents=True, exist_ok=True)
    # The dashboard regenerates the demo dataset from these options (Catalogue.ensure_demo).
    manifest = ModelSummary(data={"demo_dataset": DEMO_DATASET})
    for name, variant in VARIANTS.items():
        options = {**variant, "epochs": args.epochs}
        run = work / "runs" / name
        if run.exists():
            shutil.rmtree(run)
        started = time.perf_counter()
        result = train(TrainConfig(data_roots=[str(data)], out=str(run), **options))
        seconds = time.perf_counter() - started
        val = evaluate_checkpoint(run / "best.safetensors", index, run / "val", EvalConfig(split="val"))
        save_thresholds_to_checkpoint(val, tune_run(val, "f1"), REPO_ROOT)
        target = out_dir / f"{name}.safetensors"
        shutil.copyfile(run / "best.safetensors", target)
        manifest.put(ModelRecord(
            name=name, checkpoint=target.name, arch=options["arch"], options=options,
            command=train_command([str(data)], options, run), train_seconds=seconds, epochs_run=result.epochs_run,
            best_epoch=result.best_epoch, best_val_macro_f1=result.best_val_macro_f1,
        ))
        print(f"{name}: best val macro-F1 {result.best_val_macro_f1:.3f} -> {target}")
    write_summary(out_dir / DEMO_MANIFEST, manifest)


if __name__ == "__main__":
    main()
