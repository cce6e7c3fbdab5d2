"""Decode, crop and resize every image once into a memory-mapped uint8 array on disk.

Training and evaluation read batches from this array instead of decoding JPEGs every epoch.
The cache is keyed by the exact file list (path, size, modification time) and the pixel
settings, so changing either builds a new one and nothing stale is ever read.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import signal
import socket
import sys
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import CelebAModelError
from ..utils.fileio import DISK_FULL_ERRNOS
from ..utils.run_lock import pid_alive
from .images import ImageReadError, open_image
from .transforms import PreprocessConfig, image_to_array

CACHE_FORMAT = 1
CHUNK = 256


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

logger = logging.getLogger(__name__)


class CacheWarning(UserWarning):
    """Images that could not be decoded while building a cache."""


class CacheDiskFullError(CelebAModelError, OSError):
    """The cache folder's disk has no room for the cache being built; nothing partial is left."""


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


def cache_key(paths: Sequence[Path], spec: PreprocessConfig) -> str:
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
    spec: PreprocessConfig,
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
            cache = _open(folder, len(paths), spec, built=False)
            logger.debug("Reusing the image cache %s", folder)
            return cache
        except (OSError, ValueError, KeyError) as err:
            # A damaged cache is only a cache: rebuild it rather than fail the run.
            warnings.warn(f"Cache {folder} is unreadable ({err}); rebuilding it", CacheWarning, stacklevel=2)
            shutil.rmtree(folder, ignore_errors=True)
    logger.debug("Building the image cache %s (%d images)", folder, len(paths))
    _build(folder, paths, spec, workers, progress, on_progress)
    return _open(folder, len(paths), spec, built=True)


def _open(folder: Path, count: int, spec: PreprocessConfig, built: bool) -> ImageCache:
    meta = json.loads((folder / "meta.json").read_text())
    size, channels = spec.image_size, spec.channels
    images = np.load(folder / "images.npy", mmap_mode="r")
    if images.shape != (count, size, size, channels) or meta["count"] != count:
        raise ValueError(f"shape {images.shape} does not match {count} images of {size}x{size}x{channels}")
    errors = {int(k): v for k, v in meta["errors"].items()}
    valid = np.ones(count, dtype=bool)
    valid[list(errors)] = False
    return ImageCache(images=images, valid=valid, errors=errors, folder=folder, built=built)


def _host_tag() -> str:
    """A short tag of this machine: a PID means something only on the host that wrote it (a cache
    folder in an NFS home directory is shared by several machines)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


# .<cache key>.<host tag>.<pid>.<random>.tmp: the folder a build writes before renaming it into place.
_TMP_NAME = re.compile(r"^\.[0-9a-f]+\.(?P<host>[0-9a-f]{8})\.(?P<pid>\d+)\.[0-9a-f]+\.tmp$")


def _remove_stale_builds(cache_dir: Path) -> None:
    """Delete the temporary folders of builds on this machine whose process is gone (killed builds).

    A live process's folder is left alone: it may be a build running beside this one.
    """
    host = _host_tag()
    try:
        entries = list(os.scandir(cache_dir))
    except OSError:
        return
    for entry in entries:
        match = _TMP_NAME.match(entry.name)
        if match and match["host"] == host and not pid_alive(int(match["pid"])):
            shutil.rmtree(entry.path, ignore_errors=True)


def _disk_full(need_bytes: int, where: Path) -> CacheDiskFullError:
    try:
        free = f", {shutil.disk_usage(where).free // 2**20:,} MB free"
    except OSError:  # the folder itself could not be made
        free = ""
    return CacheDiskFullError(
        f"disk full: need {max(1, math.ceil(need_bytes / 2**20)):,} MB in {where} for the image cache{free} "
        "(free some space or choose another --cache-dir)"
    )


@contextmanager
def _disk_full_as(need_bytes: int, cache_dir: Path) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT while writing the cache into the one-line CacheDiskFullError."""
    try:
        yield
    except OSError as err:
        if err.errno in DISK_FULL_ERRNOS:
            raise _disk_full(need_bytes, cache_dir) from err
        raise


