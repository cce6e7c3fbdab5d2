"""The folders a dashboard session works in: shipped checkpoints, runs, and the built-in demo.

Layout under a workspace root (the repository by default):

- ``checkpoints/``: shipped checkpoints; ``checkpoints/demo/`` holds the demo ones and a
  ``manifest.json`` with the demo dataset parameters they were trained on;
- ``runs/``: predictions artifacts, from the CLI or the dashboard; ``runs/demo/NAME/{val,test}``
  are the demo checkpoints evaluated on the demo dataset;
- ``checkpoints/celeba/``: checkpoints trained on real CelebA, with their evaluation artifacts
  (predictions only, no images) in ``checkpoints/celeba/runs/NAME/{val,test}`` and a
  ``results.json`` summary;
- ``data/demo/``: the generated demo dataset;
- ``runs/thresholds/``: tuned thresholds for checkpoints whose file is never rewritten (see
  ``celeba_model.thresholds``).

The root is ``--workspace``, else ``$CELEBA_WORKSPACE``, else the checkout when working inside
it, else the current folder (``layout.default_workspace_root``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checkpoint import recorded_weights_digest
from .dataset_index import load_index
from .demo import make_demo_dataset
from .errors import ConfigError
from .evaluate import EvalOptions, evaluate_checkpoint
from .layout import REPO_ROOT, default_run_folder, default_workspace_root
from .predictions import ARRAY_FILE, Predictions, find_prediction_runs, load_predictions, save_predictions

DEMO_CHECKPOINTS = Path("checkpoints") / "demo"
DEMO_MANIFEST = "manifest.json"
# The demo checkpoints were trained on this dataset; regenerating it gives the same held-out people.
DEMO_DATASET = {"num_images": 10000, "seed": 0}
DEMO_SPLITS = ("val", "test")

# (stage, fraction done) -> None; the dashboard turns it into a progress bar.
ProgressCallback = Callable[[str, float], None]


def _quiet(stage: str, fraction: float) -> None:
    return None


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace; every folder is created on demand."""

    root: Path = field(default_factory=default_workspace_root)

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def demo_data(self) -> Path:
        return self.root / "data" / "demo"

    @property
    def demo_checkpoints(self) -> Path:
        return self.root / DEMO_CHECKPOINTS

    @property
    def cache_dir(self) -> Path:
        return self.root / ".cache" / "images"

    def resolve(self, path: str | Path) -> Path:
        """A path recorded in an artifact: absolute as is, relative to the workspace otherwise
        (shipped artifacts name their checkpoint as ``checkpoints/celeba/NAME.safetensors``)."""
        path = Path(path)
        return path if path.is_absolute() else self.root / path

    def demo_manifest(self) -> dict:
        path = self.demo_checkpoints / DEMO_MANIFEST
        if not path.is_file():
            raise ConfigError(f"{path} is missing: the demo checkpoints are not in this checkout "
                              "(rebuild them with scripts/build_demo_checkpoints.py)")
        return json.loads(path.read_text())

    def demo_run(self, name: str, split: str) -> Path:
        return self.runs_dir / "demo" / name / split

    def demo_is_ready(self) -> bool:
        """True when every demo checkpoint has val and test artifacts of its current weights."""
        try:
            manifest = self.demo_manifest()
        except ConfigError:
            return False
        return all(
            self._artifact_is_current(self.demo_run(name, split), self.demo_checkpoints / entry["file"])
            for name, entry in manifest["checkpoints"].items()
            for split in DEMO_SPLITS
        )

    def ensure_demo(self, on_progress: ProgressCallback = _quiet) -> list[Path]:
        """Generate the demo dataset and evaluate the demo checkpoints on its val and test splits.

        Work already done (the dataset, artifacts of unchanged checkpoints) is reused, so the
        second start is instant. Returns the artifact folders.
        """
        manifest = self.demo_manifest()
        on_progress("Generating the demo dataset", 0.0)
        make_demo_dataset(
            self.demo_data, progress=False, overwrite=True,  # the workspace's own demo folder
            on_progress=lambda done, total: on_progress("Generating the demo dataset", 0.6 * done / total),
            **manifest["demo_dataset"],
        )
        index = load_index([self.demo_data])
        jobs = [(name, entry, split) for name, entry in manifest["checkpoints"].items() for split in DEMO_SPLITS]
        folders = []
        for i, (name, entry, split) in enumerate(jobs):
            checkpoint = self.demo_checkpoints / entry["file"]
            folder = self.demo_run(name, split)
            folders.append(folder)
            if self._artifact_is_current(folder, checkpoint):
                continue
            stage = f"Evaluating demo checkpoint {name} on {split}"
            on_progress(stage, 0.6 + 0.4 * i / len(jobs))
            evaluate_checkpoint(
                # The demo's own folders: an artifact of older demo weights is replaced.
                checkpoint, index, folder, EvalOptions(split=split, cache_dir=str(self.cache_dir), progress=False,
                                                       overwrite=True),
                on_batch=lambda done, total, i=i, stage=stage: on_progress(stage, 0.6 + 0.4 * (i + done / total) / len(jobs)),
            )
        on_progress("Demo ready", 1.0)
        return folders

    @staticmethod
    def _artifact_is_current(folder: Path, checkpoint: Path) -> bool:
        """The artifact exists and was made from the checkpoint's present weights."""
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            return False
        recorded = meta.get("checkpoint", {}).get("weights_sha256")
        return (folder / ARRAY_FILE).is_file() and recorded is not None and recorded == recorded_weights_digest(checkpoint)

    def list_runs(self) -> list[Path]:
        """Every predictions artifact: shipped ones under checkpoints/, then runs/ (demo, CLI, dashboard)."""
        return find_prediction_runs(self.checkpoints_dir) + find_prediction_runs(self.runs_dir)

    def run_label(self, folder: Path) -> str:
        """A short name for a run folder: its path under runs/, or ``celeba/NAME/SPLIT (shipped)``."""
        folder = Path(folder)
        if folder.is_relative_to(self.runs_dir):
            return str(folder.relative_to(self.runs_dir))
        if folder.is_relative_to(self.checkpoints_dir):
            parts = [p for p in folder.relative_to(self.checkpoints_dir).parts if p != "runs"]
            return "/".join(parts) + " (shipped)"
        return str(folder)

    def default_run(self) -> Path | None:
        """The run the dashboard opens on: the test run of the default real-data model if shipped, else
        the real-data paper model's, else the demo's."""
        candidates = [self.checkpoints_dir / "celeba" / "runs" / "paper" / "test", self.demo_run("paper", "test")]
        default = self.default_upload_checkpoint()
        if default is not None and default.is_relative_to(self.checkpoints_dir / "celeba"):
            candidates.insert(0, self.checkpoints_dir / "celeba" / "runs" / default.stem / "test")
        for candidate in candidates:
            if (candidate / ARRAY_FILE).is_file():
                return candidate
        runs = self.list_runs()
        return runs[0] if runs else None

    def experiments(self) -> dict:
        """The shipped summary of the real-data experiments (checkpoints/celeba/experiments.json), or {}."""
        path = self.checkpoints_dir / "celeba" / "experiments.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def real_data_validation_scores(self) -> dict[str, float]:
        """Best validation macro-F1 of each shipped real-data checkpoint, by file stem: the paper
        family from results.json, experiments shipped by scripts/run_experiments.py --ship from
        experiments.json. Only checkpoints present on disk are listed."""
        folder = self.checkpoints_dir / "celeba"
        scores = {}
        results = folder / "results.json"
        if results.is_file():
            for name, variant in json.loads(results.read_text()).get("variants", {}).items():
                scores[name] = variant["best_val_macro_f1"]
        for experiment in self.experiments().values():
            if "shipped_as" in experiment:
                scores[experiment["shipped_as"]] = experiment["best_val_macro_f1"]
        return {name: f1 for name, f1 in scores.items() if (folder / f"{name}.safetensors").is_file()}

    def default_upload_checkpoint(self) -> Path | None:
        """The real-data checkpoint with the best validation macro-F1 (never chosen on test), else the
        demo RGB model, else the first checkpoint found."""
        scores = self.real_data_validation_scores()
        if scores:
            return self.checkpoints_dir / "celeba" / f"{max(scores, key=scores.get)}.safetensors"
        demo = self.demo_checkpoints / "paper_rgb.safetensors"
        if demo.is_file():
            return demo
        checkpoints = self.list_checkpoints()
        return checkpoints[0] if checkpoints else None

    def list_checkpoints(self) -> list[Path]:
        """Shipped checkpoints and the best checkpoint of every training run under runs/."""
        shipped = sorted(self.checkpoints_dir.rglob("*.safetensors")) if self.checkpoints_dir.is_dir() else []
        trained = sorted(self.runs_dir.rglob("best.safetensors")) if self.runs_dir.is_dir() else []
        return shipped + trained

    def output_for(self, checkpoint: Path, split: str) -> Path:
        """Where an evaluation lands: runs/<checkpoint name>/<split>, the CLI's rule too."""
        return default_run_folder(self.root, checkpoint, split)

    def evaluate(
        self,
        checkpoint: Path,
        data_roots: Sequence[str | Path],
        split: str,
        on_progress: ProgressCallback = _quiet,
        out: Path | None = None,
        overwrite: bool = False,
    ) -> Predictions:
        """Evaluate one checkpoint on user data into a normal run artifact (see ``output_for``).

        Refuses to replace an artifact of another checkpoint unless ``overwrite``.
        """
        on_progress("Reading the data roots", 0.0)
        index = load_index(data_roots)
        stage = f"Evaluating {Path(checkpoint).name} on {split}"
        return evaluate_checkpoint(
            checkpoint, index, out or self.output_for(checkpoint, split),
            EvalOptions(split=split, cache_dir=str(self.cache_dir), progress=False, overwrite=overwrite),
            on_batch=lambda done, total: on_progress(stage, done / total),
        )


