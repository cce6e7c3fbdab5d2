"""Upload: predict the attributes of one image, showing the crop the model saw and its decisions."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import ui
from celeba_model.crop import center_square_box
from celeba_model.errors import CelebAModelError
from celeba_model.images import open_image

st.title("Upload an image")
workspace = ui.workspace()
checkpoints = workspace.list_checkpoints()
if not checkpoints:
    st.error("No checkpoints found under checkpoints/ or runs/.")
    st.stop()
names = {str(c.relative_to(workspace.root)) if c.is_relative_to(workspace.root) else str(c): c for c in checkpoints}
preferred = next((i for i, n in enumerate(names) if n.endswith("demo/paper_rgb.safetensors")), 0)
left, right = st.columns(2)
choice = left.selectbox("Model", list(names), index=preferred, key="upload_checkpoint")
framing = right.radio(
    "Framing", ["aligned", "square"], key="upload_framing", horizontal=True,
    format_func={"aligned": "aligned CelebA face (training crop)", "square": "whole image (centre square)"}.get,
)
try:
    predictor = ui.predictor_for(names[choice])
except CelebAModelError as err:
    st.error(f"This checkpoint cannot be used: {err}")
    st.stop()
spec = predictor.spec
st.info(
    f"Model: `{choice}` ({predictor.checkpoint.spec.arch}, {spec.image_size}x{spec.image_size} {spec.color}). "
    "No face detector is used yet: the aligned framing applies the fixed crop box of aligned CelebA images "
    "(faces centred as in img_align_celeba); for other photos choose the centre square and crop the face "
    "yourself beforehand."
)

upload = st.file_uploader("Image (jpg, png, webp)", type=["jpg", "jpeg", "png", "webp"], key="upload_file")
if upload is None:
    st.stop()
try:
    image = open_image(upload.getvalue(), name=upload.name)
except CelebAModelError as err:
    st.error(str(err))
    st.stop()

box = spec.crop if framing == "aligned" else center_square_box(*image.size)
prediction = predictor.predict(image, box)
tuned = predictor.checkpoint.thresholds
use_tuned = st.toggle("Use the checkpoint's tuned thresholds", value=bool(tuned), disabled=not tuned, key="upload_tuned")
thresholds = predictor.thresholds() if use_tuned else np.full(len(predictor.attributes), 0.5)
decisions = prediction.decisions(thresholds)

col_image, col_crop, col_bars = st.columns([2, 1, 4])
preview = image.copy()
preview.thumbnail((360, 360))
col_image.image(preview, caption=f"{upload.name}: {image.size[0]}x{image.size[1]}")
col_crop.image(prediction.crop.resize((160, 160)), caption=f"model input ({spec.color})")
figure = go.Figure()
figure.add_bar(
    x=prediction.probabilities, y=prediction.attributes, orientation="h",
    marker_color=["seagreen" if d else "lightgray" for d in decisions],
    text=[f"{p:.2f}" for p in prediction.probabilities], textposition="outside",
)
figure.add_scatter(x=thresholds, y=prediction.attributes, mode="markers", name="threshold",
                   marker={"symbol": "line-ns-open", "size": 18, "color": "black"})
figure.update_layout(xaxis={"range": [0, 1.1], "title": "probability"}, yaxis={"autorange": "reversed"},
                     showlegend=False, height=380, margin={"t": 10})
col_bars.plotly_chart(figure, key="upload_chart")
present = [a for a, d in zip(prediction.attributes, decisions) if d]
st.markdown("**Predicted present:** " + (", ".join(present) if present else "none of the attributes"))