def _preallocate(array_path: Path, cache_dir: Path) -> None:
    """Reserve the whole memory-mapped file now: a sparse file on a full disk would kill a worker
    with SIGBUS when it first writes to a page, long after the run started."""
    if not hasattr(os, "posix_fallocate"):
        return
    size = array_path.stat().st_size
    fd = os.open(array_path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as err:
        if err.errno in DISK_FULL_ERRNOS:
            raise _disk_full(size, cache_dir) from err
        # EOPNOTSUPP/EINVAL: a file system that cannot reserve space; the build goes on without.
    finally:
        os.close(fd)


def _build(
    folder: Path,
    paths: Sequence[Path],
    spec: PreprocessConfig,
    workers: int | None,
    progress: bool,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    cache_dir = folder.parent
    need = len(paths) * spec.image_size**2 * spec.channels
    with _disk_full_as(need, cache_dir):
        cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(cache_dir)
    # Build in a private folder and rename it into place: a killed build leaves no partial cache, and
    # the PID in the name lets a later build remove the folder once that process is gone.
    tmp = cache_dir / f".{folder.name}.{_host_tag()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    with _disk_full_as(need, cache_dir):
        tmp.mkdir()
    try:
        errors = _fill(tmp, folder, paths, spec, workers, progress, on_progress)
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


def _fill(
    tmp: Path,
    folder: Path,
    paths: Sequence[Path],
    spec: PreprocessConfig,
    workers: int | None,
    progress: bool,
    on_progress: Callable[[int, int], None] | None,
) -> dict[int, str]:
    """Decode every image into ``tmp``, write its meta and rename it to ``folder``; returns the read errors."""
    cache_dir = folder.parent
    array_path = tmp / "images.npy"
    shape = (len(paths), spec.image_size, spec.image_size, spec.channels)
    with _disk_full_as(math.prod(shape), cache_dir):
        images = np.lib.format.open_memmap(array_path, mode="w+", dtype=np.uint8, shape=shape)
        del images  # workers open it themselves; only offsets travel between processes
    _preallocate(array_path, cache_dir)
    errors = _decode_all(array_path, paths, spec, workers, progress, on_progress)
    meta = {
        "format": CACHE_FORMAT,
        "count": len(paths),
        "spec": spec.cache_fields(),
        "errors": {str(k): v for k, v in sorted(errors.items())},
        "files": [str(p) for p in paths],
    }
    text = json.dumps(meta)
    with _disk_full_as(len(text.encode()), cache_dir):
        (tmp / "meta.json").write_text(text)
    try:
        os.replace(tmp, folder)
    except OSError:
        # Another process finished the same cache first; theirs is as good as ours.
        if not (folder / "meta.json").is_file():
            raise
    return errors


def _decode_all(
    array_path: Path,
    paths: Sequence[Path],
    spec: PreprocessConfig,
    workers: int | None,
    progress: bool,
    on_progress: Callable[[int, int], None] | None,
) -> dict[int, str]:
    """Decode the images into the array in chunks, in worker processes; returns row -> read error."""
    chunks = [(start, min(start + CHUNK, len(paths))) for start in range(0, len(paths), CHUNK)]
    jobs = [(str(array_path), [str(p) for p in paths[a:b]], a, spec) for a, b in chunks]
    workers = max(1, min(workers or os.cpu_count() or 1, len(chunks)))
    errors: dict[int, str] = {}
    done = 0
    with tqdm(total=len(paths), desc="Caching images", unit="img", disable=not progress, leave=False) as bar:

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
            context = multiprocessing.get_context()
            # A forkserver's children are its own, not ours: only fork and spawn make us the parent.
            parent = os.getpid() if context.get_start_method() in ("fork", "spawn") else None
            with ProcessPoolExecutor(workers, context, initializer=_init_worker, initargs=(parent,)) as pool:
                collect(pool.map(_decode_chunk, jobs))
    return errors


_parent_pid: int | None = None  # in a cache worker: the process that started it


def _init_worker(parent_pid: int | None) -> None:
    """Cache worker start: die with the parent (``parent_pid``, None when a forkserver started us).

    A killed parent otherwise leaves its workers blocked forever on a task queue that their
    siblings keep open. PDEATHSIG fires when the thread that forked us ends: that is the thread
    running the build, which waits for the pool to finish (under a forkserver it is the server,
    which exits when the parent dies).
    """
    global _parent_pid
    _parent_pid = parent_pid
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl: the parent check below and in each chunk still applies
    _exit_if_orphaned()  # the parent may have died before prctl took effect


def _exit_if_orphaned() -> None:
    if _parent_pid is not None and os.getppid() != _parent_pid:
        os._exit(1)


def _decode_chunk(job: tuple[str, list[str], int, PreprocessConfig]) -> tuple[dict[int, str], int]:
    """Worker: decode one chunk of images straight into the shared memory-mapped array."""
    _exit_if_orphaned()  # where prctl is not available, stop at the next chunk at the latest
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
