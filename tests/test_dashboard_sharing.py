"""Who may change what: the dashboard listens on localhost only, and its shared mode writes nothing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.server import free_port, wait_until_up

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboard" / "app.py"


def _outside_address() -> str | None:
    """An address of this machine that is not loopback, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_make_run_listens_on_localhost_only(tmp_path):
    outside = _outside_address()
    port = free_port()
    env = {**os.environ, "CELEBA_WORKSPACE": str(tmp_path)}
    # The repository's .streamlit/config.toml applies, as with `make run` (no --server.address given).
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port)],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_up(process, f"http://127.0.0.1:{port}")
        if outside is not None:
            with pytest.raises(OSError):
                urllib.request.urlopen(f"http://{outside}:{port}/_stcore/health", timeout=2)
    finally:
        process.terminate()  # our own server, by its own PID
        output = process.communicate(timeout=15)[0]
    assert "Network URL" not in output and "External URL" not in output
    if outside is None:
        pytest.skip("this machine has no non-loopback address to try the port from (localhost-only start checked)")


@pytest.fixture
def shared_app(tmp_path, monkeypatch, demo_root):
    """A read-only dashboard on a fresh checkout copy, allowed to read one CelebA folder."""
    workspace = tmp_path / "checkout"
    shutil.copytree(REPO / "checkpoints", workspace / "checkpoints")
    monkeypatch.setenv("CELEBA_WORKSPACE", str(workspace))
    monkeypatch.setenv("CELEBA_DASHBOARD_READ_ONLY", "1")
    monkeypatch.setenv("CELEBA_ALLOWED_ROOTS", str(demo_root))
    monkeypatch.delenv("CELEBA_ROOT", raising=False)
    return workspace


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_shared_mode_writes_nothing_and_offers_only_allowed_folders(shared_app, demo_root):
    before = _tree(shared_app)
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception
    assert not (shared_app / "data").exists()  # the demo is not generated
    assert not any(b.label == "Evaluate" for b in at.sidebar.button)
    folder = at.sidebar.selectbox(key="data_root")
    assert folder.options == ["(none)", str(demo_root)]
    folder.set_value(str(demo_root)).run()
    assert not at.exception
    for page in ("overview", "thresholds", "ablations", "misclassified", "training", "upload"):
        at = at.switch_page(f"views/{page}.py").run()
        assert not at.exception, page
        if page == "thresholds":
            next(b for b in at.button if b.label == "Tune on validation").click().run()
            assert not any(b.label == "Save for this checkpoint" for b in at.button)
            assert any("Saving is off" in c.value for c in at.caption)
    assert _tree(shared_app) == before


def _folder_in_use(dashboard: str, chosen: str) -> None:
    """A page script: set the sidebar's CelebA folder as a client could, print what the pages would use."""
    import sys

    import streamlit as st

    sys.path.insert(0, dashboard)
    import ui

    st.session_state[ui.DATA_ROOT_KEY] = chosen
    st.text(f"in use: [{ui.data_root()}]")


def test_the_shared_mode_ignores_a_folder_it_was_not_given(shared_app, demo_root, tmp_path):
    dashboard = str(REPO / "dashboard")
    for chosen, used in ((str(tmp_path), ""), (str(demo_root), str(demo_root))):
        at = AppTest.from_function(_folder_in_use, args=(dashboard, chosen)).run()
        assert at.text[0].value == f"in use: [{used}]"
