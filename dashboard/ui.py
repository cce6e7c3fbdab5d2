"""What every dashboard page shares: the workspace, cached loaders, the chosen run and thresholds.

Pages only present; numbers come from ``celeba_model``. Expensive things are cached:
artifacts, threshold sweeps and predictors as resources (shared, never copied), reports, slices,
bias maps and per-group thresholds as data keyed by the run file's time and their thresholds.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st
from PIL import Image

from celeba_model.analysis.reports import attribute_report
from celeba_model.analysis.thresholds import evaluated_checkpoint
from celeba_model.catalogue import Catalogue
from celeba_model.data.corrections import LabelCorrections, read_corrections
from celeba_model.data.crop import CropBox, crop_and_resize
from celeba_model.data.images import ImageReadError, open_image
from celeba_model.errors import CelebAModelError
from celeba_model.evaluation.predictions import Predictions, load_predictions
from celeba_model.metrics.sweep import ThresholdSweep
from celeba_model.models.thresholds import stored_thresholds, thresholds_for
from celeba_model.workspace import (
    ARTIFACT_FILE,
    RUNS_FOLDER,
    WORKSPACE_ENV,
    Workspace,
    default_workspace_root,
    find_runs,
)

if TYPE_CHECKING:
    # Imported where used: torch, cleanlab, fairlearn and UMAP are not needed by the first page, which
    # then opens seconds sooner.
    from celeba_model.analysis.embedding_map import EmbeddingMap
    from celeba_model.analysis.label_issues import LabelIssues
    from celeba_model.analysis.slices import BiasMap, GroupThresholds, SliceReport
    from celeba_model.photo.detection import FaceDetector
    from celeba_model.photo.predictor import Predictor
    from hover_scatter import Thumbnails

CHECKOUT = Path(__file__).resolve().parents[1]  # the checkout this dashboard is part of

RUN_KEY = "run"  # path of the chosen run folder, read by every page
RUN_CHOICE_KEY = "run_choice"  # the sidebar selector's label of it
PENDING_RUN_KEY = "pending_run"  # a run to select on the next rerun
DATA_ROOT_KEY = "data_root"


READ_ONLY_ENV = "CELEBA_DASHBOARD_READ_ONLY"  # "1": the shared, read-only mode
ALLOWED_ROOTS_ENV = "CELEBA_ALLOWED_ROOTS"  # CelebA folders a read-only dashboard offers, os.pathsep-separated


def dashboard_options() -> argparse.Namespace:
    """Options given after ``--`` on the streamlit command line (``streamlit run app.py -- --read-only``)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--data-root", default="")
    parser.add_argument("--workspace", default="")
    parser.add_argument("--read-only", action="store_true")
    parser.add_argument("--allowed-root", action="append", default=[])
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args


def workspace() -> Workspace:
    """``--workspace`` after ``--``, else $CELEBA_WORKSPACE, else the checkout this dashboard belongs
    to (read on every run: it is cheap)."""
    explicit = dashboard_options().workspace or os.environ.get(WORKSPACE_ENV)
    return Workspace(default_workspace_root(explicit) if explicit else CHECKOUT)


def catalogue() -> Catalogue:
    """The shipped models and the demo of this dashboard's workspace."""
    return Catalogue(workspace())


def read_only() -> bool:
    """The shared mode (``--read-only`` or $CELEBA_DASHBOARD_READ_ONLY=1): for a dashboard others reach
    over the network. Nothing is written (no evaluations, no saved thresholds, no demo generation),
    CelebA folders are limited to ``allowed_roots()``, and uploads stay in memory as always."""
    return dashboard_options().read_only or os.environ.get(READ_ONLY_ENV, "") not in ("", "0")


def allowed_roots() -> list[str]:
    """The CelebA folders a read-only dashboard may read: ``--allowed-root`` (repeatable), then
    $CELEBA_ALLOWED_ROOTS, then the start-up folder (``--data-root`` or $CELEBA_ROOT)."""
    options = dashboard_options()
    roots = list(options.allowed_root)
    roots += [r for r in os.environ.get(ALLOWED_ROOTS_ENV, "").split(os.pathsep) if r]
    roots += [r for r in (options.data_root, os.environ.get("CELEBA_ROOT", "")) if r]
    return list(dict.fromkeys(roots))


def stored_thresholds_of(checkpoint: Path, attributes: list[str]) -> tuple[np.ndarray | None, str]:
    """The tuned thresholds stored for a checkpoint file, read now, and where they came from
    (the workspace's override or the checkpoint itself); (None, why not) when there are none."""
    root = workspace().root
    try:
        stored = stored_thresholds(checkpoint, root)
        if stored is None:
            return None, "This checkpoint has no saved thresholds"
        return thresholds_for(stored.values, attributes, None, root)[0], str(stored.source)
    except CelebAModelError as err:
        return None, str(err)


