"""The table of available CelebA images across one or more data roots, with labels and splits.

The table is held in compact arrays (about 30 MB at full CelebA size) and kept, parsed, beside the
image cache (``index_cache``): a later command on unchanged list files and image folders loads it in
milliseconds instead of parsing 202,599 rows again.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..attributes import CELEBA_ATTRIBUTES, resolve_attributes
from ..errors import CelebAModelError
from .celeba_files import (
    ATTRIBUTE_FILE,
    PARTITION_FILE,
    CelebALayout,
    find_layout,
    read_attribute_file,
    read_identity_file,
    read_partition_file,
    scan_images,
)
from .image_paths import ImagePaths
from .index_cache import IndexKey, index_key, read_arrays, write_arrays

SPLITS = {"train": 0, "val": 1, "test": 2}
# The official CelebA partition is 162,770 / 19,867 / 19,962: about 80 / 10 / 10.
FALLBACK_SPLIT = (0.8, 0.1, 0.1)


class CelebAWarning(UserWarning):
    """Something a user should know about their data that does not stop the run."""


class CelebAIndexError(CelebAModelError, ValueError):
    """The data roots give no usable images, or lack what was asked for."""


@dataclass
class CelebAIndex:
    """Every usable image across the data roots: where it is, its labels, split and person."""

    files: np.ndarray  # (N,) str: names as listed in list_attr_celeba.txt, e.g. 000001.jpg
    paths: ImagePaths  # paths[i] is a Path; paths[rows] the paths of those rows, still compact
    labels: np.ndarray  # (N, 40) int8 in CELEBA_ATTRIBUTES order: 1, 0, or -1 where a root lacks the column
    partition: np.ndarray  # (N,) int8: 0 train, 1 val, 2 test
    identity: np.ndarray  # (N,) int64 person id, -1 where unknown
    roots: list[str]
    missing_on_disk: int = 0
    duplicates: int = 0
    broken_entries: int = 0  # symlink loops and dangling links in the image folders, skipped
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def split_indices(self, split: str) -> np.ndarray:
        """Row indices of one split ('train', 'val', 'test' or 'all')."""
        if split == "all":
            return np.arange(len(self))
        if split not in SPLITS:
            raise CelebAIndexError(f"Unknown split {split!r}; choose one of {', '.join([*SPLITS, 'all'])}")
        return np.flatnonzero(self.partition == SPLITS[split])

    def attribute_labels(self, attributes: Sequence[str], rows: np.ndarray | None = None) -> np.ndarray:
        """(len(rows), len(attributes)) uint8 labels; refuses attributes a root does not provide."""
        names = resolve_attributes(attributes)
        columns = [CELEBA_ATTRIBUTES.index(a) for a in names]
        labels = self.labels[:, columns] if rows is None else self.labels[np.asarray(rows)][:, columns]
        if (labels < 0).any():
            missing = sorted({names[c] for c in np.flatnonzero((labels < 0).any(axis=0))})
            raise CelebAIndexError(
                f"Attribute(s) {', '.join(missing)} are not in the {ATTRIBUTE_FILE} of every data root"
            )
        return labels.astype(np.uint8)

    def summary(self) -> dict:
        """Counts a user wants to see before training."""
        counts = {name: int((self.partition == code).sum()) for name, code in SPLITS.items()}
        known = self.identity >= 0
        return {
            "roots": self.roots,
            "images": len(self),
            "splits": counts,
            "identities": int(len(np.unique(self.identity[known]))) if known.any() else None,
            "missing_on_disk": self.missing_on_disk,
            "duplicates_skipped": self.duplicates,
            "broken_links_skipped": self.broken_entries,
        }


def _stable_fraction(key: str, seed: int) -> float:
    """A uniform number in [0, 1) from a key; stable across processes and Python versions."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


def _fallback_partition(key: str, seed: int) -> int:
    u = _stable_fraction(key, seed)
    train, val, _ = FALLBACK_SPLIT
    return 0 if u < train else (1 if u < train + val else 2)


def load_index(roots: Sequence[str | Path], split_seed: int = 0, cache_dir: str | Path | None = None) -> CelebAIndex:
    """Read every root and merge them; an image present in several roots is taken from the first.

    Listed images that are not on disk are skipped and counted. Rows without a partition get a
    seeded split by person (by image when the person is unknown), with a warning, so that splits
    stay by person as in the official partition.

    The parsed index is kept in ``cache_dir`` (default: ``default_cache_dir()``) and reused while the
    list files and image folders are unchanged (``index_cache``).
    """
    if not roots:
        raise CelebAIndexError("No data root given")
    layouts = [find_layout(root) for root in roots]
    key = index_key(roots, layouts, split_seed)  # before parsing: a file changed meanwhile gets a new key
    index = _from_cache(key, cache_dir, roots)
    if index is None:
        index = _read_roots(roots, layouts, split_seed)
        if not index.broken_entries:  # a broken link can mend without its folder changing: not kept
            _to_cache(key, cache_dir, index)
    for note in index.notes:
        if "skipped" in note or "seeded" in note:
            warnings.warn(note, CelebAWarning, stacklevel=2)
    return index


