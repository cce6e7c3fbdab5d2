"""Overview: per-attribute precision, recall, F1, accuracy and support, beside the paper's table."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import ui

from celeba_model.analysis.reports import correction_effect, report_frame, report_table
from celeba_model.metrics.curves import reliability_curve
from celeba_model.metrics.paper_reference import PAPER_AVERAGE, PAPER_TABLE

folder, predictions = ui.require_run()
thresholds = ui.current_thresholds(folder, predictions.attributes)
report = ui.report_for(folder, thresholds)
summary = report["summary"]

st.title("Overview")
st.markdown(ui.describe_run(predictions))
uniform = len(set(thresholds.round(4))) == 1
st.caption(
    (f"Threshold {thresholds[0]:.2f} for every attribute" if uniform else "Per-attribute thresholds from the Thresholds page")
    + f". Brackets: 95% bootstrap intervals over {report['bootstrap']['groups']:,} "
    + ("people" if report["bootstrap"]["resampled"] == "groups" else "images") + "."
)

cols = st.columns(6)
cols[0].metric("Macro precision", f"{summary['macro_precision']:.3f}",
               delta=f"{summary['macro_precision'] - PAPER_AVERAGE['precision']:+.3f} vs paper")
cols[1].metric("Macro recall", f"{summary['macro_recall']:.3f}",
               delta=f"{summary['macro_recall'] - PAPER_AVERAGE['recall']:+.3f} vs paper")
cols[2].metric("F (paper's AVG.)", f"{summary['paper_f']:.3f}", delta=f"{summary['paper_f'] - PAPER_AVERAGE['f']:+.3f} vs paper",
               help="2PR/(P+R) of macro precision and macro recall, as the paper's AVG. row")
cols[3].metric("Macro-F1", f"{summary['macro_f1']:.3f}", help="Mean of the per-attribute F1")
cols[4].metric("Micro-F1", f"{summary['micro_f1']:.3f}")
cols[5].metric("Mean accuracy", f"{summary['macro_accuracy']:.3f}")
st.caption(
    f"Intervals: macro precision {summary['macro_precision_ci'][0]:.3f}-{summary['macro_precision_ci'][1]:.3f}, "
    f"macro recall {summary['macro_recall_ci'][0]:.3f}-{summary['macro_recall_ci'][1]:.3f}, "
    f"F {summary['paper_f_ci'][0]:.3f}-{summary['paper_f_ci'][1]:.3f}, "
    f"macro-F1 {summary['macro_f1_ci'][0]:.3f}-{summary['macro_f1_ci'][1]:.3f}."
)

if ui.corrections_on():
    # Both figures side by side: the dataset's labels and the corrected ones, same thresholds.
    original = ui.report_for(folder, thresholds, corrected=False)
    record = predictions.meta.get("label_corrections", {})
    effect = correction_effect(original, report, record.get("changed_per_attribute"))
    st.subheader("Dataset labels vs corrected labels")
    st.caption(f"{record.get('changed', 0):,} of this run's labels changed by `{record.get('file')}`. The figures "
               "above and on every page use the corrected labels; here each metric with the dataset's labels "
               "beside the corrected one.")
    st.dataframe(effect.style.format(precision=3), hide_index=True, key="overview_corrections")

rows = report["attributes"]
names = [r["attribute"] for r in rows]
figure = go.Figure()
for metric, label in (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1")):
    figure.add_bar(
        name=label, x=names, y=[r[metric] for r in rows],
        error_y={"type": "data", "symmetric": False,
                 "array": [r[f"{metric}_ci"][1] - r[metric] for r in rows],
                 "arrayminus": [r[metric] - r[f"{metric}_ci"][0] for r in rows]},
    )
paper_f = [PAPER_TABLE[n][4] if n in PAPER_TABLE else None for n in names]
figure.add_scatter(name="Paper F", x=names, y=paper_f, mode="markers", marker={"symbol": "diamond", "size": 11, "color": "black"})
figure.update_layout(barmode="group", yaxis={"range": [0, 1.05], "title": "score"}, height=420,
                     legend={"orientation": "h", "y": 1.1}, margin={"t": 30, "b": 10})
st.plotly_chart(figure, key="overview_chart")

st.subheader("Per attribute")
table = report_table(report)
st.dataframe(table.style.format(precision=3), hide_index=True, key="overview_table")

st.subheader("The paper's table")
paper = pd.DataFrame(
    [{"attribute": n, "TP/positives": f"{tp}/{pos}", "precision": p, "recall": r, "F": f}
     for n, (tp, pos, p, r, f) in PAPER_TABLE.items()]
    + [{"attribute": "AVG.", "TP/positives": "", **{k if k != "f" else "F": v for k, v in PAPER_AVERAGE.items()}}]
)
st.dataframe(paper.style.format(precision=3), hide_index=True)
st.caption("The paper evaluated 19,962 CelebA test images with grayscale input; its AVG. row is the mean precision, "
           "the mean recall and F = 2PR/(P+R) of those means. Its Young precision (.571 at TP 14,843) implies more "
           "false positives than the test set has negatives.")

with st.expander("Calibration: are the probabilities honest?"):
    attribute = st.selectbox("Attribute", predictions.attributes, key="calibration_attribute")
    j = predictions.attributes.index(attribute)
    curve = reliability_curve(predictions.labels[:, j], predictions.probabilities[:, j], bins=10)
    calib = go.Figure()
    calib.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot", "color": "gray"})
    calib.add_scatter(x=curve["mean_score"], y=curve["fraction_positive"], mode="lines+markers", name=attribute,
                      text=[f"{int(c)} images" for c in curve["count"]])
    calib.update_layout(xaxis_title="mean predicted probability", yaxis_title="fraction positive", height=380)
    st.plotly_chart(calib, key="calibration_chart")
    st.caption("The table's ECE column is each attribute's expected calibration error: the count-weighted mean gap "
               "between mean probability and fraction positive over 10 bins.")

frame = report_frame(report)
left, right = st.columns(2)
left.download_button("Download table (CSV)", frame.to_csv(index=False), file_name="report.csv", mime="text/csv")
right.download_button("Download report (JSON)", json.dumps(report, indent=2), file_name="report.json", mime="application/json")
