"""Decode, crop and resize every image once into a memory-mapped uint8 array on disk.

Training and evaluation read batches from this array instead of decoding JPEGs every epoch.
The cache is keyed by the exact file list (path, size, modification time) and the pixel
settings, so changing either builds a new one and nothing stale is ever read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .images import ImageReadError, open_image
from .preprocess import PreprocessSpec, image_to_array

CACHE_FORMAT = 1
CHUNK = 256


class CacheWarning(UserWarning):
    """Images that could not be decoded while building a cache."""


def default_cache_dir() -> Path:
    """``$CELEBA_MODEL_CACHE``, else the user's cache folder (never inside a dataset root)."""
    env = os.environ.get("CELEBA_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "celeba_model"


@dataclass
class ImageCache:
    """Preprocessed images: ``images[i]`` is an HxWxC uint8 array; ``valid[i]`` is False if unreadable."""

    images: np.ndarray  # memory-mapped (N, H, W, C) uint8
    valid: np.ndarray  # (N,) bool
    errors: dict[int, str]  # row -> reason, for the unreadable images
    folder: Path
    built: bool  # True when this call built it, False when it was reused


def cache_key(paths: Sequence[Path], spec: PreprocessSpec) -> str:
    """Hash of the file list and pixel settings; any change to either gives a new key."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": CACHE_FORMAT, **spec.cache_fields()}, sort_keys=True).encode())
    for path in paths:
        try:
            stat = os.stat(path)
            size, mtime = stat.st_size, stat.st_mtime_ns
        except OSError:
            # Gone or a broken link since the folder was scanned: decoding it fails and it is left out.
            size = mtime = -1
        digest.update(f"{os.path.abspath(path)}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()[:24]


def load_or_build_cache(
    paths: Sequence[Path],
    spec: PreprocessSpec,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImageCache:
    """Return the cache for these images and settings, building it first if needed.

    ``on_progress(done, total)`` is called as chunks of images are decoded (for a dashboard).
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = cache_key(paths, spec)
    folder = cache_dir / key
    if (folder / "meta.json").is_file():
        try:
            return _open(folder, len(paths), spec, built=False)
        except (OSError, ValueError, KeyError) as err:
            # A damaged cache is only a cache: rebuild it rather than fail the run.
            warnings.warn(f"Cache {folder} is unreadable ({err}); rebuilding it", CacheWarning, stacklevel=2)
            shutil.rmtree(folder, ignore_errors=True)
    _build(folder, paths, spec, workers, progress, on_progress)
    return _open(folder, len(paths), spec, built=True)


def _open(folder: Path, count: int, spec: PreprocessSpec, built: bool) -> ImageCache:
    meta = json.loads((folder / "meta.json").read_text())
    size, channels = spec.image_size, spec.channels
    images = np.load(folder / "images.npy", mmap_mode="r")
    if images.shape != (count, size, size, channels) or meta["count"] != count:
        raise ValueError(f"shape {images.shape} does not match {count} images of {size}x{size}x{channels}")
    errors = {int(k): v for k, v in meta["errors"].items()}
    valid = np.ones(count, dtype=bool)
    valid[list(errors)] = False
    return ImageCache(images=images, valid=valid, errors=errors, folder=folder, built=built)


def _build(
    folder: Path,
    paths: Sequence[Path],
    spec: PreprocessSpec,
    workers: int | None,
    progress: bool,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Build in a private folder and rename it into place: a killed build leaves no partial cache.
    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        size, channels = spec.image_size, spec.channels
        array_path = tmp / "images.npy"
        images = np.lib.format.open_memmap(array_path, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, channels))
        del images  # workers open it themselves; only offsets travel between processes
        chunks = [(start, min(start + CHUNK, len(paths))) for start in range(0, len(paths), CHUNK)]
        jobs = [(str(array_path), [str(p) for p in paths[a:b]], a, spec) for a, b in chunks]
        workers = max(1, min(workers or os.cpu_count() or 1, len(chunks)))
        errors: dict[int, str] = {}
        bar = tqdm(total=len(paths), desc="Caching images", unit="img", disable=not progress, leave=False)
        done = 0

        def collect(results: Iterable[tuple[dict[int, str], int]]) -> None:
            nonlocal done
            for chunk_errors, n in results:
                errors.update(chunk_errors)
                done += n
                bar.update(n)
                if on_progress is not None:
                    on_progress(done, len(paths))

        if workers == 1:
            collect(map(_decode_chunk, jobs))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                collect(pool.map(_decode_chunk, jobs))
        bar.close()
        meta = {
            "format": CACHE_FORMAT,
            "count": len(paths),
            "spec": spec.cache_fields(),
            "errors": {str(k): v for k, v in sorted(errors.items())},
            "files": [str(p) for p in paths],
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, folder)
        except OSError:
            # Another process finished the same cache first; theirs is as good as ours.
            if not (folder / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if errors:
        listed = "; ".join(list(errors.values())[:5])
        more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
        warnings.warn(
            f"{len(errors)} of {len(paths)} images could not be read and are left out: {listed}{more}",
            CacheWarning,
            stacklevel=3,
        )


def _decode_chunk(job: tuple[str, list[str], int, PreprocessSpec]) -> tuple[dict[int, str], int]:
    """Worker: decode one chunk of images straight into the shared memory-mapped array."""
    array_path, chunk_paths, start, spec = job
    images = np.load(array_path, mmap_mode="r+")
    errors: dict[int, str] = {}
    for offset, path in enumerate(chunk_paths):
        try:
            images[start + offset] = image_to_array(open_image(path), spec)
        except ImageReadError as err:
            errors[start + offset] = str(err)
    images.flush()
    return errors, len(chunk_paths)
