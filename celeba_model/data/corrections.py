"""Label corrections: a person's decisions about individual CelebA labels, in a CSV file.

One row per (image file, attribute) decision::

    file,attribute,corrected_value,original_value,note,decided_at
    182739.jpg,Gray_Hair,0,1,looks blond,2026-11-26T12:00:00+00:00

``corrected_value`` is the label the person judged right (0 or 1; a row left empty is not decided yet
and skipped, so a review sheet from ``label-issues --csv`` is read as it is filled in);
``original_value`` the dataset's label they saw (empty when unknown). Other columns are ignored. A row whose two values agree records "label right": it changes
nothing but says the label was checked. Files are keyed by their name as in list_attr_celeba.txt, so
one corrections file serves every artifact and data root holding those images.

Several dashboard sessions (or a session and a script) may record decisions at once: each update
takes an exclusive lock on the file's folder, re-reads the file, merges its own rows and replaces the
file atomically, so no session's entry is lost and a reader never sees half a file.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..attributes import CELEBA_ATTRIBUTES
from ..errors import CelebAModelError
from ..utils.fileio import atomic_write_text, write_error
from .index import CelebAIndex

COLUMNS = ("file", "attribute", "corrected_value", "original_value", "note", "decided_at")
REQUIRED_COLUMNS = ("file", "attribute", "corrected_value")


class CorrectionsError(CelebAModelError, ValueError):
    """A corrections file that cannot be read or a decision that cannot be recorded."""


@dataclass(frozen=True)
class Correction:
    """One decision about one label."""

    file: str
    attribute: str
    corrected_value: int
    original_value: int | None = None
    note: str = ""
    decided_at: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.file, self.attribute

    @property
    def label_wrong(self) -> bool:
        """True when the person judged the dataset's label wrong (the value changes)."""
        return self.original_value is not None and self.original_value != self.corrected_value


@dataclass(frozen=True)
class LabelCorrections:
    """The decisions of one corrections file, by (file, attribute)."""

    entries: dict[tuple[str, str], Correction]
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Correction]:
        return iter(self.entries.values())

    def get(self, file: str, attribute: str) -> Correction | None:
        return self.entries.get((file, attribute))

    def for_attribute(self, attribute: str) -> dict[str, Correction]:
        """Decisions about one attribute, by file name."""
        return {c.file: c for c in self.entries.values() if c.attribute == attribute}

    def apply(self, files: Iterable[str], attributes: list[str], labels: np.ndarray) -> tuple[np.ndarray, int]:
        """``labels`` (N, len(attributes)) of images ``files`` with the decisions applied, as a new array,
        and how many entries changed. Decisions about other files or attributes are ignored."""
        corrected = np.array(labels, copy=True)
        if not self.entries:
            return corrected, 0
        row_of = {str(f): i for i, f in enumerate(files)}
        column_of = {a: j for j, a in enumerate(attributes)}
        changed = 0
        for c in self.entries.values():
            i, j = row_of.get(c.file), column_of.get(c.attribute)
            if i is None or j is None:
                continue
            if corrected[i, j] != c.corrected_value:
                corrected[i, j] = c.corrected_value
                changed += 1
        return corrected, changed

    def summary(self) -> dict:
        """Counts per attribute: decisions, labels judged wrong, and of those, positives made negative."""
        out: dict[str, dict[str, int]] = {}
        for c in self.entries.values():
            row = out.setdefault(c.attribute, {"decisions": 0, "wrong": 0, "to_negative": 0, "to_positive": 0})
            row["decisions"] += 1
            if c.label_wrong:
                row["wrong"] += 1
                row["to_negative" if c.corrected_value == 0 else "to_positive"] += 1
        return {a: out[a] for a in sorted(out, key=CELEBA_ATTRIBUTES.index)}


def _binary(value: str, what: str, where: str, allow_empty: bool = False) -> int | None:
    text = (value or "").strip()
    if text == "" and allow_empty:
        return None
    # CelebA's own files write -1 for "no"; accept it so values can be pasted from list_attr_celeba.txt.
    if text in ("0", "-1"):
        return 0
    if text == "1":
        return 1
    raise CorrectionsError(f"{where}: {what} must be 0 or 1 (CelebA's -1 is read as 0), not {value!r}")


