"""The summary of trained models that ships beside their checkpoints: how each was made and how it scored.

One JSON format for every summary file:

- ``checkpoints/celeba/results.json``: the real-data paper model, its ablations and ``paper_rgb``
  (``scripts/build_celeba_checkpoints.py``);
- ``checkpoints/celeba/experiments.json``: every real-data experiment, the shipped ones naming their
  checkpoint (``scripts/run_experiments.py``; ``runs/experiments/summary.json`` is its working copy);
- ``checkpoints/demo/manifest.json``: the demo models and the demo dataset they were trained on
  (``scripts/build_demo_checkpoints.py``);
- ``checkpoints/celeba/group_robust.json``: the group-robustness benchmark (Blond_Hair by Male: ERM,
  balanced batches, Group DRO, JTT), figures on real photos, the shipped robust model naming its
  checkpoint (``scripts/run_group_robust.py``). Not a candidate for the default model: it predicts
  one attribute.

A file holds ``{"format": SUMMARY_FORMAT, "data": {...}, "models": [ModelRecord, ...]}``. The
catalogue picks the default model from it, and the model card and the Ablations page show its figures.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import ConfigError
from ..utils.fileio import atomic_write_text

SUMMARY_FORMAT = "celeba_model/model-summary-v1"

# The summary files, beside the checkpoints they describe.
PAPER_FAMILY_FILE = "results.json"
EXPERIMENTS_FILE = "experiments.json"
DEMO_MANIFEST = "manifest.json"
GROUP_ROBUST_FILE = "group_robust.json"

# Operating points (keys of ModelRecord.test): thresholds 0.5 or tuned on val, "-flip" with flip averaging.
AT_05, TUNED, AT_05_FLIP, TUNED_FLIP = "0.5", "tuned", "0.5-flip", "tuned-flip"


@dataclass(frozen=True)
class OperatingPoint:
    """A model's test figures at one operating point (its thresholds, with or without flip averaging)."""

    # metrics.counts.summarize of the test split: macro_f1, paper_f (the paper's AVG. F), macro_accuracy, ...
    summary: dict[str, float]
    # attribute -> precision, recall, f1, accuracy (and tp, support where recorded)
    per_attribute: dict[str, dict[str, float]]
    # 95% bootstrap intervals over people, by summary figure ("macro_f1": [low, high]); empty if not computed
    summary_ci: dict[str, list[float]] = field(default_factory=dict)
    # 95% intervals of each attribute's F1; empty if not computed
    f1_ci: dict[str, list[float]] = field(default_factory=dict)
    # attribute -> threshold; None means 0.5 for every attribute
    thresholds: dict[str, float] | None = None

    @property
    def macro_f1_ci(self) -> list[float] | None:
        return self.summary_ci.get("macro_f1")


@dataclass(frozen=True)
class TuningCheck:
    """Whether max-F1 thresholds tuned on half of the val people help on the other half
    (``metrics.sweep.heldout_tuning_gain``): the check that decides a shipped model's thresholds."""

    mean_gain: float  # mean macro-F1 gain over the random halvings
    std_gain: float
    share_improved: float  # share of halvings where tuning helped
    comparisons: int


@dataclass(frozen=True)
class ModelRecord:
    """One trained model: what it is, how it was trained, and its validation and test figures."""

    name: str
    # The shipped checkpoint's file name, beside the summary file; None for a model that was not shipped.
    checkpoint: str | None
    arch: str
    # Training options beside the data roots (TrainConfig fields), as the script passed them.
    options: dict[str, object]
    best_epoch: int
    best_val_macro_f1: float  # what a choice between models may look at; never the test figures
    command: str | None = None  # the equivalent `python -m celeba_model train ...`
    train_seconds: float | None = None
    epochs_run: int | None = None
    description: str = ""  # what the experiment changes
    train_images_per_s: float | None = None
    # Wall time of the latest `train` call alone (a resumed run counts only its last part).
    last_call_wall_seconds: float | None = None
    test: dict[str, OperatingPoint] = field(default_factory=dict)  # by operating point (AT_05, TUNED, ...)
    tuning_check: TuningCheck | None = None


