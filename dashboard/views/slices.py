"""Slices: where the model fails, by group (e.g. Blond_Hair by Male: the blond men CelebA models miss)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import ui

from celeba_model.analysis.slices import BIAS_MAP_MIN_SUPPORT, GROUP_METRICS, PERSON, SliceReport
from celeba_model.catalogue import sibling_run
from celeba_model.errors import CelebAModelError

METRIC_NAMES = {"accuracy": "accuracy", "tpr": "TPR (recall)", "fpr": "FPR", "precision": "precision", "f1": "F1"}
DEFAULT_TARGET, DEFAULT_GROUP = "Blond_Hair", "Male"  # CelebA's best-known spurious correlation
PHOTO_RUN = "wild_val"  # the shipped photo-path runs (real CelebA test photos of 326 people)

folder, predictions = ui.require_run()
attributes = predictions.attributes
thresholds = ui.current_thresholds(folder, attributes)
has_people = bool((np.asarray(predictions.identity) >= 0).any())


def _valid(key: str, options: list[str], default: str) -> None:
    """Keep a selector's choice across runs when the new run offers it, else use the default."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = default


def _ci(low: pd.Series, high: pd.Series) -> list[str]:
    return [f"{a:.3f}-{b:.3f}" for a, b in zip(low, high)]


def _note(support: pd.Series, small: int) -> list[str]:
    return ["empty" if n == 0 else (f"small (<{small} images)" if n < small else "") for n in support]


st.title("Slices")
st.markdown(ui.describe_run(predictions))
if predictions.celeba_labels is None:
    st.info(f"This run stores only its model's {len(attributes)} labels, so groups are those attributes"
            + (" or people" if has_people else "") + ". Evaluate it again to group by any of the 40 CelebA attributes.")

_valid("slice_target", attributes, DEFAULT_TARGET if DEFAULT_TARGET in attributes else attributes[0])
left, middle, right = st.columns([2, 3, 2])
target = left.selectbox("Target attribute", attributes, key="slice_target")
choices = [a for a in predictions.labeled_attributes if a != target] + ([PERSON] if has_people else [])
chosen = [g for g in st.session_state.get("slice_by", []) if g in choices]
if not chosen:
    chosen = [DEFAULT_GROUP if DEFAULT_GROUP in choices else choices[0]]
st.session_state["slice_by"] = chosen
by = middle.multiselect("Group by (one or two attributes, or person)", choices, key="slice_by", max_selections=2,
                        help="Groups are G=0 / G=1 of an attribute (or the four combinations of two); person makes "
                        "one group per identity")
metric = right.selectbox("Chart metric", list(GROUP_METRICS), format_func=METRIC_NAMES.get, key="slice_metric")
if not by:
    st.info("Choose one or two grouping attributes.")
    st.stop()
if PERSON in by and len(by) > 1:
    st.info("Person groups stand alone: choose person by itself.")
    st.stop()

j = attributes.index(target)
try:
    report: SliceReport = ui.slices_for(folder, target, by, thresholds[j])
except CelebAModelError as err:
    st.error(str(err))
    st.stop()
people = "people" if report.resampled == "groups" else "images"
st.caption(f"{target} at threshold {thresholds[j]:.2f} (the Thresholds page's). Brackets: 95% bootstrap intervals "
           f"over {people}" + (" within each person" if by == [PERSON] else "") + f"; groups under {report.small} "
           "images are flagged small, empty groups listed with zeros. A rate whose denominator is 0 (TPR of a "
           "group without positives) is 0.")

cols = st.columns(5)
cols[0].metric("Average accuracy", f"{report.average_accuracy:.3f}")
cols[1].metric("Worst group", f"{report.worst_group_accuracy:.3f}", delta=f"{-report.worst_group_gap:+.3f}",
               help=f"{report.worst_group}: the lowest accuracy over the groups, and its gap to the average")
cols[2].metric("Worst cell", f"{report.worst_cell_accuracy:.3f}", delta=f"{-report.worst_cell_gap:+.3f}",
               help=f"{report.worst_cell}: worst-group accuracy as in Sagawa et al. 2020, the minimum over the "
               f"{target} x group cells")
