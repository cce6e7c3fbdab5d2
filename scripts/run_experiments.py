"""The experiments that take the paper's model to ours, each a reproducible training run.

    python scripts/run_experiments.py --data-root ../shared/celeba --data-root ../shared/celeba_half [NAME ...]

Each experiment is one `python -m celeba_model train ...` (printed before it runs) into
runs/experiments/NAME, then `evaluate` on val and test (plain and with flip averaging), thresholds
tuned for F1 on val and applied to test. A finished experiment is not retrained. The figures of all
finished experiments go to runs/experiments/summary.json (in celeba_model.models.summary's format);
`--table` prints them as the model card's experiments table, and `--ship` copies them to
checkpoints/celeba/experiments.json. Every run is an ordinary run folder the dashboard can open and compare.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from celeba_model.analysis.reports import SEED_RUNS_PREFIX, experiment_rows, seed_spread
from celeba_model.analysis.thresholds import tune_run
from celeba_model.catalogue import ship_artifact
from celeba_model.data.index import load_index
from celeba_model.evaluation.evaluate import EvalConfig, evaluate_checkpoint
from celeba_model.evaluation.predictions import load_predictions
from celeba_model.metrics.bootstrap import bootstrap_ci
from celeba_model.metrics.counts import attribute_metrics, summarize
from celeba_model.metrics.sweep import heldout_tuning_gain
from celeba_model.models.checkpoint import update_checkpoint_meta
from celeba_model.models.summary import (
    AT_05,
    EXPERIMENTS_FILE,
    TUNED,
    TUNED_FLIP,
    ModelRecord,
    ModelSummary,
    OperatingPoint,
    TuningCheck,
    read_summary,
    train_command,
    write_summary,
)
from celeba_model.training import TrainConfig, train
from celeba_model.utils.logs import configure_logging
from celeba_model.workspace import REPO_ROOT

PAPER = {"arch": "paper", "epochs": 30, "patience": 8}
STRONG = {"color": "rgb", "pos_weight": "sqrt", "augment": True}
# name -> (what it changes, training options). Listed in the order of the experiments table.
EXPERIMENTS: dict[str, tuple[str, dict]] = {
    "paper_gray": ("the paper's model and setup (grayscale, no balancing, no augmentation)", {**PAPER, "color": "gray"}),
    "paper_rgb": ("+ RGB input", {**PAPER, "color": "rgb"}),
    "paper_rgb_pw": ("+ sqrt(neg/pos) positive weights", {**PAPER, "color": "rgb", "pos_weight": "sqrt"}),
    "paper_rgb_pw_48": ("paper_rgb_pw at 48x48 input (image size)", {**PAPER, "color": "rgb", "pos_weight": "sqrt",
                                                                      "image_size": 48}),
    "paper_rgb_pw_80": ("paper_rgb_pw at 80x80 input (image size)", {**PAPER, "color": "rgb", "pos_weight": "sqrt",
                                                                      "image_size": 80}),
    "paper_rgb_pw_aug": ("+ augmentation (flip, shift, zoom, color)", {**PAPER, **STRONG}),
    "cnn4": ("baseline 4-block CNN, RGB, sqrt weights, augmentation, 16 epochs", {"arch": "cnn4", "epochs": 16, **STRONG}),
    "attrnet": ("ours: 5 blocks, avg+max pooling, dropout; RGB, sqrt weights, augmentation, 20 epochs",
                {"arch": "attrnet", "epochs": 20, **STRONG}),
    "attrnet_80": ("ours at 80x80 input", {"arch": "attrnet", "epochs": 20, "image_size": 80, **STRONG}),
    "attrnet_long": ("ours, 30 epochs", {"arch": "attrnet", "epochs": 30, **STRONG}),
    "attrnet_ema": ("ours + weight averaging (EMA 0.998), 24 epochs",
                    {"arch": "attrnet", "epochs": 24, "ema": 0.998, **STRONG}),
    "attrnet_ema_balanced": ("ours + EMA, neg/pos positive weights (full balancing), 24 epochs",
                             {"arch": "attrnet", "epochs": 24, "ema": 0.998, **STRONG, "pos_weight": "balanced"}),
    "attrnet_80_ema": ("ours + EMA at 80x80 input, 24 epochs",
                       {"arch": "attrnet", "epochs": 24, "ema": 0.998, "image_size": 80, **STRONG}),
    # Issue 17: chosen on real photos (celeba_wild_val) through the photo path; epochs kept to choose among.
    "attrnet_mt40": ("ours + multi-task supervision: learns all 40 attributes, predicts the 10",
                     {"arch": "attrnet", "epochs": 20, **STRONG, "aux_attributes": ["all"], "keep_epochs": True}),
    "attrnet_photo": ("ours + the photo path's framing noise in augmentation (rotation 10 deg, shift 8%, zoom 12%)",
                      {"arch": "attrnet", "epochs": 20, **STRONG, "augment_preset": "photo", "keep_epochs": True}),
    "attrnet_mt40_photo_ema": ("ours + multi-task 40 + framing-noise augmentation + EMA 0.998, 24 epochs",
                               {"arch": "attrnet", "epochs": 24, **STRONG, "aux_attributes": ["all"],
                                "augment_preset": "photo", "ema": 0.998, "keep_epochs": True}),
    "attrnet_wide_mt40_ema": ("ours 1.5x wider (48 to 576 channels) + multi-task 40 + EMA 0.998, 24 epochs",
                              {"arch": "attrnet", "epochs": 24, **STRONG, "aux_attributes": ["all"], "ema": 0.998,
                               "model_config": {"widths": [48, 96, 192, 384, 576]}, "keep_epochs": True}),
    "attrnet_96": ("ours at 96x96 input (a net of 5 stages needs a multiple of 32)",
                   {"arch": "attrnet", "epochs": 20, **STRONG, "image_size": 96}),
    "attrnet_half": ("ours on half the train images (7,000 of 14,283): how much more data would give",
                     {"arch": "attrnet", "epochs": 20, **STRONG, "max_train_images": 7000}),
    "attrnet_quarter": ("ours on a quarter of the train images (3,500 of 14,283): a third point of the data curve",
                        {"arch": "attrnet", "epochs": 20, **STRONG, "max_train_images": 3500}),
    # Issue 17, round 2: the regularizers, distillation and seeds, each one change on attrnet's recipe.
    "attrnet_s1": ("attrnet with seed 1: the spread between seeds of the same recipe",
                   {"arch": "attrnet", "epochs": 20, **STRONG, "seed": 1}),
    "attrnet_ls": ("ours + label smoothing 0.1", {"arch": "attrnet", "epochs": 20, **STRONG, "label_smoothing": 0.1}),
    "attrnet_erase": ("ours + random erasing (one noise rectangle, 2-33% of the image, in half of the images)",
                      {"arch": "attrnet", "epochs": 20, **STRONG, "random_erase": 0.5}),
    "attrnet_mixup": ("ours + mixup (Beta(0.2, 0.2), labels mixed alike)",
                      {"arch": "attrnet", "epochs": 20, **STRONG, "mix": "mixup", "mix_alpha": 0.2}),
    "attrnet_cutmix": ("ours + cutmix (Beta(1, 1), labels mixed by area)",
                       {"arch": "attrnet", "epochs": 20, **STRONG, "mix": "cutmix", "mix_alpha": 1.0}),
    "attrnet_balanced": ("ours with neg/pos positive weights (full balancing per attribute) instead of sqrt",
                         {"arch": "attrnet", "epochs": 20, **STRONG, "pos_weight": "balanced"}),
    "attrnet_distill": ("ours distilled from the shipped four-model ensemble (targets half label, half teacher)",
                        {"arch": "attrnet", "epochs": 20, **STRONG, "teacher": "checkpoints/celeba/ensemble_all4.safetensors",
                         "distill_weight": 0.5}),
}
# The paper's ablation with several seeds (its setup: grayscale, no balancing, no augmentation).
for _arch in ("paper", "no_conv3", "no_conv3_no_fc1"):
    for _seed in (0, 1, 2):
        EXPERIMENTS[f"{SEED_RUNS_PREFIX}{_arch}_s{_seed}"] = (
            f"paper ablation: {_arch}, seed {_seed}", {"arch": _arch, "epochs": 30, "patience": 8, "seed": _seed})

OUT = REPO_ROOT / "runs" / "experiments"
SHIPPED = REPO_ROOT / "checkpoints" / "celeba"


def evaluate_run(name: str, index, run: Path) -> dict[str, OperatingPoint]:
    """Test figures at 0.5 and at val-tuned thresholds, with and without flip averaging."""
    figures = {}
    for flip in (False, True):
        suffix = "-flip" if flip else ""
        artifacts = {}
        for split in ("val", "test"):
            folder = run / f"{split}{suffix}"
            if (folder / "predictions.npz").is_file():
                artifacts[split] = load_predictions(folder)
            else:
                artifacts[split] = evaluate_checkpoint(run / "best.safetensors", index, folder,
                                                       EvalConfig(split=split, flip_tta=flip, progress=False))
        tuned = tune_run(artifacts["val"], "f1")
        test = artifacts["test"]
        thresholds = np.array([tuned["thresholds"][a] for a in test.attributes])
        for label, t in ((AT_05, 0.5), (TUNED, thresholds)):
            per = attribute_metrics(test.labels, test.probabilities, t)
            ci = bootstrap_ci(test.labels, test.probabilities, t, groups=test.identity, n_boot=1000)
            figures[f"{label}{suffix}"] = OperatingPoint(
                summary={k: float(v) for k, v in summarize(per).items()},
                summary_ci={"macro_f1": [float(v) for v in ci["macro_f1"]]},
                per_attribute={a: {k: float(per[k][i]) for k in ("precision", "recall", "f1", "accuracy")}
                               for i, a in enumerate(test.attributes)},
                f1_ci={a: [float(v) for v in ci["f1"][i]] for i, a in enumerate(test.attributes)},
                thresholds=None if label == AT_05 else tuned["thresholds"],
            )
    return figures


def run_experiment(name: str, data_roots: list[str], index) -> ModelRecord:
    description, options = EXPERIMENTS[name]
    run = OUT / name
    cmd = train_command(data_roots, options, f"runs/experiments/{name}")
    print(f"\n== {name}: {description}\n$ {cmd}", flush=True)
    started = time.perf_counter()
    resume = (run / "config.json").is_file()
    result = train(TrainConfig(data_roots=data_roots, out=str(run), progress=False, **options), resume=resume)
    seconds = time.perf_counter() - started
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return ModelRecord(
        name=name, checkpoint=None, arch=options["arch"], options=options, command=cmd,
        train_seconds=sum(h["train_seconds"] for h in history), epochs_run=result.epochs_run,
        best_epoch=result.best_epoch, best_val_macro_f1=result.best_val_macro_f1, description=description,
        train_images_per_s=float(np.median([h["train_images_per_s"] for h in history])),
        last_call_wall_seconds=seconds, test=evaluate_run(name, index, run), tuning_check=tuning_check(name),
    )


def print_tables(records: list[ModelRecord]) -> None:
    print("| experiment | what changes | train time | val macro-F1 | test macro-F1 at 0.5 [95% CI] | 0.5 + flip [95% CI] | "
          "tuned | tuned + flip | tuning on held-out val | mean accuracy (0.5 + flip) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in experiment_rows([r for r in records if not r.name.startswith(SEED_RUNS_PREFIX)]):
        ci, ci_flip = row["95% CI @0.5"], row["95% CI @0.5+flip"]
        print(f"| {row['experiment']} | {row['what changes']} | {row['train minutes']:.1f} min | {row['val macro-F1']:.3f} | "
              f"{row['macro-F1 @0.5']:.3f} [{ci[0]:.2f}-{ci[1]:.2f}] | {row['macro-F1 @0.5+flip']:.3f} "
              f"[{ci_flip[0]:.2f}-{ci_flip[1]:.2f}] | {row['macro-F1 tuned']:.3f} | {row['macro-F1 tuned+flip']:.3f} | "
              f"{row['tuning gain on held-out val']:+.3f} | {row['mean accuracy @0.5+flip']:.3f} |")
    spread = seed_spread(records)
    if spread:
        print("\n| arch | seeds | test F at 0.5: mean ± std (min-max) | macro-F1: mean ± std | paper's F |")
        print("|---|---|---|---|---|")
        for row in spread:
            print(f"| {row['arch']} | {row['seeds']} | {row['F mean']:.3f} ± {row['F std']:.3f} ({row['F min']:.3f}-"
                  f"{row['F max']:.3f}) | {row['macro-F1 mean']:.3f} ± {row['macro-F1 std']:.3f} | {row['published F']} |")


def tuning_check(name: str) -> TuningCheck:
    """How much val-tuned thresholds gain on val people they were not tuned on (flip-averaged scores)."""
    val = load_predictions(OUT / name / "val-flip")
    return TuningCheck(**heldout_tuning_gain(val.labels, val.probabilities, val.identity))


def ship(name: str, as_name: str, summary: ModelSummary) -> None:
    """Ship an experiment as checkpoints/celeba/AS_NAME.safetensors: its best weights, flip averaging
    (which the checkpoint then asks for) and its val/test predictions.

    Thresholds: tuned for max F1 on val if tuning helps on held-out halves of the val people
    (``tuning_check``), else 0.5. The test split plays no part in the choice.
    """
    run = OUT / name
    record = summary.get(name)
    if record is None:
        raise SystemExit(f"{name} has not been run (not in {OUT / 'summary.json'})")
    shipped = SHIPPED / f"{as_name}.safetensors"
    check = tuning_check(name)
    use_tuned = check.mean_gain > 0
    print(f"{name}: val-tuned thresholds on held-out val people: macro-F1 {check.mean_gain:+.4f} "
          f"± {check.std_gain:.4f}, better in {100 * check.share_improved:.0f}% of {check.comparisons} splits "
          f"-> shipping {'tuned thresholds' if use_tuned else '0.5'}")
    attributes = load_predictions(run / "val-flip").attributes
    if use_tuned:
        thresholds = record.test[TUNED_FLIP].thresholds
        info = {"objective": "f1", "target": None, "source": f"runs/experiments/{name}/val-flip", "split": "val"}
    else:
        thresholds = {a: 0.5 for a in attributes}
        info = {"objective": "default", "target": None, "source": None, "split": None,
                "why": "max-F1 thresholds tuned on half of the val people lost macro-F1 on the other half "
                       f"(mean {check.mean_gain:+.4f} over {check.comparisons} splits)"}
    shutil.copyfile(run / "best.safetensors", shipped)
    update_checkpoint_meta(shipped, {"thresholds": thresholds, "thresholds_info": info, "inference": {"flip_tta": True}})
    for split in ("val", "test"):
        ship_artifact(load_predictions(run / f"{split}-flip"), str(shipped.relative_to(REPO_ROOT)),
                      SHIPPED / "runs" / as_name / split)
    # Naming the checkpoint marks the record as shipped: the dashboard ranks shipped models by validation macro-F1.
    summary.put(replace(record, checkpoint=shipped.name, tuning_check=check))
    write_summary(OUT / "summary.json", summary)  # so a later --ship keeps this one marked as shipped
    write_summary(SHIPPED / EXPERIMENTS_FILE, summary)
    print(f"Shipped {name} as {shipped}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"experiments to run (default: all): {', '.join(EXPERIMENTS)}")
    parser.add_argument("--data-root", dest="data_roots", action="append", default=[])
    parser.add_argument("--table", action="store_true", help="print the table of finished experiments and stop")
    parser.add_argument("--ship", nargs=2, metavar=("NAME", "AS"),
                        help="copy experiment NAME to checkpoints/celeba/AS.safetensors with its predictions, and "
                        "the summary to checkpoints/celeba/experiments.json")
    args = parser.parse_args()
    configure_logging()  # the training runs' epoch lines on stderr, as the CLI shows them
    summary_path = OUT / "summary.json"
    summary = read_summary(summary_path, missing_ok=True)
    if args.table:
        print_tables([summary.get(n) for n in EXPERIMENTS if summary.get(n) is not None])
        return
    if args.ship:
        ship(*args.ship, summary)
        return
    if not args.data_roots:
        parser.error("--data-root is required to run experiments")
    unknown = set(args.names) - set(EXPERIMENTS)
    if unknown:
        parser.error(f"unknown experiment(s): {', '.join(sorted(unknown))}")
    index = load_index(args.data_roots)
    for name in args.names or list(EXPERIMENTS):
        record = run_experiment(name, args.data_roots, index)
        summary = read_summary(summary_path, missing_ok=True)  # again: another process may have added runs
        summary.put(record)
        write_summary(summary_path, summary)
        best = record.test[TUNED_FLIP].summary
        print(f"{name}: test macro-F1 tuned+flip {best['macro_f1']:.3f}, mean accuracy {best['macro_accuracy']:.3f}", flush=True)


if __name__ == "__main__":
    main()
