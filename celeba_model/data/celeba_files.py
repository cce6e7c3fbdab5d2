"""Finding CelebA on disk and parsing its list files, with errors that name file and line."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..attributes import CELEBA_ATTRIBUTES
from ..errors import CelebAModelError

IMAGE_FOLDER = "img_align_celeba"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class CelebAFormatError(CelebAModelError, ValueError):
    """A list file that does not follow the CelebA format; the message names file and line."""


class CelebANotFoundError(CelebAModelError, FileNotFoundError):
    """A data root that holds no CelebA layout, or lacks a required file."""


@dataclass(frozen=True)
class CelebALayout:
    """Where one CelebA copy keeps its files."""

    root: Path
    image_dir: Path
    attribute_file: Path
    partition_file: Path | None
    identity_file: Path | None


def find_layout(root: str | Path) -> CelebALayout:
    """Locate CelebA under ``root``: the standard layout or torchvision's (``root/celeba/...``).

    Also accepts the doubled ``img_align_celeba/img_align_celeba`` that unzipping the official
    archive into a folder of the same name produces.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CelebANotFoundError(f"Data root {root} does not exist or is not a folder")
    for base in (root, root / "celeba"):
        image_dir = base / IMAGE_FOLDER
        if not image_dir.is_dir():
            continue
        if (image_dir / IMAGE_FOLDER).is_dir():
            image_dir = image_dir / IMAGE_FOLDER
        attribute_file = base / ATTRIBUTE_FILE
        if not attribute_file.is_file():
            raise CelebANotFoundError(
                f"{base} has the image folder {IMAGE_FOLDER}/ but no {ATTRIBUTE_FILE}; "
                "the attribute labels are required"
            )
        partition_file = base / PARTITION_FILE
        identity_file = base / IDENTITY_FILE
        return CelebALayout(
            root=root,
            image_dir=image_dir,
            attribute_file=attribute_file,
            partition_file=partition_file if partition_file.is_file() else None,
            identity_file=identity_file if identity_file.is_file() else None,
        )
    raise CelebANotFoundError(
        f"No CelebA data under {root}: expected {root}/{IMAGE_FOLDER}/ and {root}/{ATTRIBUTE_FILE} "
        f"(standard layout) or {root}/celeba/{IMAGE_FOLDER}/ (torchvision's layout)"
    )


def _read_lines(path: Path) -> list[str]:
    try:
        # utf-8-sig drops the byte-order mark that Windows editors put at the start of "UTF-8" files.
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CelebAFormatError(f"{path}: not a text file ({err})") from err
    # splitlines handles the CRLF endings of the official files.
    return text.splitlines()


@dataclass(frozen=True)
class AttributeTable:
    """The rows of list_attr_celeba.txt: file names and 0/1 labels in the file's column order."""

    files: list[str]
    names: list[str]
    labels: np.ndarray  # (N, len(names)) uint8, 1 = attribute present


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cycle collector while building millions of strings in lists.

    They hold no reference cycles, yet each batch of new lists triggers a collection that walks all
    of them: on the real 202,599-row file that is about 40% of the parse time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_attribute_file(path: str | Path) -> AttributeTable:
    """Parse list_attr_celeba.txt: a count line, the attribute names, then ``file v1 .. vK`` (1/-1)."""
    with _cyclic_gc_paused():
        return _parse_attribute_file(Path(path))


