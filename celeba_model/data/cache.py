"""Decode, crop and resize images once into a memory-mapped uint8 array on disk, as commands need them.

Training and evaluation read batches from this array instead of decoding JPEGs every epoch. One cache
folder serves one image list (every image of the data roots, in index order) and one set of pixel
settings; it is filled on demand: a command decodes only the rows it uses that are not there yet
(``evaluate --split test`` decodes the test split, a later training run adds the train and val rows).
Each filled row records its file's size and modification time, and a row whose file changed since is
decoded again, so nothing stale is ever read. The file list itself is part of the key, hashed without
touching the files: only the rows a command uses are checked, one ``stat`` each.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import io
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
import time
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
from ..utils.fileio import DISK_FULL_ERRNOS, replace_file
from ..utils.run_lock import pid_alive
from ..workspace import default_cache_dir
from .image_paths import joined_paths, path_strings, stat_stamps
from .images import ImageReadError, open_image
from .transforms import PreprocessConfig, image_to_array

CACHE_FORMAT = 2
CHUNK = 256
ROWS_FILE = "rows.npz"  # per row: empty / decoded / unreadable, and the file's size and time when decoded
FILL_LOCK = ".fill.lock"
SAVE_EVERY_S = 20.0  # a long fill records its progress this often, so a killed one keeps what it decoded
EMPTY, DECODED, UNREADABLE = 0, 1, 2

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

logger = logging.getLogger(__name__)

__all__ = ["CacheDiskFullError", "CacheWarning", "ImageCache", "cache_key", "default_cache_dir", "load_or_build_cache"]


class CacheWarning(UserWarning):
    """Images that could not be decoded while building a cache."""


class CacheDiskFullError(CelebAModelError, OSError):
    """The cache folder's disk has no room for the cache being built; nothing partial is left."""


@dataclass
class ImageCache:
    """Preprocessed images: ``images[i]`` is an HxWxC uint8 array; ``valid[i]`` is True for a row that was
    asked for and is decoded (False for an unreadable image, and for rows the call did not ask for)."""

    images: np.ndarray  # memory-mapped (N, H, W, C) uint8
    valid: np.ndarray  # (N,) bool
    errors: dict[int, str]  # row -> reason, for the unreadable images among the rows asked for
    folder: Path
    built: bool  # True when this call decoded images, False when all it needed was there
    decoded: int = 0  # images this call decoded
    seconds: float = 0.0  # time this call spent decoding them


