"""Checkpoints evaluated on a folder of real photos through the photo path, into predictions artifacts.

Evaluating a split (``celeba_model.evaluation``) crops aligned CelebA images with a fixed box; real
photos go through the face detector and the training framing first, as uploads and ``predict`` do,
so this is how users meet a model. Each photo is opened, detected and framed once, and its model
input is made for every distinct preprocessing among the checkpoints: many checkpoints (every epoch
of a run, say) cost one detection pass. Labels and people come from a CelebA folder's list files, by
file name; the photos need not be in its image folder (CelebA's test photos, loose crops, ...).

A photo without a detected face is predicted on the whole image, as ``predict
--whole-image-if-no-face`` does, and counted in the artifact's metadata; a photo that cannot be read
is left out and named in a warning.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..attributes import CELEBA_ATTRIBUTES
from ..data.celeba_files import find_layout, read_attribute_file, read_identity_file
from ..data.transforms import PreprocessConfig, image_to_array
from ..errors import ConfigError
from ..evaluation.predictions import Predictions, check_replaceable, save_predictions
from ..workspace import default_run_folder, default_workspace_root, run_name
from .batch import PhotoFramer, expand_inputs, torch_threads
from .pipeline import WHOLE_IMAGE
from .predictor import Predictor

logger = logging.getLogger(__name__)


class PhotoWarning(UserWarning):
    """Photos left out of an evaluation (unreadable, or not in the labels' list files)."""


@dataclass
class PhotoSet:
    """Photos framed once: each one's model input for every preprocessing asked for."""

    files: list[str]  # file names, as in list_attr_celeba.txt
    paths: list[str]  # where they were read
    inputs: dict[str, np.ndarray]  # preprocessing key -> (N, H, W, C) uint8 model inputs
    faces_found: np.ndarray  # (N,) faces the detector found (0: predicted on the whole image)
    left_out: dict[str, str]  # photo -> why it could not be used

    def __len__(self) -> int:
        return len(self.files)


def _key(spec: PreprocessConfig) -> str:
    fields = spec.cache_fields()
    return f"{fields['image_size']}-{fields['color']}"


def frame_photo_set(photos: Iterable[str | Path], specs: Sequence[PreprocessConfig], *, progress: bool = True,
                    workers: int | None = None, on_photo: Callable[[int, int], None] | None = None) -> PhotoSet:
    """Open, detect and frame every photo once; keep the model input of each preprocessing in ``specs``.

    ``on_photo(done, total)`` is called as photos are framed (a dashboard's progress bar)."""
    distinct = {_key(s): s for s in specs}
    inputs = list(expand_inputs(photos))

    def to_inputs(face) -> tuple[np.ndarray, ...]:
        return tuple(image_to_array(face, spec, crop=WHOLE_IMAGE) for spec in distinct.values())

    files, paths, faces, arrays, left_out = [], [], [], [], {}
    framer = PhotoFramer(whole_image_if_no_face=True, workers=workers)
    for result, made in tqdm(framer.frame(inputs, to_inputs), total=len(inputs), unit="photo", desc="Framing photos",
                             disable=not progress, leave=False):
        if on_photo is not None:
            on_photo(len(files) + len(left_out) + 1, len(inputs))
        if made is None:
            left_out[result.image] = result.error or "not usable"
            continue
        files.append(Path(result.image).name)
        paths.append(str(Path(result.image).resolve()))
        faces.append(result.faces_found)
        arrays.append(made)
    stacked = {key: np.stack([a[i] for a in arrays]) if arrays else np.zeros((0, s.image_size, s.image_size, s.channels),
                                                                                np.uint8)
               for i, (key, s) in enumerate(distinct.items())}
    return PhotoSet(files, paths, stacked, np.array(faces, dtype=np.int64), left_out)


def photo_labels(labels_root: str | Path, files: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(labels (N, 40) uint8 in CELEBA_ATTRIBUTES order, person ids (N,) with -1 unknown, names missing
    from the attribute file) for photos named as in a CelebA folder's list files."""
    layout = find_layout(labels_root)
    table = read_attribute_file(layout.attribute_file)
    identity = read_identity_file(layout.identity_file) if layout.identity_file else {}
    row_of = {name: i for i, name in enumerate(table.files)}
    by_stem = {name.rsplit(".", 1)[0]: i for i, name in enumerate(table.files)}  # 000001.png for 000001.jpg
    columns = [table.names.index(a) if a in table.names else -1 for a in CELEBA_ATTRIBUTES]
    labels = np.zeros((len(files), len(CELEBA_ATTRIBUTES)), dtype=np.uint8)
    people = np.full(len(files), -1, dtype=np.int64)
    missing = []
    for i, name in enumerate(files):
        row = row_of.get(name, by_stem.get(name.rsplit(".", 1)[0]))
        if row is None:
            missing.append(name)
            continue
        labels[i] = [table.labels[row, c] if c >= 0 else 0 for c in columns]
        people[i] = identity.get(table.files[row], -1)
    if any(c < 0 for c in columns):
        absent = [a for a, c in zip(CELEBA_ATTRIBUTES, columns) if c < 0]
        raise ConfigError(f"{layout.attribute_file} lacks attribute(s) {', '.join(absent)}; photos need all 40 labels")
    return labels, people, missing


def evaluate_photos(
    checkpoints: Sequence[str | Path],
    photos: Iterable[str | Path],
    labels_root: str | Path,
    out: str | Path | None = None,
    *,
    name: str = "photos",
    workspace_root: Path | None = None,
    overwrite: bool = False,
    batch_size: int = 256,
    progress: bool = True,
    photo_set: PhotoSet | None = None,
    flip_tta: bool | None = None,
) -> list[Predictions]:
    """Evaluate checkpoints on photos through the photo path; save one artifact per checkpoint.

    ``out``: the artifact folder for one checkpoint, ``out/<checkpoint name>`` for several; default
    ``WORKSPACE/runs/<checkpoint name>/<name>``. Every output folder is checked before any work, as
    ``evaluate`` does (``overwrite`` replaces an artifact of other weights). ``photo_set``: the
    photos already framed by ``frame_photo_set`` (with every checkpoint's preprocessing), to
    evaluate several groups of checkpoints on one detection pass; ``photos`` is then not read.
    ``flip_tta``: average each photo with its mirror image (True) or not (False) whatever the
    checkpoints ask for (None: as each asks), to compare checkpoints on equal terms.
    """
    if not checkpoints:
        raise ConfigError("No checkpoint given")
    root = default_workspace_root(workspace_root)
    if out is None:
        folders = [default_run_folder(root, c, name) for c in checkpoints]
    elif len(checkpoints) == 1:
        folders = [Path(out)]
    else:
        folders = [Path(out) / run_name(c) for c in checkpoints]
    if len(set(folders)) != len(folders):
        raise ConfigError(f"Several checkpoints would write to the same folder: {', '.join(map(str, folders))}")
    predictors = [Predictor(c) for c in checkpoints]
    for predictor in predictors if flip_tta is not None else []:
        predictor.flip_tta = flip_tta
    for predictor, folder in zip(predictors, folders):
        check_replaceable(folder, predictor.checkpoint.weights_sha256, overwrite)
    layout = find_layout(labels_root)  # a missing or malformed labels folder fails before the photos are read

    started = time.perf_counter()
    if photo_set is None:
        photo_set = frame_photo_set(photos, [p.spec for p in predictors], progress=progress)
    missing_specs = {_key(p.spec) for p in predictors} - set(photo_set.inputs)
    if missing_specs:
        raise ConfigError(f"the framed photos hold no model inputs for {', '.join(sorted(missing_specs))}")
    framing_seconds = time.perf_counter() - started
    labels, people, missing = photo_labels(labels_root, photo_set.files)
    if missing:
        warnings.warn(f"{len(missing)} photo(s) are not in {layout.attribute_file} and are left out: "
                      f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}", PhotoWarning, stacklevel=2)
    if photo_set.left_out:
        listed = "; ".join(list(photo_set.left_out.values())[:5])
        warnings.warn(f"{len(photo_set.left_out)} photo(s) could not be used and are left out: {listed}",
                      PhotoWarning, stacklevel=2)
    unlabelled = set(missing)
    keep = np.array([f not in unlabelled for f in photo_set.files], dtype=bool)
    if not keep.any():
        raise ConfigError("None of the photos could be used and labelled; nothing to evaluate")
    logger.info(f"{int(keep.sum()):,} photos" + (f" framed in {framing_seconds:.1f} s" if framing_seconds > 0.5 else "")
                + f" ({int((photo_set.faces_found[keep] == 0).sum()):,} without a detected face: whole image)")

    results = []
    for checkpoint, predictor, folder in zip(checkpoints, predictors, folders):
        t0 = time.perf_counter()
        inputs = photo_set.inputs[_key(predictor.spec)][keep]
        with torch_threads(None):
            probabilities = np.concatenate([predictor.predict_inputs(inputs[i:i + batch_size])
                                            for i in range(0, len(inputs), batch_size)])
        columns = [CELEBA_ATTRIBUTES.index(a) for a in predictor.attributes]
        model_seconds = time.perf_counter() - t0
        meta = {
            "checkpoint": {
                "path": str(Path(checkpoint).resolve()),
                "weights_sha256": predictor.checkpoint.weights_sha256,
                "arch": predictor.checkpoint.spec.arch,
                "best_epoch": predictor.checkpoint.meta.get("training", {}).get("best_epoch"),
            },
            "split": name,
            "photos": {
                "source": sorted({str(Path(p).parent) for p in np.array(photo_set.paths)[keep]}),
                "images": int(keep.sum()),
                "no_face_whole_image": int((photo_set.faces_found[keep] == 0).sum()),
                "left_out": len(photo_set.left_out) + len(missing),
                "labels_root": str(Path(labels_root).resolve()),
            },
            "data_roots": [str(Path(labels_root).resolve())],
            "attributes": predictor.attributes,
            "preprocess": predictor.spec.to_dict(),
            "counts": {
                "images": int(keep.sum()),
                "positives": {a: int(labels[keep][:, c].sum()) for a, c in zip(predictor.attributes, columns)},
                "identities": int(len(np.unique(people[keep][people[keep] >= 0]))),
            },
            "timing": {"seconds": framing_seconds + model_seconds, "framing_seconds": framing_seconds,
                       "images_per_s": int(keep.sum()) / max(framing_seconds + model_seconds, 1e-9),
                       "device": str(predictor.device), "batch_size": batch_size},
            "flip_tta": predictor.flip_tta,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        predictions = Predictions(
            probabilities=probabilities.astype(np.float32), labels=labels[keep][:, columns],
            files=np.array(photo_set.files)[keep], paths=np.array(photo_set.paths)[keep], identity=people[keep],
            meta=meta, folder=folder, celeba_labels=labels[keep],
        )
        save_predictions(folder, predictions)
        logger.info(f"{folder}: {len(predictions):,} photos, model {model_seconds:.1f} s")
        results.append(predictions)
    return results
