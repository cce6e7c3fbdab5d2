"""Writing a demo dataset folder: the images, the three CelebA list files and ``demo_info.json``.

The info file makes generation resumable and reusable: a complete folder of the same settings is
returned as is, an interrupted one is completed, one of other settings is replaced only when asked,
and a folder that is not a demo is never written into.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from ...attributes import CELEBA_ATTRIBUTES
from ...errors import ConfigError
from ...utils.fileio import atomic_write_text
from ..celeba_files import ATTRIBUTE_FILE as ATTR_FILE
from ..celeba_files import IDENTITY_FILE, PARTITION_FILE
from ..celeba_files import IMAGE_FOLDER as IMAGE_DIR
from .plan import ImagePlan, plan_demo
from .render_pool import render_all
from .spurious import SpuriousCorrelation
from .summary import DemoSummary

# Bump whenever the output for a given (num_images, seed) changes (in planning, drawing or the files
# written here), so old demo folders regenerate.
GENERATOR_VERSION = 1

INFO_FILE = "demo_info.json"  # the generator's settings and summary; marks a folder as a demo
_IMAGE_NAME = re.compile(r"^(\d{6})\.jpg$")


def _format_attr_file(plans: list[ImagePlan]) -> str:
    lines = [str(len(plans)), " ".join(CELEBA_ATTRIBUTES)]
    lines += [p.filename + " " + " ".join(f"{v:2d}" for v in p.labels) for p in plans]
    return "\n".join(lines) + "\n"


def _read_info(root: Path) -> dict | None:
    """The folder's demo_info.json; None if there is none, {} if it is unreadable (still ours)."""
    path = root / INFO_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _count_images(image_dir: Path) -> int:
    if not image_dir.is_dir():
        return 0
    with os.scandir(image_dir) as entries:
        return sum(1 for e in entries if _IMAGE_NAME.match(e.name))


def _is_complete(root: Path, info: dict, num_images: int, seed: int, spurious: list | None) -> bool:
    return (
        info.get("complete") is True
        and info.get("version") == GENERATOR_VERSION
        and info.get("num_images") == num_images
        and info.get("seed") == seed
        and info.get("spurious") == spurious
        and all((root / name).is_file() for name in (ATTR_FILE, PARTITION_FILE, IDENTITY_FILE))
        and _count_images(root / IMAGE_DIR) == num_images
    )


def _write_info(root: Path, num_images: int, seed: int, spurious: list | None, summary: DemoSummary | None) -> None:
    info = {
        "generator": "celeba_model.data.demo",
        "version": GENERATOR_VERSION,
        "num_images": num_images,
        "seed": seed,
        "complete": summary is not None,
    }
    if spurious is not None:
        info["spurious"] = spurious  # only when given: the standard demo's file stays as it was
    if summary is not None:
        data = summary.to_dict()
        data.pop("root")
        info["summary"] = data
    atomic_write_text(root / INFO_FILE, json.dumps(info, indent=2) + "\n")


def _prepare_folder(root: Path, num_images: int, seed: int, spurious: list | None) -> None:
    """Claim ``root`` for the demo and clear what a previous demo could leave stale."""
    root.mkdir(parents=True, exist_ok=True)
    # The text files go first so that a run killed from here on never looks complete.
    for name in (ATTR_FILE, PARTITION_FILE, IDENTITY_FILE):
        (root / name).unlink(missing_ok=True)
    _write_info(root, num_images, seed, spurious, summary=None)  # marks the folder as ours, but incomplete
    image_dir = root / IMAGE_DIR
    image_dir.mkdir(exist_ok=True)
    with os.scandir(image_dir) as entries:
        stale = [e.path for e in entries if (m := _IMAGE_NAME.match(e.name)) and int(m.group(1)) > num_images]
    for path in stale:
        os.unlink(path)


def make_demo_dataset(
    out: str | Path,
    num_images: int = 2000,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
    spurious: SpuriousCorrelation | tuple[str, str, float] | str | None = None,
) -> DemoSummary:
    """Write a synthetic CelebA with ``num_images`` faces to ``out`` and summarize it.

    Reuses ``out`` without touching it if it already holds a complete demo made with the same
    ``num_images``, ``seed`` and generator version; an unfinished one (a killed run) is completed.
    Refuses (ConfigError) to write into an existing non-empty folder that is not a demo folder, and
    to replace a finished demo of other settings unless ``overwrite``. ``workers`` defaults to the CPU count; 1 renders
    in-process. The output depends only on ``num_images``, ``seed`` and ``spurious``. ``on_progress(done, total)``
    is called as images are drawn (for a dashboard progress bar). ``spurious`` (target, group, share),
    e.g. ``("Blond_Hair", "Male", 0.02)``, ties the target to the group in the train split only, while
    val and test hold the four cells in about equal numbers (``spurious.py``); it is part of the
    settings, like ``seed``.
    """
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ConfigError(f"num_images must be a positive integer, got {num_images!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if num_images > 999_999:
        raise ConfigError("num_images must be below 1,000,000 (CelebA file names have 6 digits)")
    spurious_spec = SpuriousCorrelation.parse(spurious)
    tie = spurious_spec.to_list() if spurious_spec is not None else None
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} exists and is not a folder")
    info = _read_info(root)
    if info is not None and _is_complete(root, info, num_images, seed, tie) and "summary" in info:
        return DemoSummary.from_dict(root, info["summary"])
    if info is None and root.exists() and any(root.iterdir()):
        raise ConfigError(
            f"{root} is not empty and holds no {INFO_FILE}, so it is not a demo dataset folder; "
            "refusing to write into it. Choose an empty or new folder."
        )
    found = info or {}
    settings = found.get("num_images"), found.get("seed"), found.get("version"), found.get("spurious")
    asked = (num_images, seed, GENERATOR_VERSION, tie)
    if info and info.get("complete") is True and settings != asked and not overwrite:
        raise ConfigError(
            f"{root} already holds a demo dataset of {_describe(*settings)}; replacing it with "
            f"{_describe(num_images, seed, GENERATOR_VERSION, tie)} would delete it. Pass --overwrite to replace it, "
            "or choose another --out (nothing was changed)"
        )

    _prepare_folder(root, num_images, seed, tie)
    plans = plan_demo(num_images, seed, spurious_spec)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    render_all(plans, root / IMAGE_DIR, seed, workers, progress, on_progress)
    # Labels last: the dataset only looks complete once every image is on disk.
    atomic_write_text(root / PARTITION_FILE, "".join(f"{p.filename} {p.partition}\n" for p in plans))
    atomic_write_text(root / IDENTITY_FILE, "".join(f"{p.filename} {p.identity}\n" for p in plans))
    atomic_write_text(root / ATTR_FILE, _format_attr_file(plans))
    summary = DemoSummary.from_plans(root, plans)
    _write_info(root, num_images, seed, tie, summary)
    return summary


def _describe(num_images: object, seed: object, version: object, spurious: object) -> str:
    tie = f", spurious {','.join(map(str, spurious))}" if isinstance(spurious, list) else ""
    return f"{num_images} images, seed {seed}, generator version {version}{tie}"

