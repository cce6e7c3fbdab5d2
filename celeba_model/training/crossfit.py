"""Cross-fitting: out-of-sample probabilities for every image of a split (by default train), for finding
wrong labels among the images a model learns from.

A label-error finder (confident learning, e.g. cleanlab) ranks an image's label by the probabilities of
a model that did not learn that label. So the split's people are dealt into k folds (``assign_folds``;
by person, so that no fold's model has seen another photo of a held-out face), a fresh model is trained
on the other folds with training's own pieces (the image cache, ``train_one_epoch``, the per-epoch
seeds), and it predicts its fold. The k predictions together are one ordinary predictions artifact of
the whole split, which every reader opens like an evaluation.

No checkpoint is kept: the artifact's ``checkpoint`` entry names the architecture and says there is
no single checkpoint (so no path and no weights digest: tuned thresholds and Grad-CAM, which need a
checkpoint, say so instead of using a wrong one). ``meta["crossfit"]`` holds the settings (``folds``
the number of folds, ``arch``, ``epochs``, ``seed``...), each fold's size and held-out scores
(``per_fold``) and the whole split's (``heldout``); the fold of each image is
``assign_folds(artifact.identity, folds, seed)``.

The output folder is locked while the folds train and the artifact is written atomically at the end,
so a run killed midway leaves the folder as it was (start again; there is no resume).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..attributes import PAPER_ATTRIBUTES
from ..data.cache import ImageCache, load_or_build_cache
from ..data.index import SPLITS, CelebAIndex, load_index
from ..data.transforms import AugmentConfig, PreprocessConfig
from ..errors import ConfigError
from ..evaluation.batched import predict_probabilities
from ..evaluation.predictions import Predictions, PredictionsError, save_predictions
from ..metrics.counts import attribute_metrics, summarize
from ..metrics.curves import roc_auc
from ..models.registry import ModelSpec, create_model, model_spec
from ..utils import run_lock
from ..utils.devices import default_eval_batch_size, resolve_device
from ..utils.logs import PACKAGE
from ..workspace import ARTIFACT_FILE, default_run_folder, default_workspace_root
from .batches import CachedBatches, ResidentBatches, batch_loader, epoch_batches, keep_data_on_device
from .config import TrainConfig, TrainingError
from .loop import compute_pos_weight, train_one_epoch
from .seeds import AUGMENT, DROPOUT, LOADER, SHUFFLE, epoch_seed

logger = logging.getLogger(__name__)

CROSSFIT_SPLITS = (*SPLITS, "all")


@dataclass
class CrossfitConfig:
    """What defines a cross-fit: the data, the folds, and how each fold's model is trained.

    The defaults give good probabilities fast on a CPU: the paper's network (about 2,000 training
    images/s on 2 cores) on 64x64 RGB crops, 12 epochs, no class balancing. On the real CelebA sample's
    train split (4,560 images, 5 folds) the held-out macro ROC AUC was .914 in grayscale against .935
    in RGB (8 epochs each; color is the largest single gain, as for training), .941 at 12 epochs and
    .942 at 16 for a third more time; 48x48 lost .006, augmentation .010. Class balancing (sqrt
    weights) raised macro-F1 at 0.5 but worsened the log loss: it shifts the probabilities a
    label-error finder compares, so it stays off.
    """

    data_roots: list[str]
    out: str | None = None  # None: WORKSPACE/runs/crossfit-<arch>/<split>
    folds: int = 5
    arch: str = "paper"
    attributes: list[str] = field(default_factory=lambda: list(PAPER_ATTRIBUTES))
    epochs: int = 12
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-4
    image_size: int = 64
    color: str = "rgb"
    pos_weight: str = "none"
    augment: bool = False
    seed: int = 0  # the folds, and each fold's initialization, shuffling, dropout and augmentation
    split: str = "train"
    max_images: int | None = None  # a seeded subset of the split's images (default: all)
    device: str = "auto"
    cache_dir: str | None = None
    workers: int = 0
    progress: bool = True
    overwrite: bool = False  # replace an artifact of other settings in the output folder

    def __post_init__(self) -> None:
        # The training settings are checked by TrainConfig itself, with its messages, so the two agree.
        checked = self.training_config()
        self.attributes = checked.attributes
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise ConfigError(f"folds must be an integer of at least 2 (each image is predicted by a model "
                              f"trained on the other folds), got {self.folds!r}")
        if self.split not in CROSSFIT_SPLITS:
            raise ConfigError(f"split must be one of {', '.join(CROSSFIT_SPLITS)}, got {self.split!r}")
        if self.max_images is not None and (isinstance(self.max_images, bool) or not isinstance(self.max_images, int)
                                            or self.max_images < self.folds):
            raise ConfigError(f"max_images must be an integer of at least folds ({self.folds}), got {self.max_images!r}")
        if self.out is not None and not isinstance(self.out, str):
            raise ConfigError(f"out must be a folder name, got {self.out!r}")
        if not isinstance(self.overwrite, bool):
            raise ConfigError(f"overwrite must be true or false, got {self.overwrite!r}")
        spec = self.preprocess()
        model_spec(self.arch, spec.channels, len(self.attributes), spec.image_size)  # an unknown arch fails here

    def training_config(self) -> TrainConfig:
        """The settings each fold's model is trained with, as a TrainConfig (which checks them)."""
        return TrainConfig(
            data_roots=self.data_roots, out=self.out or "", arch=self.arch, attributes=self.attributes,
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
            seed=self.seed, image_size=self.image_size, color=self.color, pos_weight=self.pos_weight,
            augment=self.augment, workers=self.workers, device=self.device, cache_dir=self.cache_dir,
            progress=self.progress,
        )

    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig(image_size=self.image_size, color=self.color)

    def settings(self) -> dict:
        """What defines the predictions (not where or on what device they were made), as JSON: recorded
        in the artifact, and compared before replacing one."""
        keep = ("split", "folds", "arch", "attributes", "epochs", "batch_size", "lr", "weight_decay", "image_size",
                "color", "pos_weight", "augment", "seed", "max_images")
        values = {name: value for name, value in asdict(self).items() if name in keep}
        values["data_roots"] = [str(Path(r).expanduser().resolve()) for r in self.data_roots]
        return json.loads(json.dumps(values))


