"""The models this repository ships, and the built-in demo they come with.

- The demo: ``checkpoints/demo/`` holds four checkpoints trained on the synthetic demo dataset and
  their summary ``manifest.json`` (``models.summary``), which names the demo dataset's parameters;
  ``Catalogue.ensure_demo`` regenerates that dataset in ``data/demo/`` and evaluates the checkpoints
  into ``runs/demo/NAME/{val,test}``, so a fresh clone has something to show.
- The real-data models: ``checkpoints/celeba/`` with their evaluations and the summaries of how they
  were made and chosen (``results.json``, ``experiments.json``); ``Catalogue.default_model`` is the
  one photos are predicted with unless told otherwise (best validation macro-F1, never chosen on test).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data.index import load_index
from .errors import CelebAModelError, ConfigError
from .evaluation.predictions import META_FILE, Predictions, load_predictions, recorded_weights, save_predictions
from .models.header import read_checkpoint_meta, recorded_weights_digest
from .models.summary import DEMO_MANIFEST, EXPERIMENTS_FILE, PAPER_FAMILY_FILE, ModelSummary, read_summary
from .workspace import ARTIFACT_FILE, REPO_ROOT, RUNS_FOLDER, Workspace, find_runs

DEMO_CHECKPOINTS = Path("checkpoints") / "demo"
# checkpoints/celeba/default.json: the real-data checkpoint chosen on real photos (scripts/select_on_photos.py
# --ship), which photos are predicted with, and the split the dashboard opens on.
DEFAULT_CHOICE = "default.json"
# The demo checkpoints were trained on this dataset; regenerating it gives the same held-out people.
DEMO_DATASET = {"num_images": 10000, "seed": 0}
DEMO_SPLITS = ("val", "test")

# (stage, fraction done) -> None; the dashboard turns it into a progress bar.
ProgressCallback = Callable[[str, float], None]


def _quiet(stage: str, fraction: float) -> None:
    return None


@dataclass(frozen=True)
class Catalogue:
    """The shipped models and the demo of one workspace."""

    workspace: Workspace

    # The built-in demo.

    def demo_manifest(self) -> ModelSummary:
        """The demo models' summary: their checkpoint files and, in ``data``, the demo dataset's options."""
        path = self.workspace.demo_checkpoints / DEMO_MANIFEST
        if not path.is_file():
            raise ConfigError(f"{path} is missing: the demo checkpoints are not in this checkout "
                              "(rebuild them with scripts/build_demo_checkpoints.py)")
        return read_summary(path)

    def demo_run(self, name: str, split: str) -> Path:
        return self.workspace.runs_dir / "demo" / name / split

    def demo_is_ready(self) -> bool:
        """True when every demo checkpoint has val and test artifacts of its current weights."""
        try:
            manifest = self.demo_manifest()
        except ConfigError:
            return False
        return all(
            _artifact_is_current(self.demo_run(record.name, split), self.workspace.demo_checkpoints / record.checkpoint)
            for record in manifest.shipped()
            for split in DEMO_SPLITS
        )

    def ensure_demo(self, on_progress: ProgressCallback = _quiet) -> list[Path]:
        """Generate the demo dataset and evaluate the demo checkpoints on its val and test splits.

        Work already done (the dataset, artifacts of unchanged checkpoints) is reused, so the
        second start is instant. Returns the artifact folders.
        """
        from .data.demo import make_demo_dataset
        from .evaluation.evaluate import EvalConfig, evaluate_checkpoint  # torch: imported when there is work

        manifest = self.demo_manifest()
        on_progress("Generating the demo dataset", 0.0)
        make_demo_dataset(
            self.workspace.demo_data, progress=False, overwrite=True,  # the workspace's own demo folder
            on_progress=lambda done, total: on_progress("Generating the demo dataset", 0.6 * done / total),
            **manifest.data["demo_dataset"],
        )
        index = load_index([self.workspace.demo_data])
        jobs = [(record.name, record.checkpoint, split) for record in manifest.shipped() for split in DEMO_SPLITS]
        folders = []
        for i, (name, file, split) in enumerate(jobs):
            checkpoint = self.workspace.demo_checkpoints / file
            folder = self.demo_run(name, split)
            folders.append(folder)
            if _artifact_is_current(folder, checkpoint):
                continue
            stage = f"Evaluating demo checkpoint {name} on {split}"
            on_progress(stage, 0.6 + 0.4 * i / len(jobs))
            evaluate_checkpoint(
                # The demo's own folders: an artifact of older demo weights is replaced.
                checkpoint, index, folder, EvalConfig(split=split, progress=False, overwrite=True),
                on_batch=lambda done, total, i=i, stage=stage: on_progress(stage, 0.6 + 0.4 * (i + done / total) / len(jobs)),
            )
        on_progress("Demo ready", 1.0)
        return folders

    # The real-data models.

    def experiments(self) -> ModelSummary:
        """The shipped summary of the real-data experiments (checkpoints/celeba/experiments.json); empty
        when there is none."""
        return read_summary(self.workspace.real_checkpoints / EXPERIMENTS_FILE, missing_ok=True)

    def real_data_summaries(self) -> list[ModelSummary]:
        """The summaries beside the real-data checkpoints: the paper family (results.json, from
        scripts/build_celeba_checkpoints.py), then the experiments (experiments.json, from
        scripts/run_experiments.py, where ``--ship`` names an experiment's checkpoint)."""
        folder = self.workspace.real_checkpoints
        return [read_summary(folder / PAPER_FAMILY_FILE, missing_ok=True), self.experiments()]

    def real_data_validation_scores(self) -> dict[str, float]:
        """Best validation macro-F1 of each shipped real-data checkpoint, by file stem, from the
        summaries' records that name a checkpoint. Only checkpoints present on disk are listed."""
        folder = self.workspace.real_checkpoints
        scores = {}
        for summary in self.real_data_summaries():
            for record in summary.shipped():
                scores[Path(record.checkpoint).stem] = record.best_val_macro_f1
        return {name: f1 for name, f1 in scores.items() if (folder / f"{name}.safetensors").is_file()}

    def default_choice(self) -> dict | None:
        """``checkpoints/celeba/default.json`` when it names a shipped checkpoint: ``checkpoint`` (a file
        name there), ``split`` (its run the dashboard opens on) and why it was chosen; else None."""
        path = self.workspace.real_checkpoints / DEFAULT_CHOICE
        try:
            choice = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(choice, dict) or not isinstance(choice.get("checkpoint"), str):
            return None
        return choice if (self.workspace.real_checkpoints / Path(choice["checkpoint"]).name).is_file() else None

    def default_model(self) -> Path | None:
        """The checkpoint photos are predicted with (the Upload page, ``predict``): the one chosen on real
        photos (``default_choice``), else the real-data checkpoint with the best validation macro-F1
        (never chosen on test), else the demo RGB model, else the first checkpoint found."""
        choice = self.default_choice()
        if choice is not None:
            return self.workspace.real_checkpoints / Path(choice["checkpoint"]).name
        scores = self.real_data_validation_scores()
        if scores:
            return self.workspace.real_checkpoints / f"{max(scores, key=scores.get)}.safetensors"
        demo = self.workspace.demo_checkpoints / "paper_rgb.safetensors"
        if demo.is_file():
            return demo
        checkpoints = self.workspace.list_checkpoints()
        return checkpoints[0] if checkpoints else None

    def trained_default(self) -> Path | None:
        """The default model, or for an ensemble (assembled, not trained) its first member shipped beside it:
        the checkpoint whose training history stands for the default (the Training page)."""
        default = self.default_model()
        if default is None:
            return None
        try:
            members = read_checkpoint_meta(default).meta.get("ensemble") or []
        except CelebAModelError:
            return default
        shipped = [default.parent / Path(str(m.get("checkpoint", ""))).name for m in members if isinstance(m, dict)]
        return next((p for p in shipped if p.is_file() and p != default), default if not members else None)

    def runs_on(self, data_root: str | Path) -> list[Path]:
        """The runs of a CelebA folder, test runs first, then the newest: the workspace's runs evaluated on
        it (their meta.json names it) and the runs kept in the folder itself (``DATA_ROOT/runs``, when it
        is used as a workspace too)."""
        root = Path(data_root).expanduser()
        if not root.is_dir():
            return []
        target = root.resolve()
        own = find_runs(root / RUNS_FOLDER)
        found = [run for run in self.workspace.list_runs() if run not in own and target in _data_roots(run)] + own
        return sorted(found, key=lambda run: (run.name != "test", -(run / ARTIFACT_FILE).stat().st_mtime))

    def default_run(self, data_root: str | Path | None = None) -> Path | None:
        """The run the dashboard opens on: with a CelebA folder (``--data-root``), its newest test run
        (``runs_on``) when it has runs; else the default real-data model's run on the split it was chosen
        on (``default_choice``: real photos), else its test run, else the real-data paper model's, else
        the demo's."""
        if data_root:
            runs = self.runs_on(data_root)
            if runs:
                return runs[0]
        real_runs = self.workspace.real_checkpoints / "runs"
        candidates = [real_runs / "paper" / "test", self.demo_run("paper", "test")]
        default = self.default_model()
        if default is not None and default.is_relative_to(self.workspace.real_checkpoints):
            candidates.insert(0, real_runs / default.stem / "test")
            choice = self.default_choice()
            if choice is not None and choice.get("split"):
                candidates.insert(0, real_runs / default.stem / str(choice["split"]))  # the photos it was chosen on
        for candidate in candidates:
            if (candidate / ARTIFACT_FILE).is_file():
                return candidate
        runs = self.workspace.list_runs()
        return runs[0] if runs else None

    # Evaluating from the dashboard.

    def evaluate(
        self,
        checkpoint: Path,
        data_roots: Sequence[str | Path],
        split: str,
        on_progress: ProgressCallback = _quiet,
        out: Path | None = None,
        overwrite: bool = False,
    ) -> Predictions:
        """Evaluate one checkpoint on user data into a normal run artifact (``Workspace.output_for``).

        Refuses to replace an artifact of another checkpoint unless ``overwrite``.
        """
        from .evaluation.evaluate import EvalConfig, evaluate_checkpoint

        on_progress("Reading the data roots", 0.0)
        index = load_index(data_roots)
        stage = f"Evaluating {Path(checkpoint).name} on {split}"
        return evaluate_checkpoint(
            checkpoint, index, out or self.workspace.output_for(checkpoint, split),
            EvalConfig(split=split, progress=False, overwrite=overwrite),  # the CLI's cache folder (default_cache_dir)
            on_batch=lambda done, total: on_progress(stage, done / total),
        )


def _data_roots(run: Path) -> set[Path]:
    """The resolved data roots a run's meta.json names (none for a run without them or unreadable)."""
    try:
        roots = json.loads((run / META_FILE).read_text()).get("data_roots") or []
        return {Path(r).expanduser().resolve() for r in roots if isinstance(r, str)}
    except (OSError, ValueError, AttributeError):
        return set()


def _artifact_is_current(folder: Path, checkpoint: Path) -> bool:
    """The artifact exists and was made from the checkpoint's present weights."""
    recorded = recorded_weights(folder)
    return recorded is not None and recorded == recorded_weights_digest(checkpoint)


def sibling_run(predictions: Predictions, split: str) -> Path | None:
    """The artifact of the same checkpoint weights on another split, next to this one, if any."""
    if predictions.folder is None:
        return None
    candidate = predictions.folder.parent / split
    if not (candidate / ARTIFACT_FILE).is_file():
        return None
    other = load_predictions(candidate)
    same = other.meta.get("checkpoint", {}).get("weights_sha256") == predictions.meta.get("checkpoint", {}).get("weights_sha256")
    # Imported predictions: each split is usually its own file (own digest); one import name is one model.
    imported = [run.meta.get("imported", {}).get("name") for run in (predictions, other)]
    same = same or (imported[0] is not None and imported[0] == imported[1])
    return candidate if same else None


def ship_artifact(predictions: Predictions, checkpoint: str, folder: Path) -> None:
    """Save an evaluation next to a shipped checkpoint, naming it by ``checkpoint`` (a workspace-relative
    path such as ``checkpoints/celeba/NAME.safetensors``); its thresholds stay in the checkpoint."""
    predictions.meta["checkpoint"]["path"] = checkpoint
    # Image paths beside the repository (../shared/...) are stored relative to it, so that the shipped
    # artifact finds them in any checkout that has the same neighbour, not only on this machine.
    predictions.paths = np.array([_beside_repo(p) for p in predictions.paths])
    # The folders recorded in its metadata too (where the photos and labels were read).
    meta = predictions.meta
    if "data_roots" in meta:
        meta["data_roots"] = [_beside_repo(str(r)) for r in meta["data_roots"]]
    photos = meta.get("photos")
    if isinstance(photos, dict):
        photos["source"] = [_beside_repo(str(s)) for s in photos.get("source", [])]
        if photos.get("labels_root"):
            photos["labels_root"] = _beside_repo(str(photos["labels_root"]))
    save_predictions(folder, predictions)


def _beside_repo(path: str) -> str:
    resolved = Path(path)
    if resolved.is_absolute() and resolved.is_relative_to(REPO_ROOT.parent):
        return os.path.relpath(resolved, REPO_ROOT)
    return str(path)
