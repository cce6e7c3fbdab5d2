"""Small JPEG copies of a run's images, one file per row, for previews a browser loads by URL (the Map
page's hover faces). Written once and reused; a file appears only when complete (atomic writes)."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..utils.fileio import atomic_write_bytes
from .images import ImageReadError, open_image

THUMBNAIL_SIDE = 128  # pixels, the longer side: a face in a tooltip


def thumbnail_name(row: int) -> str:
    return f"{row}.jpg"


@dataclass
class ThumbnailReport:
    """What ``write_thumbnails`` did: rows written now, found already written, and left out (why)."""

    written: int = 0
    existing: int = 0
    left_out: dict[int, str] = field(default_factory=dict)


def write_thumbnails(
    paths: Sequence[str | Path | None], folder: str | Path, side: int = THUMBNAIL_SIDE,
    on_progress: Callable[[int, int], None] | None = None,
) -> ThumbnailReport:
    """Write ``folder/ROW.jpg`` for each readable image (``paths[row]``; None: not on this machine), at most
    ``side`` pixels on its longer side, in color and whole (no crop). Rows already written are skipped."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    report = ThumbnailReport()
    for row, path in enumerate(paths):
        target = folder / thumbnail_name(row)
        if target.is_file():
            report.existing += 1
        elif path is None:
            report.left_out[row] = "not on this machine"
        else:
            try:
                image = open_image(path, max_side=4 * side)
            except ImageReadError as err:
                report.left_out[row] = str(err)
            else:
                image.thumbnail((side, side))
                data = io.BytesIO()
                image.save(data, format="JPEG", quality=85)
                atomic_write_bytes(target, data.getvalue())
                report.written += 1
        if on_progress is not None:
            on_progress(row + 1, len(paths))
    return report