def _read_roots(roots: Sequence[str | Path], layouts: list[CelebALayout], split_seed: int) -> CelebAIndex:
    """Parse every root's list files and list its image folder: the index, before any cache."""
    files: list[str] = []
    names: list[str] = []  # the file name on disk, which may differ from the listed one by its extension
    folder_of: list[int] = []
    label_blocks: list[np.ndarray] = []
    partitions: list[int] = []
    identities: list[int] = []
    needs_split: list[bool] = []
    taken: set[str] = set()
    missing_total = duplicates = broken_total = 0
    notes: list[str] = []

    for number, (root, layout) in enumerate(zip(roots, layouts)):
        table = read_attribute_file(layout.attribute_file)
        listing = scan_images(layout.image_dir)
        on_disk = listing.found
        if listing.broken:
            notes.append(_broken_note(layout.image_dir, listing.broken))
            broken_total += len(listing.broken)
        partition = read_partition_file(layout.partition_file) if layout.partition_file else {}
        identity = read_identity_file(layout.identity_file) if layout.identity_file else {}
        columns = np.array([CELEBA_ATTRIBUTES.index(n) for n in table.names])

        missing = no_partition = 0
        kept_rows: list[int] = []
        for row, name in enumerate(table.files):
            stem = name.rsplit(".", 1)[0]
            disk_name = on_disk.get(stem)
            if disk_name is None:
                missing += 1
                continue
            if name in taken:
                duplicates += 1
                continue
            taken.add(name)
            kept_rows.append(row)
            files.append(name)
            names.append(disk_name)
            folder_of.append(number)
            identities.append(identity.get(name, -1))
            part = partition.get(name)
            needs_split.append(part is None)
            partitions.append(-1 if part is None else part)
            no_partition += part is None

        block = np.full((len(kept_rows), len(CELEBA_ATTRIBUTES)), -1, dtype=np.int8)
        block[:, columns] = table.labels[kept_rows]
        label_blocks.append(block)
        present = len(table.files) - missing
        if missing:
            notes.append(f"{layout.attribute_file} lists {len(table.files):,} images; {missing:,} are not on disk "
                         f"under {layout.image_dir} and were skipped ({present:,} used)")
        if layout.partition_file is None and present:
            notes.append(f"{root} has no {PARTITION_FILE}: {present:,} images get a seeded "
                         f"{'/'.join(str(int(f * 100)) for f in FALLBACK_SPLIT)} split by person (seed {split_seed})")
        elif no_partition:
            notes.append(f"{layout.partition_file} has no row for {no_partition:,} images on disk; they get a "
                         f"seeded split by person (seed {split_seed})")
        missing_total += missing

    if not files:
        raise CelebAIndexError(
            f"None of the images listed in the attribute files were found on disk under: {', '.join(map(str, roots))}"
        )
    partition_arr = np.array(partitions, dtype=np.int8)
    identity_arr = np.array(identities, dtype=np.int64)
    _assign_missing_partitions(files, partition_arr, identity_arr, np.array(needs_split), split_seed)
    if duplicates:
        notes.append(f"{duplicates:,} images appear in more than one root; each is used once, from the first root")
    return CelebAIndex(
        files=np.array(files, dtype=str),
        paths=ImagePaths([layout.image_dir for layout in layouts], np.array(folder_of), np.array(names, dtype=str)),
        labels=np.concatenate(label_blocks),
        partition=partition_arr,
        identity=identity_arr,
        roots=[str(r) for r in roots],
        missing_on_disk=missing_total,
        duplicates=duplicates,
        broken_entries=broken_total,
        notes=notes,
    )


def _to_cache(key: IndexKey | None, cache_dir: str | Path | None, index: CelebAIndex) -> None:
    paths = index.paths
    arrays = {"files": index.files, "names": paths.names, "folder_of": paths.folder_of, "labels": index.labels,
              "partition": index.partition, "identity": index.identity}
    meta = {"folders": paths.folders, "missing_on_disk": index.missing_on_disk, "duplicates": index.duplicates,
            "broken_entries": index.broken_entries, "notes": index.notes}
    write_arrays(key, cache_dir, arrays, meta)


def _from_cache(key: IndexKey | None, cache_dir: str | Path | None, roots: Sequence[str | Path]) -> CelebAIndex | None:
    stored = read_arrays(key, cache_dir)
    if stored is None:
        return None
    arrays, meta = stored
    return CelebAIndex(
        files=arrays["files"],
        paths=ImagePaths(meta["folders"], arrays["folder_of"], arrays["names"]),
        labels=arrays["labels"],
        partition=arrays["partition"],
        identity=arrays["identity"],
        roots=[str(r) for r in roots],
        missing_on_disk=meta["missing_on_disk"],
        duplicates=meta["duplicates"],
        broken_entries=meta["broken_entries"],
        notes=meta["notes"],
    )


def _broken_note(image_dir: Path, broken: list[str], shown: int = 5) -> str:
    """A warning naming up to ``shown`` broken entries of one image folder."""
    names = ", ".join(broken[:shown]) + (f" and {len(broken) - shown:,} more" if len(broken) > shown else "")
    return (f"{image_dir} has {len(broken):,} entries that are a symlink loop or a link to a missing file; "
            f"they were treated as not on disk and skipped: {names}")


def _assign_missing_partitions(
    files: Sequence[str], partition: np.ndarray, identity: np.ndarray, missing: np.ndarray, seed: int
) -> None:
    """Fill partition = -1 rows in place, keeping each person in a single split."""
    if not missing.any():
        return
    # A person already placed by the official file keeps that split for their other images.
    official: dict[int, int] = {}
    for person, parts in _group(identity[~missing], partition[~missing]).items():
        official[person] = Counter(parts).most_common(1)[0][0]
    for i in np.flatnonzero(missing):
        person = int(identity[i])
        if person >= 0:
            partition[i] = official.get(person, _fallback_partition(f"person:{person}", seed))
        else:
            partition[i] = _fallback_partition(f"file:{files[i]}", seed)


def _group(keys: np.ndarray, values: np.ndarray) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for key, value in zip(keys.tolist(), values.tolist()):
        if key >= 0:
            groups.setdefault(key, []).append(value)
    return groups