def assign_folds(identity: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold (0 to folds-1) of each image, dealt by person: every image of a person is in one fold.

    An image without a person id (-1) is a group of its own. People are shuffled with ``seed``, then
    taken largest first (a stable sort, so equal sizes keep the shuffled order), each going to the fold
    with the fewest images so far, as scikit-learn's GroupKFold balances folds. With at least ``folds``
    groups, every fold gets some.
    """
    identity = np.asarray(identity, dtype=np.int64)
    # Unknown people become distinct negative ids, one per image.
    groups = np.where(identity >= 0, identity, -1 - np.arange(len(identity)))
    people, members, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if len(people) < folds:
        raise ConfigError(f"{folds} folds need at least {folds} people; these images show {len(people)} "
                          "(an image without a person id counts as one)")
    order = np.random.default_rng(seed).permutation(len(people))
    order = order[np.argsort(-sizes[order], kind="stable")]
    load = np.zeros(folds, dtype=np.int64)
    fold_of_person = np.empty(len(people), dtype=np.int64)
    for person in order:
        target = int(np.argmin(load))  # the first of the lightest folds
        fold_of_person[person] = target
        load[target] += sizes[person]
    return fold_of_person[members]


@dataclass
class _SplitData:
    """The split's images a cross-fit predicts, and everything it trains from."""

    index: CelebAIndex
    cache: ImageCache
    rows: np.ndarray  # index rows of the predicted images, in artifact order
    labels: np.ndarray  # (len(rows), A) uint8
    listed: int  # images of the split before unreadable ones were left out


def crossfit(config: CrossfitConfig, workspace_root: str | Path | None = None) -> Predictions:
    """Out-of-sample probabilities for every image of ``config.split``: each predicted by a model trained
    on the other folds. Saves the artifact in ``config.out`` (default ``WORKSPACE/runs/crossfit-<arch>/
    <split>``) and returns it; ``meta["crossfit"]["heldout"]`` holds its macro-F1 at 0.5 and macro ROC AUC.

    Settings, the output folder and the data are checked before any training; an artifact of other
    settings in the folder is only replaced with ``overwrite``.
    """
    out = Path(config.out) if config.out else default_run_folder(
        default_workspace_root(workspace_root), f"crossfit-{config.arch}", config.split)  # the evaluate rule
    try:
        device = resolve_device(config.device)
    except RuntimeError as err:  # torch's own message for a name it does not know
        raise ConfigError(f"Unknown device {config.device!r}: {err}") from err
    settings = config.settings()
    _check_replaceable(out, settings, config.overwrite)
    run_lock.check_unlocked(out)
    spec = config.preprocess()
    mspec = model_spec(config.arch, spec.channels, len(config.attributes), spec.image_size)
    data = _load_split(config, spec)
    folds = assign_folds(data.index.identity[data.rows], config.folds, config.seed)

    created = [folder for folder in (out, *out.parents) if not folder.exists()]  # made by the lock, deepest first
    try:
        with run_lock.locked(out):
            _check_replaceable(out, settings, config.overwrite)  # again, now that no other process can start here
            predictions = _crossfit_folds(config, data, folds, spec, mspec, device, settings, out)
            save_predictions(out, predictions)
    except BaseException:
        # A failed or interrupted run leaves no trace: the folders the lock made, if still empty, go too.
        for folder in created:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    heldout = predictions.meta["crossfit"]["heldout"]
    logger.info(f"Cross-fit of {len(predictions):,} {config.split} images in {out}: held-out macro-F1 "
                f"{heldout['macro_f1']:.4f} at 0.5, macro ROC AUC {_figure(heldout['macro_auc'])}")
    return predictions


def _load_split(config: CrossfitConfig, spec: PreprocessConfig) -> _SplitData:
    """Index the roots, check the split's people against the folds, then build or reuse the image cache."""
    index = load_index(config.data_roots, cache_dir=config.cache_dir)
    listed = index.split_indices(config.split)
    if len(listed) == 0:
        raise TrainingError(f"The {config.split} split of {', '.join(config.data_roots)} has no images")
    labels = index.attribute_labels(config.attributes, listed)  # refuses attributes a root lacks
    assign_folds(index.identity[listed], config.folds, config.seed)  # enough people, before the cache is built
    cache = load_or_build_cache(index.paths, spec, config.cache_dir, progress=config.progress, rows=listed)
    readable = cache.valid[listed]
    rows, labels = listed[readable], labels[readable]
    if config.max_images is not None and len(rows) > config.max_images:
        # A seeded subset, like training's --max-train-images.
        chosen = np.sort(np.random.default_rng(config.seed).choice(len(rows), config.max_images, replace=False))
        rows, labels = rows[chosen], labels[chosen]
    if len(rows) == 0:
        raise TrainingError(f"The {config.split} split of {', '.join(config.data_roots)} has no readable images")
    return _SplitData(index, cache, rows, labels, len(listed))


def _crossfit_folds(
    config: CrossfitConfig, data: _SplitData, folds: np.ndarray, spec: PreprocessConfig, mspec: ModelSpec,
    device: torch.device, settings: dict, out: Path,
) -> Predictions:
    """Train one model per fold on the other folds and predict the fold; the whole split's artifact."""
    started = time.perf_counter()
    # Labels of the predicted rows in a full-size array, so batches index it by cache row as training does.
    labels = np.zeros((len(data.index), len(config.attributes)), dtype=np.float32)
    labels[data.rows] = data.labels
    source: CachedBatches | ResidentBatches = CachedBatches(data.cache.folder / "images.npy", labels)
    if keep_data_on_device("auto", device, data.cache.images.nbytes):
        source = ResidentBatches(data.cache.images, labels, device)
    identity = data.index.identity[data.rows]
    eval_batch = default_eval_batch_size(device)
    probabilities = np.zeros(data.labels.shape, dtype=np.float32)
    records = []
    logger.info(f"Cross-fitting {config.arch} over {config.folds} folds of {len(data.rows):,} {config.split} "
                f"images on {device}: {config.epochs} epochs per fold, {spec.image_size}x{spec.image_size} "
                f"{spec.color}, {len(config.attributes)} attributes")
    bar = tqdm(total=config.folds * config.epochs, desc="Cross-fit", unit="epoch", disable=not config.progress)
    with logging_redirect_tqdm([logging.getLogger(PACKAGE)]):  # each fold's log line above the bars, not through them
        for fold in range(config.folds):
            fold_started = time.perf_counter()
            held = folds == fold
            pos_weight = compute_pos_weight(data.labels[~held], config.pos_weight)
            model = _train_fold(config, source, data.rows[~held], pos_weight, fold, spec, mspec, device, bar)
            probabilities[held] = predict_probabilities(model, data.cache.images, data.rows[held], spec, device,
                                                        batch_size=eval_batch)
            record = {"fold": fold, "images": int(held.sum()), "people": _people(identity[held]),
                      "train_images": int((~held).sum()), **_scores(data.labels[held], probabilities[held]),
                      "seconds": time.perf_counter() - fold_started}
            records.append(record)
            logger.info(f"fold {fold + 1}/{config.folds}: trained on {record['train_images']:,} images, held out "
                        f"{record['images']:,} of {record['people']:,} people: macro-F1 {record['macro_f1']:.4f}  "
                        f"macro AUC {_figure(record['macro_auc'])}  {record['seconds']:.1f} s")
    bar.close()
    seconds = time.perf_counter() - started
    return _artifact(config, data, probabilities, spec, mspec, device, settings, records, seconds, eval_batch, out)


def _train_fold(
    config: CrossfitConfig, source: CachedBatches | ResidentBatches, train_rows: np.ndarray,
    pos_weight: np.ndarray | None, fold: int, spec: PreprocessConfig, mspec: ModelSpec, device: torch.device, bar: tqdm,
) -> nn.Module:
    """A fresh model trained on ``train_rows`` as train() trains one (AdamW, a cosine schedule per step,
    the per-epoch seeds), without validation or checkpoints: its only use is to predict the held-out fold."""
    seed = int(np.random.SeedSequence([config.seed, fold]).generate_state(1)[0])  # each fold's own run seed
    torch.manual_seed(seed)  # weight initialization
    model = create_model(mspec).to(device).to(memory_format=torch.channels_last)
    criterion = nn.BCEWithLogitsLoss(
        pos_weight=None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float32, device=device)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_rows) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
    augment = AugmentConfig() if config.augment else None
    for epoch in range(1, config.epochs + 1):
        torch.manual_seed(epoch_seed(seed, epoch, DROPOUT))
        batches = epoch_batches(train_rows, config.batch_size, epoch_seed(seed, epoch, SHUFFLE))
        generator = torch.Generator(device=device).manual_seed(epoch_seed(seed, epoch, AUGMENT))
        loader = batch_loader(source, batches, config.workers, device, epoch_seed(seed, epoch, LOADER))
        stats = train_one_epoch(
            model, criterion, optimizer, scheduler, loader, device, spec, augment, generator,
            num_batches=len(batches), desc=f"Fold {fold + 1}/{config.folds}, epoch {epoch}/{config.epochs}",
            progress=config.progress,
        )
        bar.update(1)
        bar.set_postfix(fold=f"{fold + 1}/{config.folds}", loss=f"{stats.loss:.4f}")
        logger.debug(f"fold {fold + 1} epoch {epoch:3d}/{config.epochs}  loss {stats.loss:.4f}  {stats.seconds:.1f} s")
    return model


