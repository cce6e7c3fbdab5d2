"""The dashboard's background preparation of the demo: it ends with the server, workers included."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A stand-in for the dashboard server: it starts the job and reports the child's PID once the child's demo
# workers are drawing faces.
SERVER = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import demo_job
job = demo_job.start(Path(sys.argv[1]))
while job.process is None or job.stage == "Starting":
    time.sleep(0.05)
print(job.process.pid, flush=True)
time.sleep(600)
"""


def _session(sid: int) -> list[int]:
    """Live processes of session ``sid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] not in ("Z", "X") and int(fields[3]) == sid:  # state, ppid, pgrp, session
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and prctl")
def test_the_demo_preparation_and_its_workers_end_with_the_server(tmp_path):
    workspace = tmp_path / "clone"
    shutil.copytree(REPO / "checkpoints" / "demo", workspace / "checkpoints" / "demo")
    env = {**os.environ, "CELEBA_MODEL_CACHE": str(tmp_path / "cache")}
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(workspace), str(REPO / "dashboard")], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        child = int(server.stdout.readline())
        deadline = time.monotonic() + 60
        while len(_session(child)) < 2 and time.monotonic() < deadline:  # the child and its workers
            time.sleep(0.1)
        assert len(_session(child)) >= 2, "the demo's workers never started"
    finally:
        server.send_signal(signal.SIGKILL)  # no cleanup code runs in the server
        server.wait()
        server.stdout.close()
    deadline = time.monotonic() + 10
    while _session(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _session(child)
    for pid in left:  # do not leave them behind for the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, "the demo preparation outlived the server"