def _parse_attribute_file(path: Path) -> AttributeTable:
    lines = _read_lines(path)
    if len(lines) < 2:
        raise CelebAFormatError(f"{path}: expected a count line and a header line, the file has {len(lines)} line(s)")
    try:
        declared = int(lines[0].strip())
    except ValueError:
        raise CelebAFormatError(f"{path}:1: expected the image count, got {lines[0][:60]!r}") from None
    names = lines[1].split()
    if not names:
        raise CelebAFormatError(f"{path}:2: expected the attribute names, the line is empty")
    known = set(CELEBA_ATTRIBUTES)
    for name in names:
        if name not in known:
            raise CelebAFormatError(f"{path}:2: unknown attribute name {name!r} (not one of the 40 CelebA attributes)")
    if len(set(names)) != len(names):
        raise CelebAFormatError(f"{path}:2: an attribute name appears twice")
    width = len(names) + 1
    files: list[str] = []
    # Each row's values joined ("1-11..."): one short string per row instead of a list of K strings,
    # which took about 1.6 KB of heap per row (330 MB at full CelebA size).
    joined: list[str] = []
    first_bad: int | None = None  # the first line with a value other than 1 or -1, reported after the counts
    seen: set[str] = set()
    for lineno, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != width:
            raise CelebAFormatError(
                f"{path}:{lineno}: expected {width} fields (file name and {len(names)} values), got {len(fields)}"
            )
        if fields[0] in seen:
            raise CelebAFormatError(f"{path}:{lineno}: image {fields[0]} is listed twice")
        seen.add(fields[0])
        files.append(fields[0])
        values = fields[1:]
        if first_bad is None and not _VALUES.issuperset(values):
            first_bad = lineno
        joined.append("".join(values))
    if declared != len(files):
        raise CelebAFormatError(
            f"{path}:1: the count line declares {declared:,} images but the file lists {len(files):,} image rows"
        )
    if first_bad is not None:
        values = lines[first_bad - 1].split()[1:]
        col, original = next((c, v) for c, v in enumerate(values) if v not in _VALUES)
        raise CelebAFormatError(f"{path}:{first_bad}: value {original[:20]!r} for {names[col]} is not 1 or -1")
    return AttributeTable(files=files, names=names, labels=_positive(joined, len(names)))


_VALUES = frozenset({"1", "-1"})


def _positive(joined: list[str], width: int) -> np.ndarray:
    """The (N, K) uint8 "value is 1" array from each row's values joined, every value being 1 or -1.

    Joined, "-1" and "1" cannot be confused, so replacing "-1" by "0" leaves one digit per value.
    """
    digits = "".join(joined).replace("-1", "0").encode("ascii")
    return (np.frombuffer(digits, dtype=np.uint8) == ord("1")).astype(np.uint8).reshape(len(joined), width)


def _read_pairs(path: Path, what: str, allowed: set[int] | None = None) -> dict[str, int]:
    """Parse ``file value`` lines (partition and identity files)."""
    pairs: dict[str, int] = {}
    for lineno, line in enumerate(_read_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise CelebAFormatError(f"{path}:{lineno}: expected 'file {what}', got {len(fields)} fields")
        try:
            value = int(fields[1])
        except ValueError:
            raise CelebAFormatError(f"{path}:{lineno}: {what} {fields[1]!r} is not an integer") from None
        if allowed is not None and value not in allowed:
            raise CelebAFormatError(f"{path}:{lineno}: {what} {value} is not one of {sorted(allowed)}")
        if fields[0] in pairs:
            raise CelebAFormatError(f"{path}:{lineno}: image {fields[0]} is listed twice")
        pairs[fields[0]] = value
    return pairs


def read_partition_file(path: str | Path) -> dict[str, int]:
    """Parse list_eval_partition.txt: ``file 0|1|2`` (train, val, test)."""
    return _read_pairs(Path(path), "partition", allowed={0, 1, 2})


def read_identity_file(path: str | Path) -> dict[str, int]:
    """Parse identity_CelebA.txt: ``file person_id``."""
    return _read_pairs(Path(path), "identity")


@dataclass(frozen=True)
class ImageListing:
    """The image files of one folder, and the entries that look like images but cannot be opened."""

    found: dict[str, str]  # stem -> file name
    broken: list[str]  # symlink loops and links to missing files, sorted by name


def scan_images(image_dir: Path) -> ImageListing:
    """Map each image's stem to its file name, in one directory scan; collect broken links apart.

    Keyed by stem so a re-encoded copy (``000001.png`` for the listed ``000001.jpg``) still matches.
    A symlink loop or a link to a missing file is not on disk: it is skipped and listed in ``broken``
    (checking it raises, for a loop, which must not end the run).
    """
    found: dict[str, str] = {}
    broken: list[str] = []
    with os.scandir(image_dir) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() not in IMAGE_EXTENSIONS:
                continue
            try:
                is_file = entry.is_file()  # follows links: ELOOP for a loop, False for a dangling link
                is_broken = not is_file and entry.is_symlink()
            except OSError:
                is_file, is_broken = False, True
            if is_file:
                found.setdefault(stem, entry.name)
            elif is_broken:
                broken.append(entry.name)
    return ImageListing(found=found, broken=sorted(broken))