def cache_key(paths: Sequence[Path], spec: PreprocessConfig) -> str:
    """Hash of the file list and pixel settings; any change to either gives another cache folder.

    The files are not read: a changed file is found by its row's recorded size and time when used.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": CACHE_FORMAT, **spec.cache_fields()}, sort_keys=True).encode())
    digest.update(joined_paths(paths).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:24]


@dataclass
class _Rows:
    """What a cache folder holds, row by row (``ROWS_FILE``)."""

    state: np.ndarray  # (N,) uint8: EMPTY, DECODED, UNREADABLE
    size: np.ndarray  # (N,) int64: the file's size when decoded (-1: could not be read)
    mtime: np.ndarray  # (N,) int64: its modification time in ns
    errors: dict[int, str]

    @classmethod
    def empty(cls, count: int) -> _Rows:
        return cls(np.zeros(count, np.uint8), np.full(count, -1, np.int64), np.full(count, -1, np.int64), {})

    @classmethod
    def read(cls, folder: Path, count: int) -> _Rows:
        with np.load(folder / ROWS_FILE, allow_pickle=False) as data:
            rows = cls(data["state"], data["size"], data["mtime"],
                       {int(r): str(t) for r, t in zip(data["error_rows"], data["error_text"])})
        if rows.state.shape != (count,) or rows.size.shape != (count,) or rows.mtime.shape != (count,):
            raise ValueError(f"{ROWS_FILE} describes {rows.state.shape} rows, not {count}")
        return rows

    def write(self, folder: Path) -> None:
        buffer = io.BytesIO()
        error_rows = np.array(sorted(self.errors), dtype=np.int64)
        np.savez(buffer, state=self.state, size=self.size, mtime=self.mtime, error_rows=error_rows,
                 error_text=np.array([self.errors[r] for r in error_rows.tolist()], dtype=str))
        replace_file(folder / ROWS_FILE, buffer.getvalue())  # readers see the old table or the new one

    def stale(self, rows: np.ndarray, size: np.ndarray, mtime: np.ndarray) -> np.ndarray:
        """The ``rows`` to decode: never decoded, or their file changed since (size and time are the files' now)."""
        changed = (self.state[rows] == EMPTY) | (self.size[rows] != size) | (self.mtime[rows] != mtime)
        return rows[changed]


def load_or_build_cache(
    paths: Sequence[Path],
    spec: PreprocessConfig,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    rows: np.ndarray | Sequence[int] | None = None,
) -> ImageCache:
    """Return the cache for these images and settings, first decoding the ``rows`` (default: all) that it
    lacks or whose file changed since.

    ``on_progress(done, total)`` is called as chunks of images are decoded (for a dashboard).
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = cache_dir / cache_key(paths, spec)
    wanted = np.arange(len(paths)) if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
    if len(wanted) and (wanted[0] < 0 or wanted[-1] >= len(paths)):
        raise IndexError(f"rows outside the {len(paths):,} images of the cache")
    created = not (folder / "meta.json").is_file() and _create(folder, len(paths), spec)
    try:
        table = _open(folder, len(paths), spec)
    except (OSError, ValueError, KeyError) as err:
        # A damaged cache is only a cache: rebuild it rather than fail the run.
        warnings.warn(f"Cache {folder} is unreadable ({err}); rebuilding it", CacheWarning, stacklevel=2)
        shutil.rmtree(folder, ignore_errors=True)
        created = _create(folder, len(paths), spec)
        table = _open(folder, len(paths), spec)
    wanted_paths = paths[wanted] if _takes_rows(paths) else [paths[i] for i in wanted.tolist()]
    size, mtime = stat_stamps(wanted_paths)
    position = np.full(len(paths), -1, dtype=np.int64)  # row -> its place in wanted
    position[wanted] = np.arange(len(wanted))
    decoded, seconds, new_errors = 0, 0.0, {}
    if len(table.stale(wanted, size, mtime)):
        started = time.perf_counter()
        try:
            with _fill_lock(folder):
                table = _Rows.read(folder, len(paths))  # another process may have filled them meanwhile
                stale = table.stale(wanted, size, mtime)
                if len(stale):
                    logger.debug("Decoding %d images into the image cache %s", len(stale), folder)
                    new_errors = _fill(folder, paths, stale, size[position[stale]], mtime[position[stale]], spec,
                                       table, workers, progress, on_progress)
                    decoded = len(stale)
        except BaseException:
            if created and not (table.state != EMPTY).any():
                shutil.rmtree(folder, ignore_errors=True)  # nothing of this new cache was filled: leave no trace
            raise
        seconds = time.perf_counter() - started
    else:
        logger.debug("Reusing the image cache %s", folder)
    if new_errors:
        listed = "; ".join(list(new_errors.values())[:5])
        more = f" and {len(new_errors) - 5} more" if len(new_errors) > 5 else ""
        warnings.warn(f"{len(new_errors)} of {decoded} images could not be read and are left out: {listed}{more}",
                      CacheWarning, stacklevel=2)
    valid = np.zeros(len(paths), dtype=bool)
    valid[wanted] = table.state[wanted] == DECODED
    errors = {row: text for row, text in table.errors.items() if position[row] >= 0}
    images = np.load(folder / "images.npy", mmap_mode="r")
    return ImageCache(images=images, valid=valid, errors=errors, folder=folder, built=decoded > 0, decoded=decoded,
                      seconds=seconds)


def _takes_rows(paths: Sequence[Path]) -> bool:
    """Whether ``paths[array_of_rows]`` selects rows (compact paths, numpy arrays), as a list does not."""
    return hasattr(paths, "stat_stamps") or isinstance(paths, np.ndarray)


def _open(folder: Path, count: int, spec: PreprocessConfig) -> _Rows:
    """Check the folder's meta and array against what is asked for; its row table."""
    meta = json.loads((folder / "meta.json").read_text())
    size, channels = spec.image_size, spec.channels
    images = np.load(folder / "images.npy", mmap_mode="r")
    if meta.get("format") != CACHE_FORMAT or meta["count"] != count:
        raise ValueError(f"format {meta.get('format')} of {meta['count']} images, not {CACHE_FORMAT} of {count}")
    if images.shape != (count, size, size, channels):
        raise ValueError(f"shape {images.shape} does not match {count} images of {size}x{size}x{channels}")
    return _Rows.read(folder, count)


@contextmanager
def _fill_lock(folder: Path) -> Iterator[None]:
    """One process fills a cache folder at a time; the kernel releases the lock when its process dies."""
    fd = os.open(folder / FILL_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("Waiting for another process that is filling the image cache %s", folder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


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


def _preallocate(array_path: Path, rows: np.ndarray, cache_dir: Path) -> None:
    """Reserve the rows about to be written now: a sparse file on a full disk would kill a worker with
    SIGBUS when it first writes to a page, long after the run started. One call per run of adjacent rows."""
    if not hasattr(os, "posix_fallocate") or not len(rows):
        return
    images = np.load(array_path, mmap_mode="r")
    row_bytes, offset = math.prod(images.shape[1:]), images.offset
    del images
    breaks = np.flatnonzero(np.diff(rows) != 1)
    starts, ends = rows[np.r_[0, breaks + 1]], rows[np.r_[breaks, len(rows) - 1]]
    fd = os.open(array_path, os.O_RDWR)
    try:
        for first, last in zip(starts.tolist(), ends.tolist()):
            os.posix_fallocate(fd, offset + first * row_bytes, (last - first + 1) * row_bytes)
    except OSError as err:
        if err.errno in DISK_FULL_ERRNOS:
            raise _disk_full(len(rows) * row_bytes, cache_dir) from err
        # EOPNOTSUPP/EINVAL: a file system that cannot reserve space; the build goes on without.
    finally:
        os.close(fd)


def _create(folder: Path, count: int, spec: PreprocessConfig) -> bool:
    """Make the empty cache folder (a sparse array and a row table of empty rows); True if this call made it,
    False if another process did first."""
    cache_dir = folder.parent
    shape = (count, spec.image_size, spec.image_size, spec.channels)
    with _disk_full_as(2**20, cache_dir):
        cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(cache_dir)
    # Made in a private folder and renamed into place: a killed start leaves no half-made cache, and the
    # PID in the name lets a later start remove the folder once that process is gone.
    tmp = cache_dir / f".{folder.name}.{_host_tag()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with _disk_full_as(2**20, cache_dir):
            tmp.mkdir()
            images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=shape)
            del images  # sparse: rows take disk space as they are decoded
            _Rows.empty(count).write(tmp)
            meta = {"format": CACHE_FORMAT, "count": count, "spec": spec.cache_fields(),
                    "disk_bytes_when_full": math.prod(shape)}
            (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, folder)
        except OSError:
            # Another process made the same cache first; theirs is as good as ours.
            if not (folder / "meta.json").is_file():
                raise
            return False
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fill(
    folder: Path,
    paths: Sequence[Path],
    rows: np.ndarray,
    size: np.ndarray,
    mtime: np.ndarray,
    spec: PreprocessConfig,
    table: _Rows,
    workers: int | None,
    progress: bool,
    on_progress: Callable[[int, int], None] | None,
) -> dict[int, str]:
    """Decode ``rows`` into the folder's array and record them in its row table (``size`` and ``mtime``: their
    files' stamps, taken before decoding); returns row -> read error for those that could not be read."""
    array_path = folder / "images.npy"
    _preallocate(array_path, rows, folder.parent)
    strings = path_strings(paths[rows] if _takes_rows(paths) else [paths[i] for i in rows.tolist()])
    chunks = [(start, min(start + CHUNK, len(rows))) for start in range(0, len(rows), CHUNK)]
    jobs = [(str(array_path), strings[a:b], rows[a:b].tolist(), spec) for a, b in chunks]
    errors: dict[int, str] = {}
    recorded, saved = 0, time.monotonic()

    def record(done: int, chunk_errors: dict[int, str]) -> None:
        """Rows ``rows[recorded:done]`` are on disk: mark them, and save the table now and then."""
        nonlocal recorded, saved
        part = slice(recorded, done)
        table.state[rows[part]] = DECODED
        table.size[rows[part]], table.mtime[rows[part]] = size[part], mtime[part]
        for row in rows[part].tolist():
            table.errors.pop(row, None)
        for row, text in chunk_errors.items():
            table.state[row] = UNREADABLE
            table.errors[row] = text
        errors.update(chunk_errors)
        recorded = done
        if done == len(rows) or time.monotonic() - saved > SAVE_EVERY_S:
            with _disk_full_as(table.state.nbytes * 17, folder.parent):
                table.write(folder)
            saved = time.monotonic()

    _decode_all(jobs, len(rows), workers, progress, on_progress, record)
    return errors


def _decode_all(
    jobs: list[tuple[str, list[str], list[int], PreprocessConfig]],
    total: int,
    workers: int | None,
    progress: bool,
    on_progress: Callable[[int, int], None] | None,
    record: Callable[[int, dict[int, str]], None],
) -> None:
    """Decode the chunks into the array, in worker processes; ``record(done, errors)`` after each chunk, in order."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    done = 0
    with tqdm(total=total, desc="Caching images", unit="img", disable=not progress, leave=False) as bar:

        def collect(results: Iterable[tuple[dict[int, str], int]]) -> None:
            nonlocal done
            for chunk_errors, n in results:
                done += n
                record(done, chunk_errors)
                bar.update(n)
                if on_progress is not None:
                    on_progress(done, total)

        if workers == 1:
            collect(map(_decode_chunk, jobs))
        else:
            context = multiprocessing.get_context()
            # A forkserver's children are its own, not ours: only fork and spawn make us the parent.
            parent = os.getpid() if context.get_start_method() in ("fork", "spawn") else None
            with ProcessPoolExecutor(workers, context, initializer=_init_worker, initargs=(parent,)) as pool:
                collect(pool.map(_decode_chunk, jobs))


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


def _decode_chunk(job: tuple[str, list[str], list[int], PreprocessConfig]) -> tuple[dict[int, str], int]:
    """Worker: decode one chunk of images straight into their rows of the shared memory-mapped array."""
    _exit_if_orphaned()  # where prctl is not available, stop at the next chunk at the latest
    array_path, chunk_paths, chunk_rows, spec = job
    images = np.load(array_path, mmap_mode="r+")
    errors: dict[int, str] = {}
    for row, path in zip(chunk_rows, chunk_paths):
        try:
            images[row] = image_to_array(open_image(path), spec)
        except ImageReadError as err:
            errors[row] = str(err)
    images.flush()  # on disk before the row table says so
    return errors, len(chunk_paths)
