"""Many photos at once (``python -m celeba_model predict``): the Upload page's path, in parallel.

Every photo goes through the same steps as an upload (``open_photo``, ``frame_photo``, then the
predictor's ``model_input`` and ``predict_inputs``), so the two agree; only the work is spread out:

* worker threads open, detect and frame photos in parallel (PIL's decoders, mediapipe and PIL's
  resampling release the GIL). mediapipe detectors are not thread-safe, so each worker thread
  has its own ``FaceDetector``;
* the calling thread stacks the small model inputs (64x64) into batches for the model; a batch
  gives the same probabilities as one photo at a time, to float rounding (about 1e-7);
* at most ``max_pending`` photos are in flight, and results come back in input order as they are
  ready, so memory stays flat for any number of photos.

A photo that cannot be used (unreadable, corrupt, not an image, no face) becomes a result with an
``error``; it never stops the others. ``predict_photos`` is the same run from Python: files,
folders or patterns in, a list of results with decisions out.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import CelebAModelError, ConfigError
from .detection import FaceDetector
from .pipeline import WHOLE_IMAGE, frame_photo, is_photo_file, open_photo
from .predictor import Predictor

PROGRESS_MIN_PHOTOS = 20  # fewer photos take well under a second: no progress bar
NO_FACE = "no face found (--whole-image-if-no-face predicts the whole image instead)"
GLOB_CHARACTERS = "*?["


@dataclass(frozen=True)
class PhotoInput:
    """One input to predict: a file, or an error found while expanding folders and patterns."""

    path: str
    error: str | None = None


@dataclass
class PhotoResult:
    """The outcome for one photo, in the terms ``predict`` prints."""

    image: str  # the file, as given or found
    face: tuple[float, float, float, float] | None = None  # x, y, width, height in the file's upright pixels
    probabilities: np.ndarray | None = None  # (A,) float32; None when the photo could not be used
    error: str | None = None
    used_whole_image: bool = False
    faces_found: int = 0
    attributes: Sequence[str] = ()  # the names of ``probabilities``' entries, in order
    decisions: np.ndarray | None = None  # (A,) bool: present at the thresholds (set by predict_photos)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Prepared:
    result: PhotoResult
    pixels: object | None = None  # what to_input made of the framed face (a model input, HxWxC uint8)


def expand_inputs(arguments: Iterable[str | Path]) -> Iterator[PhotoInput]:
    """Files to predict from command-line arguments, in order.

    A folder gives its photo files (``PHOTO_EXTENSIONS``, any case), sorted, not recursing; a
    glob pattern its matches, sorted; any other argument is taken as a file (reading it says
    whether it is an image). A folder without photos, or a pattern or path that matches nothing,
    becomes an error entry.
    """
    for argument in arguments:
        text = str(argument)
        path = Path(text)
        if path.is_dir():
            yield from _folder_photos(path, text)
        elif path.exists() or path.is_symlink():
            yield PhotoInput(text)  # a dangling link is reported when it is read
        elif any(c in text for c in GLOB_CHARACTERS):
            matches = sorted(glob.glob(text, recursive=True))  # ** spans folders, as in shells with globstar
            if not matches:
                yield PhotoInput(text, f"{text}: no file matches this pattern")
            for match in matches:
                yield from (_folder_photos(Path(match), match) if Path(match).is_dir() else [PhotoInput(match)])
        else:
            yield PhotoInput(text, f"{text}: file not found")


def _folder_photos(folder: Path, label: str) -> Iterator[PhotoInput]:
    try:
        photos = sorted(str(p) for p in folder.iterdir() if is_photo_file(p) and not p.is_dir())
    except OSError as err:
        yield PhotoInput(label, f"{label}: cannot list the folder ({err.strerror or err})")
        return
    if not photos:
        yield PhotoInput(label, f"{label}: no photo files in this folder")
    yield from (PhotoInput(p) for p in photos)


class PhotoFramer:
    """Opens, detects and frames photos in worker threads, in input order (see the module docstring).

    ``to_input(face_image)`` turns each framed face into what the caller needs (the model input of
    one checkpoint, or of several). ``workers``: threads (default: the CPUs this process may use);
    ``max_pending``: photos in flight at most. ``detector_factory`` makes each worker's detector
    (default: the shipped mediapipe model, quiet).
    """

    def __init__(
        self,
        *,
        whole_image_if_no_face: bool = False,
        workers: int | None = None,
        max_pending: int = 64,
        detector_factory: Callable[[], FaceDetector] = FaceDetector,
    ) -> None:
        self.whole_image_if_no_face = whole_image_if_no_face
        self.workers = max(1, workers or _usable_cpus())
        self.max_pending = max(1, max_pending)
        self.detector_factory = detector_factory
        self._local = threading.local()
        self._detectors: list[FaceDetector] = []
        self._detectors_lock = threading.Lock()

    def frame(self, inputs: Iterable[PhotoInput | str | Path], to_input: Callable[[Image.Image], object]
              ) -> Iterator[tuple[PhotoResult, object | None]]:
        """(result, input) per photo, in input order; input is None for a photo that cannot be used."""
        queue: deque[Future[_Prepared] | _Prepared] = deque()
        items = iter(inputs)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="photo") as pool:
            try:
                while True:
                    # Keep the workers busy while the caller waits for the oldest photo or runs the model.
                    while len(queue) < self.max_pending and (item := next(items, None)) is not None:
                        queue.append(self._submit(pool, item, to_input))
                    if not queue:
                        break
                    head = queue.popleft()
                    prepared = head.result() if isinstance(head, Future) else head
                    yield prepared.result, prepared.pixels
            finally:
                for pending in queue:  # the caller stopped early: do not open the rest
                    if isinstance(pending, Future):
                        pending.cancel()
                pool.shutdown(wait=True)
                self._close_detectors()

    def _submit(self, pool: ThreadPoolExecutor, item: PhotoInput | str | Path,
                to_input: Callable[[Image.Image], object]) -> Future[_Prepared] | _Prepared:
        item = item if isinstance(item, PhotoInput) else PhotoInput(str(item))
        if item.error is not None:
            return _Prepared(PhotoResult(item.path, error=item.error))
        return pool.submit(self._prepare, item.path, to_input)

    def _prepare(self, path: str, to_input: Callable[[Image.Image], object]) -> _Prepared:
        """Open, detect and frame one photo (in a worker thread); errors become results."""
        try:
            image = open_photo(path, name=path)
            framed = frame_photo(image, self._detector(), self.whole_image_if_no_face)
            if framed.face_image is None:
                return _Prepared(PhotoResult(path, error=f"{path}: {NO_FACE}"))
            face = None
            if framed.face is not None:
                # Boxes in the file's own (upright) pixels, not in those of the shrunk copy detected on.
                width, height = image.info.get("source_size", image.size)
                sx, sy = width / image.width, height / image.height
                f = framed.face
                face = (round(f.left * sx, 1), round(f.top * sy, 1), round(f.width * sx, 1), round(f.height * sy, 1))
            return _Prepared(PhotoResult(path, face=face, used_whole_image=framed.used_whole_image,
                                         faces_found=len(framed.faces)), to_input(framed.face_image))
        except CelebAModelError as err:
            return _Prepared(PhotoResult(path, error=str(err)))
        except Exception as err:  # noqa: BLE001 - one odd file (a decoder bug) must not stop the others
            return _Prepared(PhotoResult(path, error=f"{path}: could not be processed ({type(err).__name__}: {err})"))

    def _detector(self) -> FaceDetector:
        """This worker thread's own detector (mediapipe's are not thread-safe)."""
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = self.detector_factory()
            with self._detectors_lock:
                self._detectors.append(detector)
        return detector

    def _close_detectors(self) -> None:
        with self._detectors_lock:
            detectors, self._detectors = self._detectors, []
        for detector in detectors:
            detector.close()
        self._local = threading.local()


class PhotoBatchPredictor:
    """Predicts many photo files with one model, in parallel and in batches (see the module docstring).

    ``workers``: threads that open and detect (default: the CPUs this process may use).
    ``batch_size``: photos per model call (16: on 2 cores about 350 photos/s, against 290 with 32
    and 270 with 64; a small batch's activations stay in cache). ``torch_threads``: torch's
    intra-op threads while predicting (default 1: the workers need the cores, and intra-op threads
    competing with them for the same cores made the model several times slower).
    ``detector_factory`` makes each worker's detector (default: the shipped mediapipe model, quiet).
    """

    def __init__(
        self,
        predictor: Predictor,
        *,
        whole_image_if_no_face: bool = False,
        workers: int | None = None,
        batch_size: int = 16,
        max_pending: int | None = None,
        torch_threads: int | None = 1,
        detector_factory: Callable[[], FaceDetector] = FaceDetector,
    ) -> None:
        self.predictor = predictor
        self.batch_size = max(1, batch_size)
        self.torch_threads = torch_threads
        self.framer = PhotoFramer(whole_image_if_no_face=whole_image_if_no_face, workers=workers,
                                  max_pending=max_pending or 4 * self.batch_size, detector_factory=detector_factory)

    def predict(self, inputs: Iterable[PhotoInput | str | Path]) -> Iterator[PhotoResult]:
        """One result per input, in input order, yielded as soon as its batch is predicted."""
        batch: list[_Prepared] = []
        with torch_threads(self.torch_threads):
            framed = self.framer.frame(inputs, lambda face: self.predictor.model_input(face, WHOLE_IMAGE))
            for result, pixels in framed:
                batch.append(_Prepared(result, pixels))
                if len(batch) >= self.batch_size:
                    yield from self._finish(batch)
                    batch = []
            yield from self._finish(batch)

    def _finish(self, batch: list[_Prepared]) -> Iterator[PhotoResult]:
        """Run the model on the batch's usable photos and yield every result in order."""
        usable = [p for p in batch if p.pixels is not None]
        if usable:
            probabilities = self.predictor.predict_inputs(np.stack([p.pixels for p in usable]))
            for prepared, row in zip(usable, probabilities):
                prepared.result.probabilities = row
                prepared.result.attributes = self.predictor.attributes
        for prepared in batch:
            yield prepared.result


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op threads set for the block and restored after (the setting is process-wide)."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which os.cpu_count() ignores)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def predict_photos(
    paths: str | Path | Iterable[str | Path],
    checkpoint: str | Path | None = None,
    thresholds: str | float | Mapping[str, float] | None = None,
    workspace: str | Path | None = None,
    whole_image_if_no_face: bool = False,
) -> list[PhotoResult]:
    """``python -m celeba_model predict`` from Python: one result per photo, in input order.

    ``paths``: files, folders (their photo files, sorted) and glob patterns, as ``expand_inputs``
    takes them. ``checkpoint`` is required here (``celeba_model.predict_photos`` fills in the
    workspace's default model, which this layer cannot look up). ``thresholds``: a number,
    "checkpoint", a thresholds JSON file or a mapping attribute -> threshold (default: the
    checkpoint's stored ones, else 0.5, as ``predict``); each usable result gets ``decisions`` at
    them. ``workspace`` is where stored thresholds are looked up. A photo that cannot be used has
    ``error`` set and no probabilities. The list is built whole (a result is a few hundred bytes);
    for results as they come, run ``PhotoBatchPredictor.predict``.
    """
    # Imported here: the analysis package pulls in the metrics and scikit-learn (about a second).
    from ..models.thresholds import default_thresholds, thresholds_for
    from ..workspace import default_workspace_root

    if checkpoint is None:
        raise ConfigError("predict_photos needs a checkpoint; celeba_model.predict_photos defaults to the "
                          "workspace's default model")
    if isinstance(paths, (str, Path)):  # one path, not the characters of one
        paths = [paths]
    root = default_workspace_root(workspace)
    predictor = Predictor(checkpoint)
    if thresholds is None:
        cutoffs, _ = default_thresholds(checkpoint, predictor.attributes, root)
    else:
        cutoffs, _ = thresholds_for(thresholds, predictor.attributes, checkpoint, root)
    batch = PhotoBatchPredictor(predictor, whole_image_if_no_face=whole_image_if_no_face)
    results = list(batch.predict(expand_inputs(paths)))
    for result in results:
        if result.probabilities is not None:
            result.decisions = result.probabilities >= cutoffs
    return results


