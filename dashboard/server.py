"""The dashboard as a local server driven by a headless browser: for the browser tests, the screenshot
script (scripts/screenshots.py) and the dashboard benchmark (bench/bench_dashboard.py).

    with dashboard_server(workspace) as url, chromium() as browser:
        page = browser.new_page(); page.goto(url)

The server is `streamlit run dashboard/app.py` on a free localhost port, started on a chosen
workspace and stopped by its own PID. The browser is Debian's chromium through the playwright
package, which never downloads a browser of its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

APP = Path(__file__).resolve().parent / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags chromium keeps trying to reach Google's hosts, which a
# machine without internet access refuses, many at a time.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


class ServerError(RuntimeError):
    """The dashboard server did not come up; the message ends with what it printed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(workspace: Path, port: int, output: IO | int = subprocess.PIPE, env: dict[str, str] | None = None
          ) -> subprocess.Popen:
    """``streamlit run dashboard/app.py`` on ``port`` of localhost, opening ``workspace``."""
    environment = {**os.environ, "CELEBA_WORKSPACE": str(workspace), **(env or {})}
    environment.pop("CELEBA_ROOT", None)  # the pages as a fresh `make run` shows them
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=APP.parents[1], env=environment, stdout=output, stderr=subprocess.STDOUT,
    )


def wait_until_up(process: subprocess.Popen, url: str, timeout: float = 90) -> None:
    """Until the server answers its health check; ServerError with its output if it stops or times out."""
    deadline = time.time() + timeout
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                return
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                output = process.stdout.read() if process.stdout and process.poll() is not None else ""
                output = output.decode(errors="replace") if isinstance(output, bytes) else output
                raise ServerError(f"streamlit did not start:\n{output[-3000:]}") from None
            time.sleep(0.3)


def stop(process: subprocess.Popen) -> None:
    process.terminate()  # our own server, by its own PID
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def dashboard_server(workspace: Path, output: IO | int = subprocess.PIPE, env: dict[str, str] | None = None,
                     timeout: float = 90) -> Iterator[str]:
    """A running dashboard on ``workspace`` for the block; yields its URL."""
    port = free_port()
    process = start(workspace, port, output, env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(process, url, timeout)
        yield url
    finally:
        stop(process)


@contextmanager
def chromium(executable: Path = CHROMIUM) -> Iterator[object]:
    """A headless chromium (a playwright Browser) for the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
