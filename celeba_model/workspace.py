"""Where things live: the workspace folder, run folders named by checkpoint, threshold overrides.

A workspace is the folder a user works in:

- ``checkpoints/``: shipped, version-controlled checkpoints (``checkpoints/demo/`` trained on the
  synthetic demo, ``checkpoints/celeba/`` on real CelebA, with their evaluation artifacts in
  ``checkpoints/celeba/runs/NAME/{val,test}``);
- ``runs/``: training runs and predictions artifacts, from the CLI or the dashboard
  (``runs/<checkpoint name>/<split>``), and ``runs/thresholds/``: tuned thresholds for checkpoints
  whose file is never rewritten (see ``celeba_model.analysis.selection.thresholds``);
- ``data/demo/``: the generated demo dataset;
- ``runs/labels/corrections.csv``: label decisions made on the dashboard's Labels page, and
  ``checkpoints/<family>/labels/*.csv``: shipped label audits.

The root is ``--workspace``, else ``$CELEBA_WORKSPACE``, else the checkout when working inside it,
else the current folder. The preprocessed image cache and the parsed data indexes live outside it, in
one place for every workspace (``default_cache_dir``). The CLI and the dashboard place and find files by
the rules in this module, so both always agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# The source checkout this package was imported from (a non-editable install has none).
REPO_ROOT = Path(__file__).resolve().parents[1]
WORKSPACE_ENV = "CELEBA_WORKSPACE"
CACHE_ENV = "CELEBA_MODEL_CACHE"
RUNS_FOLDER = "runs"
CHECKPOINTS_FOLDER = "checkpoints"
# The arrays of a predictions artifact; a folder holding this file is a run.
ARTIFACT_FILE = "predictions.npz"
# Tuned thresholds for checkpoints that must not be rewritten (shipped or read-only files), one JSON
# file per set of weights: runs/thresholds/<checkpoint name>-<first 12 hex digits of the weights digest>.json
OVERRIDES_FOLDER = "thresholds"
# Label corrections (data/corrections.py): a user's in runs/labels/ (the Labels page writes
# runs/labels/corrections.csv), shipped label audits in checkpoints/<family>/labels/.
LABELS_FOLDER = "labels"
CORRECTIONS_FILE = "corrections.csv"


def is_checkout(folder: Path) -> bool:
    """True for a source checkout of this project (not site-packages after ``pip install .``)."""
    return (folder / "pyproject.toml").is_file() and (folder / "celeba_model").is_dir() and (folder / CHECKPOINTS_FOLDER).is_dir()


def default_workspace_root(explicit: str | Path | None = None) -> Path:
    """The workspace: ``explicit`` (``--workspace``), else ``$CELEBA_WORKSPACE``, else the checkout
    when the current folder is inside this package's checkout, else the current folder."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(WORKSPACE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    cwd = Path.cwd().resolve()
    if is_checkout(REPO_ROOT) and cwd.is_relative_to(REPO_ROOT):
        return REPO_ROOT
    return cwd


