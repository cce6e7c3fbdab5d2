"""CelebA attribute dashboard: `streamlit run dashboard/app.py [-- --data-root /path/to/celeba]`.

It opens at once on the shipped real-data runs. On first start it also generates the demo dataset
and evaluates the shipped demo checkpoints in the background (demo_job; progress in the sidebar);
later starts reuse that work. A CelebA folder can be given in the sidebar, in
$CELEBA_ROOT, or after `--` on the command line. It listens on localhost only
(.streamlit/config.toml); `-- --read-only --allowed-root DIR` is the mode for sharing it on a
network (see ui.read_only).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(HERE.parent))

import demo_job  # noqa: E402
import ui  # noqa: E402

from celeba_model.errors import CelebAModelError  # noqa: E402


def _demo_status() -> None:
    """First start: the demo is prepared in the background (demo_job) while the pages work; the sidebar
    shows its progress until its runs join the list. Nothing to do once it is ready."""
    workspace = ui.workspace()
    if ui.read_only() or not workspace.demo_checkpoints.is_dir():
        return
    job = demo_job.current(workspace.root)
    if job is None:
        if ui.catalogue().demo_is_ready():
            return
        job = demo_job.start(workspace.root)
    if not job.done:
        _demo_progress()
    elif job.error:
        st.error(f"The built-in demo could not be prepared: {job.error}")
        st.button("Try again", key="demo_retry", on_click=demo_job.start, args=(workspace.root,))


@st.fragment(run_every=1.0)
def _demo_progress() -> None:
    """The demo's progress, redrawn every second; the whole app reruns when it ends (its runs appear)."""
    job = demo_job.current(ui.workspace().root)
    if job is None or job.done:
        st.rerun()
    st.caption("Preparing the built-in demo in the background: the synthetic dataset and the demo "
               "checkpoints' evaluations. Its runs join the list when ready; this happens once.")
    st.progress(job.fraction, text=job.stage)


def _sidebar() -> None:
    runs = ui.list_runs()
    with st.sidebar:
        _demo_status()
        if ui.read_only():
            st.caption("Shared read-only dashboard: evaluating and saving are off; CelebA folders are those the "
                       "host allowed.")
            st.selectbox("CelebA folder", ["", *ui.allowed_roots()], key=ui.DATA_ROOT_KEY,
                         format_func=lambda r: r or "(none)",
                         help="Used to show images in the Misclassified page.")
        else:
            st.text_input(
                "CelebA folder",
                key=ui.DATA_ROOT_KEY,
                help="A folder with img_align_celeba/ and list_attr_celeba.txt (or torchvision's layout). "
                "Used to evaluate checkpoints on your data and to show images in the Misclassified page.",
            )
        if runs:
            paths = {ui.run_label(r): str(r) for r in runs}
            pending = st.session_state.pop(ui.PENDING_RUN_KEY, None)  # a run just evaluated from the sidebar
            if pending in paths:
                st.session_state[ui.RUN_CHOICE_KEY] = pending
            if st.session_state.get(ui.RUN_CHOICE_KEY) not in paths:
                default = ui.catalogue().default_run(ui.data_root() or None)
                st.session_state[ui.RUN_CHOICE_KEY] = ui.run_label(default) if default else next(iter(paths))
            choice = st.selectbox("Run", list(paths), key=ui.RUN_CHOICE_KEY, help="A predictions artifact under runs/")
            st.session_state[ui.RUN_KEY] = paths[choice]
        _corrections_controls()
        if not ui.read_only():
            with st.expander("Evaluate a checkpoint"):
                _evaluate_form()
            with st.expander("Import predictions"):
                _import_form()


def _corrections_controls() -> None:
    """Which label corrections file the Labels page writes, and whether every page applies it."""
    choices = ui.corrections_choices()
    names = list(choices)
    current = str(st.session_state.get(ui.CORRECTIONS_FILE_KEY) or ui.workspace().corrections_file)
    index = next((i for i, n in enumerate(names) if str(choices[n]) == current), 0)
    name = st.selectbox("Label corrections", names, index=index, key="corrections_choice",
                        help="The file of label decisions: yours (the Labels page writes it) or a shipped audit")
    st.session_state[ui.CORRECTIONS_FILE_KEY] = str(choices[name])
    st.toggle("Use corrected labels", key=ui.CORRECTIONS_ON_KEY,
              help="Every page computes its metrics against the labels with this file's corrections applied; "
              "the Overview shows both figures")


