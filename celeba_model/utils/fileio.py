"""Atomic file writes: readers see the old file or the new one, never half of one.

A write that fails (a full disk, a read-only folder) raises ``FileWriteError`` with one clear line,
and the previous file is left whole: data goes to a temporary file beside the target, which is
renamed over it only once complete.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import CelebAModelError

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class FileWriteError(CelebAModelError, OSError):
    """A file could not be written (disk full, no permission); what was there before is unchanged."""


def write_error(path: str | Path, err: OSError) -> FileWriteError:
    """A one-line error for an OSError met while writing ``path``."""
    if err.errno in DISK_FULL_ERRNOS:
        return FileWriteError(f"disk full: could not write {path} (free some space and run again; "
                              "files written before are unchanged)")
    return FileWriteError(f"could not write {path}: {err.strerror or err}")


def _write_temporary(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new temporary file beside ``path`` and flush it to disk; returns its path."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise write_error(path, err) from err
    try:
        # mkstemp creates 0600 files; give the usual permissions the umask allows.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise write_error(path, err) from err
        raise
    return Path(tmp)


def atomic_write_files(files: Sequence[tuple[str | Path, bytes]]) -> None:
    """Write several files so that none is replaced unless all of them were written completely.

    Every temporary file is written first; only then are they renamed into place, in order.
    """
    written: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            written.append((Path(path), _write_temporary(Path(path), data)))
        for path, tmp in written:
            try:
                os.replace(tmp, path)
            except OSError as err:
                raise write_error(path, err) from err
    finally:
        for _, tmp in written:
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename: readers see the old or the new file, never half."""
    atomic_write_files([(path, data)])


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def replace_file(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename, without waiting for the disk: readers
    see the old file or the new one, but a crash may lose the new one. For caches, which can be rebuilt."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
