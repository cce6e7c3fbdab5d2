"""Map: the run's images laid out by what the model sees (penultimate features, UMAP), FiftyOne-style.

Points are coloured by a label, the model's decision, its error type, its probability, a group or
the person; hovering shows a point's face when the images are on this machine (``hover_scatter``),
clicking one shows its face and predictions, a box or lasso opens the images as a gallery. The map and
the colour values come from ``celeba_model.analysis.embedding_map``.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import ui

from celeba_model.analysis.embedding_map import (
    COLOR_BY,
    ERROR_TYPES,
    PointColors,
    has_features,
    point_colors,
    point_table,
)
from celeba_model.errors import CelebAModelError
from celeba_model.evaluation.embeddings import embedding_checkpoint, run_image_paths

COLOR_NAMES = {"label": "label", "prediction": "prediction (at the Thresholds page's threshold)",
               "error": "error type (TP / FP / FN / TN)", "probability": "probability", "group": "group",
               "person": "person"}
ERROR_COLORS = {"TP": "#2ca02c", "FP": "#ff7f0e", "FN": "#d62728", "TN": "#c7c7c7"}
BINARY_COLORS = ["#9ecae1", "#e6550d"]  # absent, present
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94"]
DEFAULT_ATTRIBUTE = "Male"
PAGE_SIZE = 24
COLUMNS = 6
LEGEND_MAX = 16  # more categories (people) are coloured from a cycling palette without a legend

folder, predictions = ui.require_run()
attributes = predictions.attributes
thresholds = ui.current_thresholds(folder, attributes)

st.title("Map")
st.markdown(ui.describe_run(predictions))


def _offer_embedding(problem: CelebAModelError) -> None:
    """No usable embeddings: say why the page needs them, and compute them when this dashboard may."""
    if has_features(predictions):  # stale (the run was evaluated again) or damaged
        st.warning(f"The stored embeddings cannot be used: {problem}")
    else:
        st.info("This run has no embeddings yet. The map places each image by the features the model's classifier "
                "head sees (its penultimate layer), laid out in 2-D by UMAP, so similar faces sit together; it "
                f"needs those features once: `python -m celeba_model embed --run {folder}`, or the button below.")
    try:
        embedding_checkpoint(predictions, ui.workspace().root)
    except CelebAModelError as err:  # imported or crossfit predictions, a moved or retrained checkpoint
        st.warning(str(err))
        st.stop()
    if ui.read_only():
        st.caption("This is the read-only shared dashboard: the features cannot be computed here.")
        st.stop()
    try:
        run_image_paths(predictions, ui.workspace().root, ui.data_root() or None)
    except CelebAModelError as err:
        st.warning(f"{err} (here: set the CelebA folder in the sidebar)")
        st.stop()
    if st.button("Compute the embeddings", key="map_embed", help="Runs the run's checkpoint over its images (a few "
                 "hundred images a second on a CPU), then draws the map"):
        from celeba_model.photo.embeddings import embed_run

        bar = st.progress(0.0, text="Starting...")
        try:
            embed_run(predictions, ui.data_root() or None, workspace_root=ui.workspace().root,
                      cache_dir=ui.workspace().cache_dir, overwrite=True,
                      on_progress=lambda stage, f: bar.progress(min(max(f, 0.0), 1.0), text=stage))
        except CelebAModelError as err:
            st.error(f"The embeddings could not be computed: {err}")
            st.stop()
        st.rerun()
    st.stop()


try:
    drawn = ui.embedding_map_for(folder)
except CelebAModelError as err:
    _offer_embedding(err)


def _valid(key: str, options: list[str], default: str) -> None:
    """Keep a selector's choice when the options still hold it, else use the default."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = default


left, middle, right = st.columns([2, 2, 3])
_valid("map_color", list(COLOR_BY), "label")
by = left.selectbox("Colour by", list(COLOR_BY), format_func=COLOR_NAMES.get, key="map_color")
choices = predictions.labeled_attributes if by in ("label", "group") else attributes
_valid("map_attribute", choices, DEFAULT_ATTRIBUTE if DEFAULT_ATTRIBUTE in choices else choices[0])
attribute = middle.selectbox("Attribute", choices, key="map_attribute",
                             help="Coloured by, and shown when hovering over a point and under each image")
