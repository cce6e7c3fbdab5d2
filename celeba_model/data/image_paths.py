"""Image paths held compactly: one folder per data root, and per image a folder number and a file name.

At full CelebA size a list of 202,599 ``Path`` objects takes about 100 MB of heap; these arrays take
about 8 MB, and a ``Path`` is made only for the rows that are read.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np


class ImagePaths(Sequence[Path]):
    """A sequence of image paths: ``paths[i]`` is a ``Path``; a slice, or an array or list of rows, is
    another ``ImagePaths`` of those rows."""

    def __init__(self, folders: Sequence[str | Path], folder_of: np.ndarray, names: np.ndarray) -> None:
        # Absolute, normalized folders: every path string and cache key is the same from any current folder.
        self.folders = [os.path.abspath(folder) for folder in folders]
        self.folder_of = np.asarray(folder_of, dtype=np.int16)
        self.names = np.asarray(names, dtype=str)
        if self.folder_of.shape != self.names.shape:
            raise ValueError(f"{self.folder_of.shape} folder numbers for {self.names.shape} names")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, key):  # noqa: ANN001, ANN204 - int -> Path, anything else -> ImagePaths
        if isinstance(key, slice) or not _is_integer(key):
            rows = np.arange(len(self))[key] if isinstance(key, slice) else np.asarray(key)
            if rows.dtype == bool:
                rows = np.flatnonzero(rows)
            return ImagePaths(self.folders, self.folder_of[rows], self.names[rows])
        row = operator.index(key)
        return Path(self.folders[self.folder_of[row]], str(self.names[row]))

    def __iter__(self) -> Iterator[Path]:
        for folder, name in zip(self.folder_of.tolist(), self.names.tolist()):
            yield Path(self.folders[folder], name)

    def __repr__(self) -> str:
        return f"ImagePaths({len(self):,} images in {len(self.folders)} folder(s))"

    def strings(self) -> list[str]:
        """Every path as an absolute string, as ``os.path.abspath`` writes it."""
        folders = self.folders
        return [os.path.join(folders[f], name) for f, name in zip(self.folder_of.tolist(), self.names.tolist())]

    def joined(self) -> str:
        """Every path as ``strings`` writes it, one per line: "\\n".join(self.strings()), built a folder at a time."""
        if not len(self):
            return ""
        names = self.names.tolist()
        # Runs of rows in one folder (usually a single run per data root).
        starts = np.flatnonzero(np.diff(self.folder_of, prepend=-1) != 0).tolist() + [len(self)]
        parts = []
        for start, end in zip(starts[:-1], starts[1:]):
            prefix = os.path.join(self.folders[self.folder_of[start]], "")
            parts.append(prefix + ("\n" + prefix).join(names[start:end]))
        return "\n".join(parts)

    def resolved_strings(self) -> list[str]:
        """Every path with its folder's symlinks resolved (``Path.resolve`` of the folder, once per folder)."""
        folders = [str(Path(folder).resolve()) for folder in self.folders]
        return [os.path.join(folders[f], name) for f, name in zip(self.folder_of.tolist(), self.names.tolist())]

    def stat_stamps(self) -> tuple[np.ndarray, np.ndarray]:
        """(size, modification time in ns) of every file, -1 where it cannot be read. One ``stat`` per file,
        relative to an open folder, which spares the kernel walking the folder's path each time."""
        return stat_stamps_by_folder(self.folders, self.folder_of, self.names)


def _is_integer(key: object) -> bool:
    try:
        operator.index(key)
    except TypeError:
        return False
    return True


def stat_stamps_by_folder(folders: Sequence[str], folder_of: np.ndarray, names: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(size, mtime_ns) per file ``folders[folder_of[i]]/names[i]``; -1 for a file that is gone or unreadable."""
    size = np.full(len(names), -1, dtype=np.int64)
    mtime = np.full(len(names), -1, dtype=np.int64)
    for number, folder in enumerate(folders):
        rows = np.flatnonzero(folder_of == number)
        if not len(rows):
            continue
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue  # the folder is gone: every file in it reads as missing
        try:
            for row, name in zip(rows.tolist(), names[rows].tolist()):
                try:
                    stat = os.stat(name, dir_fd=fd)
                except OSError:
                    continue
                size[row], mtime[row] = stat.st_size, stat.st_mtime_ns
        finally:
            os.close(fd)
    return size, mtime


def stat_stamps(paths: Sequence[str | Path]) -> tuple[np.ndarray, np.ndarray]:
    """(size, mtime_ns) of each path, -1 where it cannot be read: compact paths by folder, others one by one."""
    if isinstance(paths, ImagePaths):
        return paths.stat_stamps()
    size = np.full(len(paths), -1, dtype=np.int64)
    mtime = np.full(len(paths), -1, dtype=np.int64)
    for row, path in enumerate(paths):
        try:
            stat = os.stat(path)
        except OSError:
            continue  # gone or a broken link since it was listed: decoding fails and it is left out
        size[row], mtime[row] = stat.st_size, stat.st_mtime_ns
    return size, mtime


def joined_paths(paths: Sequence[str | Path]) -> str:
    """Absolute path strings one per line, the same for a compact ``ImagePaths`` and a list of the same paths."""
    if isinstance(paths, ImagePaths):
        return paths.joined()
    return "\n".join(os.path.abspath(path) for path in paths)


def path_strings(paths: Sequence[str | Path]) -> list[str]:
    """Absolute path strings, the same for a compact ``ImagePaths`` and a list of the same paths."""
    if isinstance(paths, ImagePaths):
        return paths.strings()
    return [os.path.abspath(path) for path in paths]