cols[3].metric("Equalized odds diff.", "n/a" if np.isnan(report.equalized_odds_difference)
               else f"{report.equalized_odds_difference:.3f}",
               help="fairlearn: the larger of the TPR and FPR differences between groups (0 is equal)")
cols[4].metric("Demographic parity diff.", "n/a" if np.isnan(report.demographic_parity_difference)
               else f"{report.demographic_parity_difference:.3f}",
               help="fairlearn: the difference in the rate of positive decisions between groups")
st.caption(f"Worst group: **{report.worst_group}**. Worst cell: **{report.worst_cell}**.")
# A split of a few hundred images may hold one or two people of a rare cell (the shipped test split has one
# blond man); the same checkpoint's run on the real photos holds enough of them to measure.
photos_run = sibling_run(predictions, PHOTO_RUN) if folder.name != PHOTO_RUN else None
if photos_run is not None and (report.cells["support"] < report.small).any():
    st.info(f"Some cells here hold under {report.small} images. The same checkpoint's run on "
            f"{ui.run_label(photos_run)} (real photos of other people) holds enough of them to measure.")
    if st.button(f"Open {ui.run_label(photos_run)}", key="slice_open_photos"):
        st.session_state[ui.PENDING_RUN_KEY] = ui.run_label(photos_run)
        st.rerun()

groups = report.groups
figure = go.Figure()
figure.add_bar(
    x=[f"{g} (n={n})" for g, n in zip(groups["group"], groups["support"])], y=groups[metric],
    marker_color=["#bbbbbb" if s else "#1f77b4" for s in groups["small"]],
    error_y={"type": "data", "symmetric": False, "array": groups[f"{metric}_high"] - groups[metric],
             "arrayminus": groups[metric] - groups[f"{metric}_low"]},
    text=["small" if s else "" for s in groups["small"]], textposition="outside",
)
if metric == "accuracy":
    figure.add_hline(y=report.average_accuracy, line_dash="dot", annotation_text="average")
figure.update_layout(yaxis={"range": [0, 1.1], "title": METRIC_NAMES[metric]}, height=380, margin={"t": 20, "b": 10})
st.plotly_chart(figure, key="slice_chart")

table = pd.DataFrame({"group": groups["group"], "images": groups["support"], "positives": groups["positives"]})
for name in GROUP_METRICS:
    table[METRIC_NAMES[name]] = groups[name]
    table[f"{METRIC_NAMES[name]} 95% CI"] = _ci(groups[f"{name}_low"], groups[f"{name}_high"])
table["note"] = _note(groups["support"], report.small)
st.dataframe(table.style.format(precision=3), hide_index=True, key="slice_table")

st.subheader(f"Cells: {target} x group")
cells = report.cells
cell_figure = go.Figure()
for value, name in ((1, target), (0, f"not {target}")):
    part = cells[cells["target"] == value]
    cell_figure.add_bar(
        name=name, x=part["group"], y=part["accuracy"],
        error_y={"type": "data", "symmetric": False, "array": part["accuracy_high"] - part["accuracy"],
                 "arrayminus": part["accuracy"] - part["accuracy_low"]},
        text=[f"n={n}" for n in part["support"]], textposition="outside",
    )
cell_figure.update_layout(barmode="group", yaxis={"range": [0, 1.15], "title": "accuracy"}, height=360,
                          legend={"orientation": "h", "y": 1.12}, margin={"t": 30, "b": 10})
st.plotly_chart(cell_figure, key="cell_chart")
cell_table = pd.DataFrame({"cell": cells["cell"], "images": cells["support"], "accuracy": cells["accuracy"],
                           "accuracy 95% CI": _ci(cells["accuracy_low"], cells["accuracy_high"]),
                           "note": _note(cells["support"], report.small)})
st.dataframe(cell_table.style.format(precision=3), hide_index=True, key="cell_table")
st.caption("Accuracy in a cell where the target is present is the group's TPR; where it is absent, 1 - FPR. "
           "Worst-group accuracy (Sagawa et al. 2020) is the lowest of these cells: a model that learned "
           "\"blond means woman\" fails on blond men while its average looks fine.")

