"""Upload: find the face in a photo, frame it as training saw faces, and predict its attributes."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import ui
from PIL import ImageDraw

from celeba_model.errors import CelebAModelError
from celeba_model.photo.pipeline import PHOTO_EXTENSIONS, WHOLE_IMAGE, open_photo, predict_photo

st.title("Upload an image")
workspace = ui.workspace()
names = ui.checkpoint_choices()
if not names:
    st.error("No checkpoints found under checkpoints/ or runs/.")
    st.stop()
default = ui.catalogue().default_model()
preferred = next((i for i, path in enumerate(names.values()) if path == default), 0)
choice = st.selectbox("Model", list(names), index=preferred, key="upload_checkpoint",
                      help="Default: the real-CelebA checkpoint chosen on real photos (checkpoints/celeba/default.json), "
                      "else the one with the best validation macro-F1")
try:
    predictor = ui.predictor_for(names[choice])
except CelebAModelError as err:
    st.error(f"This checkpoint cannot be used: {err}")
    st.stop()
spec = predictor.spec
st.caption(
    f"Model `{choice}`: {predictor.checkpoint.spec.arch}, {spec.image_size}x{spec.image_size} {spec.color}. "
    "Faces are found by a face detector, then rotated and scaled so eyes and mouth sit where aligned CelebA "
    "puts them, and cropped as in training."
)

# The same formats as `predict` picks from folders (GIF: its first frame, TIFF: its first page).
upload = st.file_uploader(f"Photo ({', '.join(PHOTO_EXTENSIONS)})", type=list(PHOTO_EXTENSIONS), key="upload_file")
if upload is None:
    st.stop()
detector = ui.face_detector()  # loaded with the first photo, so opening the page stays instant
st.caption(f"Face detector: {'mediapipe BlazeFace' if detector.backend == 'mediapipe' else 'OpenCV Haar cascade (fallback)'}.")
try:
    image = open_photo(upload.getvalue(), name=upload.name)  # EXIF orientation applied, any mode to RGB
except CelebAModelError as err:
    st.error(str(err))
    st.stop()

whole = st.session_state.get("upload_whole", False)
result = predict_photo(image, predictor, detector, whole_image_if_no_face=whole)
if not result.faces:
    st.warning("No face found in this image.")
    st.checkbox("Use the whole image anyway", key="upload_whole",
                help="Predicts on the whole picture as if it were a face crop; expect poor results")
    if result.prediction is None:
        st.stop()
elif len(result.faces) > 1:
    st.info(f"{len(result.faces)} faces found; predicting the most prominent one (largest box times detector "
            "confidence), outlined in green. Crop the photo to choose another.")

tuned, tuned_source = ui.stored_thresholds_of(names[choice], predictor.attributes)
use_tuned = st.toggle("Use the checkpoint's tuned thresholds", value=tuned is not None, disabled=tuned is None,
                      key="upload_tuned", help=f"From {tuned_source}" if tuned is not None else tuned_source)
thresholds = tuned if use_tuned and tuned is not None else np.full(len(predictor.attributes), 0.5)
prediction = result.prediction
decisions = prediction.decisions(thresholds)

preview = image.copy()
draw = ImageDraw.Draw(preview)
width = max(2, round(max(image.size) / 250))
for k, face in enumerate(result.faces):
    draw.rectangle([face.left, face.top, face.right, face.bottom], outline="lime" if k == 0 else "orange", width=width)
preview.thumbnail((420, 420))
col_image, col_crop, col_bars = st.columns([2, 1, 4])
col_image.image(preview, caption=f"{upload.name}: {image.size[0]}x{image.size[1]}")
if result.face is not None:
    col_crop.image(result.face_image.resize((160, 160)), caption=f"face, training framing (score {result.face.score:.2f})")
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

st.subheader("Where did the model look?")
explained = st.selectbox("Attribute", prediction.attributes, index=int(np.argmax(prediction.probabilities)),
                         key="upload_explain")
source = result.face_image  # the face in training framing, or the whole image when no face was found
cam = predictor.explain(source, explained, WHOLE_IMAGE)
left, right, _ = st.columns([1, 1, 2])
left.image(prediction.crop.resize((192, 192)), caption=f"model input ({spec.color})")
right.image(ui.saliency_overlay(source, cam, WHOLE_IMAGE), caption=f"Grad-CAM for {explained}")
st.caption("Grad-CAM: warm colors mark the regions whose features raised this attribute's score; for Blond_Hair "
           "they should be on the hair, for Smiling on the mouth. A map on the background means a shortcut.")