def checkpoint_thresholds(predictions: Predictions) -> tuple[np.ndarray | None, str]:
    """The tuned thresholds stored for the checkpoint that made ``predictions``, read now, and where
    they came from; (None, why not) when there are none or the checkpoint moved or changed."""
    try:
        checkpoint = evaluated_checkpoint(predictions, workspace().root)
    except CelebAModelError as err:
        return None, str(err)
    return stored_thresholds_of(checkpoint, predictions.attributes)


def run_mtime(folder: Path) -> float:
    path = folder / ARTIFACT_FILE
    return path.stat().st_mtime if path.is_file() else 0.0


def _file_mtime(path: str) -> float:
    try:
        return Path(path).stat().st_mtime_ns / 1e9 if path else 0.0
    except OSError:
        return 0.0


# A run as the caches see it: (folder, artifact time, corrections file or "", its time). Changing the
# artifact, switching corrections on or off, or a new decision in the file each make a new key.
RunKey = tuple[str, float, str, float]


def run_key(folder: str | Path, corrected: bool | None = None) -> RunKey:
    """The cache key of a run with the sidebar's label corrections (``corrected=None``), or explicitly
    with (True) or without (False) them."""
    use = corrections_on() if corrected is None else corrected
    path = str(active_corrections_file()) if use else ""
    return str(folder), run_mtime(Path(folder)), path, _file_mtime(path)


@st.cache_resource(show_spinner=False, max_entries=64)
def _load_run(key: RunKey) -> Predictions:
    folder, _, corrections, _ = key
    predictions = load_predictions(folder)
    if corrections:
        predictions = predictions.with_corrections(read_corrections(corrections, missing_ok=True))
    return predictions


def load_run(folder: str | Path, corrected: bool | None = None) -> Predictions:
    """A predictions artifact, with the sidebar's label corrections applied when they are on (or as
    ``corrected`` says); reloaded only when its file or the corrections change."""
    return _load_run(run_key(folder, corrected))


@st.cache_resource(show_spinner=False, max_entries=64)
def _sweep(key: RunKey) -> ThresholdSweep:
    run = _load_run(key)
    return ThresholdSweep(run.labels, run.probabilities)


def sweep_for(folder: str | Path) -> ThresholdSweep:
    """The run's threshold sweep: scores sorted once, metrics at any thresholds in microseconds."""
    return _sweep(run_key(folder))


@st.cache_data(show_spinner="Computing bootstrap intervals...", max_entries=256)
def _report(key: RunKey, thresholds: tuple[float, ...], n_boot: int) -> dict:
    return attribute_report(_load_run(key), np.array(thresholds), n_boot=n_boot)


def report_for(folder: str | Path, thresholds: np.ndarray, n_boot: int = 1000, corrected: bool | None = None) -> dict:
    """Per-attribute report with bootstrap intervals (cached per thresholds)."""
    return _report(run_key(folder, corrected), tuple(float(t) for t in thresholds), n_boot)


@st.cache_data(show_spinner="Computing slices and their bootstrap intervals...", max_entries=256)
def _slices(key: RunKey, target: str, by: tuple[str, ...], threshold: float, n_boot: int) -> SliceReport:
    from celeba_model.analysis.slices import slice_report

    return slice_report(_load_run(key), target, list(by), threshold, n_boot=n_boot)


def slices_for(folder: str | Path, target: str, by: list[str], threshold: float, n_boot: int = 1000) -> SliceReport:
    """One target's metrics by group with intervals (cached per run file, grouping and threshold)."""
    return _slices(run_key(folder), target, tuple(by), float(threshold), n_boot)


@st.cache_data(show_spinner="Computing the bias map...", max_entries=64)
def _bias_map(key: RunKey, thresholds: tuple[float, ...], min_support: int) -> BiasMap:
    from celeba_model.analysis.slices import bias_map

    return bias_map(_load_run(key), np.array(thresholds), min_support)


def bias_map_for(folder: str | Path, thresholds: np.ndarray, min_support: int) -> BiasMap:
    """Every target x attribute worst-cell gap (cached per run file, thresholds and minimum support)."""
    return _bias_map(run_key(folder), tuple(float(t) for t in thresholds), int(min_support))


@st.cache_data(show_spinner="Fitting per-group thresholds...", max_entries=64)
def _group_thresholds(fit_key: RunKey, key: RunKey, target: str, by: tuple[str, ...], threshold: float) -> GroupThresholds:
    from celeba_model.analysis.slices import fit_group_thresholds

    return fit_group_thresholds(_load_run(fit_key), _load_run(key), target, list(by), threshold)


