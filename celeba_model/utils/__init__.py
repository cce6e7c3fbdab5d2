"""Plumbing every layer may use: atomic file writes, the run-folder lock, devices, torchrun.

- ``fileio``: writes that leave the old file or the new one, never half (``FileWriteError`` on a full disk);
- ``run_lock``: a run folder's lock while one process writes it;
- ``jobs``: a command run in the background for a folder, its PID and exit status recorded in that folder;
- ``devices``: choosing the device, evaluation batch size and autocast;
- ``distributed``: torchrun process groups, sharded prediction, rank-0 work.
"""

from .fileio import FileWriteError, atomic_write_bytes, atomic_write_files, atomic_write_text
from .run_lock import RunLockedError

__all__ = ["FileWriteError", "RunLockedError", "atomic_write_bytes", "atomic_write_files", "atomic_write_text"]
