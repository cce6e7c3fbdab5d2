"""Training: a plain loop over cached images, with validation, checkpoints every epoch and resume.

A run folder holds:
- ``config.json``: the TrainConfig the run was started with;
- ``last.safetensors``: weights, optimizer and scheduler state after the latest epoch (for --resume);
- ``best.safetensors``: weights of the epoch with the best validation macro-F1 (no optimizer state);
- ``metrics.jsonl``: one JSON line per finished epoch (losses, macro-F1, per-attribute F1, speed).

Every file is written atomically, so a run killed at any moment leaves the previous good files.
Randomness (shuffling, dropout, augmentation) is re-seeded from (seed, epoch) at each epoch, so
resuming at an epoch boundary reproduces the uninterrupted run exactly.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from ..attributes import PAPER_ATTRIBUTES, resolve_attributes
from ..data.cache import load_or_build_cache
from ..data.index import CelebAIndex, load_index
from ..data.transforms import AugmentConfig, PreprocessConfig, to_training_input
from ..errors import CelebAModelError, ConfigError
from ..evaluation.batched import predict_probabilities
from ..metrics.counts import f1_scores
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..models.registry import ModelSpec, count_parameters, create_model, model_spec
from ..utils import run_lock
from ..utils.devices import autocast, resolve_device
from ..utils.distributed import DistInfo, barrier, init_distributed, main_first, mean_over_ranks, predict_shard
from ..utils.fileio import atomic_write_text

POS_WEIGHT_MODES = ("none", "sqrt", "balanced")
DATA_ON_DEVICE_MODES = ("auto", "yes", "no")
# Options that define what is trained; a resumed run must keep them.
LOCKED_ON_RESUME = (
    "arch", "attributes", "epochs", "batch_size", "lr", "weight_decay", "seed", "image_size", "color",
    "pos_weight", "augment", "max_train_images", "model_config", "split_seed", "ema",
)


class TrainingError(CelebAModelError, RuntimeError):
    """A run that cannot start or continue, with the reason."""


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults follow the paper (batch 100, grayscale)."""

    data_roots: list[str]
    out: str
    arch: str = "paper"
    attributes: list[str] = field(default_factory=lambda: list(PAPER_ATTRIBUTES))
    epochs: int = 20
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    split_seed: int = 0
    image_size: int = 64
    color: str = "gray"
    pos_weight: str = "none"
    augment: bool = False
    # Decay of an exponential moving average of the weights, updated every step; validation and the
    # saved best checkpoint use the average. None trains without one.
    ema: float | None = None
    max_train_images: int | None = None
    patience: int | None = None
    model_config: dict = field(default_factory=dict)
    workers: int = 0
    device: str = "auto"
    # Keep the whole uint8 cache as one tensor on the training device: "auto" does so on a GPU when
    # it fits in a quarter of the free memory (the full CelebA cache at 64x64 RGB is 2.5 GB), "yes", "no".
    data_on_device: str = "auto"
    cache_dir: str | None = None
    eval_batch_size: int | None = None  # None: devices.default_eval_batch_size
    progress: bool = True

    def __post_init__(self) -> None:
        self._check_types()
        self.attributes = resolve_attributes(self.attributes)
        if self.pos_weight not in POS_WEIGHT_MODES:
            raise ConfigError(f"pos_weight must be one of {POS_WEIGHT_MODES}, got {self.pos_weight!r}")
        for name in ("epochs", "batch_size", "image_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be zero or a positive number, got {self.weight_decay}")
        if self.data_on_device not in DATA_ON_DEVICE_MODES:
            raise ConfigError(f"data_on_device must be one of {DATA_ON_DEVICE_MODES}, got {self.data_on_device!r}")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ConfigError(f"ema must be between 0 and 1 (for example 0.998), got {self.ema}")
        for name in ("max_train_images", "patience"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ConfigError(f"workers must be 0 or more, got {self.workers}")

    def _check_types(self) -> None:
        """Settings come from the command line and from config.json files a user may have edited:
        a value of the wrong type gets a message naming the setting, not a traceback later."""
        expected = {
            "data_roots": list, "out": str, "arch": str, "attributes": (list, tuple), "epochs": int,
            "batch_size": int, "lr": (int, float), "weight_decay": (int, float), "seed": int, "split_seed": int,
            "image_size": int, "color": str, "pos_weight": str, "augment": bool, "ema": (int, float, type(None)),
            "max_train_images": (int, type(None)), "patience": (int, type(None)), "model_config": dict,
            "workers": int, "device": str, "data_on_device": str, "cache_dir": (str, type(None)),
            "eval_batch_size": (int, type(None)), "progress": bool,
        }
        for name, types in expected.items():
            value = getattr(self, name)
            wrong_bool = isinstance(value, bool) and types is not bool and bool not in (types if isinstance(types, tuple) else (types,))
            if not isinstance(value, types) or wrong_bool:
                example = "a JSON object such as '{\"fc_hidden\": 256}'" if name == "model_config" else None
                raise ConfigError(f"{name} must be {example or _type_names(types)}, got {value!r}")
        if not all(isinstance(r, str) for r in self.data_roots):
            raise ConfigError(f"data_roots must be a list of folder names, got {self.data_roots!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def _type_names(types: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
             tuple: "a list", dict: "a JSON object", type(None): "null"}
    types = types if isinstance(types, tuple) else (types,)
    listed = dict.fromkeys(names[t] for t in types if not (t is int and float in types))  # "a number" covers both
    return " or ".join(listed)


class CachedBatches(Dataset):
    """Whole batches from the memory-mapped cache: ``dataset[rows]`` -> (uint8 NHWC, float labels).

    The array is opened lazily in each process so DataLoader workers map the file instead of
    receiving a pickled copy of it.
    """

    def __init__(self, array_path: Path, labels: np.ndarray) -> None:
        self.array_path = array_path
        self.labels = labels
        self._images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if self._images is None:
            self._images = np.load(self.array_path, mmap_mode="r")
        order = np.sort(rows)  # sequential reads from the memory map
        return torch.from_numpy(np.ascontiguousarray(self._images[order])), torch.from_numpy(self.labels[order])


class ResidentBatches:
    """The whole uint8 cache and labels held as tensors on the training device.

    On a GPU this removes the host side from the loop: a batch is one gather in device memory, and
    augmentation then runs there too. Rows are sorted within a batch as in CachedBatches, so both
    give the same batches and the same training run.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, device: torch.device) -> None:
        self.device = device
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        self.labels = torch.from_numpy(np.ascontiguousarray(labels)).to(device)

    def __getitem__(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        order = torch.from_numpy(np.sort(rows)).to(self.device)
        return self.images.index_select(0, order), self.labels.index_select(0, order)


def keep_data_on_device(mode: str, device: torch.device, nbytes: int) -> bool:
    """Whether to hold the image cache on the device (see TrainConfig.data_on_device)."""
    if mode != "auto":
        return mode == "yes"
    if device.type != "cuda":
        return False  # on CPU the memory map already is host memory (the page cache)
    free, _total = torch.cuda.mem_get_info(device)
    return nbytes <= free // 4


def optimize_step(
    network: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
    targets: torch.Tensor, device: torch.device,
) -> torch.Tensor:
    """One forward, backward and optimizer update on a prepared batch; returns the loss."""
    with autocast(device):
        logits = network(x)
    loss = criterion(logits.float(), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def epoch_seed(seed: int, epoch: int, stream: int = 0, rank: int = 0) -> int:
    """A distinct, reproducible seed for each (run seed, epoch, random stream, process rank)."""
    key = [seed, epoch, stream] + ([rank] if rank else [])  # rank 0 keeps the single-process seeds
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def compute_pos_weight(labels: np.ndarray, mode: str) -> np.ndarray | None:
    """Per-attribute weight of positive examples in the loss: none, sqrt(neg/pos) or neg/pos."""
    if mode == "none":
        return None
    positives = labels.sum(axis=0).astype(np.float64)
    negatives = len(labels) - positives
    ratio = negatives / np.maximum(positives, 1.0)
    return np.sqrt(ratio) if mode == "sqrt" else ratio


def _binary_cross_entropy(labels: np.ndarray, probs: np.ndarray) -> float:
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


@dataclass
class RunData:
    """The pieces of the dataset a run uses."""

    index: CelebAIndex
    array_path: Path
    images: np.ndarray
    labels: np.ndarray  # (N, A) uint8 over the whole index
    train_rows: np.ndarray
    val_rows: np.ndarray


def prepare_data(config: TrainConfig, spec: PreprocessConfig, info: DistInfo = DistInfo()) -> RunData:
    """Index the data roots, build or reuse the image cache, and pick the train and val rows."""
    index = load_index(config.data_roots, split_seed=config.split_seed)
    # Under torchrun, rank 0 builds the cache while the others wait, then they map the same file.
    cache = main_first(info, lambda: load_or_build_cache(index.paths, spec, config.cache_dir,
                                                         progress=config.progress and info.is_main))
    labels = index.attribute_labels(config.attributes)
    train_rows = index.split_indices("train")
    val_rows = index.split_indices("val")
    train_rows = train_rows[cache.valid[train_rows]]
    val_rows = val_rows[cache.valid[val_rows]]
    if config.max_train_images is not None and len(train_rows) > config.max_train_images:
        # A seeded subset, like the paper's 60,000 of CelebA's 162,770 training images.
        chosen = np.random.default_rng(config.seed).choice(len(train_rows), config.max_train_images, replace=False)
        train_rows = np.sort(train_rows[chosen])
    if len(train_rows) == 0:
        raise TrainingError(f"The train split of {', '.join(config.data_roots)} has no readable images")
    if len(val_rows) == 0:
        raise TrainingError(f"The val split of {', '.join(config.data_roots)} has no readable images; "
                            "validation picks the best epoch")
    return RunData(index, cache.folder / "images.npy", cache.images, labels, train_rows, val_rows)


def _read_saved_config(out: Path) -> dict:
    """The config.json of an earlier run in ``out``, with a clear error when it is damaged."""
    path = out / "config.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TrainingError(f"{path} is damaged ({err}); it cannot be resumed. Start a new run in another --out") from err
    if not isinstance(saved, dict):
        raise TrainingError(f"{path} is damaged (a JSON {type(saved).__name__}, not an object); it cannot be resumed")
    return saved


def read_run_config(out: str | Path) -> dict:
    """The settings a run in ``out`` was started with (for ``--resume``)."""
    out = Path(out)
    if not (out / "config.json").is_file():
        raise TrainingError(f"Nothing to resume in {out}: it has no config.json from an earlier run")
    return _read_saved_config(out)


def _check_resumable(config: TrainConfig, out: Path) -> dict:
    saved_config = read_run_config(out)
    differences = [
        f"{name}: run has {saved_config.get(name)!r}, asked for {getattr(config, name)!r}"
        for name in LOCKED_ON_RESUME
        if saved_config.get(name) != json.loads(json.dumps(getattr(config, name)))
    ]
    if differences:
        raise TrainingError(f"Cannot resume {out} with different settings:\n  " + "\n  ".join(differences))
    return saved_config


def _check_run_folder(config: TrainConfig, out: Path, resume: bool) -> None:
    """A new run needs a folder without one; a resumed run needs one started with the same settings;
    neither may start while another process is writing the folder."""
    run_lock.check_unlocked(out)
    if resume:
        _check_resumable(config, out)
    elif (out / "last.safetensors").exists() or (out / "config.json").exists():
        raise TrainingError(
            f"{out} already holds a training run. Pass --resume to continue it, or choose another --out "
            "(nothing was changed)"
        )


def _build_model(mspec: ModelSpec) -> nn.Module:
    try:
        return create_model(mspec)
    except (TypeError, ValueError, RuntimeError) as err:
        if isinstance(err, CelebAModelError):
            raise
        raise ConfigError(f"Cannot build {mspec.arch} with model config {mspec.config}: {err}") from err


def train(config: TrainConfig, resume: bool = False) -> dict:
    """Train (or resume) a run; returns a summary with the best epoch and its validation macro-F1.

    Everything that can be checked is checked before anything is written (settings, the model, the
    run folder, the data), so a start that fails leaves no trace. While it trains, the run folder is
    locked (``run_lock``): a second start into the same folder is refused.
    """
    out = Path(config.out)
    device = resolve_device(config.device)
    info = init_distributed(device.type)  # one process unless started by torchrun
    if device.type == "cuda":
        if info.enabled:
            device = torch.device("cuda", info.local_rank)
        torch.backends.cudnn.benchmark = True
    spec = PreprocessConfig(image_size=config.image_size, color=config.color)
    mspec = model_spec(config.arch, spec.channels, len(config.attributes), spec.image_size, config.model_config)
    torch.manual_seed(config.seed)  # weight initialization
    model = _build_model(mspec)
    _check_run_folder(config, out, resume)
    data = prepare_data(config, spec, info)
    barrier(info)  # every rank has checked the settings, folder and data before rank 0 writes
    lock = run_lock.acquire(out) if info.is_main else None
    try:
        if info.is_main:
            _check_run_folder(config, out, resume)  # again, now that no other process can start here
            if not resume:
                atomic_write_text(out / "config.json", json.dumps(config.to_dict(), indent=2))
        barrier(info)
        return _run_epochs(config, resume, model.to(device).to(memory_format=torch.channels_last), mspec, spec, data,
                           device, info)
    finally:
        if lock is not None:
            run_lock.release(lock)


def _run_epochs(
    config: TrainConfig, resume: bool, model: nn.Module, mspec: ModelSpec, spec: PreprocessConfig, data: RunData,
    device: torch.device, info: DistInfo,
) -> dict:
    """The training loop proper, on a checked configuration in a locked run folder."""
    out = Path(config.out)
    last_path, best_path = out / "last.safetensors", out / "best.safetensors"
    say = print if info.is_main else (lambda *args, **kwargs: None)
    attributes = config.attributes
    train_labels = data.labels[data.train_rows]
    val_labels = data.labels[data.val_rows]
    pos_weight = compute_pos_weight(train_labels, config.pos_weight)
    criterion = nn.BCEWithLogitsLoss(
        pos_weight=None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float32, device=device)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    # Under torchrun every rank takes batch_size images per step (as in torchvision's references).
    steps_per_epoch = math.ceil(len(data.train_rows) / (config.batch_size * info.world_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
    augment_config = AugmentConfig() if config.augment else None
    # torch's AveragedModel keeps the moving average (weights and batch-norm statistics).
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
           if config.ema is not None else None)

    start_epoch, history, best_f1, best_epoch = 1, [], -1.0, 0
    if resume and last_path.is_file():
        state = load_checkpoint(last_path, device=device, with_optimizer=True)
        model.load_state_dict(state.model.state_dict())
        if state.optimizer_state is None:
            raise TrainingError(f"{last_path} has no optimizer state; it cannot be resumed")
        optimizer.load_state_dict(state.optimizer_state)
        training = state.meta["training"]
        scheduler.load_state_dict(training["scheduler"])
        history = training["history"]
        start_epoch = training["epoch"] + 1
        best_f1, best_epoch = training["best_val_macro_f1"], training["best_epoch"]
        if ema is not None:
            ema.load_state_dict({k[len("ema."):]: v for k, v in (state.training_state or {}).items() if k.startswith("ema.")})
        say(f"Resuming {out} after epoch {training['epoch']} (best val macro-F1 {best_f1:.4f} at epoch {best_epoch})")
    # A run killed after writing a checkpoint but before metrics.jsonl: rewrite it from the checkpoint.
    if info.is_main:
        _write_metrics(out, history)
    network = model  # what the loop trains: the model itself, or its DistributedDataParallel wrapper
    if info.enabled:
        network = DistributedDataParallel(model, device_ids=[info.local_rank] if device.type == "cuda" else None)

    say(
        f"Training {config.arch} ({count_parameters(model):,} parameters) on {device}: "
        f"{len(data.train_rows):,} train / {len(data.val_rows):,} val images, "
        f"{spec.image_size}x{spec.image_size} {spec.color}, {len(attributes)} attributes"
        + (f", {info.world_size} processes" if info.enabled else "")
    )
    dataset = CachedBatches(data.array_path, data.labels.astype(np.float32))
    resident = None
    if keep_data_on_device(config.data_on_device, device, data.images.nbytes):
        resident = ResidentBatches(data.images, data.labels.astype(np.float32), device)
        say(f"Holding the {data.images.nbytes / 2**30:.2f} GiB image cache on {device}")
    meta_base = {
        "model": mspec.to_dict(),
        "attributes": attributes,
        "preprocess": spec.to_dict(),
    }
    epochs_without_gain = (len(history) - best_epoch) if history else 0
    stopped_early = False

    for epoch in range(start_epoch, config.epochs + 1):
        if config.patience is not None and epochs_without_gain >= config.patience:
            stopped_early = True
            break
        torch.manual_seed(epoch_seed(config.seed, epoch, 0, info.rank))  # dropout
        if info.enabled:
            # PyTorch's DistributedSampler: one shuffle shared by all ranks, split into equal shards.
            sampler = DistributedSampler(range(len(data.train_rows)), num_replicas=info.world_size, rank=info.rank,
                                         shuffle=True, seed=epoch_seed(config.seed, epoch, 1) % 2**31)
            order = data.train_rows[np.fromiter(iter(sampler), dtype=np.int64)]
        else:
            order = np.random.default_rng(epoch_seed(config.seed, epoch, 1)).permutation(data.train_rows)
        batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
        aug_generator = torch.Generator(device=device)
        aug_generator.manual_seed(epoch_seed(config.seed, epoch, 2, info.rank))
        if resident is not None:
            loader = (resident[rows] for rows in batches)
        else:
            loader = DataLoader(
                dataset,
                sampler=batches,
                batch_size=None,
                num_workers=config.workers,
                pin_memory=device.type == "cuda",
                persistent_workers=False,
                # Its own generator: drawing the loader's base seed from the global one would shift dropout.
                generator=torch.Generator().manual_seed(epoch_seed(config.seed, epoch, 3, info.rank)),
            )

        network.train()
        started = time.perf_counter()
        loss_sum, seen = 0.0, 0
        bar = tqdm(loader, total=len(batches), desc=f"Epoch {epoch}/{config.epochs}", unit="batch", disable=not (config.progress and info.is_main),
                   leave=False)
        for images, targets in bar:
            targets = targets.to(device, non_blocking=True)
            x = to_training_input(images.to(device, non_blocking=True), spec, augment_config, aug_generator)
            loss = optimize_step(network, criterion, optimizer, x, targets, device)
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += loss.item() * len(targets)
            seen += len(targets)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", img_s=f"{seen / (time.perf_counter() - started):,.0f}")
        bar.close()
        train_seconds = time.perf_counter() - started
        train_loss = mean_over_ranks(loss_sum, seen, info)

        evaluated = ema.module if ema is not None else model
        # Each rank predicts its share of the validation images; gathered in rank order they are
        # exactly the single-process predictions.
        probs = predict_shard(
            lambda rows: predict_probabilities(evaluated, data.images, rows, spec, device, batch_size=config.eval_batch_size),
            data.val_rows, info, len(attributes),
        )
        val_f1 = f1_scores(val_labels, probs, 0.5)
        macro_f1 = float(val_f1.mean())
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": _binary_cross_entropy(val_labels, probs),
            "val_macro_f1": macro_f1,
            "val_f1": {a: float(f) for a, f in zip(attributes, val_f1)},
            "lr": optimizer.param_groups[0]["lr"],
            "train_seconds": train_seconds,
            "train_images_per_s": seen * info.world_size / train_seconds,
        }
        history.append(record)
        improved = macro_f1 > best_f1
        if improved:
            best_f1, best_epoch, epochs_without_gain = macro_f1, epoch, 0
        else:
            epochs_without_gain += 1
        training = {
            "config": config.to_dict(),
            "epoch": epoch,
            "best_epoch": best_epoch,
            "best_val_macro_f1": best_f1,
            "history": history,
            "scheduler": scheduler.state_dict(),
            "pos_weight": None if pos_weight is None else pos_weight.tolist(),
            "data": data.index.summary() | {"train_images": int(len(data.train_rows)), "val_images": int(len(data.val_rows))},
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        meta = meta_base | {"training": training}
        # best before last: if killed in between, resume re-runs this epoch and rewrites both identically.
        if info.is_main:
            if improved:
                save_checkpoint(best_path, evaluated, meta)
            ema_state = {f"ema.{k}": v for k, v in ema.state_dict().items()} if ema is not None else None
            save_checkpoint(last_path, model, meta, optimizer_state=optimizer.state_dict(), training_state=ema_state)
            _write_metrics(out, history)
        barrier(info)
        say(
            f"epoch {epoch:3d}/{config.epochs}  loss {record['train_loss']:.4f}  val loss {record['val_loss']:.4f}  "
            f"val macro-F1 {macro_f1:.4f}{'  *best*' if improved else ''}  "
            f"{train_seconds:.1f} s ({record['train_images_per_s']:,.0f} img/s)",
            flush=True,
        )

    if stopped_early:
        say(f"Stopped early: no gain in validation macro-F1 for {config.patience} epochs")
    return {
        "out": str(out),
        "best_epoch": best_epoch,
        "best_val_macro_f1": best_f1,
        "epochs_run": len(history),
        "best_checkpoint": str(best_path),
        "last_checkpoint": str(last_path),
    }


def _write_metrics(out: Path, history: list[dict]) -> None:
    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