def group_thresholds_for(fit_folder: str | Path, folder: str | Path, target: str, by: list[str],
                         threshold: float) -> GroupThresholds:
    """Per-group thresholds fitted on ``fit_folder``'s run and applied to ``folder``'s (cached)."""
    return _group_thresholds(run_key(fit_folder), run_key(folder), target, tuple(by), float(threshold))


@st.cache_resource(show_spinner="Ranking likely label errors (cleanlab)...", max_entries=32)
def _label_issues(key: RunKey) -> LabelIssues:
    from celeba_model.analysis.label_issues import find_label_issues

    return find_label_issues(_load_run(key))


def label_issues_for(folder: str | Path) -> LabelIssues:
    """cleanlab's label issues of a run against its dataset labels (cached per artifact file): the
    suspects stay put while decisions are recorded."""
    return _label_issues(run_key(folder, corrected=False))


@st.cache_resource(show_spinner="Drawing the 2-D map (UMAP; the first map of a server also compiles it, about "
                   "half a minute)...", max_entries=16)
def _embedding_map(key: RunKey, files: tuple[float, float], write: bool) -> EmbeddingMap:
    from celeba_model.analysis.embedding_map import map_for

    return map_for(_load_run(key), write=write)


def embedding_map_for(folder: str | Path) -> EmbeddingMap:
    """The run's 2-D embedding map (``analysis.embedding_map.map_for``), cached per artifact, embeddings
    and map file; drawn on first use and saved beside the run, except in the read-only mode."""
    from celeba_model.analysis.embedding_map import MAP_FILE
    from celeba_model.evaluation.embeddings import EMBEDDINGS_FILE

    folder = Path(folder)
    files = (_file_mtime(str(folder / EMBEDDINGS_FILE)), _file_mtime(str(folder / MAP_FILE)))
    return _embedding_map(run_key(folder, corrected=False), files, not read_only())


# Label corrections: the sidebar picks a file (the workspace's own by default) and whether every
# page applies it; the Labels page records decisions in it.
CORRECTIONS_ON_KEY = "corrections_on"
CORRECTIONS_FILE_KEY = "corrections_file"


def corrections_on() -> bool:
    return bool(st.session_state.get(CORRECTIONS_ON_KEY, False))


def active_corrections_file() -> Path:
    """The corrections file chosen in the sidebar, else the workspace's runs/labels/corrections.csv."""
    chosen = st.session_state.get(CORRECTIONS_FILE_KEY)
    return Path(chosen) if chosen else workspace().corrections_file


def corrections() -> LabelCorrections:
    """The decisions in the active corrections file, read now (cheap: a small CSV)."""
    return read_corrections(active_corrections_file(), missing_ok=True)


def corrections_choices() -> dict[str, Path]:
    """Corrections files to choose from, by their path in the workspace: the user's own (even before
    its first decision) and the shipped audits."""
    root = workspace().root
    files = list(dict.fromkeys([workspace().corrections_file, *workspace().list_corrections()]))
    return {str(f.relative_to(root)) if f.is_relative_to(root) else str(f): f for f in files}


@st.cache_resource(show_spinner="Loading the model...", max_entries=16)
def _predictor(path: str, mtime: float) -> Predictor:
    from celeba_model.photo.predictor import Predictor

    return Predictor(path)


def predictor_for(path: str | Path) -> Predictor:
    return _predictor(str(path), Path(path).stat().st_mtime)


@st.cache_resource(show_spinner="Loading the face detector...")
def face_detector() -> FaceDetector:
    """The shipped mediapipe face detector, loaded once per server (it is thread-safe)."""
    from celeba_model.photo.detection import FaceDetector

    return FaceDetector()


def checkpoint_choices() -> dict[str, Path]:
    """Every checkpoint of the workspace, by its path relative to the workspace (for selectors)."""
    root = workspace().root
    return {str(c.relative_to(root)) if c.is_relative_to(root) else str(c): c for c in workspace().list_checkpoints()}


def run_label(folder: Path) -> str:
    """A run folder as shown in selectors and legends."""
    return workspace().run_label(folder)


def list_runs() -> list[Path]:
    """The workspace's runs, then any kept in the sidebar's CelebA folder itself (``DATA_ROOT/runs``)."""
    runs = workspace().list_runs()
    root = data_root()
    own = find_runs(Path(root).expanduser() / RUNS_FOLDER) if root else []
    return runs + [run for run in own if run not in set(runs)]


def current_run() -> Path | None:
    """The run chosen in the sidebar."""
    value = st.session_state.get(RUN_KEY)
    return Path(value) if value else None


def thresholds_key(folder: Path) -> str:
    return f"thresholds::{folder}"


def current_thresholds(folder: Path, attributes: list[str]) -> np.ndarray:
    """The thresholds this session uses for a run (0.5 until the Thresholds page changes them)."""
    key = thresholds_key(folder)
    if key not in st.session_state or len(st.session_state[key]) != len(attributes):
        st.session_state[key] = np.full(len(attributes), 0.5)
    return np.asarray(st.session_state[key], dtype=np.float64)


