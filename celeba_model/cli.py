"""Command line: ``python -m celeba_model <command> --help`` explains each command and option."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from .attributes import CELEBA_ATTRIBUTES, PAPER_ATTRIBUTES
from .errors import CelebAModelError, ConfigError
from .models import available_models


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
    p.set_defaults(func=_run_make_demo)


def _run_make_demo(args: argparse.Namespace) -> int:
    from .demo import make_demo_dataset

    summary = make_demo_dataset(args.out, num_images=args.num_images, seed=args.seed, workers=args.workers)
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
    p.add_argument("--attributes", nargs="+", default=None, metavar="NAME", help="attributes to show (default: the paper's 10)")
    p.set_defaults(func=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from .attributes import resolve_attributes
    from .dataset_index import load_index

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
    from .train import TrainConfig

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
                   help=f"attributes to predict, any of the 40 CelebA names (default: the paper's 10: {' '.join(PAPER_ATTRIBUTES)})")
    p.add_argument("--epochs", type=int, help=f"number of epochs (default: {d.epochs}; the paper trained 100)")
    p.add_argument("--batch-size", type=int, help=f"images per training step (default: {d.batch_size}, as the paper)")
    p.add_argument("--lr", type=float, help=f"AdamW learning rate, annealed by a cosine schedule (default: {d.lr})")
    p.add_argument("--weight-decay", type=float, help=f"AdamW weight decay (default: {d.weight_decay})")
    p.add_argument("--seed", type=int, help=f"seed for initialisation, shuffling, dropout and augmentation (default: {d.seed})")
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
    p.add_argument("--max-train-images", type=int,
                   help="use a seeded subset of at most this many training images (the paper used 60000; default: all)")
    p.add_argument("--patience", type=int,
                   help="stop when validation macro-F1 has not improved for this many epochs (default: never)")
    p.add_argument("--model-config", type=json.loads, metavar="JSON",
                   help='architecture options as JSON, e.g. \'{"fc_hidden": 256}\'')
    p.add_argument("--workers", type=int, help=f"DataLoader worker processes; 0 reads in the main process (default: {d.workers})")
    p.add_argument("--device", help=f"auto, cpu, cuda or cuda:N (default: {d.device})")
    p.add_argument("--cache-dir", help="folder for the preprocessed image cache (default: $CELEBA_MODEL_CACHE or "
                   "~/.cache/celeba_model)")
    p.add_argument("--resume", action="store_true", default=False,
                   help="continue the run in --out from its last checkpoint, with its saved settings")
    p.add_argument("--no-progress", action="store_true", default=False, help="no progress bars (for logs)")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    given = {k: v for k, v in vars(args).items() if k not in ("func", "command", "resume", "no_progress")}
    saved_config = Path(args.out) / "config.json"
    if args.resume and saved_config.is_file():
        # Start from the run's own settings; only options typed on this command line override them.
        values = {**json.loads(saved_config.read_text()), **given}
    else:
        if not given.get("data_roots"):
            raise ConfigError("train needs at least one --data-root")
        values = given
    values["progress"] = not args.no_progress
    summary = train(TrainConfig.from_dict(values), resume=args.resume)
    print(json.dumps(summary, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="celeba-model",
        description="Train, checkpoint and evaluate face-attribute CNNs on CelebA "
        f"(the 40 attributes: {', '.join(CELEBA_ATTRIBUTES)}).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_make_demo(sub)
    _add_info(sub)
    _add_train(sub)
    return parser


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.formatwarning = _format_warning
    from .cache import CacheWarning
    from .dataset_index import CelebAWarning

    warnings.simplefilter("always", CelebAWarning)
    warnings.simplefilter("always", CacheWarning)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("Interrupted; the last finished epoch's checkpoint is intact.", file=sys.stderr)
        return 130
    except CelebAModelError as err:
        # Expected failures (bad data, bad checkpoint, bad options) get one clear line, no traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2
