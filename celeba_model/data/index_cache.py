"""The parsed index of some data roots, kept beside the image cache (``<cache dir>/index/<key>.npz``).

Parsing the list files of full CelebA and listing its image folder takes seconds; loading the parsed
arrays takes milliseconds. The key holds, for every root, the list files' and the image folder's
inode, size, modification and change times: editing a list file, and adding, removing or renaming an
image (which changes its folder's times) each give a new key, so a stale index is never read. Only the
folders are checked, not each image: an image rewritten in place keeps its name, and the image cache
notices it by its own size and time when the image is used.

A key is stored only once its files have been unchanged for ``SETTLE_S`` seconds: two edits within
the file system's timestamp granularity could otherwise leave the same times on different contents.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..utils.fileio import replace_file
from ..workspace import default_cache_dir
from .celeba_files import CelebALayout

INDEX_FORMAT = 1
INDEX_FOLDER = "index"
SETTLE_S = 2.0
KEEP = 8  # parsed indexes kept per cache folder, the most recently written

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexKey:
    """Where the parsed index of these roots is kept, and whether it may be stored now."""

    digest: str
    settled: bool  # every stamped file is older than SETTLE_S


def _stamp(path: Path) -> list[int]:
    stat = os.stat(path)
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


def index_key(roots: Sequence[str | Path], layouts: Sequence[CelebALayout], split_seed: int) -> IndexKey | None:
    """The key of these roots as they are now; None when a file cannot be stamped (then nothing is kept)."""
    entries = []
    newest = 0
    try:
        for root, layout in zip(roots, layouts):
            entry: dict = {"root": os.path.abspath(root)}
            for name, path in (("attributes", layout.attribute_file), ("partition", layout.partition_file),
                               ("identity", layout.identity_file), ("images", layout.image_dir)):
                if path is None:
                    entry[name] = None
                    continue
                stamp = _stamp(path)
                newest = max(newest, stamp[2], stamp[3])
                entry[name] = [os.path.abspath(path), *stamp]
            entries.append(entry)
    except OSError:
        return None
    text = json.dumps({"format": INDEX_FORMAT, "split_seed": split_seed, "roots": entries}, sort_keys=True)
    settled = time.time_ns() - newest >= SETTLE_S * 1e9
    return IndexKey(hashlib.sha256(text.encode()).hexdigest()[:24], settled)


def _folder(cache_dir: str | Path | None) -> Path:
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / INDEX_FOLDER


def read_arrays(key: IndexKey | None, cache_dir: str | Path | None) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and metadata stored under ``key``; None when there are none or they are unreadable."""
    if key is None:
        return None
    path = _folder(cache_dir) / f"{key.digest}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, EOFError) as err:
        if path.exists():
            logger.debug("Parsed index %s is unreadable (%s); parsing the list files again", path, err)
        return None
    return (arrays, meta) if meta.get("format") == INDEX_FORMAT else None


def write_arrays(key: IndexKey | None, cache_dir: str | Path | None, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Store the arrays under ``key`` when it is settled; a cache that cannot be written is skipped."""
    if key is None or not key.settled:
        return
    folder = _folder(cache_dir)
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps({"format": INDEX_FORMAT, **meta})), **arrays)
    try:
        replace_file(folder / f"{key.digest}.npz", buffer.getvalue())
    except OSError as err:  # read-only or full: the next command parses again
        logger.debug("Could not keep the parsed index in %s: %s", folder, err)
        return
    _prune(folder)


def _prune(folder: Path) -> None:
    """Keep the KEEP most recently written indexes (older ones are of list files since changed)."""
    try:
        stored = sorted(folder.glob("*.npz"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for path in stored[KEEP:]:
            path.unlink(missing_ok=True)
    except OSError:
        pass