def set_thresholds(folder: Path, values: np.ndarray) -> None:
    st.session_state[thresholds_key(folder)] = np.asarray(values, dtype=np.float64)


def require_run() -> tuple[Path, Predictions]:
    """The chosen run and its artifact, or stop the page with a message."""
    folder = current_run()
    if folder is None or not (folder / ARTIFACT_FILE).is_file():
        st.info("No evaluation run yet. Evaluate a checkpoint from the sidebar, or run "
                "`python -m celeba_model evaluate` and reload.")
        st.stop()
    try:
        return folder, load_run(folder)
    except CelebAModelError as err:  # a corrections file edited by hand into something unreadable
        st.error(str(err))
        st.stop()


def data_root() -> str:
    """The CelebA folder set in the sidebar ('' when none; only an allowed one when read-only)."""
    root = str(st.session_state.get(DATA_ROOT_KEY, "") or "").strip()
    return root if not read_only() or root in allowed_roots() else ""


@st.cache_data(show_spinner=False, max_entries=4096)
def face_crop(path: str, crop: dict, size: int = 128) -> Image.Image | None:
    """The model's crop of one dataset image, in color at display size (None if unreadable)."""
    try:
        return crop_and_resize(open_image(path), CropBox.from_dict(crop), size, "rgb")
    except ImageReadError:
        return None


@st.cache_data(show_spinner=False, max_entries=4096)
def thumbnail(path: str, size: int = 160) -> Image.Image | None:
    """A whole image, color, at most ``size`` pixels wide (None if unreadable): hair and glasses show
    whole, and loose photos are not cut by the aligned-image crop."""
    try:
        image = open_image(path).convert("RGB")
    except ImageReadError:
        return None
    image.thumbnail((size, size * 2))
    return image


def saliency_overlay(image: Image.Image, cam: np.ndarray, crop: CropBox, size: int = 192) -> Image.Image:
    """A Grad-CAM map over the color version of the model's crop (``crop``) of ``image``."""
    from celeba_model.photo.saliency import overlay

    return overlay(crop_and_resize(image, crop, size, "rgb"), cam, size=size)


def hover_faces(folder: str | Path, predictions: Predictions) -> tuple[Path, Thumbnails] | None:
    """The hover chart's component folder and the run's thumbnails (being written in the background),
    or None where faces cannot be shown on hover: the read-only mode (nothing is written), no image
    of the run on this machine, or an image cache that cannot be written."""
    if read_only():
        return None
    from hover_scatter import component_folder, thumbnails

    paths = _image_paths(str(folder), run_mtime(Path(folder)), data_root(), predictions)
    if not any(paths):
        return None
    try:
        component = component_folder(workspace().cache_dir)
    except OSError:
        return None
    return component, thumbnails(str(component), f"{folder}|{run_mtime(Path(folder))}|{data_root()}", paths)


@st.cache_data(show_spinner=False, max_entries=16)
def _image_paths(folder: str, mtime: float, root: str, _predictions: Predictions) -> tuple[str | None, ...]:
    """Where each of a run's images is (None: not on this machine), looked up once per run and folder."""
    return tuple(_predictions.image_paths(workspace().root, root or None))


def resolve_image(predictions: Predictions, row: int) -> str | None:
    """Where to read image ``row`` (``Predictions.image_path``, with the sidebar's CelebA folder)."""
    path = predictions.image_path(row, workspace().root, data_root() or None)
    return str(path) if path else None


def describe_run(predictions: Predictions) -> str:
    meta = predictions.meta
    checkpoint = meta.get("checkpoint", {})
    timing = meta.get("timing", {})
    people = meta.get("counts", {}).get("identities")
    if "imported" in meta:
        made = f"predictions imported from `{Path(str(meta['imported'].get('source'))).name}`"
    elif "crossfit" in meta:
        made = f"out-of-fold predictions of {meta['crossfit'].get('folds', '?')} {checkpoint.get('arch', '?')} models (crossfit)"
    else:
        made = f"{checkpoint.get('arch', '?')} model, `{checkpoint.get('path', '?')}`"
    parts = [
        f"**{predictions.name}**: {made}",
        f"{len(predictions):,} {meta.get('split', '?')} images" + (f" of {people:,} people" if people else ""),
    ]
    corrected = meta.get("label_corrections")
    if corrected:
        parts.append(f"**corrected labels** ({corrected['changed']:,} changed by `{Path(corrected['file']).name}`)")
    if timing.get("images_per_s"):
        parts.append(f"evaluated at {timing['images_per_s']:,.0f} images/s on {timing.get('device', '?')}")
    return " · ".join(parts)
