"""Labels: the run's likely label errors per attribute (cleanlab), to mark right or wrong.

Decisions go to the corrections file chosen in the sidebar (the workspace's runs/labels/corrections.csv
by default); with "Use corrected labels" on, every page recomputes its metrics with them.
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st
import ui

from celeba_model.analysis.label_issues import suspects
from celeba_model.data.corrections import Correction, record_decisions
from celeba_model.errors import CelebAModelError

PAGE_SIZE = 12
COLUMNS = 4

folder, _ = ui.require_run()
predictions = ui.load_run(folder, corrected=False)  # suspects are judged against the dataset's labels
issues = ui.label_issues_for(folder)
corrections_file = ui.active_corrections_file()
try:
    decided = ui.corrections()
except CelebAModelError as err:
    st.error(str(err))
    st.stop()

st.title("Labels")
st.markdown(ui.describe_run(predictions))
st.caption("Likely label errors, found by cleanlab's confident learning from this run's probabilities: per attribute, "
           "it estimates how many labels the model contradicts with confidence and flags those, ranked by label "
           "quality (the model's probability of the given label, lowest first). It needs probabilities from a "
           "model that did not train on these images: a val, test or photo run, or `celeba_model crossfit` for the "
           "train split.")
if issues.in_sample:
    st.warning("This is a train-split run of the model that trained on these images: it fits their labels, "
               "wrong ones included, so few errors show. Run `python -m celeba_model crossfit` for out-of-sample "
               "train probabilities.")

summary = decided.summary()
counts = issues.counts()
in_run = set(predictions.files.astype(str))
counts["decided"] = [sum(1 for f in decided.for_attribute(a) if f in in_run) for a in counts["attribute"]]
counts["judged wrong"] = [sum(1 for f, c in decided.for_attribute(a).items() if c.label_wrong and f in in_run)
                          for a in counts["attribute"]]
with st.expander(f"Flagged labels per attribute ({int(counts['flagged'].sum()):,} in all)", expanded=False):
    st.dataframe(counts.style.format({"flagged_share": "{:.1%}"}), hide_index=True, key="labels_counts")

left, middle, right = st.columns([2, 2, 2])
attribute = left.selectbox("Attribute", predictions.attributes, key="labels_attribute")
scope = middle.radio("Show", ["flagged", "all"], horizontal=True, key="labels_scope",
                     format_func={"flagged": "flagged by cleanlab", "all": "every label, by quality"}.get)
hide_decided = right.checkbox("Hide decided", value=True, key="labels_hide_decided")

table = suspects(predictions, issues, attribute, flagged_only=scope == "flagged")
mine = decided.for_attribute(attribute)
if hide_decided:
    table = table[~table["file"].isin(mine)]
pages = max(1, math.ceil(len(table) / PAGE_SIZE))
page = left.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, step=1,
                         key=f"labels_page::{attribute}::{scope}")
note = middle.text_input("Note for your next decisions", key="labels_note", placeholder="e.g. looks blond")
writable = not ui.read_only()
right.caption(f"Decisions are saved in `{corrections_file}`" if writable else
              "Read-only dashboard: decisions cannot be recorded here.")
st.caption(f"{len(table):,} {'flagged ' if scope == 'flagged' else ''}labels of {attribute}"
           + (" not decided yet" if hide_decided else "") + ", most suspicious first.")
if table.empty:
    st.success("Nothing left to review for this attribute." if hide_decided else "cleanlab flags no label here.")


def _decide(file: str, label: int, wrong: bool | None) -> None:
    """Record a decision (``wrong`` True / False) or remove it (None), merged into the file under a lock."""
    try:
        if wrong is None:
            record_decisions(corrections_file, remove=[(file, attribute)])
        else:
            record_decisions(corrections_file, [Correction(file, attribute, 1 - label if wrong else label, label,
                                                           st.session_state.get("labels_note", ""))])
    except CelebAModelError as err:
        st.session_state["labels_error"] = str(err)


if "labels_error" in st.session_state:
    st.error(st.session_state.pop("labels_error"))

grid = st.columns(COLUMNS)
shown = table.iloc[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
for k, item in enumerate(shown.itertuples(index=False)):
    cell = grid[k % COLUMNS]
    path = ui.resolve_image(predictions, int(item.row))
    image = ui.thumbnail(path) if path else None
    if image is None:
        cell.markdown(f"`{item.file}`  \n*(image not on this machine)*")
    else:
        cell.image(image, width="stretch")
    decision = mine.get(item.file)
    verdict = ("" if decision is None else
               f"  \n**you: label {'wrong' if decision.label_wrong else 'right'}**" + (f" ({decision.note})" if decision.note else ""))
    cell.markdown(f"`{item.file}` · person {item.person}  \nlabel **{'yes' if item.label else 'no'}** · "
                  f"p = {item.probability:.3f}{verdict}")
    if writable:
        a, b, c = cell.columns(3)
        key = f"{attribute}::{item.file}"
        a.button("Wrong", key=f"wrong::{key}", on_click=_decide, args=(item.file, int(item.label), True),
                 help=f"The {attribute} label is wrong: record {1 - int(item.label)}")
        b.button("Right", key=f"right::{key}", on_click=_decide, args=(item.file, int(item.label), False),
                 help="The label is right: record it as checked")
        c.button("Undo", key=f"undo::{key}", on_click=_decide, args=(item.file, int(item.label), None),
                 disabled=decision is None)

st.subheader("Your decisions")
if not len(decided):
    st.caption("None yet.")
else:
    rows = [{"attribute": a, **row} for a, row in summary.items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="labels_decisions")
    st.caption(f"{len(decided):,} decisions in `{corrections_file}`; turn on \"Use corrected labels\" in the sidebar "
               "to see every page's metrics with them, and the Overview's before/after table.")
    st.download_button("Download corrections (CSV)", corrections_file.read_bytes() if corrections_file.is_file() else b"",
                       file_name=corrections_file.name, mime="text/csv")