def parse_corrections(text: str, source: str = "corrections") -> LabelCorrections:
    """Read corrections from CSV text; a clear error names the line of any bad row. A later row for the
    same (file, attribute) replaces an earlier one."""
    text = text.lstrip("\ufeff")  # a spreadsheet's byte-order mark
    if not text.strip():
        return LabelCorrections({})
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CorrectionsError(f"{source}: no {', '.join(missing)} column (a corrections file has the header "
                               f"{','.join(COLUMNS)}; found {','.join(header) or 'nothing'})")
    reader.fieldnames = header
    entries: dict[tuple[str, str], Correction] = {}
    for line, row in enumerate(reader, start=2):
        where = f"{source} line {line}"
        file = (row.get("file") or "").strip()
        attribute = (row.get("attribute") or "").strip()
        if not file:
            raise CorrectionsError(f"{where}: empty file name")
        if attribute not in CELEBA_ATTRIBUTES:
            raise CorrectionsError(f"{where}: {attribute!r} is not one of the 40 CelebA attributes")
        if not (row.get("corrected_value") or "").strip():
            continue  # not decided yet: a review sheet from `label-issues --csv` with blanks left to fill
        correction = Correction(
            file=Path(file).name, attribute=attribute,
            corrected_value=_binary(row.get("corrected_value", ""), "corrected_value", where),
            original_value=_binary(row.get("original_value", ""), "original_value", where, allow_empty=True),
            note=(row.get("note") or "").strip(), decided_at=(row.get("decided_at") or "").strip(),
        )
        entries[correction.key] = correction
    return LabelCorrections(entries)


def read_corrections(path: str | Path, missing_ok: bool = False) -> LabelCorrections:
    """The corrections in ``path``; an empty set for a file not written yet when ``missing_ok``."""
    path = Path(path)
    if not path.is_file():
        if missing_ok and not path.exists():
            return LabelCorrections({}, path)
        raise CorrectionsError(f"{path}: no such corrections file (a CSV with the header {','.join(COLUMNS)})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CorrectionsError(f"{path}: cannot read it as UTF-8 text ({err})") from err
    return replace(parse_corrections(text, str(path)), path=path)


def format_corrections(corrections: Iterable[Correction]) -> str:
    """CSV text of ``corrections``, sorted by attribute (CelebA order) then file, so diffs stay small."""
    rows = sorted(corrections, key=lambda c: (CELEBA_ATTRIBUTES.index(c.attribute), c.file))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c in rows:
        writer.writerow([c.file, c.attribute, c.corrected_value, "" if c.original_value is None else c.original_value,
                         c.note, c.decided_at])
    return buffer.getvalue()


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An exclusive lock for one read-merge-write of ``path``: a flock on its folder, so no lock file
    is left beside it; the kernel drops the lock with the descriptor, also when the process dies."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError as err:
        raise write_error(path, err) from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def record_decisions(path: str | Path, decisions: Iterable[Correction] = (),
                     remove: Iterable[tuple[str, str]] = ()) -> LabelCorrections:
    """Add or replace ``decisions`` and drop the (file, attribute) keys in ``remove``, merged into what
    ``path`` holds now (under a lock, so concurrent writers keep each other's entries); returns the
    file's new content."""
    path = Path(path)
    decisions = [d if d.decided_at else replace(d, decided_at=now()) for d in decisions]
    for d in decisions:
        if d.attribute not in CELEBA_ATTRIBUTES:
            raise CorrectionsError(f"{d.attribute!r} is not one of the 40 CelebA attributes")
        if d.corrected_value not in (0, 1):
            raise CorrectionsError(f"corrected value of {d.file} {d.attribute} must be 0 or 1, not {d.corrected_value!r}")
    with _exclusive(path):
        entries = dict(read_corrections(path, missing_ok=True).entries)
        for key in remove:
            entries.pop(key, None)
        for d in decisions:
            entries[d.key] = replace(d, file=Path(d.file).name)
        atomic_write_text(path, format_corrections(entries.values()))
    return LabelCorrections(entries, path)


def corrected_index(index: CelebAIndex, corrections: LabelCorrections) -> tuple[CelebAIndex, int]:
    """``index`` with its 40-column labels corrected (a new index; the original is unchanged), and how
    many labels changed: what training sees with ``--label-corrections``."""
    labels, changed = corrections.apply(index.files, list(CELEBA_ATTRIBUTES), index.labels)
    return replace(index, labels=labels), changed