group_by: list[str] = []
if by == "group":
    kept = [g for g in st.session_state.get("map_group_by", []) if g in choices]
    st.session_state["map_group_by"] = kept or [attribute] + (["Male"] if attribute != "Male" and "Male" in choices else [])
    group_by = right.multiselect("Groups of (one or two attributes)", choices, key="map_group_by", max_selections=2)
    if not group_by:
        st.info("Choose one or two attributes for the groups.")
        st.stop()
try:
    colors = point_colors(predictions, by, attribute, thresholds, group_by)
except CelebAModelError as err:
    st.error(str(err))
    st.stop()


def _hover_text(attribute: str) -> list[str]:
    """One line block per point: file, person, and the attribute's label, probability and decision."""
    table = point_table(predictions, attribute, thresholds)
    text = "<b>" + table["file"] + "</b><br>person " + table["person"].astype(str)
    if "label" in table:
        text += "<br>" + attribute + ": label " + table["label"].map({0: "no", 1: "yes"})
    if "probability" in table:
        text += ", p = " + table["probability"].map("{:.3f}".format) + ", predicted " + \
            table["predicted"].map({0: "no", 1: "yes"})
    return text.tolist()


def _category_colors(colors: PointColors) -> list[str]:
    if colors.categories == list(ERROR_TYPES):
        return [ERROR_COLORS[c] for c in ERROR_TYPES]
    if len(colors.categories) == 2 and by in ("label", "prediction"):
        return BINARY_COLORS
    return [PALETTE[k % len(PALETTE)] for k in range(len(colors.categories))]


