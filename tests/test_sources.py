"""Every script, benchmark and dashboard page at least compiles: some run only by hand or in a browser."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("celeba_model", "dashboard", "scripts", "bench") for p in (REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_source_compiles(path):
    compile(path.read_text(), str(path), "exec")
