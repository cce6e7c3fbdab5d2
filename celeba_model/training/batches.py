"""The data a run trains on: its train and val rows of the image cache, and each epoch's batches of them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..data.cache import load_or_build_cache
from ..data.corrections import corrected_index, read_corrections
from ..data.index import CelebAIndex, load_index
from ..data.transforms import PreprocessConfig
from ..utils.distributed import DistInfo, main_first
from .config import TrainConfig, TrainingError

logger = logging.getLogger(__name__)


@dataclass
class RunData:
    """The pieces of the dataset a run uses."""

    index: CelebAIndex
    array_path: Path
    images: np.ndarray
    labels: np.ndarray  # (N, A) uint8 over the whole index: the trained attributes (predicted, then auxiliary)
    train_rows: np.ndarray
    val_rows: np.ndarray


def prepare_data(config: TrainConfig, spec: PreprocessConfig, info: DistInfo = DistInfo()) -> RunData:
    """Index the data roots, build or reuse the image cache, and pick the train and val rows."""
    index = load_index(config.data_roots, split_seed=config.split_seed, cache_dir=config.cache_dir)
    if config.label_corrections:
        # Read before anything is written: a bad corrections file fails the start cleanly.
        index, changed = corrected_index(index, read_corrections(config.label_corrections))
        logger.info("label corrections %s: %d labels changed", config.label_corrections, changed)
    labels = index.attribute_labels(config.trained_attributes)  # predicted, then auxiliary columns
    train_rows = index.split_indices("train")
    val_rows = index.split_indices("val")
    if config.max_train_images is not None and len(train_rows) > config.max_train_images:
        # A seeded subset, like the paper's 60,000 of CelebA's 162,770 training images. Drawn before the
        # cache, so that only these images are decoded; an unreadable one among them is left out below.
        chosen = np.random.default_rng(config.seed).choice(len(train_rows), config.max_train_images, replace=False)
        train_rows = np.sort(train_rows[chosen])
    # Under torchrun, rank 0 fills the cache while the others wait, then they map the same file.
    cache = main_first(info, lambda: load_or_build_cache(index.paths, spec, config.cache_dir,
                                                         progress=config.progress and info.is_main,
                                                         rows=np.concatenate([train_rows, val_rows])))
    train_rows = train_rows[cache.valid[train_rows]]
    val_rows = val_rows[cache.valid[val_rows]]
    if len(train_rows) == 0:
        raise TrainingError(f"The train split of {', '.join(config.data_roots)} has no readable images")
    if len(val_rows) == 0:
        raise TrainingError(f"The val split of {', '.join(config.data_roots)} has no readable images; "
                            "validation picks the best epoch")
    return RunData(index, cache.folder / "images.npy", cache.images, labels, train_rows, val_rows)


class CachedBatches(Dataset):
    """Whole batches from the memory-mapped cache: ``dataset[rows]`` -> (uint8 NHWC, float labels), and
    the rows' cells (int64) as a third item when given ``cells`` (for Group DRO).

    The array is opened lazily in each process so DataLoader workers map the file instead of
    receiving a pickled copy of it.
    """

    def __init__(self, array_path: Path, labels: np.ndarray, cells: np.ndarray | None = None) -> None:
        self.array_path = array_path
        self.labels = labels
        self.cells = cells
        self._images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
        if self._images is None:
            self._images = np.load(self.array_path, mmap_mode="r")
        order = np.sort(rows)  # sequential reads from the memory map
        batch = torch.from_numpy(np.ascontiguousarray(self._images[order])), torch.from_numpy(self.labels[order])
        return batch if self.cells is None else (*batch, torch.from_numpy(self.cells[order]))


class ResidentBatches:
    """The whole uint8 cache and labels held as tensors on the training device.

    On a GPU this removes the host side from the loop: a batch is one gather in device memory, and
    augmentation then runs there too. Rows are sorted within a batch as in CachedBatches, so both
    give the same batches and the same training run.
    """

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, device: torch.device, cells: np.ndarray | None = None
    ) -> None:
        self.device = device
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        self.labels = torch.from_numpy(np.ascontiguousarray(labels)).to(device)
        self.cells = None if cells is None else torch.from_numpy(cells).to(device)

    def __getitem__(self, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
        order = torch.from_numpy(np.sort(rows)).to(self.device)
        batch = self.images.index_select(0, order), self.labels.index_select(0, order)
        return batch if self.cells is None else (*batch, self.cells.index_select(0, order))


def keep_data_on_device(mode: str, device: torch.device, nbytes: int) -> bool:
    """Whether to hold the image cache on the device (see TrainConfig.data_on_device)."""
    if mode != "auto":
        return mode == "yes"
    if device.type != "cuda":
        return False  # on CPU the memory map already is host memory (the page cache)
    free, _total = torch.cuda.mem_get_info(device)
    return nbytes <= free // 4


def epoch_batches(
    rows: np.ndarray, batch_size: int, shuffle_seed: int, info: DistInfo = DistInfo()
) -> list[np.ndarray]:
    """This process's batches of one epoch: ``rows`` shuffled by ``shuffle_seed``, cut into batches."""
    if info.enabled:
        # PyTorch's DistributedSampler: one shuffle shared by all ranks, split into equal shards.
        sampler = DistributedSampler(range(len(rows)), num_replicas=info.world_size, rank=info.rank,
                                     shuffle=True, seed=shuffle_seed % 2**31)
        order = rows[np.fromiter(iter(sampler), dtype=np.int64)]
    else:
        order = np.random.default_rng(shuffle_seed).permutation(rows)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def batch_loader(
    source: CachedBatches | ResidentBatches, batches: list[np.ndarray], workers: int, device: torch.device,
    seed: int,
) -> Iterable[tuple[torch.Tensor, ...]]:
    """(uint8 images, float labels[, cells]) for each batch in turn: gathered on the device from a resident
    cache, else read from the memory map by a DataLoader (``workers`` processes, 0 for this one)."""
    if isinstance(source, ResidentBatches):
        return (source[rows] for rows in batches)
    return DataLoader(
        source,
        sampler=batches,
        batch_size=None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        # Its own generator: drawing the loader's base seed from the global one would shift dropout.
        generator=torch.Generator().manual_seed(seed),
    )