def _figure(colors: PointColors) -> tuple[go.Figure, list[np.ndarray]]:
    """A WebGL scatter (Scattergl: tens of thousands of points stay fluid), one trace per category when a
    legend helps; returns the figure and each trace's run rows, for reading selections back."""
    xy = drawn.coordinates
    text = np.asarray(_hover_text(attribute), dtype=object)
    figure = go.Figure()
    traces: list[np.ndarray] = []
    marker = {"size": 5, "opacity": 0.8}

    def add(rows: np.ndarray, name: str | None, **style) -> None:
        figure.add_trace(go.Scattergl(
            x=xy[rows, 0], y=xy[rows, 1], mode="markers", name=name, showlegend=name is not None,
            text=text[rows], customdata=rows, hovertemplate="%{text}<extra></extra>", marker={**marker, **style}))
        traces.append(rows)

    if colors.continuous:
        rows = np.arange(len(xy))
        add(rows, None, color=colors.values, colorscale="Viridis", cmin=0, cmax=1,
            colorbar={"title": {"text": colors.title}})
    elif len(colors.categories) <= LEGEND_MAX:
        palette = _category_colors(colors)
        for k, name in enumerate(colors.categories):
            rows = np.flatnonzero(colors.values == k)
            if len(rows):
                add(rows, f"{name} ({len(rows):,})", color=palette[k])
    else:
        rows = np.arange(len(xy))
        add(rows, None, color=np.asarray(PALETTE)[colors.values % len(PALETTE)])
    figure.update_layout(height=600, margin={"t": 30, "b": 10, "l": 10, "r": 10}, dragmode="lasso",
                         legend={"title": {"text": colors.title}, "itemsizing": "constant"},
                         xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"})
    return figure, traces


figure, traces = _figure(colors)
params = drawn.meta.get("params", {})
st.caption(f"{len(drawn):,} images placed by the features of the model's penultimate layer "
           f"(input of `{drawn.meta.get('layer', '?')}`), laid out by UMAP ({params.get('n_neighbors')} neighbours, "
           f"after PCA to {params.get('pca_dims')} dimensions, seed {params.get('seed')}): images the model sees alike "
           "sit together. Thresholds are the Thresholds page's."
           + (" Colours cycle through a palette for the many people." if len(colors.categories) > LEGEND_MAX else ""))
chart_config = {"scrollZoom": True, "displaylogo": False}
faces = ui.hover_faces(folder, predictions)
if faces is not None:
    # The images are here: the chart that shows each point's face on hover (hover_scatter.py).
    from hover_scatter import hover_scatter

    component, thumbs = faces
    # One key per run: a selection made on another run's points never carries over.
    selection = hover_scatter(figure, component, thumbs, key=f"map_hover_chart::{folder}",
                              config=chart_config).get("selection", {})

    @st.fragment(run_every=2)
    def _thumbnail_progress() -> None:
        if not thumbs.finished:
            st.caption(f"Preparing the faces shown on hover: {thumbs.done:,} of {thumbs.total:,} images "
                       "(in the background; a point shows its face as soon as it is ready).")

    _thumbnail_progress()
else:
    event = st.plotly_chart(figure, key="map_chart", on_select="rerun", selection_mode=("points", "box", "lasso"),
                            config=chart_config)
    selection = event.selection if event else {}


def _selected_rows(selection) -> np.ndarray:
    """The run rows of the selected points (customdata holds each point's row; else trace and index)."""
    rows = []
    for point in selection.get("points", []):
        data = point.get("customdata")
        if isinstance(data, list):
            data = data[0] if data else None
        if data is None and point.get("curve_number") is not None:
            data = traces[int(point["curve_number"])][int(point["point_index"])]
        if data is not None and 0 <= int(data) < len(predictions):
            rows.append(int(data))
    return np.array(sorted(set(rows)), dtype=np.int64)


rows = _selected_rows(selection)
if not len(rows):
    st.caption("Click a point to see its face and predictions; draw a box or a lasso (the chart's toolbar, top right) "
               "to open those images as a gallery. Hovering shows a point's file, person, label and prediction"
               + (", and its face." if faces is not None else "; its face too when the run's images are on this "
                  "machine (set the CelebA folder in the sidebar)."))
    st.stop()


def _image(row: int):
    path = ui.resolve_image(predictions, row)
    return ui.thumbnail(path, 320 if len(rows) == 1 else 160) if path else None


missing = 0
if len(rows) == 1:
    row = int(rows[0])
    st.subheader(f"`{predictions.files[row]}`")
    left, right = st.columns([1, 2])
    image = _image(row)
    if image is None:
        missing += 1
        left.markdown("*(image not on this machine)*")
    else:
        left.image(image, width="stretch")
    with right:
        st.markdown(f"person {predictions.identity[row]}")
        predicted = predictions.probabilities[row] >= thresholds
        st.dataframe({"attribute": attributes, "label": predictions.labels[row].astype(int),
                      "p": np.round(predictions.probabilities[row], 3), "predicted": predicted.astype(int)},
                     hide_index=True, key="map_point_table")
else:
    table = point_table(predictions, attribute, thresholds, rows)
    pages = max(1, math.ceil(len(table) / PAGE_SIZE))
    st.subheader(f"{len(table):,} selected images")
    page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, step=1,
                           key=f"map_page::{len(table)}::{int(table['row'].sum())}")
    grid = st.columns(COLUMNS)
    for k, item in enumerate(table.iloc[(page - 1) * PAGE_SIZE: page * PAGE_SIZE].itertuples(index=False)):
        cell = grid[k % COLUMNS]
        image = _image(int(item.row))
        if image is None:
            missing += 1
            cell.markdown("*(image not on this machine)*")
        else:
            cell.image(image, width="stretch")
        caption = f"`{item.file}` · person {item.person}"
        if hasattr(item, "label"):
            caption += f"  \n{attribute}: label **{'yes' if item.label else 'no'}**"
        if hasattr(item, "probability"):
            caption += f"  \np = {item.probability:.3f}, predicted **{'yes' if item.predicted else 'no'}**"
        cell.markdown(caption)
    st.download_button("Download the selection (CSV)", table.to_csv(index=False), file_name="map_selection.csv",
                       mime="text/csv")
if missing:
    st.warning(f"{missing} image(s) are not on this machine. Set the CelebA folder in the sidebar to the dataset this "
               "run was evaluated on to see them.")
