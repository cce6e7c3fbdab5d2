"""The built-in demo, prepared in the background while the dashboard is in use.

A fresh clone opens on the shipped real-data runs, which need no demo: the first page shows at once,
while a child process generates the demo dataset and evaluates the demo checkpoints
(``Catalogue.ensure_demo``). The sidebar shows its progress and the demo runs join the run list when
ready. The child runs at a lower priority (nice 10) and holds its own interpreter lock, so the pages
answer first on a busy CPU; it ends with the server, and takes its worker processes with it (they
share its session). One job per workspace per server, shared by every browser session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import celeba_model

NICE = 10
PACKAGE_PARENT = str(Path(celeba_model.__file__).resolve().parents[1])  # the child imports this same package

# The child: progress as one JSON line per update on stdout, the error as the last line when it fails.
CHILD = r"""
import ctypes, json, os, signal, sys
# Ended, it ends its whole process group (its own session): the demo's worker processes with it.
signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG: end with the dashboard server
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[3]):
    os.killpg(0, signal.SIGKILL)  # the server ended before the line above took effect
os.nice(int(sys.argv[2]))
from pathlib import Path
from celeba_model.catalogue import Catalogue
from celeba_model.errors import CelebAModelError
from celeba_model.workspace import Workspace

def report(stage, fraction):
    print(json.dumps({"stage": stage, "fraction": fraction}), flush=True)

try:
    Catalogue(Workspace(Path(sys.argv[1]))).ensure_demo(report)
except CelebAModelError as err:
    print(json.dumps({"error": str(err)}), flush=True)
    sys.exit(1)
"""


@dataclass
class DemoJob:
    """One preparation of the demo: where it stands, and how it ended."""

    root: Path
    stage: str = "Starting"
    fraction: float = 0.0
    error: str | None = None
    done: bool = False
    process: subprocess.Popen | None = field(default=None, repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> DemoJob:
        self.thread = threading.Thread(target=self._run, name="demo-preparation", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        """Start the child and read its progress lines until it ends, then record how it ended.

        The child is started from this thread, which outlives it: its end-with-the-parent signal fires when
        the thread that started it ends, and a page script's thread ends with its run.
        """
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))}
        try:
            self.process = subprocess.Popen([sys.executable, "-c", CHILD, str(self.root), str(NICE), str(os.getpid())],
                                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True, start_new_session=True)
        except OSError as err:
            self.error, self.done = f"could not start the preparation: {err}", True
            return
        assert self.process.stdout is not None and self.process.stderr is not None
        errors: deque[str] = deque(maxlen=20)
        drain = threading.Thread(target=lambda: errors.extend(self.process.stderr), daemon=True)
        drain.start()  # a full stderr pipe would stall the child
        for line in self.process.stdout:
            try:
                update = json.loads(line)
            except ValueError:
                continue
            if "error" in update:
                self.error = update["error"]
            else:
                self.stage, self.fraction = str(update["stage"]), min(max(float(update["fraction"]), 0.0), 1.0)
        code = self.process.wait()
        drain.join(5)
        if code != 0 and self.error is None:
            self.error = (errors[-1].strip() if errors else "") or f"the preparation stopped (exit status {code})"
        self.done = True


_jobs: dict[Path, DemoJob] = {}
_lock = threading.Lock()


def current(root: Path) -> DemoJob | None:
    """The job of this workspace started by this server, if any."""
    with _lock:
        return _jobs.get(Path(root))


def start(root: Path) -> DemoJob:
    """Start preparing the demo of this workspace, unless a job is running (then that one is returned)."""
    with _lock:
        job = _jobs.get(Path(root))
        if job is None or job.done:
            job = _jobs[Path(root)] = DemoJob(Path(root)).start()
        return job


def wait(root: Path, timeout: float | None = None) -> DemoJob | None:
    """Block until this workspace's job ends (for tests and scripts); the job, or None if none was started."""
    job = current(root)
    if job is not None and job.thread is not None:
        job.thread.join(timeout)
    return job
