"""Predictions made by another tool (timm, torchvision, Lightning, ...) as ordinary predictions artifacts.

``import_predictions`` reads a CSV or NPZ of per-image probabilities (or logits) for CelebA attributes
(the formats: ``import_table``), matches the images to a data root's index by file name, and saves
the artifact that ``evaluate`` would have written: labels, all 40 CelebA labels, people and paths come
from the data root, so every report, slice and dashboard page works on it. Nothing is written unless
the whole file is sound.

Such an artifact has no checkpoint: ``meta["checkpoint"]`` is ``{"arch": "imported", "path": None,
"weights_sha256": <SHA-256 of the imported file>}`` (the digest stands for the model, so importing
the same file again replaces its own run and another file's run is kept unless ``overwrite``), and
``meta["imported"]`` says what was read. Thresholds tuned on it go to ``thresholds.json`` files,
not to a checkpoint.

Rows must be images of the requested split; rows of other splits are an error (a mix of splits is
usually the wrong file or the wrong ``--split``) unless ``drop_other_splits`` keeps only the
requested split's rows, so one file of predictions for every image can be imported split by split.
Without a split, the one split all rows belong to is used.

``export_predictions_csv`` writes an artifact back in the import format (the round trip is exact).
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import numpy as np

from ..attributes import CELEBA_ATTRIBUTES, resolve_attributes
from ..data.crop import ALIGNED_FACE_CROP
from ..data.index import SPLITS, CelebAIndex, load_index
from ..errors import ConfigError
from ..utils.fileio import atomic_write_bytes, atomic_write_text
from ..workspace import OVERRIDES_FOLDER, RUNS_FOLDER, default_workspace_root
from .import_table import (
    ImportColumnsError,
    ImportFormatError,
    ImportPredictionsError,
    ImportRowsError,
    ImportValuesError,
    RawTable,
    base_name,
    examples,
    read_source,
    read_table,
)
from .predictions import Predictions, check_replaceable, save_predictions

__all__ = [
    "IMPORTED_ARCH", "ImportColumnsError", "ImportFormatError", "ImportPredictionsError", "ImportRowsError",
    "ImportSummary", "ImportValuesError", "export_predictions", "export_predictions_csv", "import_predictions",
]

IMPORTED_ARCH = "imported"  # meta["checkpoint"]["arch"] of an imported artifact
IMPORT_SPLITS = (*SPLITS, "all")
# A run name is one folder under runs/: no separators, no hidden or relative names.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
# Folders of runs/ that hold other things: tuned thresholds, and label corrections (runs/labels).
RESERVED_NAMES = (OVERRIDES_FOLDER, "labels")
_SPLIT_NAMES = {code: name for name, code in SPLITS.items()}


def _key(name: str) -> str:
    """How column names are compared: case, spaces and hyphens do not matter (``blond hair`` is Blond_Hair)."""
    return name.strip().lower().replace(" ", "_").replace("-", "_")


_BY_KEY = {_key(a): a for a in CELEBA_ATTRIBUTES}


@dataclass(frozen=True)
class ImportSummary:
    """What an import read and wrote (``lines()`` is what the CLI prints)."""

    source: str
    format: str  # "csv" or "npz"
    rows: int  # rows of predictions in the file
    matched: int  # rows imported: images of the data root in the split
    dropped_other_splits: int  # rows of other splits left out (drop_other_splits)
    attributes: list[str]  # imported, in the file's order (or as asked)
    not_imported: list[str]  # attribute columns of the file left out because others were asked for
    ignored_columns: list[str]  # columns (or NPZ arrays) that are not attributes
    split: str
    split_images: int  # images of that split in the data roots
    people: int | None  # people among the imported images; None when the data root has no identities
    logits: bool  # a sigmoid was applied
    folder: Path

    def lines(self) -> list[str]:
        kind = "logits, sigmoid applied" if self.logits else "probabilities"
        coverage = "all" if self.matched == self.split_images else f"{self.matched:,} of the"
        people = f" of {self.people:,} people" if self.people else ""
        lines = [
            f"Read {self.rows:,} rows from {self.source} ({self.format.upper()}, {kind})",
            f"Matched {self.matched:,} images{people}: {coverage} {self.split_images:,} {self.split} images of the "
            "data root",
            f"Imported {len(self.attributes)} attribute(s): {', '.join(self.attributes)}",
        ]
        if self.dropped_other_splits:
            lines.append(f"Left out {self.dropped_other_splits:,} rows of other splits (--drop-other-splits)")
        if self.not_imported:
            lines.append(f"Not imported (not asked for): {', '.join(self.not_imported)}")
        if self.ignored_columns:
            lines.append(f"Ignored columns (not attributes): {', '.join(self.ignored_columns)}")
        lines.append(f"Wrote {self.folder}")
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())


def import_predictions(
    source: str | Path | object,
    data_roots: str | Path | Sequence[str | Path],
    split: str | None = None,
    name: str | None = None,
    logits: bool = False,
    out: str | Path | None = None,
    workspace: str | Path | None = None,
    overwrite: bool = False,
    *,
    attributes: Sequence[str] | None = None,
    drop_other_splits: bool = False,
) -> tuple[Predictions, ImportSummary]:
    """Import another tool's predictions (``python -m celeba_model import-predictions``) and save them
    as a predictions artifact; returns it with a summary of what matched.

    ``source``: a .csv or .npz path, or a binary file-like object with ``read()`` and ``name`` (an
    upload). ``split``: train, val, test or all; None takes the one split the rows belong to.
    ``name``: the run's name (default: the file's name without suffixes). ``logits``: the values
    are logits, a sigmoid is applied. ``out``: the artifact folder (default:
    ``WORKSPACE/runs/<name>/<split>``); an artifact of another file there is kept unless
    ``overwrite``. ``attributes``: import only these (each must have a column).
    ``drop_other_splits``: leave out rows of other splits instead of refusing them.
    Raises an ``ImportPredictionsError`` subclass (or ``ConfigError`` for options) and writes
    nothing when anything is wrong.
    """
    if split is not None and split not in IMPORT_SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(IMPORT_SPLITS)}")
    if drop_other_splits and split in (None, "all"):
        raise ConfigError("--drop-other-splits needs --split train, val or test: the split to keep")
    data, label, path = read_source(source)
    digest = hashlib.sha256(data).hexdigest()
    name = _run_name(name, label)
    table = read_table(data, label)
    wanted, columns, not_imported, ignored = _attribute_columns(table, attributes)
    uses_logits = _uses_logits(table, logits)
    values = table.numbers(columns)  # every cell read, so a bad one is named even in rows left out later

    roots = [data_roots] if isinstance(data_roots, (str, Path)) else list(data_roots)
    index = load_index(roots)
    rows = _match_rows(table, index)
    split, keep = _split_rows(table, index, rows, split, drop_other_splits)
    rows, values = rows[keep], values[keep]
    probabilities = _probabilities(table, values, columns, np.flatnonzero(keep), uses_logits)

    folder = Path(out) if out is not None else default_workspace_root(workspace) / RUNS_FOLDER / name / split
    check_replaceable(folder, digest, overwrite)
    labels = index.attribute_labels(wanted, rows)
    every_label = index.labels[rows]
    people = index.identity[rows]
    known = people[people >= 0]
    summary = ImportSummary(
        source=str(path) if path else label, format=table.format, rows=len(table), matched=len(rows),
        dropped_other_splits=int((~keep).sum()), attributes=wanted, not_imported=not_imported,
        ignored_columns=ignored, split=split, split_images=len(index.split_indices(split)),
        people=int(len(np.unique(known))) if len(known) else None, logits=uses_logits, folder=folder,
    )
    meta = {
        # No checkpoint made these: the file's digest stands in for the weights (check_replaceable, sibling
        # runs), and "path" is None so that nothing looks for a checkpoint's tuned thresholds.
        "checkpoint": {"path": None, "weights_sha256": digest, "arch": IMPORTED_ARCH, "best_epoch": None},
        "imported": {
            "source": summary.source, "format": table.format, "sha256": digest, "name": name,
            "rows": summary.rows, "matched": summary.matched, "dropped_other_splits": summary.dropped_other_splits,
            "logits": uses_logits, "not_imported": not_imported, "ignored_columns": ignored,
        },
        "split": split,
        "data_roots": list(index.roots),
        "attributes": wanted,
        # The model's own preprocessing is unknown; the standard face crop is recorded to show the images.
        "preprocess": {"crop": ALIGNED_FACE_CROP.to_dict()},
        "counts": {
            "images": int(len(rows)),
            "positives": {a: int(p) for a, p in zip(wanted, labels.sum(axis=0))},
            "identities": int(len(np.unique(known))),
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    predictions = Predictions(
        probabilities=probabilities.astype(np.float32),
        labels=labels,
        files=index.files[rows],
        paths=np.array(index.paths[rows].resolved_strings()),
        identity=people,
        meta=meta,
        folder=folder,
        celeba_labels=every_label.astype(np.uint8) if (every_label >= 0).all() else None,
    )
    save_predictions(folder, predictions)
    return predictions, summary


def _run_name(name: str | None, label: str) -> str:
    """The run folder's name: ``name`` as given (checked), else the file's name without its suffixes."""
    if name is None:
        stem = PurePosixPath(label.replace("\\", "/")).name.split(".")[0]
        stem = re.sub(r"[^A-Za-z0-9._+-]+", "-", stem).strip("-._+")
        return stem if stem and stem not in RESERVED_NAMES else IMPORTED_ARCH
    if not NAME_PATTERN.fullmatch(name) or name in RESERVED_NAMES:
        raise ConfigError(f"--name {name!r} is not a usable run name: one folder name of letters, digits and . _ + - "
                          f"(not {' or '.join(RESERVED_NAMES)}, folders of runs/ kept for other files)")
    return name


def _attribute_columns(
    table: RawTable, requested: Sequence[str] | None
) -> tuple[list[str], list[int], list[str], list[str]]:
    """(attributes to import, their columns in ``table``, attribute columns left out, ignored columns)."""
    found: dict[str, int] = {}
    unknown: list[int] = []
    for j, column in enumerate(table.names):
        canonical = _BY_KEY.get(_key(column))
        if canonical is None:
            unknown.append(j)
        elif canonical in found:
            raise ImportColumnsError(f"{table.source}: columns {table.names[found[canonical]]!r} and {column!r} are "
                                     f"both {canonical}; keep one")
        else:
            found[canonical] = j
    misspelled, ignored = [], list(table.ignored)
    for j in unknown:
        close = [_BY_KEY[k] for k in difflib.get_close_matches(_key(table.names[j]), list(_BY_KEY), n=1)]
        # A near name of an attribute that has its own column is an extra column (male_prob beside Male).
        if close and close[0] not in found:
            misspelled.append(f"{table.names[j]!r} (did you mean {close[0]}?)")
        elif table.format == "npz":
            misspelled.append(repr(table.names[j]))  # NPZ names are all declared attributes
        else:
            ignored.append(table.names[j])
    if misspelled:
        raise ImportColumnsError(f"{table.source}: not CelebA attribute name(s): {examples(misspelled)}; use the names "
                                 "of list_attr_celeba.txt (e.g. Smiling, Blond_Hair) or drop those columns")
    if not found:
        raise ImportColumnsError(f"{table.source} has no attribute columns (its columns: {examples(table.names) or 'none'}"
                                 "); add one column per attribute named as in list_attr_celeba.txt, e.g. Smiling")
    if requested:
        wanted = resolve_attributes(requested)
        missing = [a for a in wanted if a not in found]
        if missing:
            raise ImportColumnsError(f"{table.source} has no column for {', '.join(missing)} (asked for with "
                                     f"--attributes); its attributes are {', '.join(found)}")
    else:
        wanted = list(found)
    return wanted, [found[a] for a in wanted], [a for a in found if a not in wanted], ignored


def _uses_logits(table: RawTable, logits: bool) -> bool:
    """Whether the values are logits: the option, or an NPZ array named ``logits``."""
    if table.logits is False and logits:
        raise ConfigError(f"{table.source} names its values probabilities; drop --logits, or save them as an array "
                          "named logits")
    return bool(logits or table.logits)


def _match_rows(table: RawTable, index: CelebAIndex) -> np.ndarray:
    """The index row of each file name: by image name (any folder part dropped), else by name without its
    extension (000001.png for 000001.jpg) when that is unambiguous. Unknown and repeated images are errors."""
    by_name = {f: i for i, f in enumerate(index.files)}
    stems = Counter(f.rsplit(".", 1)[0] for f in index.files)
    by_stem = {f.rsplit(".", 1)[0]: i for i, f in enumerate(index.files) if stems[f.rsplit(".", 1)[0]] == 1}
    rows = np.full(len(table), -1, dtype=np.int64)
    for k, given in enumerate(table.files):
        image = base_name(given)
        rows[k] = by_name.get(image, by_stem.get(image.rsplit(".", 1)[0], -1))
    unknown = np.flatnonzero(rows < 0)
    if len(unknown):
        hint = ("; none matched: is --data-root the dataset these predictions were made on?"
                if len(unknown) == len(table) else "")
        raise ImportRowsError(
            f"{table.source}: {len(unknown):,} of {len(table):,} file names are not images of {', '.join(index.roots)}: "
            f"{examples([f'{table.files[k]} ({table.location(k)})' for k in unknown[:10]], len(unknown))}{hint}")
    seen: dict[int, list[int]] = {}
    for k, row in enumerate(rows.tolist()):
        seen.setdefault(row, []).append(k)
    repeated = [ks for ks in seen.values() if len(ks) > 1]
    if repeated:
        shown = [f"{index.files[rows[ks[0]]]} ({', '.join(table.location(k) for k in ks[:3])})" for ks in repeated[:10]]
        raise ImportRowsError(f"{table.source}: {len(repeated):,} image(s) appear more than once: "
                              f"{examples(shown, len(repeated))}; keep one row per image")
    return rows


def _split_rows(
    table: RawTable, index: CelebAIndex, rows: np.ndarray, split: str | None, drop_other_splits: bool
) -> tuple[str, np.ndarray]:
    """(the split, which rows to keep): rows of another split are refused unless ``drop_other_splits``."""
    parts = index.partition[rows]
    counts = ", ".join(f"{_SPLIT_NAMES[c]}: {n:,}" for c, n in sorted(Counter(parts.tolist()).items()))
    if split is None:
        present = np.unique(parts)
        if len(present) > 1:
            raise ImportRowsError(f"{table.source}: the rows are images of several splits ({counts}); pass --split all "
                                  "to import them as one run, or --split S --drop-other-splits to import one split")
        split = _SPLIT_NAMES[int(present[0])]
    if split == "all":
        return split, np.ones(len(rows), dtype=bool)
    keep = parts == SPLITS[split]
    if not keep.all() and not drop_other_splits:
        other = np.flatnonzero(~keep)
        shown = [f"{table.files[k]} ({_SPLIT_NAMES[int(parts[k])]})" for k in other[:10]]
        raise ImportRowsError(
            f"{table.source}: {len(other):,} of {len(rows):,} rows are not images of the {split} split ({counts}): "
            f"{examples(shown, len(other))}; give their split with --split (or --split all), or pass "
            f"--drop-other-splits to import only the {split} rows")
    if not keep.any():
        raise ImportRowsError(f"{table.source}: none of the {len(rows):,} rows is an image of the {split} split ({counts})")
    return split, keep


def _probabilities(table: RawTable, values: np.ndarray, columns: list[int], kept: np.ndarray, logits: bool) -> np.ndarray:
    """Checked probabilities from the imported ``values`` (the table's ``columns`` at its rows ``kept``):
    finite, and in [0, 1] unless they are logits."""
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ImportValuesError(f"{table.source}: column {table.names[columns[j]]}, {table.location(kept[i])}: "
                                f"{values[i, j]} ({int(bad.sum()):,} value(s) are NaN or infinite); every prediction "
                                "must be a finite number")
    if logits:
        return sigmoid(values)
    outside = (values < 0) | (values > 1)
    if outside.any():
        i, j = np.argwhere(outside)[0]
        raise ImportValuesError(f"{table.source}: column {table.names[columns[j]]}, {table.location(kept[i])}: "
                                f"{values[i, j]:g} is not a probability ({int(outside.sum()):,} value(s) are outside "
                                "[0, 1]); if these are logits (raw scores before the sigmoid), pass --logits")
    return values


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function without overflow for large |x| (exp of a non-positive number only)."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def export_predictions_csv(predictions: Predictions, path: str | Path) -> Path:
    """Write ``predictions`` in the import format: a ``file`` column and one probability column per
    attribute, 9 significant digits (every float32 comes back exactly). Written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", *predictions.attributes])
    text = np.char.mod("%.9g", np.asarray(predictions.probabilities, dtype=np.float64))
    for name, row in zip(np.asarray(predictions.files, dtype=str).tolist(), text.tolist()):
        writer.writerow([name, *row])
    atomic_write_text(path, buffer.getvalue())
    return Path(path)


def export_predictions(predictions: Predictions, path: str | Path) -> Path:
    """Write ``predictions`` for another tool or a later import: ``.csv`` (``export_predictions_csv``)
    or ``.npz`` (arrays files, probabilities, attributes)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return export_predictions_csv(predictions, path)
    if suffix != ".npz":
        raise ConfigError(f"{path}: export to a .csv or a .npz file")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, files=np.asarray(predictions.files, dtype=str),
                        probabilities=np.asarray(predictions.probabilities, dtype=np.float32),
                        attributes=np.asarray(predictions.attributes, dtype=str))
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
