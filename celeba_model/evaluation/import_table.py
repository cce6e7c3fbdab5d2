"""Reading another tool's predictions file (CSV or NPZ) into a plain table, with one-line errors.

This module only reads: which columns are attributes, and what the rows mean, is decided in
``imported``. Formats (also in docs/artifacts-and-metrics.md):

- CSV (``.csv``, ``.tsv``, ``.txt``, optionally ``.gz``; comma, tab or semicolon separated, UTF-8):
  a header row naming a file-name column (``file``, ``filename``, ``file_name``, ``image``,
  ``image_id``, ``image_name`` or ``path``) and the other columns, then one row per image;
- NPZ (``numpy.savez``, loaded without pickle): ``files`` (N,) image names; ``probabilities`` or
  ``logits`` (N, A) numbers (or (N,) for one attribute); ``attributes`` (A,) the columns' names.
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from array import array
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import CelebAModelError

# Accepted names of the CSV column holding image names, case-insensitive; the first found is used.
FILE_COLUMNS = ("file", "filename", "file_name", "image", "image_id", "image_name", "path")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
NPZ_VALUE_KEYS = ("probabilities", "logits")
SHOWN = 5  # examples named in an error message


class ImportPredictionsError(CelebAModelError, ValueError):
    """A predictions file that cannot be imported; the message says what is wrong and where."""


class ImportFormatError(ImportPredictionsError):
    """The file is empty, unreadable, of an unknown format, or not laid out as a table of predictions."""


class ImportColumnsError(ImportPredictionsError):
    """No file-name column, no (or missing, or misspelled) attribute columns."""


class ImportValuesError(ImportPredictionsError):
    """A value that is not a number, not finite, or not a probability."""


class ImportRowsError(ImportPredictionsError):
    """Rows that do not fit the data root: unknown or repeated images, images of another split."""


def examples(items: list[str], total: int | None = None) -> str:
    """The first few of ``items`` for a message, with how many more there are."""
    total = len(items) if total is None else total
    more = f" and {total - SHOWN:,} more" if total > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def base_name(name: str) -> str:
    """The image name of a path as a user's code may write it (``img_align_celeba/000001.jpg``,
    ``C:\\data\\000001.jpg``): its last part."""
    return PurePosixPath(name.strip().replace("\\", "/")).name


@dataclass
class RawTable:
    """A predictions file as read: image names, the other columns' names and numbers, where each row is.

    A cell that is not a number is stored as NaN and its column's first such cell is remembered in
    ``bad``: only a column that is imported makes it an error (a text column such as ``split`` is fine).
    """

    format: str  # "csv" or "npz"
    files: list[str]
    names: list[str]  # the columns besides the file names, as written in the file
    cells: np.ndarray  # (N, len(names)) float64
    source: str
    lines: np.ndarray | None = None  # CSV: each row's line in the file (for messages); None for NPZ
    bad: dict[int, tuple[int, str]] = field(default_factory=dict)  # column -> (row, text) of its first non-number
    logits: bool | None = None  # NPZ: whether the array was named ``logits``; None for CSV
    ignored: list[str] = field(default_factory=list)  # columns or arrays that are not read at all

    def __len__(self) -> int:
        return len(self.files)

    def location(self, row: int) -> str:
        """Where row ``row`` is, for messages: ``line 7`` of a CSV, ``row 5`` of an NPZ."""
        return f"row {row}" if self.lines is None else f"line {int(self.lines[row])}"

    def numbers(self, columns: list[int]) -> np.ndarray:
        """The cells of ``columns`` (N, len(columns)); an empty or non-numeric cell among them is an error
        naming its column and row."""
        for column in columns:
            if column in self.bad:
                row, text = self.bad[column]
                what = "is empty (a missing prediction)" if not text.strip() else f"{text[:40]!r} is not a number"
                raise ImportValuesError(f"{self.source}: column {self.names[column]}, {self.location(row)}: {what}; "
                                        "every prediction must be a number")
        return self.cells[:, columns]


def read_table(data: bytes, name: str) -> RawTable:
    """Parse the bytes of a predictions file called ``name`` (its suffix says the format)."""
    if not data.strip():
        raise ImportFormatError(f"{name} is empty; it should hold a header and one row of predictions per image")
    suffixes = [s.lower() for s in PurePosixPath(name).suffixes[-2:]]
    if suffixes and suffixes[-1] == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise ImportFormatError(f"{name} is not a readable gzip file ({err})") from None
        suffixes = suffixes[:-1]
        if not data.strip():
            raise ImportFormatError(f"{name} is empty once decompressed")
    suffix = suffixes[-1] if suffixes else ""
    if suffix == ".npz" or (not suffix and data.startswith(b"PK\x03\x04")):
        return _read_npz(data, name)
    if suffix in CSV_SUFFIXES or not suffix:
        return _read_csv(data, name)
    raise ImportFormatError(f"{name}: unknown format {suffix!r}; give a .csv (a file-name column and one column "
                            "per attribute) or a .npz (arrays files, probabilities or logits, attributes)")


def _read_csv(data: bytes, name: str) -> RawTable:
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is what spreadsheet programs write
    except UnicodeDecodeError as err:
        raise ImportFormatError(f"{name} is not a text CSV file (not UTF-8 at byte {err.start:,})") from None
    if "\x00" in text:
        raise ImportFormatError(f"{name} is not a text CSV file (it holds binary data)")
    first = text.lstrip().split("\n", 1)[0]
    delimiter = max((",", "\t", ";"), key=first.count)  # the header's most frequent separator
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    del text
    try:
        header = [h.strip() for h in next(reader)]
        lowered = [h.lower() for h in header]
        file_column = next((i for i, h in enumerate(lowered) if h in FILE_COLUMNS), None)
        if file_column is None:
            raise ImportColumnsError(f"{name} has no file-name column: the header is {examples(header)}; name the "
                                     f"column of image names {' or '.join(FILE_COLUMNS[:2])} (or "
                                     f"{', '.join(FILE_COLUMNS[2:])})")
        # Other file-name-like columns and unnamed ones (a pandas index written without index=False) are not read.
        ignored = [h or f"(unnamed column {i + 1})" for i, h in enumerate(header)
                   if i != file_column and (lowered[i] in FILE_COLUMNS or not h)]
        keep = [i for i, h in enumerate(header) if i != file_column and h and lowered[i] not in FILE_COLUMNS]
        files, lines, bad = [], [], {}
        values = array("d")  # numbers row after row: 8 bytes a cell, however large the file
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue  # blank lines are not rows
            if len(row) != len(header):
                raise ImportFormatError(f"{name}, line {reader.line_num}: {len(row)} fields, but the header has "
                                        f"{len(header)}")
            image = row[file_column].strip()
            if not image:
                raise ImportFormatError(f"{name}, line {reader.line_num}: the {header[file_column]} column is empty")
            for j, i in enumerate(keep):
                try:
                    values.append(float(row[i]))
                except ValueError:
                    values.append(np.nan)
                    bad.setdefault(j, (len(files), row[i]))
            files.append(image)
            lines.append(reader.line_num)
    except csv.Error as err:
        raise ImportFormatError(f"{name}, line {reader.line_num}: not readable as CSV ({err})") from None
    if not files:
        raise ImportFormatError(f"{name} has a header but no rows of predictions")
    cells = np.frombuffer(values, dtype=np.float64).reshape(len(files), len(keep))
    return RawTable("csv", files, [header[i] for i in keep], cells, name, lines=np.array(lines), bad=bad,
                    ignored=ignored)


def _read_npz(data: bytes, name: str) -> RawTable:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise ImportFormatError(f"{name} holds object arrays, which are not loaded (they could run code); save "
                                    "names as text arrays: np.array(names, dtype=str)") from None
        raise ImportFormatError(f"{name} is not a readable .npz file ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ImportFormatError(f"{name} is not a readable .npz file (numpy.savez): {err}") from None
    present = [k for k in NPZ_VALUE_KEYS if k in arrays]
    missing = [k for k in ("files", "attributes") if k not in arrays]
    if len(present) != 1 or missing:
        problem = ("both probabilities and logits (keep one)" if len(present) == 2 else
                   "no probabilities or logits array" if not present else f"no {' or '.join(missing)} array")
        raise ImportFormatError(f"{name} holds {problem}: its arrays are {examples(sorted(arrays)) or '(none)'}; an "
                                "import needs files (N,), attributes (A,) and probabilities or logits (N, A)")
    key = present[0]
    files, names, values = arrays["files"], arrays["attributes"], arrays[key]
    if files.ndim != 1 or names.ndim != 1 or files.dtype.kind not in "US" or names.dtype.kind not in "US":
        raise ImportFormatError(f"{name}: files and attributes must be 1-D arrays of text (they are {files.dtype} "
                                f"{files.shape} and {names.dtype} {names.shape})")
    if values.ndim == 1 and len(names) == 1:
        values = values[:, None]  # one attribute may be a plain vector
    if values.dtype.kind not in "biuf" or values.shape != (len(files), len(names)):
        raise ImportFormatError(f"{name}: {key} is {values.dtype} {values.shape}; it must be numbers of shape "
                                f"(files, attributes) = ({len(files)}, {len(names)})")
    if not len(files):
        raise ImportFormatError(f"{name} holds no rows of predictions (files is empty)")
    as_text = [str(f.decode() if isinstance(f, bytes) else f) for f in files.tolist()]
    return RawTable("npz", [f.strip() for f in as_text], [str(n) for n in names.tolist()], values.astype(np.float64),
                    name, logits=key == "logits", ignored=sorted(set(arrays) - {"files", "attributes", key}))


def read_source(source: str | Path | object) -> tuple[bytes, str, Path | None]:
    """(bytes, a name for messages, the path or None) of a file path or a binary file-like object
    (a dashboard upload: anything with ``read()`` and, ideally, ``name``)."""
    if hasattr(source, "read"):
        data = source.read()
        label = str(getattr(source, "name", "") or "uploaded file")
        if isinstance(data, str):
            data = data.encode("utf-8")
        return bytes(data), label, None
    path = Path(source).expanduser()
    try:
        return path.read_bytes(), str(path), path.resolve()
    except IsADirectoryError:
        raise ImportFormatError(f"{path} is a folder; give a .csv or .npz file of predictions") from None
    except OSError as err:
        raise ImportFormatError(f"cannot read {path}: {err.strerror or err}") from None
