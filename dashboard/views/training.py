"""Training: per-epoch curves of runs and shipped checkpoints overlaid, runs in progress refreshing by
themselves, and training started, stopped and resumed from the page.

Histories come from ``celeba_model.training.history``; the background runs (a detached ``python -m
celeba_model train``, found again from its run folder) from ``celeba_model.training.background``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import ui
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from celeba_model.errors import CelebAModelError
from celeba_model.models.registry import available_models
from celeba_model.training.background import (
    FAILED,
    FINISHED,
    LOG_FILE,
    RUNNING,
    STOPPED,
    TrainingStatus,
    resume_training,
    run_folder_named,
    start_training,
    stop_training,
    training_runs,
    training_status,
)
from celeba_model.training.config import POS_WEIGHT_MODES, TrainConfig
from celeba_model.training.history import F1_PREFIX, HistorySource, attribute_columns, history_sources, history_summary
from celeba_model.training.run_folder import METRICS

REFRESH_S = 3  # how often the page rereads a run in progress
SHOWN_RUNS = 6  # run statuses listed in full; older ones go in an expander
MESSAGE_KEY = "training_message"
SOURCES_KEY = "training_sources"
PENDING_KEY = "training_pending_sources"  # runs just started: chosen once their first file appears
DEMO, CELEBA = "demo", "celeba"
PALETTE = qualitative.Plotly + qualitative.D3
STATE_COLORS = {FINISHED: "green", STOPPED: "orange"}

workspace = ui.workspace()
writable = not ui.read_only()


@st.cache_data(show_spinner=False, max_entries=256)
def _history(label: str, path: str, shipped: bool, stamp: float) -> pd.DataFrame:
    """A history, reread when its file changes (``stamp``: the checkpoint's or metrics.jsonl's time)."""
    return HistorySource(label, Path(path), shipped).load()


def _stamp(source: HistorySource) -> float:
    path = source.path if source.shipped else source.path / METRICS
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return 0.0


def _recent_first(folder: Path) -> float:
    return max((p.stat().st_mtime for p in folder.iterdir() if p.is_file()), default=0.0)


def _statuses() -> list[TrainingStatus]:
    """Every training run of the workspace: running ones first, then the most recently written."""
    folders = sorted(training_runs(workspace.runs_dir), key=_recent_first, reverse=True)
    statuses = [training_status(f) for f in folders]
    return sorted(statuses, key=lambda s: s.state != RUNNING)


# Button callbacks: they run before the page, so their messages and the chosen curves show at once.

def _start() -> None:
    state = st.session_state
    root = str(workspace.demo_data) if state["train_data"] == DEMO else ui.data_root()
    if not root:
        state[MESSAGE_KEY] = ("error", "Not started: set the CelebA folder in the sidebar, or train on the demo data.")
        return
    if state["train_data"] == DEMO and not workspace.demo_data.is_dir():
        state[MESSAGE_KEY] = ("error", f"Not started: the demo data is not in {workspace.demo_data} (the dashboard "
                              "generates it on its first start; `python -m celeba_model make-demo` does too).")
        return
    arch = state["train_arch"]
    name = state["train_name"].strip() or f"{arch}-{datetime.now():%Y%m%d-%H%M%S}"
    try:
        out = run_folder_named(workspace.runs_dir, name)
        config = TrainConfig(
            data_roots=[root], out=str(out), arch=arch, epochs=int(state["train_epochs"]),
            image_size=int(state["train_image_size"]), color=state["train_color"],
            pos_weight=state["train_pos_weight"], augment=bool(state["train_augment"]),
            max_train_images=int(state["train_max_images"]) or None, batch_size=int(state["train_batch_size"]),
            lr=float(state["train_lr"]), seed=int(state["train_seed"]), cache_dir=str(workspace.cache_dir),
            progress=False,
        )
        start_training(config)
    except CelebAModelError as err:  # the checks training itself makes, before any process starts
        state[MESSAGE_KEY] = ("error", f"Not started: {err}")
        return
    state[MESSAGE_KEY] = ("success", f"Started **{name}** in `{out}`; its output goes to `{out / LOG_FILE}`.")
    state[PENDING_KEY] = [*state.get(PENDING_KEY, []), workspace.run_label(out)]


def _stop(out: str) -> None:
    try:
        status = stop_training(out, wait_s=10)
        st.session_state[MESSAGE_KEY] = ("info", f"{workspace.run_label(Path(out))}: {status.message}")
    except CelebAModelError as err:
        st.session_state[MESSAGE_KEY] = ("error", str(err))


def _resume(out: str) -> None:
    try:
        resume_training(out)
        st.session_state[MESSAGE_KEY] = ("success", f"Resumed {workspace.run_label(Path(out))}.")
    except CelebAModelError as err:
        st.session_state[MESSAGE_KEY] = ("error", f"Not resumed: {err}")


def _status_row(status: TrainingStatus) -> None:
    name = workspace.run_label(status.out)
    with st.container(border=True):
        left, right = st.columns([6, 1], vertical_alignment="center")
        if status.state == RUNNING:
            left.progress(status.fraction, text=f"**{name}**: {status.message}")
        elif status.state == FAILED:
            left.error(f"**{name}**: {status.message}")
        else:
            left.markdown(f"**{name}**: :{STATE_COLORS[status.state]}[{status.message}]")
        if writable and status.stoppable:
            right.button("Stop", key=f"training_stop::{name}", on_click=_stop, args=(str(status.out),),
                         help="Stop as with Ctrl+C: the last finished epoch's checkpoint stays, to resume later")
        if writable and status.resumable:
            right.button("Resume", key=f"training_resume::{name}", on_click=_resume, args=(str(status.out),),
                         help="Continue after the last finished epoch, with the run's own settings")
        if status.log_tail:
            with left.expander(f"Last lines of {LOG_FILE}", expanded=status.state == FAILED):
                st.code("\n".join(status.log_tail), language=None)


def _figure(histories: dict[str, pd.DataFrame], attribute: str | None) -> go.Figure:
    figure = make_subplots(rows=3, cols=2, vertical_spacing=0.09, horizontal_spacing=0.08, subplot_titles=(
        "Loss (solid: train, dashed: validation)", "Validation macro-F1", f"Validation F1 of {attribute or '-'}",
        "Learning rate", "Training speed (images/s)", "Validation worst-group accuracy (--group-by runs)"))
    for i, (label, table) in enumerate(histories.items()):
        color = PALETTE[i % len(PALETTE)]
        mode = "lines+markers" if len(table) <= 40 else "lines"
        panels = [("train_loss", 1, 1, "solid"), ("val_loss", 1, 1, "dash"), ("val_macro_f1", 1, 2, "solid"),
                  (F1_PREFIX + (attribute or ""), 2, 1, "solid"), ("lr", 2, 2, "solid"),
                  ("train_images_per_s", 3, 1, "solid"), ("val_worst_group_accuracy", 3, 2, "solid")]
        for n, (column, row, col, dash) in enumerate(panels):
            if column not in table or table[column].isna().all():
                continue
            figure.add_scatter(x=table["epoch"], y=table[column], mode=mode, name=label, legendgroup=label,
                               showlegend=n == 0, line={"color": color, "dash": dash}, marker={"size": 4},
                               hovertemplate=f"{label}<br>epoch %{{x}}: %{{y:.4g}}<extra>{column}</extra>",
                               row=row, col=col)
    figure.update_xaxes(title_text="epoch", row=3)
    figure.update_layout(height=860, margin={"t": 40, "b": 10}, legend={"orientation": "h", "y": -0.08})
    return figure


def _default_sources(sources: dict[str, HistorySource], statuses: list[TrainingStatus]) -> list[str]:
    """The running and latest runs of this workspace, with the shipped default model to compare against."""
    mine = [workspace.run_label(s.out) for s in statuses if workspace.run_label(s.out) in sources][:3]
    default = ui.catalogue().trained_default()  # an ensemble's curves are its members'
    shipped = [label for label, s in sources.items() if s.shipped and default is not None and s.path == default]
    return mine + shipped[:1]


def _curves(statuses: list[TrainingStatus]) -> None:
    sources = {s.label: s for s in history_sources(workspace)}
    if SOURCES_KEY not in st.session_state:
        st.session_state[SOURCES_KEY] = _default_sources(sources, statuses)
    pending = st.session_state.get(PENDING_KEY, [])
    chosen = [p for p in pending if p in sources] + st.session_state[SOURCES_KEY]
    st.session_state[PENDING_KEY] = [p for p in pending if p not in sources]
    st.session_state[SOURCES_KEY] = [s for s in dict.fromkeys(chosen) if s in sources]
    chosen = st.multiselect("Runs and shipped checkpoints", list(sources), key=SOURCES_KEY,
                            help="Training runs of this workspace (runs/, read from metrics.jsonl) and the shipped "
                            "checkpoints (their history is in the checkpoint, up to the epoch it saved)")
    histories = {}
    for label in chosen:
        source = sources[label]
        try:
            histories[label] = _history(label, str(source.path), source.shipped, _stamp(source))
        except CelebAModelError as err:
            st.warning(f"{label}: {err}")
    if not histories:
        st.info("Choose runs or shipped checkpoints to see their curves.")
        return
    attributes = list(dict.fromkeys(a for t in histories.values() for a in attribute_columns(t)))
    if attributes and st.session_state.get("training_attribute") not in attributes:
        st.session_state["training_attribute"] = attributes[0]
    attribute = st.selectbox("Per-attribute F1 of", attributes, key="training_attribute") if attributes else None
    st.plotly_chart(_figure(histories, attribute), key="training_curves")
    summary = pd.DataFrame([{"run": label, **history_summary(table)} for label, table in histories.items()])
    st.dataframe(summary.rename(columns={
        "best_epoch": "best epoch", "best_val_macro_f1": "best val macro-F1", "last_train_loss": "last train loss",
        "last_val_loss": "last val loss", "train_images_per_s": "images/s (median)"}).style.format(precision=3),
        hide_index=True, key="training_summary")


def _live(running_before: tuple[str, ...]) -> None:
    """Run statuses and curves; while a run trains, rerun every few seconds (the page's fragment)."""
    statuses = _statuses()
    if tuple(str(s.out) for s in statuses if s.state == RUNNING) != running_before:
        st.rerun()  # a run started or ended: the whole page, so the refresh starts or stops
    message = st.session_state.pop(MESSAGE_KEY, None)
    if message:
        getattr(st, message[0])(message[1])
    if statuses:
        st.subheader("Runs of this workspace")
        for status in statuses[:SHOWN_RUNS]:
            _status_row(status)
        if len(statuses) > SHOWN_RUNS:
            with st.expander(f"{len(statuses) - SHOWN_RUNS} older runs"):
                for status in statuses[SHOWN_RUNS:]:
                    _status_row(status)
        if running_before:
            st.caption(f"Runs in progress refresh every {REFRESH_S} s.")
    st.subheader("Curves")
    _curves(statuses)


def _start_form() -> None:
    with st.form("training_start", border=False):
        left, middle, right = st.columns(3)
        folder = ui.data_root()
        left.radio("Data", [DEMO, CELEBA], key="train_data", format_func={
            DEMO: "the built-in demo data (data/demo)",
            CELEBA: f"the sidebar's CelebA folder ({folder or 'not set'})"}.get)
        middle.text_input("Run name", key="train_name", placeholder="default: architecture-date-time",
                          help="The run's folder: runs/<name>. A folder holding another run is refused.")
        models = sorted(available_models())
        right.selectbox("Architecture", models, index=models.index("paper") if "paper" in models else 0,
                        key="train_arch")
        left.number_input("Epochs", min_value=1, max_value=1000, value=10, step=1, key="train_epochs")
        middle.selectbox("Image size", [32, 48, 64, 96, 128], index=2, key="train_image_size",
                         help="Side of the square model input in pixels")
        right.radio("Color", ["gray", "rgb"], horizontal=True, key="train_color")
        left.selectbox("Class balancing", POS_WEIGHT_MODES, key="train_pos_weight",
                       help="Weight positive examples by nothing, sqrt(neg/pos) or neg/pos per attribute")
        middle.number_input("Training images (0: all)", min_value=0, value=0, step=1000, key="train_max_images",
                            help="A seeded subset of the train split, for a quick run")
        right.checkbox("Augment (flips, shifts, zoom, brightness/contrast)", key="train_augment")
        with st.expander("More options"):
            a, b, c = st.columns(3)
            a.number_input("Batch size", min_value=1, value=100, step=10, key="train_batch_size")
            b.number_input("Learning rate", min_value=1e-6, max_value=1.0, value=1e-3, format="%.5f",
                           key="train_lr")
            c.number_input("Seed", min_value=0, value=0, step=1, key="train_seed")
        st.form_submit_button("Start training", type="primary", on_click=_start)
    st.caption("The run goes on in a background process (`python -m celeba_model train`), so it survives a page "
               "reload or closing the browser; it writes checkpoints every epoch to `runs/<name>` and its output to "
               f"`runs/<name>/{LOG_FILE}`. Stop it here, or resume a stopped run, at any time.")


st.title("Training")
st.caption("Per-epoch curves of this workspace's training runs and of the shipped checkpoints: loss, validation "
           "macro-F1 and per-attribute F1, learning rate and speed. A run in progress refreshes by itself.")
statuses = _statuses()
if writable:
    with st.expander("Start a training run", expanded=not statuses):
        _start_form()
else:
    st.caption("Shared read-only dashboard: starting and stopping training are off.")
running = tuple(str(s.out) for s in statuses if s.state == RUNNING)
st.fragment(_live, run_every=REFRESH_S if running else None)(running)
