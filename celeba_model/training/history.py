"""A run's per-epoch history as a table: from its metrics.jsonl (a run of this workspace, possibly
still being written) or from a checkpoint's metadata (the shipped checkpoints carry theirs).

Each record becomes a row; nested figures are flattened to ``name.key`` columns, so the per-attribute
F1 is ``val_f1.<attribute>`` (``F1_PREFIX``). The table is sorted by epoch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import CelebAModelError
from ..models.checkpoint import read_checkpoint_meta
from ..workspace import Workspace
from .run_folder import METRICS, find_run_folders

F1_PREFIX = "val_f1."
# The figures every history has (newer runs add epoch_seconds, --group-by runs the worst group's accuracy).
COLUMNS = ("epoch", "train_loss", "val_loss", "val_macro_f1", "lr", "train_seconds", "train_images_per_s")


class HistoryError(CelebAModelError, ValueError):
    """A training history that cannot be read (a damaged metrics.jsonl, a checkpoint without one)."""


def parse_metrics(text: str, source: str = "metrics.jsonl") -> list[dict]:
    """The records of a metrics.jsonl text. A last line without its newline that does not parse is a
    record being written and is left out; any other line that is not a JSON record is an error."""
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):  # no newline after it: still being written
                break
            raise HistoryError(f"{source}, line {number}: not a JSON record ({err.msg}); the file is damaged") from err
        records.append(_checked(record, f"{source}, line {number}"))
    return records


def _checked(record: object, where: str) -> dict:
    if not isinstance(record, dict):
        raise HistoryError(f"{where}: a JSON {type(record).__name__}, not an epoch's record; the file is damaged")
    epoch = record.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
        raise HistoryError(f"{where}: no epoch number (found {epoch!r}); the file is damaged")
    return record


def history_table(records: list[dict]) -> pd.DataFrame:
    """One row per epoch, nested figures flattened (``val_f1.Smiling``); missing figures are NaN."""
    rows = [_flatten(r) for r in records]
    table = pd.DataFrame(rows)
    for name in COLUMNS:
        if name not in table:
            table[name] = math.nan
    if table.empty:
        return table.astype({"epoch": "int64"})
    table = table.sort_values("epoch", kind="stable").drop_duplicates("epoch", keep="last").reset_index(drop=True)
    return table


def _flatten(record: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat


def read_metrics(path: str | Path) -> pd.DataFrame:
    """The history in a metrics.jsonl file (see ``parse_metrics`` for a run being written)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as err:
        raise HistoryError(f"{path} not found: no epoch of this run has finished yet, or it is not a run") from err
    except OSError as err:
        raise HistoryError(f"{path} cannot be read: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise HistoryError(f"{path} is not UTF-8 text (byte {err.start}); the file is damaged") from err
    return history_table(parse_metrics(text, str(path)))


def run_history(folder: str | Path) -> pd.DataFrame:
    """A training run's history from its folder; empty while its first epoch runs."""
    folder = Path(folder)
    if not (folder / METRICS).is_file() and (folder / "config.json").is_file():
        return history_table([])
    return read_metrics(folder / METRICS)


def checkpoint_history(path: str | Path) -> pd.DataFrame:
    """The history a checkpoint carries in its metadata (``training.history``), up to the epoch it saved."""
    meta = read_checkpoint_meta(path).meta
    history = (meta.get("training") or {}).get("history")
    if not isinstance(history, list):
        raise HistoryError(f"{path} holds no training history in its metadata")
    return history_table([_checked(r, f"{path}, history entry {i + 1}") for i, r in enumerate(history)])


def attribute_columns(table: pd.DataFrame) -> dict[str, str]:
    """The per-attribute F1 columns of a history, by attribute name."""
    return {c[len(F1_PREFIX):]: c for c in table.columns if c.startswith(F1_PREFIX)}


def history_summary(table: pd.DataFrame) -> dict:
    """A history in a few figures: epochs, the best validation macro-F1 and its epoch, the last losses, speed."""
    if table.empty:
        return {"epochs": 0, "best_epoch": None, "best_val_macro_f1": math.nan, "last_train_loss": math.nan,
                "last_val_loss": math.nan, "train_images_per_s": math.nan}
    best = table.loc[table["val_macro_f1"].fillna(-math.inf).idxmax()]
    return {
        "epochs": int(table["epoch"].max()), "best_epoch": int(best["epoch"]),
        "best_val_macro_f1": float(best["val_macro_f1"]), "last_train_loss": float(table["train_loss"].iloc[-1]),
        "last_val_loss": float(table["val_loss"].iloc[-1]),
        "train_images_per_s": float(table["train_images_per_s"].median()),
    }


@dataclass(frozen=True)
class HistorySource:
    """Where a history is read: a training run folder of the workspace, or a shipped checkpoint."""

    label: str
    path: Path
    shipped: bool

    def load(self) -> pd.DataFrame:
        return checkpoint_history(self.path) if self.shipped else run_history(self.path)


def history_sources(workspace: Workspace) -> list[HistorySource]:
    """The workspace's training runs (folders under runs/ with a config.json), then the shipped checkpoints
    that were trained (checkpoints/<family>/*.safetensors with a history: the real-data models, then the
    demo's; an ensemble was assembled, not trained, and its members' runs hold their curves)."""
    runs = [HistorySource(workspace.run_label(f), f, False) for f in find_run_folders(workspace.runs_dir)]
    shipped = sorted(workspace.checkpoints_dir.glob("*/*.safetensors"), key=lambda p: (p.parent.name != "celeba", p))
    return runs + [HistorySource(f"{p.parent.name}/{p.stem} (shipped)", p, True) for p in shipped if _trained(p)]


def _trained(path: Path) -> bool:
    """Whether a checkpoint's header records a training history (a damaged file is listed: loading it
    then says what is wrong)."""
    try:
        meta = read_checkpoint_meta(path).meta
    except CelebAModelError:
        return True
    return isinstance((meta.get("training") or {}).get("history"), list)
