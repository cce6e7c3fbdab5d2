"""A lock on a run folder while one process writes it, so two training runs never mix their files.

The lock is a file ``RUN/.lock`` holding the owner's PID, host and process start time, created
complete in one atomic step (a hard link that fails when the file exists). A second start finds it and refuses; a lock left by a
process that no longer runs (a killed run) is reported and taken over, so ``--resume`` after a kill
just works.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from ..errors import CelebAModelError
from .fileio import write_error

LOCK_FILE = ".lock"

logger = logging.getLogger(__name__)


class RunLockedError(CelebAModelError, RuntimeError):
    """The run folder is being written by another live process."""


def _start_ticks(pid: int) -> str | None:
    """When a process started (clock ticks since boot, from /proc), to tell a reused PID from the
    original owner; None where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
    return stat.rsplit(")", 1)[1].split()[19]


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _alive(owner: dict) -> bool:
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0 or not pid_alive(pid):
        return False
    ticks = owner.get("start_ticks")
    return ticks is None or _start_ticks(pid) in (None, ticks)


def _describe(owner: dict) -> str:
    return f"process {owner.get('pid')} on {owner.get('host')} (since {owner.get('started')})"


def _read_owner(path: Path) -> dict:
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _try_create(path: Path, owner: dict) -> bool:
    """Create the lock file with its content in one step (a hard link of a written temporary file
    fails if the lock exists), so another starter never reads a lock without an owner."""
    tmp = path.with_name(f"{LOCK_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(json.dumps(owner))
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as err:
        raise write_error(path, err) from err
    finally:
        tmp.unlink(missing_ok=True)
    return True


def check_unlocked(folder: Path) -> None:
    """Raise RunLockedError when another live process holds ``folder``'s lock (a stale lock, or this
    process's own, is no obstacle)."""
    owner = _read_owner(Path(folder) / LOCK_FILE)
    here = owner.get("host") == socket.gethostname()
    if owner and not (here and owner.get("pid") == os.getpid()) and (not here or _alive(owner)):
        raise RunLockedError(f"{folder} is being written by {_describe(owner)}; wait for it to finish or stop it, "
                             "or choose another --out (nothing was changed)")


def acquire(folder: Path) -> Path:
    """Lock ``folder`` (created if needed) for this process; returns the lock file.

    Raises RunLockedError naming the owner when another live process holds it.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(folder, err) from err
    path = folder / LOCK_FILE
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "start_ticks": _start_ticks(os.getpid()),
             "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    for _ in range(3):
        if _try_create(path, owner):
            return path
        current = _read_owner(path)
        if not current:
            # Being written this instant by another starter, or damaged: do not guess.
            raise RunLockedError(f"{folder} is locked ({path} exists but names no owner); if no run is writing "
                                 f"this folder, delete {path}")
        if current.get("host") != owner["host"]:
            raise RunLockedError(f"{folder} is being written by {_describe(current)}; if that run has ended, "
                                 f"delete {path}")
        if _alive(current):
            raise RunLockedError(f"{folder} is being written by {_describe(current)}; wait for it to finish or "
                                 "stop it, or choose another --out (nothing was changed)")
        # A dead owner: move its lock aside (only one of several starters can), then retry creating ours.
        logger.warning("%s was locked by %s, which is no longer running (killed?); taking the lock over",
                       folder, _describe(current))
        stale = path.with_name(f"{LOCK_FILE}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, stale)
        except FileNotFoundError:
            continue  # another starter moved it first
        if _read_owner(stale) != current:
            # Between reading and moving it, another starter took the lock over: give it back.
            os.rename(stale, path)
            raise RunLockedError(f"{folder} is being written by {_describe(_read_owner(path))}; choose another --out")
        stale.unlink()
    raise RunLockedError(f"{folder}: could not take the lock {path}; another run keeps starting in this folder")


def release(path: Path) -> None:
    """Remove the lock if this process still owns it."""
    if _read_owner(path).get("pid") == os.getpid():
        Path(path).unlink(missing_ok=True)


@contextmanager
def locked(folder: Path) -> Iterator[Path]:
    """``with locked(run_folder): ...`` holds the run folder's lock for the block."""
    path = acquire(folder)
    try:
        yield path
    finally:
        release(path)
