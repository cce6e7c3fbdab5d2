"""Ablations: compare runs (the paper model, its ablations, our variants) per attribute and on average."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import ui

from celeba_model.analysis.reports import SEED_RUNS_PREFIX, compare_runs, experiment_rows, seed_spread
from celeba_model.errors import CelebAModelError
from celeba_model.metrics.paper_reference import PAPER_ABLATIONS

st.title("Ablations")
runs = ui.list_runs()
if not runs:
    st.info("No evaluation runs yet.")
    st.stop()
labels = {ui.run_label(r): r for r in runs}
current = ui.current_run()
# Default: the current run and the others of its family (shipped real-data runs, the demo's, or the
# workspace's own) on the same split.
attributes = ui.load_run(current).attributes if current else []
default = [ui.run_label(r) for r in ui.workspace().related_runs(current)
           if ui.load_run(r).attributes == attributes] if current else []  # comparable runs only
chosen = st.multiselect("Runs to compare (same attributes, ideally the same split)", list(labels), default=default,
                        key="ablation_runs")
threshold_mode = st.radio("Thresholds", ["0.5", "checkpoint"], horizontal=True, key="ablation_thresholds",
                          format_func={"0.5": "0.5 for all (as the paper)", "checkpoint": "each checkpoint's tuned"}.get)
if not chosen:
    st.info("Choose at least one run.")
    st.stop()


@st.cache_data(show_spinner="Comparing runs...", max_entries=64)
def _compare(keys: tuple[ui.RunKey, ...], thresholds: tuple[tuple[float, ...], ...]) -> dict:
    # Keyed by each run's file and label corrections (ui.run_key), so either changing recomputes.
    return compare_runs([ui.load_run(key[0]) for key in keys], [list(t) for t in thresholds], n_boot=1000,
                        names=[ui.run_label(Path(key[0])) for key in keys])


def _thresholds(folder: Path) -> tuple[float, ...]:
    """The run's thresholds in the chosen mode; the tuned ones are read from each checkpoint now."""
    run = ui.load_run(folder)
    if threshold_mode == "0.5":
        return (0.5,) * len(run.attributes)
    values, source = ui.checkpoint_thresholds(run)
    if values is None:
        st.error(f"{ui.run_label(folder)}: {source}")
        st.stop()
    return tuple(float(v) for v in values)


try:
    comparison = _compare(tuple(ui.run_key(labels[name]) for name in chosen),
                          tuple(_thresholds(labels[name]) for name in chosen))
except CelebAModelError as err:
    st.error(str(err))
    st.stop()

figure = go.Figure()
for name in [r["run"] for r in comparison["runs"]]:
    figure.add_bar(name=name, x=[row["attribute"] for row in comparison["f1_by_attribute"]],
                   y=[row[name] for row in comparison["f1_by_attribute"]])
figure.update_layout(barmode="group", yaxis={"title": "F1", "range": [0, 1.05]}, height=440,
                     legend={"orientation": "h", "y": 1.12}, margin={"t": 40})
st.plotly_chart(figure, key="ablation_chart")

st.subheader("Macro figures")
st.caption(f"Deltas against {comparison['reference']} (the run of the `paper` architecture when there is one). "
           "Intervals: 95% bootstrap over people. A difference smaller than the intervals is not evidence.")
rows = []
for r in comparison["runs"]:
    rows.append({
        "run": r["run"], "arch": r["arch"], "images": r["images"],
        "macro P": r["macro_precision"], "macro R": r["macro_recall"],
        "F (paper's AVG.)": r["paper_f"], "F 95% CI": f"{r['paper_f_ci'][0]:.3f}-{r['paper_f_ci'][1]:.3f}",
        "ΔF": r["delta_paper_f"], "macro-F1": r["macro_f1"], "Δ macro-F1": r["delta_macro_f1"],
        "mean accuracy": r["macro_accuracy"],
    })
frame = pd.DataFrame(rows)
st.dataframe(frame.style.format(precision=3), hide_index=True, key="ablation_table")

st.subheader("The paper's ablation table")
paper = pd.DataFrame([{"model": name, "precision": v["precision"], "recall": v["recall"], "F": v["f"],
                       "ΔF": v["f"] - PAPER_ABLATIONS["paper"]["f"]} for name, v in PAPER_ABLATIONS.items()])
st.dataframe(paper.style.format(precision=3), hide_index=True)
st.caption("Published single runs on CelebA's test split, grayscale input. The paper reads the 4-point drop without "
           "conv3 and the partial recovery without fc1 as evidence; it reports no spread over seeds.")

experiments = ui.catalogue().experiments().models
if experiments:
    st.subheader("Experiments on real CelebA: what each change bought")
    st.caption("From checkpoints/celeba/experiments.json (scripts/run_experiments.py): test figures on the 660 "
               "real test images (22 people) with 95% intervals over people; 'tuned' thresholds were chosen on val. Each run "
               "is also in runs/experiments/ when rebuilt here.")
    rows = experiment_rows([r for r in experiments if not r.name.startswith(SEED_RUNS_PREFIX)])
    table = pd.DataFrame([{k: v for k, v in row.items() if k != "F1 @0.5+flip"} for row in rows])
    for key in [k for k in table.columns if "CI" in k]:
        table[key] = table[key].map(lambda ci: f"{ci[0]:.3f}-{ci[1]:.3f}")
    st.dataframe(table.style.format(precision=3), hide_index=True, key="experiments_table")
    per_attribute = pd.DataFrame({row["experiment"]: row["F1 @0.5+flip"] for row in rows})
    st.caption("Per-attribute test F1 at 0.5 with flip averaging (the shipped operating point):")
    st.dataframe(per_attribute.style.format(precision=3),
                 key="experiments_f1")
    spread = seed_spread(experiments)
    if spread:
        st.subheader("The paper's ablation over seeds")
        st.dataframe(pd.DataFrame(spread).style.format(precision=3), hide_index=True, key="seed_table")

left, right = st.columns(2)
left.download_button("Download comparison (CSV)", frame.to_csv(index=False), file_name="comparison.csv", mime="text/csv")
right.download_button("Download comparison (JSON)", json.dumps(comparison, indent=2), file_name="comparison.json",
                      mime="application/json")