def sibling_run(predictions: Predictions, split: str) -> Path | None:
    """The artifact of the same checkpoint weights on another split, next to this one, if any."""
    if predictions.folder is None:
        return None
    candidate = predictions.folder.parent / split
    if not (candidate / ARRAY_FILE).is_file():
        return None
    other = load_predictions(candidate)
    same = other.meta.get("checkpoint", {}).get("weights_sha256") == predictions.meta.get("checkpoint", {}).get("weights_sha256")
    return candidate if same else None


def ship_artifact(predictions: Predictions, checkpoint: str, folder: Path) -> None:
    """Save an evaluation next to a shipped checkpoint, naming it by ``checkpoint`` (a workspace-relative
    path such as ``checkpoints/celeba/NAME.safetensors``); its thresholds stay in the checkpoint."""
    predictions.meta["checkpoint"]["path"] = checkpoint
    # Image paths beside the repository (../shared/...) are stored relative to it, so that the shipped
    # artifact finds them in any checkout that has the same neighbour, not only on this machine.
    predictions.paths = np.array([_beside_repo(p) for p in predictions.paths])
    save_predictions(folder, predictions)


def _beside_repo(path: str) -> str:
    resolved = Path(path)
    if resolved.is_absolute() and resolved.is_relative_to(REPO_ROOT.parent):
        return os.path.relpath(resolved, REPO_ROOT)
    return str(path)