st.subheader("Bias map: every target x every attribute")
min_support = st.number_input("Ignore cells with fewer images than", 1, 1000, BIAS_MAP_MIN_SUPPORT,
                              key="bias_min_support")
found = ui.bias_map_for(folder, thresholds, int(min_support))
heat = go.Figure(go.Heatmap(
    z=found.gap.to_numpy(dtype=float), x=list(found.gap.columns), y=list(found.gap.index), colorscale="Reds",
    zmin=0, colorbar={"title": "gap"},
    customdata=np.dstack([found.worst_cell.to_numpy(dtype=object), found.worst_accuracy.to_numpy(dtype=float),
                          found.worst_support.to_numpy(dtype=float)]),
    hovertemplate="%{y} by %{x}<br>gap %{z:.3f}<br>worst cell %{customdata[0]}: accuracy %{customdata[1]:.3f} "
                  "on %{customdata[2]:.0f} images<extra></extra>",
))
heat.update_layout(height=140 + 28 * len(found.gap.index), xaxis={"tickangle": -45}, yaxis={"autorange": "reversed"},
                   margin={"t": 20, "b": 10})
st.plotly_chart(heat, key="bias_map")
strongest = found.strongest(5)
if len(strongest):
    st.markdown("Strongest pairs:\n" + "\n".join(
        f"- **{r.target} by {r.group}**: worst cell {r.worst_cell}, accuracy {r.worst_accuracy:.2f} on {r.support} "
        f"images, {r.gap:.2f} below the average {r.average_accuracy:.2f}" for r in strongest.itertuples()))
st.caption(f"Each square: the target's average accuracy minus its worst target x attribute cell, cells under "
           f"{int(min_support)} images ignored (blank where none is left, and on the diagonal); thresholds are the "
           "Thresholds page's. A row red everywhere is a target missed in general (its present cells are poor in "
           "every grouping); a spurious correlation is a square redder than its row. Few images per cell make large "
           "gaps noisy: check the pair above, with its intervals.")

st.subheader(f"Per-group thresholds for {target}")
if by == [PERSON]:
    st.caption("Per-group thresholds need attribute groups: the people of one split are not in another.")
else:
    fit_folder = folder if predictions.meta.get("split") == "val" else sibling_run(predictions, "val")
    if fit_folder is None:
        st.caption("No validation run of this checkpoint next to this run: evaluate the val split to fit per-group "
                   "thresholds on it.")
    elif st.toggle(f"Fit per-group thresholds on {ui.run_label(fit_folder)}", key="slice_fit_thresholds",
                   help="fairlearn's ThresholdOptimizer (equalized odds, maximizing accuracy) on the validation "
                   "run's scores, applied to this run"):
        try:
            fitted = ui.group_thresholds_for(fit_folder, folder, target, by, thresholds[j])
        except CelebAModelError as err:
            st.warning(str(err))
        else:
            if fit_folder == folder:
                st.caption("This is the validation run itself: the trade-off below is in-sample.")
            tradeoff = fitted.tradeoff.reset_index().rename(columns=lambda c: c.replace("_", " "))
            st.dataframe(tradeoff.style.format(precision=3), hide_index=True, key="tradeoff_table")
            st.dataframe(fitted.rules[["group", "rule"]], hide_index=True, key="rules_table")
            st.dataframe(fitted.cells.style.format(precision=3), hide_index=True, key="tradeoff_cells")
            st.caption("Equalized odds equalizes TPR and FPR across groups, i.e. the cells' accuracies: the worst "
                       "cell should rise, often at some cost in average accuracy. Rules that mix two thresholds are "
                       f"randomized (drawn with seed {fitted.seed}); a small validation run makes them noisy.")

left, middle, right = st.columns(3)
left.download_button("Download groups (CSV)", report.groups.to_csv(index=False), file_name=f"slices_{target}.csv",
                     mime="text/csv")
middle.download_button("Download cells (CSV)", report.cells.to_csv(index=False), file_name=f"cells_{target}.csv",
                       mime="text/csv")
right.download_button("Download bias map (CSV)", found.gap.to_csv(), file_name="bias_map.csv", mime="text/csv")