@dataclass
class ModelSummary:
    """The content of one summary file: its models in order, and the data they were trained on."""

    models: list[ModelRecord] = field(default_factory=list)
    # The data: ``CelebAIndex.summary()`` of the data roots, or ``{"demo_dataset": make_demo_dataset's options}``.
    data: dict[str, object] = field(default_factory=dict)

    def get(self, name: str) -> ModelRecord | None:
        return next((record for record in self.models if record.name == name), None)

    def put(self, record: ModelRecord) -> None:
        """Add a record, or replace the one of the same name where it stands."""
        for i, existing in enumerate(self.models):
            if existing.name == record.name:
                self.models[i] = record
                return
        self.models.append(record)

    def shipped(self) -> list[ModelRecord]:
        """The records whose checkpoint ships beside this summary."""
        return [record for record in self.models if record.checkpoint is not None]


def train_command(data_roots: Sequence[str], options: dict[str, object], out: str | Path) -> str:
    """The `train` command line equivalent to training with ``options`` (True: a bare flag)."""
    roots = " ".join(f"--data-root {shlex.quote(str(root))}" for root in data_roots)
    flags = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif isinstance(value, dict):  # --model-config takes JSON
            flags.append(f"{flag} {shlex.quote(json.dumps(value, separators=(',', ':')))}")
        elif isinstance(value, (list, tuple)):
            # --group-by takes ATTR[,ATTR]; the other list options (--attributes) take several words.
            words = [",".join(map(str, value))] if key == "group_by" else [shlex.quote(str(v)) for v in value]
            flags.append(" ".join([flag, *words]))
        else:
            flags.append(f"{flag} {shlex.quote(str(value))}")
    return f"python -m celeba_model train {roots} {' '.join(flags)} --out {out}"


def write_summary(path: str | Path, summary: ModelSummary) -> None:
    """Write ``summary`` atomically as indented JSON (diffs of a rebuilt model stay readable)."""
    document = {"format": SUMMARY_FORMAT, "data": summary.data, "models": [asdict(r) for r in summary.models]}
    atomic_write_text(path, json.dumps(document, indent=2) + "\n")


def read_summary(path: str | Path, missing_ok: bool = False) -> ModelSummary:
    """Read a summary file; a missing one is an error unless ``missing_ok`` (then it is empty)."""
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return ModelSummary()
        raise ConfigError(f"{path}: model summary not found")
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: not a readable JSON model summary ({err})") from err
    if not isinstance(document, dict) or document.get("format") != SUMMARY_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ConfigError(f"{path}: not a model summary of this version (format {found!r}, expected "
                          f"{SUMMARY_FORMAT!r}); rebuild it with the script that wrote it")
    try:
        return ModelSummary(models=[_record(item) for item in document.get("models", [])],
                            data=dict(document.get("data") or {}))
    except (TypeError, ValueError, AttributeError) as err:
        raise ConfigError(f"{path}: malformed model summary: {err}") from err


def _checked(kind: type, values: dict) -> dict:
    """``values`` as keyword arguments of dataclass ``kind``; unknown keys are errors, not dropped."""
    if not isinstance(values, dict):
        raise TypeError(f"{kind.__name__} must be a JSON object, found {type(values).__name__}")
    unknown = set(values) - {f.name for f in fields(kind)}
    if unknown:
        raise ValueError(f"unknown {kind.__name__} field(s): {', '.join(sorted(unknown))}")
    return values


def _record(values: dict) -> ModelRecord:
    values = dict(_checked(ModelRecord, values))
    values["test"] = {point: OperatingPoint(**_checked(OperatingPoint, figures))
                      for point, figures in (values.get("test") or {}).items()}
    if values.get("tuning_check") is not None:
        values["tuning_check"] = TuningCheck(**_checked(TuningCheck, values["tuning_check"]))
    return ModelRecord(**values)  # a missing required field raises TypeError, naming it