def _evaluate_form() -> None:
    workspace = ui.workspace()
    names = ui.checkpoint_choices()
    if not names:
        st.caption("No checkpoints found under checkpoints/ or runs/.")
        return
    chosen = st.selectbox("Checkpoint", list(names), key="eval_checkpoint")
    split = st.selectbox("Split", ["test", "val", "train", "all"], key="eval_split")
    root = ui.data_root()
    target = workspace.output_for(names[chosen], split)
    st.caption(f"Into `{ui.run_label(target)}`")
    overwrite = st.checkbox("Replace a run of another checkpoint there", key="eval_overwrite",
                            help="Without this, a run made by a different checkpoint in that folder is kept and "
                            "the evaluation is refused")
    if st.button("Evaluate", disabled=not root, help=None if root else "Set the CelebA folder first"):
        bar = st.progress(0.0, text="Starting...")
        try:
            predictions = ui.catalogue().evaluate(names[chosen], [root], split,
                                             lambda stage, f: bar.progress(min(max(f, 0.0), 1.0), text=stage),
                                             overwrite=overwrite)
        except CelebAModelError as err:
            # Earlier runs are untouched: artifacts are written atomically, and only on success.
            st.error(f"Evaluation failed: {err}")
            return
        st.session_state[ui.PENDING_RUN_KEY] = ui.run_label(predictions.folder)
        st.rerun()


def _import_form() -> None:
    """A model trained elsewhere: its CSV or NPZ of per-image probabilities becomes a run, as
    `python -m celeba_model import-predictions` makes it (docs/command-line.md has the format)."""
    st.caption("A CSV (a file column, one probability column per attribute) or NPZ from your own code; labels "
               "and people come from the CelebA folder above.")
    upload = st.file_uploader("Predictions file", type=["csv", "tsv", "txt", "gz", "npz"], key="import_file")
    name = st.text_input("Run name", key="import_name", placeholder="default: the file's name")
    split = st.selectbox("Split", ["(the file's)", "test", "val", "train", "all"], key="import_split",
                         help="The split the rows belong to; the file's own when they all belong to one")
    logits = st.checkbox("Values are logits (apply a sigmoid)", key="import_logits")
    overwrite = st.checkbox("Replace a run of another file with that name", key="import_overwrite")
    root = ui.data_root()
    if st.button("Import", disabled=not (root and upload), key="import_button",
                 help=None if root else "Set the CelebA folder first"):
        from celeba_model.evaluation.imported import import_predictions

        try:
            predictions, summary = import_predictions(
                upload, [root], None if split.startswith("(") else split, name.strip() or None, logits,
                workspace=ui.workspace().root, overwrite=overwrite)
        except CelebAModelError as err:
            st.error(f"Import failed: {err}")  # nothing was written
            return
        st.session_state[ui.PENDING_RUN_KEY] = ui.run_label(predictions.folder)
        st.session_state["import_summary"] = summary.lines()
        st.rerun()
    if "import_summary" in st.session_state:  # shown once, after the rerun that opens the new run
        st.success("  \n".join(st.session_state.pop("import_summary")))


# Page files live in views/, not pages/: a pages/ folder beside the main script switches Streamlit's
# script runner to the legacy multipage mode, which reruns a page without this script.
def main() -> None:
    st.set_page_config(page_title="CelebA attributes", page_icon=":material/face:", layout="wide")
    if ui.DATA_ROOT_KEY not in st.session_state:
        st.session_state[ui.DATA_ROOT_KEY] = ui.dashboard_options().data_root or os.environ.get("CELEBA_ROOT", "")
    _sidebar()
    pages = [
        st.Page(HERE / "views" / "overview.py", title="Overview", icon=":material/table_chart:", default=True),
        st.Page(HERE / "views" / "thresholds.py", title="Thresholds", icon=":material/tune:"),
        st.Page(HERE / "views" / "ablations.py", title="Ablations", icon=":material/compare:"),
        st.Page(HERE / "views" / "misclassified.py", title="Misclassified", icon=":material/error:"),
        st.Page(HERE / "views" / "slices.py", title="Slices", icon=":material/groups:"),
        st.Page(HERE / "views" / "labels.py", title="Labels", icon=":material/rule:"),
        st.Page(HERE / "views" / "map.py", title="Map", icon=":material/scatter_plot:"),
        st.Page(HERE / "views" / "training.py", title="Training", icon=":material/monitoring:"),
        st.Page(HERE / "views" / "upload.py", title="Upload", icon=":material/upload:"),
    ]
    page = st.navigation(pages)
    started = time.perf_counter()
    try:
        page.run()
    finally:
        if os.environ.get("CELEBA_DASHBOARD_TIMING"):
            # For bench/bench_dashboard.py: the server's share of a page switch, beside the browser's.
            print(f"page-timing {page.title} {time.perf_counter() - started:.3f}", file=sys.stderr, flush=True)


main()