# ---- Output formats of `predict` ---------------------------------------------------------------


def result_record(result: PhotoResult, attributes: Sequence[str], thresholds: np.ndarray) -> dict:
    """One photo as ``predict --json`` prints it."""
    if result.error is not None:
        return {"image": result.image, "error": result.error}
    probabilities = result.probabilities
    return {
        "image": result.image,
        "face": None if result.face is None else list(result.face),
        "probabilities": {a: float(p) for a, p in zip(attributes, probabilities)},
        "decisions": {a: bool(p >= t) for a, p, t in zip(attributes, probabilities, thresholds)},
    }


class ResultTable:
    """``predict``'s plain-text table: a header, then one row per photo as results arrive."""

    def __init__(self, attributes: Sequence[str], names: Sequence[str], thresholds: np.ndarray) -> None:
        self.attributes = list(attributes)
        self.thresholds = np.asarray(thresholds)
        self.image_width = min(max([len("image"), *(len(n) for n in names)]), 72)
        self.face_width = len("1234,1234,1234x1234")
        self.cell_widths = [max(len(a), 5) for a in self.attributes]

    def header(self) -> str:
        cells = [a.rjust(w) for a, w in zip(self.attributes, self.cell_widths)]
        return "  ".join([self._name("image"), "face x,y,wxh".ljust(self.face_width), *cells])

    def row(self, result: PhotoResult) -> str:
        if result.error is not None:
            return "  ".join([self._name(result.image), f"error: {result.error}"])
        face = "whole image" if result.face is None else "{:.0f},{:.0f},{:.0f}x{:.0f}".format(*result.face)
        cells = [(f"{p:.2f}" + ("*" if p >= t else " ")).rjust(w)
                 for p, t, w in zip(result.probabilities, self.thresholds, self.cell_widths)]
        return "  ".join([self._name(result.image), face.ljust(self.face_width), *cells])

    def _name(self, name: str) -> str:
        return name.ljust(self.image_width)  # a longer name is kept whole and pushes its row's cells


