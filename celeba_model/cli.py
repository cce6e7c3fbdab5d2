"""Command line: ``python -m celeba_model <command> --help`` explains each command and option."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from .attributes import CELEBA_ATTRIBUTES, PAPER_ATTRIBUTES
from .errors import CelebAModelError, ConfigError
from .models.registry import available_models
from .utils.distributed import is_main_process, shutdown
from .utils.logs import configure_logging

_command_started = time.monotonic()  # set again by main(): commands that report their whole time count from it


def _add_data_roots(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--data-root",
        dest="data_roots",
        action="append",
        required=required,
        metavar="DIR",
        help="CelebA folder: holds img_align_celeba/ and list_attr_celeba.txt (or torchvision's DIR/celeba/...). "
        "Repeat to combine several copies, e.g. a full-resolution folder and a resized one; an image present "
        "in several is taken from the first.",
    )


def _add_workspace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workspace", default=None, metavar="DIR",
        help="the folder holding checkpoints/, runs/ and data/ (default: $CELEBA_WORKSPACE, else the "
        "checkout when run inside it, else the current folder)",
    )


def _add_make_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make-demo",
        help="write the synthetic demo dataset in CelebA's on-disk layout",
        description="Write a synthetic CelebA-style dataset (178x218 JPEGs, list_attr_celeba.txt with all 40 "
        "attributes, list_eval_partition.txt, identity_CelebA.txt). Deterministic from --seed; reused when "
        "the folder already holds the same demo.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write (created; must be empty or an earlier demo)")
    p.add_argument("--num-images", type=int, default=2000, help="number of images (default: 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--workers", type=int, default=None, help="processes to draw with (default: all cores)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished demo of other settings (--num-images, --seed, --spurious) in --out")
    p.add_argument("--spurious", default=None, metavar="TARGET,GROUP,SHARE",
                   help="tie TARGET to GROUP in the train split only, e.g. Blond_Hair,Male,0.02: SHARE of the blond "
                   "train images are men (at least one person), while val and test hold the four cells in about "
                   "equal numbers. TARGET: Black_Hair, Blond_Hair, Brown_Hair, Gray_Hair or Pale_Skin; GROUP: Male "
                   "or Young (default: none, the standard demo)")
    p.set_defaults(func=_run_make_demo)


def _run_make_demo(args: argparse.Namespace) -> int:
    from .data.demo import make_demo_dataset

    summary = make_demo_dataset(args.out, num_images=args.num_images, seed=args.seed, workers=args.workers,
                                overwrite=args.overwrite, spurious=args.spurious)
    print(f"Demo dataset in {summary.root}: {summary.num_images} images of {summary.num_identities} people")
    return 0


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="check data roots and print image counts per split and attribute",
        description="Read the data roots as training would and print what was found: images per split, people, "
        "images listed but missing on disk, and the positive rate of each attribute per split.",
    )
    _add_data_roots(p)
    p.add_argument("--attributes", nargs="+", default=None, metavar="NAME",
                   help="attributes to show, or all (default: the paper's 10)")
    p.set_defaults(func=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from .attributes import resolve_attributes
    from .data.index import load_index

    index = load_index(args.data_roots)
    summary = index.summary()
    print(json.dumps(summary, indent=2))
    attributes = resolve_attributes(args.attributes)
    print(f"\n{'attribute':<20}" + "".join(f"{s:>10}" for s in ("train", "val", "test")))
    for name in attributes:
        cells = []
        for split in ("train", "val", "test"):
            rows = index.split_indices(split)
            cells.append(f"{index.attribute_labels([name], rows).mean():>10.3f}" if len(rows) else f"{'-':>10}")
        print(f"{name:<20}" + "".join(cells))
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    from .training import TrainConfig

    d = TrainConfig(data_roots=[], out="")
    # Options default to "not given" so that --resume can tell what was typed from what was not;
    # the defaults shown in the help are TrainConfig's.
    p = sub.add_parser(
        "train",
        help="train a model and write checkpoints to a run folder",
        description="Train a model on the train split, validate every epoch on the val split, and write "
        "OUT/last.safetensors (for --resume), OUT/best.safetensors (best validation macro-F1), "
        "OUT/metrics.jsonl and OUT/config.json. Defaults follow the paper: batch 100, grayscale, no class "
        "balancing, no augmentation.",
        argument_default=argparse.SUPPRESS,
    )
    _add_data_roots(p, required=False)
    p.add_argument("--out", required=True, metavar="DIR", help="run folder for checkpoints and metrics")
    p.add_argument("--arch", choices=sorted(available_models()), help=f"model architecture (default: {d.arch})")
    p.add_argument("--attributes", nargs="+", metavar="NAME",
                   help="attributes to predict, any of the 40 CelebA names, or all for the 40 (default: the paper's 10: "
                   f"{' '.join(PAPER_ATTRIBUTES)})")
    p.add_argument("--epochs", type=int, help=f"number of epochs (default: {d.epochs}; the paper trained 100)")
    p.add_argument("--batch-size", type=int, help=f"images per training step (default: {d.batch_size}, as the paper)")
    p.add_argument("--lr", type=float, help=f"AdamW learning rate, annealed by a cosine schedule (default: {d.lr})")
    p.add_argument("--weight-decay", type=float, help=f"AdamW weight decay (default: {d.weight_decay})")
    p.add_argument("--seed", type=int, help=f"seed for initialization, shuffling, dropout and augmentation (default: {d.seed})")
    p.add_argument("--split-seed", type=int,
                   help=f"seed of the fallback split used where a root has no list_eval_partition.txt (default: {d.split_seed})")
    p.add_argument("--image-size", type=int, help=f"side of the square model input in pixels (default: {d.image_size})")
    p.add_argument("--color", choices=["gray", "rgb"], help=f"grayscale (as the paper) or RGB input (default: {d.color})")
    p.add_argument("--pos-weight", choices=["none", "sqrt", "balanced"],
                   help="class balancing: weight positive examples by nothing, sqrt(neg/pos) or neg/pos per "
                   f"attribute (default: {d.pos_weight})")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction,
                   help="random flips, shifts, zoom, brightness/contrast (and saturation for RGB) on each batch "
                   "(default: off)")
    p.add_argument("--augment-preset", choices=["standard", "photo"],
                   help="with --augment: standard, or photo, which adds the detector path's framing noise (rotation "
                   f"up to 10 degrees, wider shift and zoom) (default: {d.augment_preset})")
    p.add_argument("--aux-attributes", nargs="+", metavar="NAME",
                   help="multi-task supervision: more CelebA attributes the network learns but does not predict, or "
                   "all for the other attributes; best.safetensors keeps only the --attributes outputs (default: none)")
    p.add_argument("--ema", type=float, metavar="DECAY",
                   help="keep an exponential moving average of the weights (e.g. 0.998 per step); validation and "
                   "best.safetensors use it (default: off)")
    p.add_argument("--label-smoothing", type=float, metavar="E",
                   help="train on targets y * (1 - E) + E / 2 instead of 0 and 1 (e.g. 0.1) (default: 0, off)")
    p.add_argument("--random-erase", type=float, metavar="P",
                   help="replace one random rectangle (2-33%% of the image) of each training image by noise, with "
                   "probability P (e.g. 0.25) (default: 0, off)")
    p.add_argument("--mix", choices=["none", "mixup", "cutmix"],
                   help="mix each training image with another of its batch: mixup blends them, cutmix pastes a "
                   f"rectangle; the labels mix by the same shares (default: {d.mix})")
    p.add_argument("--mix-alpha", type=float, metavar="A",
                   help=f"with --mix: the mixing weight is drawn from Beta(A, A) (default: {d.mix_alpha})")
    p.add_argument("--teacher", metavar="CHECKPOINT",
                   help="distillation: a checkpoint (one model or an ensemble) that reads the same input; its "
                   "flip-averaged probabilities on the train images are blended into the targets (default: none)")
    p.add_argument("--distill-weight", type=float, metavar="W",
                   help=f"with --teacher: targets are (1 - W) * label + W * teacher (default: {d.distill_weight})")
    p.add_argument("--max-train-images", type=int,
                   help="use a seeded subset of at most this many training images (the paper used 60000; default: all)")
    p.add_argument("--patience", type=int,
                   help="stop when the validation figure of --select has not improved for this many epochs "
                   "(default: never)")
    p.add_argument("--model-config", type=json.loads, metavar="JSON",
                   help='architecture options as JSON, e.g. \'{"fc_hidden": 256}\'')
    p.add_argument("--workers", type=int, help=f"DataLoader worker processes; 0 reads in the main process (default: {d.workers})")
    p.add_argument("--device", help=f"auto, cpu, cuda or cuda:N (default: {d.device})")
    p.add_argument("--data-on-device", choices=["auto", "yes", "no"],
                   help="hold the whole image cache on the training device; auto does so on a GPU with room "
                   f"for it, where it removes the host from the training loop (default: {d.data_on_device})")
    p.add_argument("--cache-dir", help="folder for the preprocessed image cache (default: $CELEBA_MODEL_CACHE or "
                   "~/.cache/celeba_model)")
    _add_group_options(p)
    p.add_argument("--label-corrections", metavar="FILE",
                   help="a label corrections CSV (the dashboard's Labels page writes one): train and val labels it "
                   "judges wrong are replaced by its corrected values (default: the dataset's labels)")
    p.add_argument("--resume", action="store_true", default=False,
                   help="continue the run in --out from its last checkpoint, with its saved settings")
    p.add_argument("--no-progress", action="store_true", default=False, help="no progress bars (for logs)")
    p.set_defaults(func=_run_train)


def _add_group_options(p: argparse.ArgumentParser) -> None:
    """Training that lifts the worst group: cells, balanced batches, Group DRO, JTT, model selection."""
    from .training import TrainConfig

    d = TrainConfig(data_roots=[], out="")
    g = p.add_argument_group(
        "groups", "Cells are the target's value x the grouping attributes' values (target Blond_Hair, group Male: "
        "blond men, blond women, non-blond men, non-blond women). With --group-by, every epoch records the "
        "target's accuracy on each val cell and the worst of them in metrics.jsonl.")
    g.add_argument("--group-by", type=lambda v: [a for a in v.split(",") if a.strip()], metavar="ATTR[,ATTR]",
                   help="grouping attribute(s), any of the 40 CelebA names (default: none)")
    g.add_argument("--group-target", metavar="ATTR",
                   help="the attribute whose cells and accuracy count; one of --attributes (default: the first of "
                   "--attributes)")
    g.add_argument("--group-balance", action="store_true",
                   help="every batch draws the cells in equal numbers, with replacement; an epoch keeps the "
                   "usual number of steps (default: off)")
    g.add_argument("--group-dro", action="store_true",
                   help="Group DRO (Sagawa et al. 2020): minimize a weighting of the cells' losses that moves to "
                   "the worst cells. The paper found strong L2 regularization necessary for the worst group to "
                   "generalize (weight decay 0.1 on CelebA); set it with --weight-decay, whose default stays "
                   f"{d.weight_decay} (default: off)")
    g.add_argument("--dro-step", type=float,
                   help="step size of Group DRO's exponentiated-gradient update of the cell weights "
                   f"(default: {d.dro_step})")
    g.add_argument("--jtt", action="store_true",
                   help="Just Train Twice (Liu et al. 2021): a first run of --jtt-epochs epochs (in OUT/jtt-first), "
                   "then a run from scratch, the result, that draws the train images the first run misclassifies "
                   "for the target (--group-target, else the first attribute) --jtt-upweight times as often. "
                   "Needs no group labels; not with --group-balance or --group-dro (default: off)")
    g.add_argument("--jtt-epochs", type=int,
                   help=f"epochs of JTT's first run, fewer than --epochs (default: {d.jtt_epochs})")
    g.add_argument("--jtt-upweight", type=float,
                   help=f"how many times as often JTT's second run draws the error set (default: {d.jtt_upweight:g})")
    g.add_argument("--select", choices=["macro-f1", "worst-group"],
                   help="which validation figure picks best.safetensors: macro-F1, or the worst val cell's "
                   f"accuracy on the target (needs --group-by) (default: {d.select})")
    g.add_argument("--keep-epochs", action="store_true",
                   help="also keep every epoch's weights as OUT/epoch-NNN.safetensors, to choose an epoch later "
                   "(default: off)")


def _run_train(args: argparse.Namespace) -> int:
    from .training import TrainConfig, read_run_config, train

    given = {k: v for k, v in vars(args).items() if k not in ("func", "command", "log_level", "resume", "no_progress")}
    if args.resume:
        # Start from the run's own settings; only options typed on this command line override them.
        values = {**read_run_config(args.out), **given}
    else:
        if not given.get("data_roots"):
            raise ConfigError("train needs at least one --data-root")
        values = given
    values["progress"] = not args.no_progress
    result = train(TrainConfig.from_dict(values), resume=args.resume)
    if is_main_process():
        print(json.dumps(dataclasses.asdict(result), indent=2))  # the command's output, on stdout
    return 0


def _add_crossfit(sub: argparse._SubParsersAction) -> None:
    from .training import CrossfitConfig

    d = CrossfitConfig(data_roots=[])
    p = sub.add_parser(
        "crossfit",
        help="out-of-sample probabilities for every train image (k folds by person), for the label audit",
        description="Deal the split's people into --folds folds, train a fresh model on all folds but one and "
        "predict that one, for each fold in turn: every image's probabilities come from a model that never saw "
        "it nor its person, which is what a label-error finder needs to judge its labels. Saves one predictions "
        "artifact of the whole split (no checkpoint is kept) in OUT, else WORKSPACE/runs/crossfit-<arch>/<split>, "
        "and prints its held-out macro-F1 and ROC AUC. Nothing is written until all folds are done; a stopped "
        "run starts again from the beginning.",
    )
    _add_data_roots(p)
    p.add_argument("--folds", type=int, default=d.folds, help=f"number of folds, at least 2 (default: {d.folds})")
    p.add_argument("--arch", default=d.arch, choices=sorted(available_models()),
                   help=f"each fold's model architecture (default: {d.arch})")
    p.add_argument("--attributes", nargs="+", default=d.attributes, metavar="NAME",
                   help="attributes to predict, any of the 40 CelebA names, or all for the 40 (default: the paper's 10)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs per fold (default: {d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"images per training step (default: {d.batch_size})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"AdamW learning rate, cosine schedule (default: {d.lr})")
    p.add_argument("--image-size", type=int, default=d.image_size,
                   help=f"side of the square model input in pixels (default: {d.image_size})")
    p.add_argument("--color", choices=["gray", "rgb"], default=d.color, help=f"input colors (default: {d.color})")
    p.add_argument("--pos-weight", choices=["none", "sqrt", "balanced"], default=d.pos_weight,
                   help="class balancing as in train; it shifts the probabilities a label-error finder compares "
                   f"(default: {d.pos_weight})")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=d.augment,
                   help="random flips, shifts, zoom and colors during training (default: off)")
    p.add_argument("--seed", type=int, default=d.seed,
                   help=f"seed of the folds and of each fold's training (default: {d.seed})")
    p.add_argument("--split", default=d.split, choices=["train", "val", "test", "all"],
                   help=f"the split to predict out of sample (default: {d.split})")
    p.add_argument("--max-images", type=int, default=None, help="use a seeded subset of the split (default: all)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="artifact folder (default: WORKSPACE/runs/crossfit-<arch>/<split>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace another artifact in the output folder (a cross-fit of the same settings is "
                   "replaced without it; anything else is refused)")
    p.add_argument("--device", default=d.device, help=f"auto, cpu, cuda or cuda:N (default: {d.device})")
    p.add_argument("--cache-dir", default=None, help="preprocessed image cache folder (default: as for train)")
    p.add_argument("--workers", type=int, default=d.workers, help=f"DataLoader worker processes (default: {d.workers})")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    _add_workspace(p)
    p.set_defaults(func=_run_crossfit)


def _run_crossfit(args: argparse.Namespace) -> int:
    from .training import CrossfitConfig, crossfit

    config = CrossfitConfig(
        data_roots=args.data_roots, out=args.out, folds=args.folds, arch=args.arch, attributes=args.attributes,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, image_size=args.image_size, color=args.color,
        pos_weight=args.pos_weight, augment=args.augment, seed=args.seed, split=args.split,
        max_images=args.max_images, device=args.device, cache_dir=args.cache_dir, workers=args.workers,
        progress=not args.no_progress, overwrite=args.overwrite,
    )
    predictions = crossfit(config, workspace_root=args.workspace)
    heldout = predictions.meta["crossfit"]["heldout"]
    auc = "n/a" if heldout["macro_auc"] is None else f"{heldout['macro_auc']:.3f}"
    print(f"{predictions.folder}: out-of-sample probabilities of {len(predictions):,} {config.split} images from "
          f"{config.folds} folds; held-out macro-F1 {heldout['macro_f1']:.3f} at 0.5, macro ROC AUC {auc}")
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="predict a whole split with one or more checkpoints and save predictions artifacts",
        description="Run checkpoints over a split in large batches (mixed precision and channels-last on a GPU) "
        "and save, per checkpoint, OUT/predictions.npz (probabilities, labels, file names, person ids) and "
        "OUT/meta.json (checkpoint, split, data roots, attributes, counts, timing). Several --checkpoint "
        "options evaluate an ablation in one call, each into OUT/<run name>.",
    )
    p.add_argument("--checkpoint", dest="checkpoints", action="append", required=True, metavar="FILE",
                   help="a .safetensors checkpoint (repeat for several)")
    _add_data_roots(p)
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"], help="split to evaluate (default: test)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="artifact folder (default: WORKSPACE/runs/<checkpoint name>/<split>, where the name of "
                   "runs/NAME/best.safetensors is NAME)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an artifact of another checkpoint in the output folder (refused otherwise)")
    p.add_argument("--batch-size", type=int, default=None, help="images per batch (default: 128 on CPU, 4096 on a GPU)")
    p.add_argument("--flip-tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average each image's probabilities with those of its mirror image (default: as the "
                   "checkpoint's metadata says; off for checkpoints that say nothing)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--cache-dir", default=None, help="preprocessed image cache folder (default: as for train)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_workspace(p)
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.evaluate import EvalConfig, evaluate_checkpoints

    options = EvalConfig(split=args.split, batch_size=args.batch_size, flip_tta=args.flip_tta, device=args.device,
                          cache_dir=args.cache_dir, progress=not args.no_progress, overwrite=args.overwrite)
    predicting = caching = 0.0
    cached = 0
    for predictions in evaluate_checkpoints(args.checkpoints, args.data_roots, args.out, options, args.workspace):
        if not is_main_process():
            continue
        timing = predictions.meta["timing"]
        predicting += timing["seconds"]
        caching += timing.get("cache_seconds", 0.0)
        cached += timing.get("images_cached", 0)
        print(f"{predictions.folder}: {len(predictions):,} images predicted in {timing['seconds']:.1f} s "
              f"({timing['images_per_s']:,.0f} images/s on {timing['device']})")
    if is_main_process():
        # The whole command, not only the predicting: decoding images into the cache can take longer.
        total = time.monotonic() - _command_started
        decoded = f"decoding {cached:,} images into the cache {caching:.1f} s, " if cached else "images from the cache, "
        print(f"Done in {total:.1f} s: {decoded}predicting {predicting:.1f} s, reading data and models "
              f"{max(total - caching - predicting, 0.0):.1f} s")
    return 0


def _add_thresholds_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--thresholds", default="0.5",
                   help="decision thresholds: a number for all attributes, 'checkpoint' for the tuned ones stored "
                   "for the evaluated checkpoint (read from it now), or a thresholds JSON file written by `tune` "
                   "(default: 0.5)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples for the 95%% intervals; people are resampled when known (default: 1000)")
    _add_workspace(p)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="per-attribute table of a predictions artifact beside the paper's numbers",
        description="Print TP/positives, precision, recall and F1 (with bootstrap 95%% intervals), accuracy and "
        "ROC AUC per attribute next to the paper's published table, and write RUN/report.csv and "
        "RUN/report.json.",
    )
    p.add_argument("--run", required=True, metavar="DIR", help="a folder written by `evaluate`")
    _add_thresholds_option(p)
    p.add_argument("--label-corrections", metavar="FILE",
                   help="a label corrections CSV: report against the corrected labels, beside the dataset's "
                   "figures (default: the dataset's labels)")
    p.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from .analysis.reports import (
        attribute_report,
        format_correction_effect,
        format_report,
        resolve_thresholds,
        write_report,
    )
    from .data.corrections import read_corrections
    from .evaluation.predictions import load_predictions

    predictions = load_predictions(args.run)
    thresholds, source = resolve_thresholds(args.thresholds, predictions, args.workspace)
    if args.thresholds == "checkpoint":
        print(f"Thresholds from {source}")
    original = None
    if args.label_corrections:
        original = attribute_report(predictions, thresholds, n_boot=args.bootstrap)
        predictions = predictions.with_corrections(read_corrections(args.label_corrections))
        print(f"Labels corrected by {args.label_corrections}: "
              f"{predictions.meta['label_corrections']['changed']} of this run's labels changed")
    report = attribute_report(predictions, thresholds, n_boot=args.bootstrap)
    print(format_report(report))
    if original is not None:
        print("\n" + format_correction_effect(original, report,
                                              predictions.meta["label_corrections"]["changed_per_attribute"]))
    # Corrected figures go beside the dataset's, not over them.
    csv_path, json_path = write_report(report, predictions.folder, "report" if original is None else "report_corrected")
    print(f"\nWrote {csv_path} and {json_path}")
    return 0


def _add_label_issues(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "label-issues",
        help="rank a run's likely label errors per attribute (cleanlab)",
        description="Find the labels of a predictions artifact that its out-of-sample probabilities contradict "
        "most (cleanlab's confident learning, per attribute) and list them, most suspicious first. Use a val, "
        "test or photo run, or for the train split the artifact of `crossfit`. Review them in the dashboard's "
        "Labels page, which records decisions in a corrections file.",
    )
    p.add_argument("--run", required=True, metavar="DIR", help="a folder written by `evaluate`, `crossfit` or "
                   "`import-predictions`")
    p.add_argument("--attribute", dest="attributes", action="append", metavar="NAME",
                   help="only this attribute (repeat for several; default: all of the run's)")
    p.add_argument("--top", type=int, default=20, help="suspects listed per attribute (default: 20)")
    p.add_argument("--label-corrections", metavar="FILE",
                   help="leave out labels this corrections file already decides")
    p.add_argument("--csv", metavar="FILE",
                   help="also write every flagged label to this CSV, a review sheet in the corrections format: fill "
                   "in corrected_value (0 or 1) for the labels you judged and pass it to report, train or the "
                   "dashboard as label corrections")
    p.set_defaults(func=_run_label_issues)


def _run_label_issues(args: argparse.Namespace) -> int:
    import pandas as pd

    from .analysis.label_issues import find_label_issues, suspects
    from .data.corrections import read_corrections
    from .evaluation.predictions import load_predictions

    predictions = load_predictions(args.run)
    attributes = args.attributes or predictions.attributes
    unknown = [a for a in attributes if a not in predictions.attributes]
    if unknown:
        raise ConfigError(f"{', '.join(unknown)}: not predicted by this run (it has {', '.join(predictions.attributes)})")
    decided = read_corrections(args.label_corrections) if args.label_corrections else None
    issues = find_label_issues(predictions)
    if issues.in_sample:
        print("warning: these are train-split probabilities of the model that trained on them; use the artifact of "
              "`crossfit` for out-of-sample ones", file=sys.stderr)
    tables = []
    for attribute in attributes:
        table = suspects(predictions, issues, attribute)
        if decided is not None:
            table = table[~table["file"].isin(decided.for_attribute(attribute))]
        tables.append(table.assign(attribute=attribute))
        print(f"\n{attribute}: {len(table)} flagged of {len(predictions):,} labels")
        if len(table):
            print(table.head(args.top)[["file", "person", "label", "probability", "quality"]]
                  .to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.csv:
        from .utils.fileio import atomic_write_text

        # A review sheet in the corrections format: fill in corrected_value (0 or 1) where a label is
        # wrong or right, and it is read by --label-corrections as it is (empty rows are skipped).
        sheet = pd.concat(tables).rename(columns={"label": "original_value"})
        sheet["corrected_value"], sheet["note"] = "", ""
        columns = ["file", "attribute", "corrected_value", "original_value", "note", "person", "probability",
                   "quality", "flagged"]
        atomic_write_text(args.csv, sheet[columns].to_csv(index=False))
        print(f"\nWrote {args.csv}: fill in corrected_value, then pass it as --label-corrections")
    return 0


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="compare runs (an ablation) beside the paper's ablation table",
        description="Macro precision, recall and F per run with 95%% intervals and deltas against the paper "
        "model's run, per-attribute F1 per run, and the paper's published ablation figures.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="folders written by `evaluate`")
    _add_thresholds_option(p)
    p.add_argument("--out", default=None, metavar="DIR", help="also write comparison.csv and comparison.json here")
    p.set_defaults(func=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    from .analysis.reports import compare_runs, format_comparison, write_comparison
    from .evaluation.predictions import load_predictions

    comparison = compare_runs([load_predictions(r) for r in args.runs], args.thresholds, n_boot=args.bootstrap,
                              workspace_root=args.workspace)
    print(format_comparison(comparison))
    if args.out:
        csv_path, json_path = write_comparison(comparison, args.out)
        print(f"\nWrote {csv_path} and {json_path}")
    return 0


def _add_tune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="choose per-attribute thresholds on a validation artifact",
        description="Choose one threshold per attribute on a validation predictions artifact: maximise F1, or "
        "reach a target precision (with the best recall) or a target recall (with the best precision). "
        "Writes RUN/thresholds.json; --save-to-checkpoint also stores them for the evaluated checkpoint, "
        "where `report --thresholds checkpoint`, `predict` and the dashboard read them: in its metadata, or, "
        "for a shipped or read-only checkpoint, in WORKSPACE/runs/thresholds/ (the shipped file stays "
        "unchanged). Apply them to the test split, never tune on it.",
    )
    p.add_argument("--run", required=True, metavar="DIR", help="a folder written by `evaluate --split val`")
    p.add_argument("--objective", default="f1", choices=["f1", "precision", "recall"], help="what to optimize (default: f1)")
    p.add_argument("--target", type=float, default=None, help="the precision or recall to reach (with those objectives)")
    p.add_argument("--save-to-checkpoint", action="store_true",
                   help="store the thresholds for the evaluated checkpoint (see above)")
    _add_workspace(p)
    p.set_defaults(func=_run_tune)


def _run_tune(args: argparse.Namespace) -> int:
    from .analysis.thresholds import save_thresholds_to_checkpoint, tune_run
    from .evaluation.predictions import load_predictions
    from .workspace import default_workspace_root

    predictions = load_predictions(args.run)
    result = tune_run(predictions, args.objective, args.target)
    for name, value in result["thresholds"].items():
        flag = "" if result["feasible"][name] else "  (target not reached)"
        print(f"{name:<20} {value:.4f}   {args.objective} {result['achieved'][name]:.3f}{flag}")
    print(f"\nWrote {result['file']}")
    if args.save_to_checkpoint:
        path = save_thresholds_to_checkpoint(predictions, result, default_workspace_root(args.workspace))
        if path.suffix == ".json":
            print(f"Saved the thresholds in {path} (the checkpoint is shipped or read-only, so its file is unchanged)")
        else:
            print(f"Saved the thresholds into {path}")
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    from .photo.pipeline import PHOTO_EXTENSIONS

    p = sub.add_parser(
        "predict",
        help="predict the attributes of the face in photo files",
        description="Find the most prominent face in each photo, frame it as training saw faces and predict its "
        "attributes: the dashboard's Upload page for many files at once (photos opened and faces detected in "
        "parallel, the model run in batches). Prints a table, or with --json one JSON list: per image "
        '{"image", "face": [x, y, w, h] in the file\'s pixels or null, "probabilities", "decisions"}, or '
        '{"image", "error"} for a file it cannot use. A bad file never stops the others; the exit status is 1 '
        "when any image failed, 0 otherwise.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help=f"photo files, folders (their {', '.join(PHOTO_EXTENSIONS)} files, sorted) or glob patterns")
    p.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="a .safetensors checkpoint (default: the Upload page's: the real-CelebA checkpoint chosen on "
                   "real photos, checkpoints/celeba/default.json, else the one with the best validation macro-F1)")
    p.add_argument("--thresholds", default=None,
                   help="decision thresholds: a number for all attributes, 'checkpoint' for the tuned ones stored for "
                   "the checkpoint, or a thresholds JSON file written by `tune` (default: 'checkpoint' when it has "
                   "stored thresholds, else 0.5, as the Upload page)")
    p.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    p.add_argument("--csv", default=None, metavar="FILE",
                   help="also write one row per image (image, face box, error, probability and decision per attribute)")
    p.add_argument("--whole-image-if-no-face", action="store_true",
                   help="predict the whole image when no face is found (default: report it as an error)")
    _add_workspace(p)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="say which checkpoint and thresholds are used, and show the face detector's own log lines")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    import os

    from .catalogue import Catalogue
    from .models.thresholds import default_thresholds, thresholds_for
    from .photo.batch import PROGRESS_MIN_PHOTOS, PhotoBatchPredictor, expand_inputs, write_results
    from .photo.detection import FaceDetector
    from .photo.predictor import Predictor
    from .workspace import Workspace, default_workspace_root

    root = default_workspace_root(args.workspace)
    checkpoint = Path(args.checkpoint) if args.checkpoint else Catalogue(Workspace(root)).default_model()
    if checkpoint is None:
        raise ConfigError(f"no checkpoint found in the workspace {root}; pass --checkpoint FILE, or --workspace DIR "
                          "for a workspace holding checkpoints/")
    predictor = Predictor(checkpoint)
    if args.thresholds is None:
        thresholds, source = default_thresholds(checkpoint, predictor.attributes, root)
    else:
        thresholds, source = thresholds_for(args.thresholds, predictor.attributes, checkpoint, root)
    inputs = list(expand_inputs(args.images))
    if args.verbose:
        flip = "on" if predictor.flip_tta else "off"
        print(f"{len(inputs)} image(s); checkpoint {checkpoint} (flip averaging {flip}); thresholds {source}",
              file=sys.stderr)
    batch = PhotoBatchPredictor(predictor, whole_image_if_no_face=args.whole_image_if_no_face,
                                detector_factory=lambda: FaceDetector(quiet=not args.verbose))
    try:
        failed = write_results(batch.predict(inputs), predictor.attributes, thresholds, [i.path for i in inputs],
                               as_json=args.json, csv_path=args.csv,
                               progress=None if len(inputs) >= PROGRESS_MIN_PHOTOS else False)
    except BrokenPipeError:
        # The reader went away (`predict ... | head`): stop quietly, as shell tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    if args.csv:
        print(f"Wrote {args.csv}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(inputs)} image(s) could not be used", file=sys.stderr)
    return 1 if failed else 0


def _add_evaluate_photos(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate-photos",
        help="evaluate checkpoints on real photos through the photo path into predictions artifacts",
        description="Find and frame the face in each photo (as the Upload page and `predict` do), predict it with "
        "each checkpoint, and save one predictions artifact per checkpoint, labelled from a CelebA folder's list "
        "files by file name (the photos need not be in its image folder). Every photo is detected once, however "
        "many checkpoints. A photo without a detected face is predicted on the whole image (counted in meta.json); "
        "an unreadable one is left out with a warning.",
    )
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="photo files, folders or glob patterns")
    p.add_argument("--checkpoint", dest="checkpoints", action="append", required=True, metavar="FILE",
                   help="a .safetensors checkpoint (repeat for several)")
    p.add_argument("--labels-root", required=True, metavar="DIR",
                   help="CelebA folder whose list_attr_celeba.txt (and identity_CelebA.txt) label the photos by name")
    p.add_argument("--name", default="photos",
                   help="the artifacts' split name and default folder name (default: photos)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="artifact folder (several checkpoints: OUT/<checkpoint name>; default: "
                   "WORKSPACE/runs/<checkpoint name>/<name>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an artifact of another checkpoint in the output folder (refused otherwise)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_workspace(p)
    p.set_defaults(func=_run_evaluate_photos)


def _run_evaluate_photos(args: argparse.Namespace) -> int:
    from .photo.evaluate import evaluate_photos

    for predictions in evaluate_photos(args.checkpoints, args.photos, args.labels_root, args.out, name=args.name,
                                       workspace_root=args.workspace, overwrite=args.overwrite,
                                       progress=not args.no_progress):
        print(f"{predictions.folder}: {len(predictions):,} photos of {predictions.meta['counts']['identities']:,} "
              f"people ({predictions.meta['photos']['no_face_whole_image']:,} without a detected face)")
    return 0


def _add_ensemble(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ensemble",
        help="combine checkpoints into one ensemble checkpoint (the mean of their probabilities)",
        description="Write one checkpoint that holds several trained models of the same input (size, color, crop) "
        "and attributes, and predicts the mean of their probabilities. It evaluates, predicts and serves uploads "
        "like any checkpoint. Thresholds start at 0.5 (tune them with `tune --save-to-checkpoint`); flip averaging "
        "is kept when every member asks for it.",
    )
    p.add_argument("members", nargs="+", metavar="CHECKPOINT", help="two or more .safetensors checkpoints")
    p.add_argument("--out", required=True, metavar="FILE", help="the ensemble checkpoint to write")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists (refused otherwise)")
    p.set_defaults(func=_run_ensemble)


def _run_ensemble(args: argparse.Namespace) -> int:
    from .models.ensemble import build_ensemble

    if Path(args.out).exists() and not args.overwrite:
        raise ConfigError(f"{args.out} exists; pass --overwrite to replace it (nothing was written)")
    path = build_ensemble(args.members, args.out)
    print(f"Wrote {path}: an ensemble of {len(args.members)} checkpoints")
    return 0


def _add_import_predictions(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-predictions",
        help="save another tool's predictions (a CSV or NPZ) as a predictions artifact",
        description="Read the per-image probabilities (or logits) of a model trained elsewhere (timm, torchvision, "
        "Lightning, ...) and save them as the artifact `evaluate` writes, with labels, people and image paths from "
        "the data root, so that report, tune, compare and the dashboard analyse them. A CSV has a file-name column "
        "(file, filename, image or image_id) and one column per attribute named as in list_attr_celeba.txt; an NPZ "
        "holds files (N,), attributes (A,) and probabilities or logits (N, A). File names are matched to the data "
        "root's images by name (folders dropped). Nothing is written unless the whole file is sound.",
    )
    p.add_argument("file", metavar="FILE", help="the predictions: .csv (.tsv, .txt, .gz too) or .npz")
    _add_data_roots(p)
    p.add_argument("--split", default=None, choices=["train", "val", "test", "all"],
                   help="the split the rows are images of; rows of another split are refused (default: the one split "
                   "all rows belong to)")
    p.add_argument("--name", default=None,
                   help="the run's name: it is written to WORKSPACE/runs/NAME/SPLIT (default: the file's name without "
                   "its suffix)")
    p.add_argument("--logits", action="store_true",
                   help="the values are logits (raw scores): apply a sigmoid (default: they are probabilities in [0, 1])")
    p.add_argument("--attributes", nargs="+", default=None, metavar="NAME",
                   help="import only these attributes, or all for the 40 (default: every attribute column of the file)")
    p.add_argument("--drop-other-splits", action="store_true",
                   help="leave out rows of other splits instead of refusing them (one file of predictions for every "
                   "image, imported split by split)")
    p.add_argument("--out", default=None, metavar="DIR", help="artifact folder (default: WORKSPACE/runs/NAME/SPLIT)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an artifact made from another file or checkpoint in the output folder (refused "
                   "otherwise; importing the same file again replaces its own)")
    _add_workspace(p)
    p.set_defaults(func=_run_import_predictions)


def _run_import_predictions(args: argparse.Namespace) -> int:
    from .evaluation.imported import import_predictions

    _, summary = import_predictions(args.file, args.data_roots, args.split, args.name, logits=args.logits,
                                    out=args.out, workspace=args.workspace, overwrite=args.overwrite,
                                    attributes=args.attributes, drop_other_splits=args.drop_other_splits)
    print(summary)
    return 0


def _add_export_predictions(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-predictions",
        help="write a predictions artifact's probabilities as a CSV or NPZ (the import-predictions format)",
        description="Write the probabilities of a predictions artifact for another tool: a CSV with a file column "
        "and one probability column per attribute, or an NPZ with files, probabilities and attributes, as "
        "`import-predictions` reads them.",
    )
    p.add_argument("--run", required=True, metavar="DIR", help="a folder written by `evaluate` or `import-predictions`")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write: .csv or .npz")
    p.set_defaults(func=_run_export_predictions)


def _run_export_predictions(args: argparse.Namespace) -> int:
    from .evaluation.imported import export_predictions
    from .evaluation.predictions import load_predictions

    predictions = load_predictions(args.run)
    path = export_predictions(predictions, args.out)
    print(f"Wrote {path}: {len(predictions):,} images x {len(predictions.attributes)} attributes")
    return 0


def _add_embed(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="store a run's penultimate-layer features and their 2-D map (UMAP) for the dashboard's Map page",
        description="Compute the features the classifier head of the run's own checkpoint sees (its input, the "
        "penultimate layer) for every image of the run, read as its evaluation read them (aligned images: the "
        "crop and image cache; photo runs: face detection and framing), and save them as RUN/embeddings.npz "
        "(float16, in the order of predictions.npz). Then draw the 2-D map (PCA to 50 dimensions, UMAP, seeded) "
        "into RUN/map.npz, reused while the features stay the same. Runs of imported or crossfit predictions "
        "have no checkpoint to compute features with.",
    )
    p.add_argument("--run", required=True, metavar="DIR", help="a folder written by `evaluate` or `evaluate-photos`")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="where the images are when not where the run recorded them: the CelebA folder it was "
                   "evaluated on, or for a photo run the folder of its photos")
    p.add_argument("--batch-size", type=int, default=None, help="images per batch (default: 128 on CPU, 4096 on a GPU)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--cache-dir", default=None, help="preprocessed image cache folder (default: as for evaluate)")
    p.add_argument("--overwrite", action="store_true",
                   help="compute the features again even when RUN/embeddings.npz is current (default: reuse it)")
    p.add_argument("--no-map", action="store_true", help="store the features only; the Map page draws the map "
                   "on first use")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_workspace(p)
    p.set_defaults(func=_run_embed)


def _run_embed(args: argparse.Namespace) -> int:
    from .analysis.embedding_map import map_for
    from .evaluation.predictions import load_predictions
    from .photo.embeddings import embed_run

    predictions = load_predictions(args.run)
    embeddings = embed_run(predictions, args.data_root, workspace_root=args.workspace, device=args.device,
                           batch_size=args.batch_size, cache_dir=args.cache_dir, overwrite=args.overwrite,
                           progress=not args.no_progress)
    read = {"aligned": "aligned images", "photos": "photos, detected and framed"}.get(embeddings.meta["source"])
    print(f"{embeddings.folder}/embeddings.npz: {len(embeddings):,} images x {embeddings.features.shape[1]} "
          f"features (input of {embeddings.layer}, {read})")
    if not args.no_map:
        drawn = map_for(predictions)
        made = f"drawn in {drawn.meta['seconds']:.1f} s" if drawn.computed else "up to date"
        print(f"{embeddings.folder}/map.npz: 2-D map of {len(drawn):,} points ({made})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="celeba-model",
        description="Train, checkpoint and evaluate face-attribute CNNs on CelebA "
        f"(the 40 attributes: {', '.join(CELEBA_ATTRIBUTES)}).",
    )
    # Before the command (`celeba-model -q train ...`): how much it says on stderr as it works.
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-v", "--verbose", dest="log_level", action="store_const", const=logging.DEBUG,
                      default=logging.INFO, help="also show debugging details (devices, caches, batch counts)")
    talk.add_argument("-q", "--quiet", dest="log_level", action="store_const", const=logging.WARNING,
                      help="log only warnings and errors, not progress lines such as each epoch's (a command's "
                      "output and progress bars stay; see --no-progress)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_make_demo(sub)
    _add_info(sub)
    _add_train(sub)
    _add_crossfit(sub)
    _add_evaluate(sub)
    _add_tune(sub)
    _add_report(sub)
    _add_compare(sub)
    _add_label_issues(sub)
    _add_predict(sub)
    _add_evaluate_photos(sub)
    _add_ensemble(sub)
    _add_import_predictions(sub)
    _add_export_predictions(sub)
    _add_embed(sub)
    return parser


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    global _command_started
    _command_started = time.monotonic()
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    warnings.formatwarning = _format_warning
    from .data.cache import CacheWarning
    from .data.index import CelebAWarning
    from .photo.evaluate import PhotoWarning

    for category in (CelebAWarning, CacheWarning, PhotoWarning):
        warnings.simplefilter("always", category)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        after = {"train": "; the last finished epoch's checkpoint is intact (continue with --resume)",
                 "evaluate": "; earlier artifacts are unchanged",
                 "crossfit": "; nothing was written"}.get(args.command, "")
        print(f"Interrupted{after}.", file=sys.stderr)
        return 130
    except CelebAModelError as err:
        # Expected failures (bad data, bad checkpoint, bad options) get one clear line, no traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        shutdown()  # under torchrun: leave the process group cleanly