def _scores(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """Macro-F1 at 0.5 and macro ROC AUC (over the attributes where both classes occur)."""
    auc = roc_auc(labels, probabilities)
    return {
        "macro_f1": summarize(attribute_metrics(labels, probabilities, 0.5))["macro_f1"],
        "macro_auc": float(np.nanmean(auc)) if not np.isnan(auc).all() else None,
    }


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _people(identity: np.ndarray) -> int:
    return int(len(np.unique(identity[identity >= 0])))


def _artifact(
    config: CrossfitConfig, data: _SplitData, probabilities: np.ndarray, spec: PreprocessConfig, mspec: ModelSpec,
    device: torch.device, settings: dict, records: list[dict], seconds: float, eval_batch: int, out: Path,
) -> Predictions:
    """The predictions artifact of the whole split, in the format evaluate writes."""
    index, rows = data.index, data.rows
    # All 40 labels go along for slices by any attribute, unless a root lacks some column (-1 there).
    every_label = index.labels[rows]
    meta = {
        "checkpoint": {
            # No single model made these predictions; without a path or weights digest, readers that need
            # the checkpoint (its tuned thresholds, Grad-CAM) say it is not recorded.
            "arch": config.arch,
            "kind": "crossfit",
            "models": config.folds,
            "note": f"out-of-sample predictions of {config.folds} models, each trained on the other folds; "
                    "no single checkpoint (none kept)",
        },
        "split": config.split,
        "data_roots": list(index.roots),
        "attributes": config.attributes,
        "preprocess": spec.to_dict(),
        "counts": {
            "images": int(len(rows)),
            "unreadable_skipped": int(data.listed - (data.cache.valid[index.split_indices(config.split)]).sum()),
            "positives": {a: int(p) for a, p in zip(config.attributes, data.labels.sum(axis=0))},
            "identities": _people(index.identity[rows]),
        },
        "timing": {"seconds": seconds, "device": str(device), "batch_size": eval_batch, "processes": 1},
        "flip_tta": False,
        "crossfit": {
            **settings,  # "folds" is the number of folds, as readers of this entry expect
            "model": mspec.to_dict(),
            "fold_rule": "celeba_model.training.crossfit.assign_folds(identity, folds, seed) over the artifact's "
                         "identity array: people shuffled by seed, largest first, each to the fold with the "
                         "fewest images; an image without a person id is a group of its own",
            "per_fold": records,
            "heldout": _scores(data.labels, probabilities),
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return Predictions(
        probabilities=probabilities,
        labels=data.labels,
        files=index.files[rows],
        paths=np.array(index.paths[rows].resolved_strings()),
        identity=index.identity[rows],
        meta=meta,
        folder=out,
        celeba_labels=every_label.astype(np.uint8) if (every_label >= 0).all() else None,
    )


def _check_replaceable(folder: Path, settings: dict, overwrite: bool) -> None:
    """Refuse to replace an artifact other than a cross-fit of the same settings unless ``overwrite``
    (as evaluate refuses another checkpoint's); running the same cross-fit again replaces its own."""
    if overwrite or not (folder / ARTIFACT_FILE).exists():
        return
    try:
        with np.load(folder / ARTIFACT_FILE, allow_pickle=False) as arrays:
            recorded = json.loads(str(arrays["meta"]))["crossfit"]
    except Exception:  # noqa: BLE001 - any damage, or no cross-fit entry, means "another artifact" here
        recorded = None
    if recorded is not None and {name: recorded.get(name) for name in settings} == settings:
        return
    what = "a cross-fit of other settings" if recorded is not None else "another artifact"
    raise PredictionsError(f"{folder} already holds {what}; pass --overwrite to replace it, or choose another --out "
                           "(nothing was changed)")