def csv_header(attributes: Sequence[str]) -> list[str]:
    columns = ["image", "face_x", "face_y", "face_width", "face_height", "error"]
    for attribute in attributes:
        columns += [f"{attribute}_probability", f"{attribute}_present"]
    return columns


def csv_row(result: PhotoResult, thresholds: np.ndarray) -> list:
    """One photo as a ``predict --csv`` row (empty cells where there is nothing)."""
    face = list(result.face) if result.face is not None else ["", "", "", ""]
    row = [result.image, *face, result.error or ""]
    if result.probabilities is None:
        return row + [""] * (2 * len(thresholds))
    for p, t in zip(result.probabilities, thresholds):
        row += [f"{float(p):.6f}", int(p >= t)]
    return row


def write_results(
    results: Iterable[PhotoResult],
    attributes: Sequence[str],
    thresholds: np.ndarray,
    names: Sequence[str],
    *,
    as_json: bool = False,
    csv_path: str | Path | None = None,
    progress: bool | None = None,
) -> list[PhotoResult]:
    """Print results as they arrive (a JSON list, or a table) and write the CSV file at the end.

    Returns the failed results. ``progress``: a tqdm bar on stderr (None: when stderr is a
    terminal); stdout only ever holds the JSON or the table.
    """
    from tqdm import tqdm

    from ..utils.fileio import atomic_write_text

    if csv_path is not None and Path(csv_path).is_dir():  # found now, not after predicting everything
        raise ConfigError(f"--csv {csv_path} is a folder; give the name of the file to write")
    table = None if as_json else ResultTable(attributes, names, thresholds)
    # CSV rows become text as they come (about 250 bytes a photo), written atomically at the end.
    csv_buffer = io.StringIO()
    csv_writer = csv.writer(csv_buffer, lineterminator="\n") if csv_path is not None else None
    if csv_writer is not None:
        csv_writer.writerow(csv_header(attributes))
    failed: list[PhotoResult] = []
    # disable=None: tqdm shows the bar only when stderr is a terminal.
    with tqdm(total=len(names), unit="photo", desc="Predicting", leave=False,
              disable=None if progress is None else not progress) as bar:

        def emit(line: str) -> None:
            tqdm.write(line, file=sys.stdout)  # clears the bar (on stderr) around the line

        emit("[" if as_json else table.header())
        previous = None
        for result in results:
            bar.update(1)
            if result.error is not None:
                failed.append(result)
            if csv_writer is not None:
                csv_writer.writerow(csv_row(result, thresholds))
            if as_json:
                if previous is not None:
                    emit(f"  {previous},")
                previous = json.dumps(result_record(result, attributes, thresholds))
            else:
                emit(table.row(result))
        if as_json:
            emit(("" if previous is None else f"  {previous}\n") + "]")
        else:
            emit("(* predicted present: probability at or above the threshold)")
    if csv_path is not None:
        atomic_write_text(csv_path, csv_buffer.getvalue())
    return failed
