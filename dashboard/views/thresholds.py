"""Thresholds: move per-attribute decision thresholds and watch precision, recall and F1 follow."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import ui

from celeba_model.analysis.thresholds import save_thresholds_to_checkpoint, thresholds_record, tune_run
from celeba_model.catalogue import sibling_run
from celeba_model.errors import CelebAModelError
from celeba_model.metrics.counts import summarize
from celeba_model.metrics.curves import pr_curve_for_display

folder, predictions = ui.require_run()
attributes = predictions.attributes
sweep = ui.sweep_for(folder)
slider_keys = [f"slider::{folder}::{a}" for a in attributes]
global_key = f"slider::{folder}::all"
# Read from the checkpoint (or the workspace's override for it) on every rerun, never from a copy.
stored, stored_source = ui.checkpoint_thresholds(predictions)


def _apply(values: np.ndarray) -> None:
    """Set every slider and the session's thresholds (runs in widget callbacks, before the rerun)."""
    for key, value in zip(slider_keys, values):
        st.session_state[key] = float(np.clip(value, 0.0, 1.0))
    ui.set_thresholds(folder, values)


def _set_all() -> None:
    _apply(np.full(len(attributes), st.session_state[global_key]))


def _tune() -> None:
    val_folder = sibling_run(predictions, "val") if predictions.meta.get("split") != "val" else folder
    if val_folder is None:
        st.session_state["tune_message"] = ("error", "No validation run of this checkpoint next to this run. Evaluate "
                                            "the val split first (sidebar > Evaluate a checkpoint, split val).")
        return
    objective = st.session_state["tune_objective"]
    target = st.session_state.get("tune_target") if objective != "f1" else None
    try:
        result = tune_run(ui.load_run(val_folder), objective, target, write=False)
    except CelebAModelError as err:
        st.session_state["tune_message"] = ("error", str(err))
        return
    _apply(np.array([result["thresholds"][a] for a in attributes]))
    st.session_state["tune_result"] = result
    missed = [a for a, ok in result["feasible"].items() if not ok]
    text = f"Tuned on {ui.run_label(val_folder)} ({objective}{'' if target is None else f' >= {target:.2f}'})."
    if missed:
        text += f" Target not reachable for: {', '.join(missed)} (best available used)."
    st.session_state["tune_message"] = ("success", text)


def _use_stored() -> None:
    _apply(stored)


thresholds = ui.current_thresholds(folder, attributes)
for key, value in zip(slider_keys, thresholds):
    st.session_state.setdefault(key, float(value))

st.title("Thresholds")
st.markdown(ui.describe_run(predictions))

with st.container(border=True):
    left, middle, right = st.columns([2, 2, 3])
    left.slider("Set every attribute to", 0.0, 1.0, 0.5, 0.01, key=global_key, on_change=_set_all)
    middle.radio("Tune on validation for", ["f1", "precision", "recall"], key="tune_objective", horizontal=True,
                 format_func={"f1": "max F1", "precision": "target precision", "recall": "target recall"}.get)
    middle.slider("Target", 0.5, 1.0, 0.9, 0.01, key="tune_target", disabled=st.session_state.get("tune_objective", "f1") == "f1")
    with right:
        b1, b2, b3 = st.columns(3)
        b1.button("Tune on validation", on_click=_tune, type="primary")
        b2.button("Reset to 0.5", on_click=_apply, args=(np.full(len(attributes), 0.5),))
        b3.button("Use checkpoint's", on_click=_use_stored, disabled=stored is None,
                  help=f"The thresholds saved for this checkpoint, from {stored_source}" if stored is not None
                  else stored_source)
    message = st.session_state.pop("tune_message", None)
    if message:
        getattr(st, message[0])(message[1])

columns = st.columns(5)
for i, (attribute, key) in enumerate(zip(attributes, slider_keys)):
    columns[i % 5].slider(attribute, 0.0, 1.0, step=0.01, key=key)
thresholds = np.array([st.session_state[k] for k in slider_keys])
ui.set_thresholds(folder, thresholds)

per = sweep.metrics_at(thresholds)  # microseconds: the scores were sorted once
summary = summarize(per)
cols = st.columns(5)
cols[0].metric("Macro precision", f"{summary['macro_precision']:.3f}")
cols[1].metric("Macro recall", f"{summary['macro_recall']:.3f}")
cols[2].metric("F (paper's AVG.)", f"{summary['paper_f']:.3f}")
cols[3].metric("Macro-F1", f"{summary['macro_f1']:.3f}")
cols[4].metric("Mean accuracy", f"{summary['macro_accuracy']:.3f}")

table = pd.DataFrame({
    "attribute": attributes,
    "threshold": thresholds,
    "precision": per["precision"], "recall": per["recall"], "F1": per["f1"], "accuracy": per["accuracy"],
    "TP": per["tp"], "FP": per["fp"], "FN": per["fn"], "TN": per["tn"],
})
st.dataframe(table.style.format({"threshold": "{:.2f}", "precision": "{:.3f}", "recall": "{:.3f}", "F1": "{:.3f}",
                                 "accuracy": "{:.3f}"}), hide_index=True, key="threshold_table")

attribute = st.selectbox("Precision-recall curve of", attributes, key="pr_attribute")
j = attributes.index(attribute)
# A few thousand points, exact at the threshold: the whole curve has a point per distinct score (about
# 200,000 on full CelebA, 9 MB sent to the browser on every slider move).
curve = pr_curve_for_display(sweep.curve(j), thresholds[j])
figure = go.Figure()
figure.add_scatter(x=curve["recall"], y=curve["precision"], mode="lines", name="PR curve",
                   customdata=curve["thresholds"], hovertemplate="recall %{x:.3f}, precision %{y:.3f}<br>threshold %{customdata:.3f}"
                   "<extra></extra>")
figure.add_scatter(x=[per["recall"][j]], y=[per["precision"][j]], mode="markers", name=f"threshold {thresholds[j]:.2f}",
                   marker={"size": 14, "symbol": "x", "color": "crimson"})
figure.update_layout(xaxis={"title": "recall", "range": [0, 1.02]}, yaxis={"title": "precision", "range": [0, 1.02]},
                     height=420, margin={"t": 20})
st.plotly_chart(figure, key="pr_chart")

st.subheader("Keep these thresholds")
record = thresholds_record(predictions, thresholds, objective=st.session_state.get("tune_result", {}).get("objective", "manual"))
d1, d2, d3 = st.columns(3)
d1.download_button("Download JSON", json.dumps(record, indent=2), file_name="thresholds.json", mime="application/json")
d2.download_button("Download CSV", table[["attribute", "threshold"]].to_csv(index=False), file_name="thresholds.csv",
                   mime="text/csv")
if ui.read_only():
    d3.caption("Saving is off on this shared, read-only dashboard.")
elif d3.button("Save for this checkpoint", help="Stores them with the checkpoint, where the Upload page, `predict` and "
             "`report --thresholds checkpoint` read them: in its metadata (weights untouched), or for a shipped "
             "checkpoint in the workspace's runs/thresholds/ (the shipped file is never rewritten)"):
    try:
        path = save_thresholds_to_checkpoint(predictions, record, ui.workspace().root)
    except CelebAModelError as err:
        st.error(f"Not saved: {err}")
    else:
        st.success(f"Saved in {path}" + (" (this checkpoint is shipped, so its file is unchanged)"
                                         if path.suffix == ".json" else ""))