def default_cache_dir() -> Path:
    """Where image caches and parsed indexes go unless ``--cache-dir`` says otherwise: ``$CELEBA_MODEL_CACHE``,
    else ``$XDG_CACHE_HOME/celeba_model``, else ``~/.cache/celeba_model``. The one rule for the CLI, the
    Python API and the dashboard, so a cache of a large dataset is built once per machine, not per workspace."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "celeba_model"


def run_name(checkpoint: str | Path) -> str:
    """A checkpoint's name for folders: its stem; its run folder's name for a run's ``best`` /
    ``last.safetensors``, and ``<run>-epoch-NNN`` for the epochs a run keeps (``--keep-epochs``)."""
    path = Path(checkpoint)
    if path.stem in ("best", "last"):
        return path.parent.name
    if path.stem.startswith("epoch-") and path.stem[len("epoch-"):].isdigit():
        return f"{path.parent.name}-{path.stem}"
    return path.stem


def default_run_folder(workspace_root: Path, checkpoint: str | Path, split: str, flip_tta: bool | None = None) -> Path:
    """Where an evaluation lands unless told otherwise: ``runs/<checkpoint name>/<split>``
    (``<split>-flip`` when flip averaging was asked for explicitly)."""
    return Path(workspace_root) / RUNS_FOLDER / run_name(checkpoint) / (split + ("-flip" if flip_tta else ""))


def threshold_override_file(workspace_root: Path, checkpoint: str | Path, weights_sha256: str) -> Path:
    return Path(workspace_root) / RUNS_FOLDER / OVERRIDES_FOLDER / f"{run_name(checkpoint)}-{weights_sha256[:12]}.json"


def find_threshold_override(workspace_root: Path, weights_sha256: str) -> Path | None:
    """The override file for these weights, wherever their checkpoint file is now (matched by digest)."""
    folder = Path(workspace_root) / RUNS_FOLDER / OVERRIDES_FOLDER
    if not folder.is_dir():
        return None
    matches = sorted(folder.glob(f"*-{weights_sha256[:12]}.json"))
    return matches[0] if matches else None


def is_protected_checkpoint(checkpoint: str | Path, workspace_root: Path) -> bool:
    """Checkpoints whose file is never rewritten: the shipped ones (under a workspace's or this
    checkout's ``checkpoints/``, version-controlled) and files this user cannot write."""
    path = Path(checkpoint).resolve()
    shipped = [Path(workspace_root).resolve() / CHECKPOINTS_FOLDER, REPO_ROOT / CHECKPOINTS_FOLDER]
    return any(path.is_relative_to(folder) for folder in shipped) or not os.access(path, os.W_OK)


def find_runs(root: str | Path) -> list[Path]:
    """Every artifact folder under ``root``, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob(ARTIFACT_FILE))


@dataclass(frozen=True)
class Workspace:
    """The folders of one workspace (see the module docstring); every folder is created on demand."""

    root: Path = field(default_factory=default_workspace_root)

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / CHECKPOINTS_FOLDER

    @property
    def runs_dir(self) -> Path:
        return self.root / RUNS_FOLDER

    @property
    def demo_data(self) -> Path:
        return self.root / "data" / "demo"

    @property
    def demo_checkpoints(self) -> Path:
        return self.checkpoints_dir / "demo"

    @property
    def real_checkpoints(self) -> Path:
        return self.checkpoints_dir / "celeba"

    @property
    def cache_dir(self) -> Path:
        """The image cache folder: ``default_cache_dir()``, shared by every workspace (as the CLI uses it)."""
        return default_cache_dir()

    def resolve(self, path: str | Path) -> Path:
        """A path recorded in an artifact: absolute as is, relative to the workspace otherwise
        (shipped artifacts name their checkpoint as ``checkpoints/celeba/NAME.safetensors``)."""
        path = Path(path)
        return path if path.is_absolute() else self.root / path

    def list_runs(self) -> list[Path]:
        """Every predictions artifact: shipped ones under checkpoints/, then runs/ (demo, CLI, dashboard)."""
        return find_runs(self.checkpoints_dir) + find_runs(self.runs_dir)

    def run_label(self, folder: Path) -> str:
        """A short name for a run folder: its path under runs/, or ``celeba/NAME/SPLIT (shipped)``."""
        folder = Path(folder)
        if folder.is_relative_to(self.runs_dir):
            return str(folder.relative_to(self.runs_dir))
        if folder.is_relative_to(self.checkpoints_dir):
            parts = [p for p in folder.relative_to(self.checkpoints_dir).parts if p != "runs"]
            return "/".join(parts) + " (shipped)"
        return str(folder)

    def related_runs(self, folder: Path) -> list[Path]:
        """The runs of the same family as ``folder`` on the same split, ``folder`` first: the shipped
        real-data runs, the demo's, or the workspace's own (``<family>/<checkpoint name>/<split>``)."""
        folder = Path(folder)
        same = [r for r in self.list_runs() if r.parent.parent == folder.parent.parent and r.name == folder.name]
        return [folder] + [r for r in same if r != folder]

    @property
    def corrections_file(self) -> Path:
        """The corrections file the Labels page records decisions in by default."""
        return self.runs_dir / LABELS_FOLDER / CORRECTIONS_FILE

    def list_corrections(self) -> list[Path]:
        """Every corrections file: the user's (runs/labels/*.csv), then the shipped audits."""
        own = sorted((self.runs_dir / LABELS_FOLDER).glob("*.csv"))
        shipped = sorted(self.checkpoints_dir.glob(f"*/{LABELS_FOLDER}/*.csv"))
        return own + shipped

    def list_checkpoints(self) -> list[Path]:
        """Shipped checkpoints and the best checkpoint of every training run under runs/."""
        shipped = sorted(self.checkpoints_dir.rglob("*.safetensors")) if self.checkpoints_dir.is_dir() else []
        trained = sorted(self.runs_dir.rglob("best.safetensors")) if self.runs_dir.is_dir() else []
        return shipped + trained

    def output_for(self, checkpoint: Path, split: str) -> Path:
        """Where an evaluation lands: runs/<checkpoint name>/<split>, the CLI's rule too."""
        return default_run_folder(self.root, checkpoint, split)
