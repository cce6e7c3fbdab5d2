"""Choose and report models on real photos: CelebA test photos of 326 people (celeba_wild_val), through
the photo path (face detector, framing, model), as uploads and `predict` meet them.

    python scripts/select_on_photos.py --photos ../shared/celeba_wild_val/faces --labels-root ../shared/celeba
    python scripts/select_on_photos.py --table          # the model card's tables (the last run's, else the shipped ones)
    python scripts/select_on_photos.py --ship NAME --data-root ../shared/celeba   # make NAME the default
    python scripts/select_on_photos.py --publish        # ship the last run's figures, keeping the default

Candidates: the shipped `attrnet`, the finished issue-17 experiments of scripts/run_experiments.py
(runs/experiments/NAME/best.safetensors: the epoch their aligned val split chose) and ensembles of
them (one checkpoint each, `python -m celeba_model ensemble`; members of different input sizes: their
photo predictions averaged, measured but not shippable). Every candidate is evaluated with flip
averaging into runs/photo-selection/NAME/wild_val (the photos are detected and framed once for all).
For each: macro-F1 at 0.5 with a 95% interval over people, mean accuracy, the lowest recall, the F1
of each attribute; and max-F1 thresholds tuned on these photos, scored in-sample and, honestly, by
tuning on half of the people and scoring the other half (50 random halvings, both ways round).
The photos are CelebA's test partition: nothing here trains on them. Figures go to
runs/photo-selection/summary.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from celeba_model.data.corrections import read_corrections
from celeba_model.evaluation.predictions import load_predictions
from celeba_model.metrics.bootstrap import bootstrap_ci
from celeba_model.metrics.counts import attribute_metrics, summarize
from celeba_model.metrics.sweep import heldout_tuning_gain, tune_thresholds
from celeba_model.models.checkpoint import update_checkpoint_meta
from celeba_model.models.ensemble import build_ensemble
from celeba_model.utils.logs import configure_logging
from celeba_model.workspace import REPO_ROOT

OUT = REPO_ROOT / "runs" / "photo-selection"
EXPERIMENTS = REPO_ROOT / "runs" / "experiments"
SHIPPED = REPO_ROOT / "checkpoints" / "celeba"
SPLIT = "wild_val"
PHOTO_SUMMARY = "photo_selection.json"

# name -> (what it is, checkpoint file or the names of ensemble members)
SINGLE = {
    "paper": ("shipped: the paper's model (grayscale)", SHIPPED / "paper.safetensors"),
    "paper_rgb": ("shipped: the paper's model on RGB", SHIPPED / "paper_rgb.safetensors"),
    "attrnet": ("shipped: ours (5 blocks, avg+max pooling), RGB, sqrt weights, augmentation, 20 epochs",
                SHIPPED / "attrnet.safetensors"),
    "attrnet_mt40": ("+ multi-task supervision on all 40 attributes", EXPERIMENTS / "attrnet_mt40" / "best.safetensors"),
    "attrnet_photo": ("+ the photo path's framing noise in augmentation",
                      EXPERIMENTS / "attrnet_photo" / "best.safetensors"),
    "attrnet_mt40_photo_ema": ("+ multi-task 40 + framing noise + EMA, 24 epochs",
                               EXPERIMENTS / "attrnet_mt40_photo_ema" / "best.safetensors"),
    "attrnet_wide_mt40_ema": ("1.5x wider + multi-task 40 + EMA, 24 epochs",
                              EXPERIMENTS / "attrnet_wide_mt40_ema" / "best.safetensors"),
    "attrnet_96": ("attrnet at 96x96 input", EXPERIMENTS / "attrnet_96" / "best.safetensors"),
    "attrnet_half": ("attrnet on half the train images (7,000): what data buys",
                     EXPERIMENTS / "attrnet_half" / "best.safetensors"),
    "attrnet_quarter": ("attrnet on a quarter of the train images (3,500): the data curve's third point",
                        EXPERIMENTS / "attrnet_quarter" / "best.safetensors"),
    "attrnet_s1": ("attrnet again, seed 1: the spread between seeds", EXPERIMENTS / "attrnet_s1" / "best.safetensors"),
    "attrnet_ls": ("+ label smoothing 0.1", EXPERIMENTS / "attrnet_ls" / "best.safetensors"),
    "attrnet_erase": ("+ random erasing (half of the images)", EXPERIMENTS / "attrnet_erase" / "best.safetensors"),
    "attrnet_mixup": ("+ mixup (Beta(0.2, 0.2))", EXPERIMENTS / "attrnet_mixup" / "best.safetensors"),
    "attrnet_cutmix": ("+ cutmix (Beta(1, 1))", EXPERIMENTS / "attrnet_cutmix" / "best.safetensors"),
    "attrnet_balanced": ("neg/pos positive weights (full balancing) instead of sqrt",
                         EXPERIMENTS / "attrnet_balanced" / "best.safetensors"),
    "attrnet_distill": ("distilled from the shipped four-model ensemble (half label, half teacher)",
                        EXPERIMENTS / "attrnet_distill" / "best.safetensors"),
}
ENSEMBLES = {
    "ensemble_attrnet_mt40": ("ensemble of attrnet and attrnet_mt40", ["attrnet", "attrnet_mt40"]),
    "ensemble_new3": ("ensemble of the three new runs", ["attrnet_mt40", "attrnet_photo", "attrnet_mt40_photo_ema"]),
    "ensemble_all4": ("ensemble of attrnet and the three new runs",
                      ["attrnet", "attrnet_mt40", "attrnet_photo", "attrnet_mt40_photo_ema"]),
    "ensemble_all5": ("ensemble of attrnet, the three new runs and the wider one",
                      ["attrnet", "attrnet_mt40", "attrnet_photo", "attrnet_mt40_photo_ema", "attrnet_wide_mt40_ema"]),
    "ensemble_all4_s1": ("ensemble_all4 and attrnet's second seed",
                         ["attrnet", "attrnet_mt40", "attrnet_photo", "attrnet_mt40_photo_ema", "attrnet_s1"]),
    "ensemble_64_11": ("ensemble of the eleven 64-pixel runs (all but full balancing)",
                       ["attrnet", "attrnet_mt40", "attrnet_photo", "attrnet_mt40_photo_ema", "attrnet_wide_mt40_ema",
                        "attrnet_s1", "attrnet_ls", "attrnet_erase", "attrnet_mixup", "attrnet_cutmix", "attrnet_distill"]),
}
# Averages of members' photo predictions that one ensemble checkpoint cannot hold (members of different
# input sizes): measured, so the card can say what mixing them would buy; never shipped.
AVERAGED = {
    "average_all4_96": ("ensemble_all4's members and attrnet_96, probabilities averaged (mixed input sizes)",
                        ["attrnet", "attrnet_mt40", "attrnet_photo", "attrnet_mt40_photo_ema", "attrnet_96"]),
}


def finished(path: Path) -> bool:
    """A shipped checkpoint, or an experiment that scripts/run_experiments.py has finished (trained and
    evaluated: it is in runs/experiments/summary.json), not one still training."""
    if not path.is_file():
        return False
    if not path.is_relative_to(EXPERIMENTS):
        return True
    summary = EXPERIMENTS / "summary.json"
    done = {m["name"] for m in json.loads(summary.read_text())["models"]} if summary.is_file() else set()
    return path.parent.name in done


def candidates() -> dict[str, tuple[str, Path]]:
    """Every candidate whose checkpoint is finished (ensembles are built here when all their members are)."""
    found = {name: (what, path) for name, (what, path) in SINGLE.items() if finished(path)}
    for name, (what, members) in ENSEMBLES.items():
        if all(m in found for m in members):
            path = OUT / f"{name}.safetensors"
            if not path.is_file():
                build_ensemble([found[m][1] for m in members], path)
            found[name] = (what, path)
    return found


def average(found: dict[str, tuple[str, Path | None]]) -> None:
    """Write each AVERAGED candidate whose members are evaluated: the mean of their probabilities on
    the photos (flip averaged each); its model time is the sum of theirs."""
    from dataclasses import replace

    from celeba_model.evaluation.predictions import save_predictions

    for name, (what, members) in AVERAGED.items():
        if not all((OUT / m / SPLIT / "predictions.npz").is_file() for m in members):
            continue
        runs = [load_predictions(OUT / m / SPLIT) for m in members]
        if any(list(r.files) != list(runs[0].files) for r in runs):
            raise SystemExit(f"{name}: its members were evaluated on different photos; evaluate them again")
        meta = {**runs[0].meta, "checkpoint": {"averaged": members},
                "timing": {"seconds": sum(r.meta["timing"]["seconds"] for r in runs)}}
        save_predictions(OUT / name / SPLIT, replace(runs[0], probabilities=np.mean([r.probabilities for r in runs], axis=0),
                                                    meta=meta, folder=None))
        found[name] = (what, None)


def evaluate(found: dict[str, tuple[str, Path]], photos: str, labels_root: str) -> None:
    """Evaluate the candidates not evaluated yet (one detection pass for all of them)."""
    from celeba_model.models.checkpoint import load_checkpoint
    from celeba_model.photo.evaluate import evaluate_photos, frame_photo_set

    todo = {n: p for n, (_, p) in found.items() if not (OUT / n / SPLIT / "predictions.npz").is_file()}
    if not todo:
        return
    specs = list({load_checkpoint(p).preprocess for p in todo.values()})
    started = time.perf_counter()
    photo_set = frame_photo_set([photos], specs)
    print(f"{len(photo_set):,} photos detected and framed in {time.perf_counter() - started:.0f} s", flush=True)
    for name, path in todo.items():
        evaluate_photos([path], [], labels_root, OUT / name / SPLIT, name=SPLIT, photo_set=photo_set,
                        flip_tta=True, progress=False, overwrite=True)


def figures(name: str, what: str, path: Path | None) -> dict:
    run = load_predictions(OUT / name / SPLIT)
    labels, scores, people = run.labels, run.probabilities, run.identity
    at_05 = attribute_metrics(labels, scores, 0.5)
    ci = bootstrap_ci(labels, scores, 0.5, groups=people, n_boot=1000)
    tuned = tune_thresholds(labels, scores).thresholds
    at_tuned = attribute_metrics(labels, scores, tuned)
    check = heldout_tuning_gain(labels, scores, people)
    # Our audit of these photos' labels (checkpoints/celeba/labels/wild_val.csv, 113 decisions made on
    # attrnet's disagreements): how much of the error is the labels'. An upper bound for attrnet.
    corrected = run.with_corrections(read_corrections(SHIPPED / "labels" / f"{SPLIT}.csv"))
    at_corrected = summarize(attribute_metrics(corrected.labels, scores, 0.5))
    record = {
        "name": name, "what": what, "checkpoint": str(path.relative_to(REPO_ROOT)) if path else None, "images": len(run),
        "people": int(len(np.unique(people))), "train_minutes": train_minutes(name),
        "at_0.5": {**{k: float(v) for k, v in summarize(at_05).items()},
                   "macro_f1_ci": [float(v) for v in ci["macro_f1"]]},
        "per_attribute_0.5": {a: {k: float(at_05[k][i]) for k in ("precision", "recall", "f1", "accuracy")}
                              for i, a in enumerate(run.attributes)},
        "tuned_in_sample": {k: float(v) for k, v in summarize(at_tuned).items()},
        "tuned_thresholds": {a: float(t) for a, t in zip(run.attributes, tuned)},
        "per_attribute_tuned": {a: {k: float(at_tuned[k][i]) for k in ("precision", "recall", "f1", "accuracy")}
                                for i, a in enumerate(run.attributes)},
        "heldout_tuning": check,
        "corrected_labels_0.5": {k: float(v) for k, v in at_corrected.items()},
        "seconds_per_photo_model": run.meta["timing"]["seconds"] / len(run),
    }
    return record


def train_minutes(name: str) -> float | None:
    """Training time of a candidate (an ensemble: the sum of its members')."""
    if name in ENSEMBLES or name in AVERAGED:
        parts = [train_minutes(m) for m in {**ENSEMBLES, **AVERAGED}[name][1]]
        return None if None in parts else float(sum(parts))
    for file in ("experiments.json", "results.json"):  # shipped models: their summaries
        shipped = [m for m in json.loads((SHIPPED / file).read_text())["models"] if m.get("checkpoint") == f"{name}.safetensors"]
        if shipped and shipped[0].get("train_seconds"):
            return shipped[0]["train_seconds"] / 60
    metrics = EXPERIMENTS / name / "metrics.jsonl"
    if not metrics.is_file():
        return None
    return sum(json.loads(line)["train_seconds"] for line in metrics.read_text().splitlines()) / 60


def print_table(records: list[dict]) -> None:
    attributes = list(records[0]["per_attribute_0.5"])
    print("| model | what it is | train time | macro-F1 at 0.5 [95% CI] | mean accuracy | lowest recall | "
          "tuned on these photos: macro-F1 (in-sample) | held-out tuning gain | mean accuracy, tuned | "
          "macro-F1 at 0.5, audited labels |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in records:
        a, t, h = r["at_0.5"], r["tuned_in_sample"], r["heldout_tuning"]
        recalls = {k: v["recall"] for k, v in r["per_attribute_0.5"].items()}
        low = min(recalls, key=recalls.get)
        minutes = f"{r['train_minutes']:.1f} min" if r["train_minutes"] is not None else "?"
        print(f"| {r['name']} | {r['what']} | {minutes} | {a['macro_f1']:.3f} [{a['macro_f1_ci'][0]:.3f}-"
              f"{a['macro_f1_ci'][1]:.3f}] | {100 * a['macro_accuracy']:.1f}% | {low} {recalls[low]:.2f} | "
              f"{t['macro_f1']:.3f} | {h['mean_gain']:+.3f} ± {h['std_gain']:.3f} | {100 * t['macro_accuracy']:.1f}% | "
              f"{r['corrected_labels_0.5']['macro_f1']:.3f} |")
    print()
    print("| attribute | " + " | ".join(r["name"] for r in records) + " |")
    print("|---|" + "---|" * len(records))
    for attribute in attributes:
        print(f"| {attribute} | " + " | ".join(f"{r['per_attribute_0.5'][attribute]['f1']:.2f}" for r in records) + " |")


def ship(name: str, records: list[dict], data_roots: list[str]) -> None:
    """Make candidate NAME the default: checkpoints/celeba/NAME.safetensors with flip averaging and, when
    tuning helps on held-out people, the max-F1 thresholds tuned on all the photos (else 0.5); its
    artifacts (predictions and labels, no images) on these photos, with their map, and on the aligned
    val and test splits in checkpoints/celeba/runs/NAME/; and checkpoints/celeba/default.json, which
    makes it the Upload page's and `predict`'s model and the split the dashboard opens on."""
    from celeba_model.analysis.embedding_map import map_for
    from celeba_model.catalogue import DEFAULT_CHOICE, ship_artifact
    from celeba_model.data.index import load_index
    from celeba_model.evaluation.embeddings import EMBEDDINGS_FILE
    from celeba_model.evaluation.evaluate import EvalConfig, evaluate_checkpoint
    from celeba_model.photo.embeddings import embed_run

    record = next((r for r in records if r["name"] == name), None)
    if record is None:
        raise SystemExit(f"{name} has not been evaluated (see {OUT / 'summary.json'})")
    if record["checkpoint"] is None:
        raise SystemExit(f"{name} averages the predictions of models no one checkpoint holds: it cannot ship")
    shipped = SHIPPED / f"{name}.safetensors"
    shutil.copyfile(REPO_ROOT / record["checkpoint"], shipped)
    gain = record["heldout_tuning"]["mean_gain"]
    thresholds = record["tuned_thresholds"] if gain > 0 else {a: 0.5 for a in record["tuned_thresholds"]}
    info = ({"objective": "f1", "target": None, "source": f"runs/photo-selection/{name}/{SPLIT}", "split": SPLIT,
             "heldout_gain": gain} if gain > 0 else
            {"objective": "default", "target": None, "source": None, "split": None,
             "why": f"tuning on half of the people lost macro-F1 on the other half (mean {gain:+.4f})"})
    update_checkpoint_meta(shipped, {"thresholds": thresholds, "thresholds_info": info,
                                     "inference": {"flip_tta": True}, "selected_on": SPLIT})
    at = record["per_attribute_tuned"] if gain > 0 else record["per_attribute_0.5"]
    print("At the shipped thresholds (in-sample): " + ", ".join(
        f"{a} {t:.2f}: P {m['precision']:.2f} R {m['recall']:.2f} F1 {m['f1']:.2f}"
        for (a, m), t in zip(at.items(), thresholds.values())))
    relative = str(shipped.relative_to(REPO_ROOT))
    photos = OUT / name / SPLIT
    ship_artifact(load_predictions(photos), relative, SHIPPED / "runs" / name / SPLIT)
    # The photo run's map ships without its features (large): the Map page works without the photos.
    embed_run(photos, overwrite=True)
    map_for(load_predictions(photos))
    shutil.copyfile(photos / "map.npz", SHIPPED / "runs" / name / SPLIT / "map.npz")
    (photos / EMBEDDINGS_FILE).unlink()
    ship_paper_family(photos_folder=record["photos"], labels_root=record["labels_root"])
    index = load_index(data_roots)
    for split in ("val", "test"):
        folder = OUT / name / split
        run = evaluate_checkpoint(shipped, index, folder, EvalConfig(split=split, progress=False, overwrite=True))
        ship_artifact(run, relative, SHIPPED / "runs" / name / split)
    choice = {"checkpoint": shipped.name, "split": SPLIT, "chosen_by": "scripts/select_on_photos.py",
              # The measured case for it, not a ranking: candidates within the interval of each other tie.
              "why": f"macro-F1 {record['at_0.5']['macro_f1']:.3f} at 0.5 and {record['at_0.5']['macro_f1'] + gain:.3f} "
                     f"with thresholds tuned on other people, on {record['images']:,} real photos of "
                     f"{record['people']} people (celeba_wild_val) through the photo path",
              "macro_f1_at_0.5": record["at_0.5"]["macro_f1"], "thresholds": "tuned" if gain > 0 else "0.5"}
    (SHIPPED / DEFAULT_CHOICE).write_text(json.dumps(choice, indent=2) + "\n")
    publish_figures()
    print(f"Shipped {name} as {shipped} ({'tuned' if gain > 0 else '0.5'} thresholds) and made it the default")


def publish_figures() -> int:
    """Ship every candidate's figures of the last evaluation (for the model card, `--table` on a clone);
    returns how many candidates they cover."""
    text = (OUT / "summary.json").read_text()
    (SHIPPED / PHOTO_SUMMARY).write_text(text)
    return len(json.loads(text)["models"])


PAPER_FAMILY = ("paper", "no_conv3", "no_conv3_no_fc1", "paper_rgb")


def ship_paper_family(photos_folder: str, labels_root: str) -> None:
    """The paper's model and its ablations on the same photos, each as its checkpoint predicts (its own
    flip setting and thresholds), beside their shipped runs: the dashboard's Ablations page compares them
    with the default on real photos."""
    from celeba_model.catalogue import ship_artifact
    from celeba_model.photo.evaluate import evaluate_photos

    checkpoints = [SHIPPED / f"{name}.safetensors" for name in PAPER_FAMILY]
    for run in evaluate_photos(checkpoints, [photos_folder], labels_root, OUT / "paper-family", name=SPLIT,
                               overwrite=True, progress=False):
        name = run.folder.name
        ship_artifact(run, f"checkpoints/celeba/{name}.safetensors", SHIPPED / "runs" / name / SPLIT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", help="the folder of photos (../shared/celeba_wild_val/faces)")
    parser.add_argument("--labels-root", help="the CelebA folder whose list files label them (../shared/celeba)")
    parser.add_argument("--table", action="store_true", help="print the tables of the last run and stop")
    parser.add_argument("--ship", metavar="NAME", help="make candidate NAME the default checkpoint (needs --data-root)")
    parser.add_argument("--publish", action="store_true",
                        help="copy the last run's figures of every candidate to the shipped "
                             f"checkpoints/celeba/{PHOTO_SUMMARY} without changing the default")
    parser.add_argument("--data-root", dest="data_roots", action="append", default=[],
                        help="with --ship: the CelebA folder(s) its aligned val and test artifacts are evaluated on")
    args = parser.parse_args()
    configure_logging()
    summary = OUT / "summary.json"
    if args.publish:
        if not summary.is_file():
            parser.error(f"--publish: no figures to publish, {summary} is missing (evaluate first)")
        print(f"Published the figures of {publish_figures()} candidates to {SHIPPED / PHOTO_SUMMARY}")
        return
    if args.table or args.ship:
        if not summary.is_file() and args.table:
            summary = SHIPPED / PHOTO_SUMMARY  # the shipped figures, on a clone without runs/
        records = json.loads(summary.read_text())["models"]
        if args.table:
            print_table(records)
        elif not args.data_roots:
            parser.error("--ship needs --data-root (../shared/celeba) for the aligned val and test artifacts")
        else:
            ship(args.ship, records, args.data_roots)
        return
    if not (args.photos and args.labels_root):
        parser.error("--photos and --labels-root are needed to evaluate")
    OUT.mkdir(parents=True, exist_ok=True)
    found = candidates()
    evaluate(found, args.photos, args.labels_root)
    average(found)
    records = [figures(name, what, path) | {"photos": args.photos, "labels_root": args.labels_root}
               for name, (what, path) in found.items()]
    summary.write_text(json.dumps({"split": SPLIT, "photos": args.photos, "models": records}, indent=2) + "\n")
    print_table(records)


if __name__ == "__main__":
    main()
