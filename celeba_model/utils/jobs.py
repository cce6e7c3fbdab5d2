"""A command run in the background on behalf of a folder, found again from that folder alone.

``start_job(folder, command)`` starts a small supervisor (``python -m celeba_model.utils.jobs``) in a
session of its own, so the job outlives the process that started it (a dashboard page reload, a new
browser session, even a restart of the dashboard). The supervisor runs the command with its output
appended to the log file, and records the command's exit status in ``FOLDER/job.json`` when it ends.
``job.json`` holds the command, the supervisor's PID (also the job's process group), its start time
and host: ``read_job`` and ``job_running`` tell from it whether the job still runs, and ``signal_job``
signals the whole group (SIGINT: the command sees Ctrl+C; the supervisor waits and records).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from ..errors import CelebAModelError
from .fileio import atomic_write_text

JOB_FILE = "job.json"
FORMAT = "celeba_model/job-v1"
PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the folder holding celeba_model/
INTERRUPTED = (130, -signal.SIGINT)  # exit statuses of a command stopped by SIGINT (Ctrl+C)


class JobError(CelebAModelError, RuntimeError):
    """A background job that could not be started or signalled."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """A process's state letter and start time (clock ticks since boot) from /proc; None when it is gone
    or /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], fields[19]


def read_job(folder: str | Path) -> dict | None:
    """The job recorded in ``folder`` (None when there is none, or its file is unreadable)."""
    try:
        job = json.loads((Path(folder) / JOB_FILE).read_text())
    except (OSError, ValueError):
        return None
    return job if isinstance(job, dict) and job.get("format") == FORMAT else None


def job_running(job: dict) -> bool:
    """Whether a job's supervisor still runs: no exit status recorded and its process alive (on another
    host it cannot be checked and counts as running until it records its end)."""
    if job.get("exit_status") is not None or job.get("ended"):
        return False
    if job.get("host") != socket.gethostname():
        return True
    pid = job.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    stat = _proc_stat(pid)
    if stat is None:
        try:
            os.kill(pid, 0)  # no /proc: ask the kernel
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state, ticks = stat
    # A zombie has ended; a different start time means the PID now belongs to another process.
    return state != "Z" and job.get("start_ticks") in (None, ticks)


def start_job(
    folder: str | Path, command: Sequence[str], log_file: str | Path, *, env: Mapping[str, str] | None = None,
    extra: Mapping | None = None,
) -> dict:
    """Run ``command`` in the background for ``folder`` (created if needed), its output appended to
    ``log_file``; returns the job as recorded in ``folder/job.json`` (``extra`` is recorded with it).

    The caller checks that no job of the folder is running (``read_job``, ``job_running``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    supervisor = [sys.executable, "-m", "celeba_model.utils.jobs", str(folder), "--", *command]
    environment = dict(os.environ if env is None else env)
    # The supervisor (and a `python -m celeba_model` command) import this very package, installed or not.
    environment["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_PARENT), environment.get("PYTHONPATH")) if p)
    with open(log_file, "ab") as log:
        log.write(f"=== {_now()}: {' '.join(command)}\n".encode())
        log.flush()
        try:
            process = subprocess.Popen(
                supervisor, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
                env=environment, start_new_session=True, close_fds=True,
            )
        except OSError as err:
            raise JobError(f"could not start {command[0]}: {err}") from err
    # Reap the supervisor when it ends, so it leaves no zombie behind in a long-lived process (the dashboard).
    threading.Thread(target=process.wait, daemon=True).start()
    stat = _proc_stat(process.pid)
    job = {
        "format": FORMAT, "command": list(command), "log": str(log_file), "pid": process.pid,
        "start_ticks": stat[1] if stat else None, "host": socket.gethostname(), "started": _now(),
        "started_at": time.time(), "exit_status": None, "ended": None, **dict(extra or {}),
    }
    atomic_write_text(folder / JOB_FILE, json.dumps(job, indent=2))
    return job


def signal_job(job: dict, sig: int = signal.SIGINT) -> None:
    """Send ``sig`` to a running job's process group (the supervisor and the command it runs)."""
    if not job_running(job):
        raise JobError("the job is not running")
    if job.get("host") != socket.gethostname():
        raise JobError(f"the job runs on {job.get('host')}; stop it there")
    try:
        os.killpg(job["pid"], sig)
    except ProcessLookupError:
        pass  # it ended just now
    except PermissionError as err:
        raise JobError(f"not allowed to signal process group {job['pid']}: {err}") from err


def _record_end(folder: Path, status: int) -> None:
    """Add the exit status to job.json, once the starter has written it (it does so right after starting us)."""
    path = folder / JOB_FILE
    for _ in range(100):
        job = read_job(folder)
        if job is not None and job.get("pid") == os.getpid():
            break
        time.sleep(0.05)
    else:  # the starter never wrote it (it died at once): record what we know
        job = {"format": FORMAT, "pid": os.getpid(), "host": socket.gethostname(), "started": None}
    job |= {"exit_status": status, "ended": _now()}
    atomic_write_text(path, json.dumps(job, indent=2))


def _supervise(folder: Path, command: list[str]) -> int:
    # SIGINT reaches the whole process group: it is meant for the command (Ctrl+C), so the supervisor
    # waits for it to finish. A handler, not SIG_IGN, because an ignored signal stays ignored across exec.
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        status = subprocess.call(command, stdin=subprocess.DEVNULL)
    except OSError as err:
        print(f"error: could not run {command[0]}: {err}", flush=True)
        status = 127
    _record_end(folder, status)
    return 0


if __name__ == "__main__":  # python -m celeba_model.utils.jobs FOLDER -- COMMAND...
    separator = sys.argv.index("--")
    sys.exit(_supervise(Path(sys.argv[1]), sys.argv[separator + 1:]))
