"""Misclassified examples: the model's most confident mistakes for one attribute, as face crops."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st
import ui

from celeba_model.analysis.selection import as_bit_string, error_rows
from celeba_model.data.images import open_image

PAGE_SIZE = 24
COLUMNS = 6

folder, predictions = ui.require_run()
attributes = predictions.attributes
thresholds = ui.current_thresholds(folder, attributes)

st.title("Misclassified examples")
st.markdown(ui.describe_run(predictions))
left, middle, right = st.columns([2, 2, 3])
attribute = left.selectbox("Attribute", attributes, key="mis_attribute")
kind = middle.radio("Errors", ["false_negative", "false_positive"], key="mis_kind", horizontal=True,
                    format_func={"false_negative": "false negatives (missed)", "false_positive": "false positives"}.get)
j = attributes.index(attribute)
rows = error_rows(predictions.labels[:, j], predictions.probabilities[:, j], thresholds[j], kind)
pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
page = right.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, step=1, key=f"mis_page::{attribute}::{kind}")
st.caption(
    f"{len(rows):,} {kind.replace('_', ' ')}s for {attribute} at threshold {thresholds[j]:.2f}, most confident first. "
    "Under each crop: true and predicted attribute vectors in the paper's order "
    f"({', '.join(attributes)}), then this attribute's probability."
)
if not len(rows):
    st.success("No errors of this kind.")
    st.stop()

crop = predictions.meta.get("preprocess", {}).get("crop")
shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
missing = 0
grid = st.columns(COLUMNS)
for k, row in enumerate(shown):
    truth = predictions.labels[row]
    predicted = predictions.probabilities[row] >= thresholds
    path = ui.resolve_image(predictions, int(row))
    image = ui.face_crop(path, crop) if path and crop else None
    cell = grid[k % COLUMNS]
    if image is None:
        missing += 1
        cell.markdown(f"`{predictions.files[row]}`  \n*(image not found)*")
    else:
        cell.image(image, width="stretch")
    cell.markdown(
        f"`{predictions.files[row]}`  \ntrue `{as_bit_string(truth)}`  \npred `{as_bit_string(predicted)}`  \n"
        f"p({attribute}) = **{predictions.probabilities[row, j]:.3f}**"
    )
    with cell.popover("All probabilities"):
        st.dataframe(
            {"attribute": attributes, "true": truth.astype(int), "p": np.round(predictions.probabilities[row], 3),
             "predicted": predicted.astype(int)},
            hide_index=True,
        )
if missing:
    st.warning(f"{missing} image(s) are not on this machine. Set the CelebA folder in the sidebar to the dataset this "
               "run was evaluated on to see them.")

st.subheader("Where did the model look?")
checkpoint = predictions.meta.get("checkpoint", {}).get("path")
checkpoint_path = ui.workspace().resolve(checkpoint) if checkpoint else None
if checkpoint_path is None or not checkpoint_path.is_file():
    st.caption("This run's predictions come from no single checkpoint (imported or crossfit), so there is no "
               "Grad-CAM to compute." if checkpoint is None else
               f"The checkpoint of this run ({checkpoint}) is not on this machine, so its Grad-CAM cannot be computed.")
    st.stop()
choices = {str(predictions.files[row]): int(row) for row in shown}
picked = st.selectbox("Image", list(choices), key=f"mis_explain::{attribute}::{kind}")
row = choices[picked]
path = ui.resolve_image(predictions, row)
if path is None:
    st.caption("This image is not on this machine.")
    st.stop()
predictor = ui.predictor_for(checkpoint_path)
image = open_image(path)
cam = predictor.explain(image, attribute)
model_input = predictor.model_input(image)
left, right, _ = st.columns([1, 1, 2])
left.image(model_input.squeeze(-1) if model_input.shape[-1] == 1 else model_input, width=192,
           caption=f"model input ({predictor.spec.color})")
right.image(ui.saliency_overlay(image, cam, predictor.spec.crop), caption=f"Grad-CAM for {attribute}")
st.caption("Grad-CAM: warm colors mark the regions whose features raised this attribute's score. A map on the "
           "background or on the wrong part of the face points to a shortcut or to a label the model cannot see.")
