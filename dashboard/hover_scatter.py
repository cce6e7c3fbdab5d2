"""A Plotly scatter that shows each point's face on hover, for the Map page.

Streamlit's own ``st.plotly_chart`` reports clicks and selections but not hovers, and Plotly tooltips
cannot hold images; so where a run's images are on this machine the Map page draws its figure with
this custom component (``components/hover_scatter/index.html``). The component's folder lives in the
image cache: its page, plotly.js copied from the installed plotly package (nothing is downloaded), and
``thumbs/<run>/ROW.jpg``, small copies of the run's images written in a background thread by
``celeba_model.data.thumbnails``, which the page loads by URL as the pointer moves. Clicks and box or
lasso selections come back in ``st.plotly_chart``'s shape: ``{"selection": {"points": [...]}}``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import plotly
import plotly.graph_objects as go
import streamlit as st
import streamlit.components.v1 as components

from celeba_model.data.thumbnails import ThumbnailReport, write_thumbnails

SOURCE = Path(__file__).resolve().parent / "components" / "hover_scatter" / "index.html"
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
START_DELAY_S = 2.0


def component_folder(cache_dir: Path) -> Path:
    """The component's served folder under ``cache_dir``, with this version of its page and plotly.js
    (copied again when either changes; OSError when the cache cannot be written)."""
    folder = cache_dir / "dashboard" / "hover_scatter"
    folder.mkdir(parents=True, exist_ok=True)
    for source in (SOURCE, PLOTLY_JS):
        target = folder / source.name
        if not target.is_file() or target.stat().st_size != source.stat().st_size or (
                source is SOURCE and target.read_bytes() != source.read_bytes()):
            partial = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(source, partial)
            partial.replace(target)
    return folder


@st.cache_resource(show_spinner=False)
def _declared(folder: str):  # noqa: ANN202 - Streamlit's component function
    return components.declare_component("hover_scatter", path=folder)


@dataclass
class Thumbnails:
    """A run's hover thumbnails being written (or written) in a background thread."""

    folder: Path
    url: str  # the folder, relative to the component's page
    total: int
    done: int = 0
    report: ThumbnailReport | None = None  # set when finished
    thread: threading.Thread | None = field(default=None, repr=False)

    def start(self, paths: list[str | None], delay: float = START_DELAY_S) -> Thumbnails:
        def run() -> None:
            time.sleep(delay)  # the page that asked draws first, without this thread taking turns at the GIL
            self.report = write_thumbnails(paths, self.folder,
                                           on_progress=lambda done, _: setattr(self, "done", done))

        self.thread = threading.Thread(target=run, name=f"thumbnails-{self.folder.name}", daemon=True)
        self.thread.start()
        return self

    @property
    def finished(self) -> bool:
        return self.report is not None


@st.cache_resource(show_spinner=False, max_entries=16)
def thumbnails(component: str, run: str, _paths: tuple[str | None, ...]) -> Thumbnails:
    """Start writing the thumbnails of one run once per server. ``run`` names the run and where its images
    were found (folder, artifact time, CelebA folder): the key, so the 20,000 paths are not hashed per rerun."""
    name = hashlib.sha1(run.encode()).hexdigest()[:16]
    folder = Path(component) / "thumbs" / name
    return Thumbnails(folder, f"thumbs/{name}/", len(_paths)).start(list(_paths))


def hover_scatter(figure: go.Figure, component: Path, thumbs: Thumbnails, key: str, config: dict | None = None
                  ) -> dict:
    """Draw ``figure`` (whose points carry their run row as customdata) with faces on hover; returns the
    last click or selection as ``{"selection": {"points": [...]}}`` (empty before the first)."""
    spec = figure.to_json()  # numpy arrays as typed arrays, which plotly.js reads directly
    value = _declared(str(component))(
        figure=json.loads(spec), figure_key=hashlib.sha1(spec.encode()).hexdigest(), thumbs=thumbs.url,
        config=config or {}, key=key, default=None)
    return value if isinstance(value, dict) else {}
