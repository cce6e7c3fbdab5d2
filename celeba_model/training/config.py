"""What defines a training run: TrainConfig, checked as it is built, and the settings a run was saved with."""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from ..attributes import CELEBA_ATTRIBUTES, PAPER_ATTRIBUTES, resolve_attributes
from ..errors import CelebAModelError, ConfigError
from .regularization import MIX_MODES

POS_WEIGHT_MODES = ("none", "sqrt", "balanced")
DATA_ON_DEVICE_MODES = ("auto", "yes", "no")
SELECT_MODES = ("macro-f1", "worst-group")
AUGMENT_PRESETS = ("standard", "photo")  # data.transforms.AUGMENT_PRESETS holds their ranges  # what picks best.safetensors
# Options that define what is trained; a resumed run must keep them.
LOCKED_ON_RESUME = (
    "arch", "attributes", "epochs", "batch_size", "lr", "weight_decay", "seed", "image_size", "color",
    "pos_weight", "augment", "max_train_images", "model_config", "split_seed", "ema",
    "group_by", "group_target", "group_balance", "group_dro", "dro_step", "jtt", "jtt_epochs", "jtt_upweight",
    "select", "keep_epochs", "aux_attributes", "augment_preset",
    "label_smoothing", "random_erase", "mix", "mix_alpha", "teacher", "distill_weight",
)


class TrainingError(CelebAModelError, RuntimeError):
    """A run that cannot start or continue, with the reason."""


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults follow the paper (batch 100, grayscale)."""

    data_roots: list[str]
    out: str
    arch: str = "paper"
    attributes: list[str] = field(default_factory=lambda: list(PAPER_ATTRIBUTES))
    epochs: int = 20
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    split_seed: int = 0
    image_size: int = 64
    color: str = "gray"
    pos_weight: str = "none"
    augment: bool = False
    # With augment: "standard" (flip, shift, zoom, color), or "photo", which adds the framing noise of the
    # face detector path (small rotations, wider shift and zoom) so aligned training meets uploaded photos.
    augment_preset: str = "standard"
    # Multi-task supervision: more CelebA attributes learned beside ``attributes`` (a shared trunk with
    # more outputs), not predicted. Checkpoints for evaluation (best, epoch-NNN) keep only the outputs of
    # ``attributes``; last.safetensors keeps all of them, to resume. "all": the other CelebA attributes.
    aux_attributes: list[str] = field(default_factory=list)
    # Batch regularizers (regularization.py): label smoothing, random erasing (probability per image),
    # mixup or cutmix with a Beta(mix_alpha, mix_alpha) weight.
    label_smoothing: float = 0.0
    random_erase: float = 0.0
    mix: str = "none"
    mix_alpha: float = 0.2
    # Distillation (distill.py): a checkpoint (one model or an ensemble) whose flip-averaged probabilities
    # on the train images are blended into the targets, distill_weight of them against the labels.
    # Stored as an absolute path so --resume finds it.
    teacher: str | None = None
    distill_weight: float = 0.5
    # Decay of an exponential moving average of the weights, updated every step; validation and the
    # saved best checkpoint use the average. None trains without one.
    ema: float | None = None
    max_train_images: int | None = None
    patience: int | None = None
    model_config: dict = field(default_factory=dict)
    workers: int = 0
    device: str = "auto"
    # Keep the whole uint8 cache as one tensor on the training device: "auto" does so on a GPU when
    # it fits in a quarter of the free memory (the full CelebA cache at 64x64 RGB is 2.5 GB), "yes", "no".
    data_on_device: str = "auto"
    cache_dir: str | None = None
    eval_batch_size: int | None = None  # None: devices.default_eval_batch_size
    progress: bool = True
    # Groups (groups.py): the cells are target value x group value(s), e.g. blond/not x male/not. The
    # target is one of the trained attributes (default: the first); validation reports each cell's accuracy.
    group_by: list[str] | None = None
    group_target: str | None = None
    group_balance: bool = False  # every batch draws the cells equally, with replacement (sampling.py)
    group_dro: bool = False  # Group DRO (Sagawa et al. 2020): the loss of the worst cells weighs most (dro.py)
    dro_step: float = 0.01  # step size of Group DRO's exponentiated-gradient update of the cell weights
    # Just Train Twice (Liu et al. 2021, jtt.py): an ERM run of jtt_epochs epochs, then a run from scratch
    # that draws the images it misclassified jtt_upweight times as often.
    jtt: bool = False
    jtt_epochs: int = 2
    jtt_upweight: float = 20.0
    select: str = "macro-f1"  # which validation figure picks best.safetensors (SELECT_MODES)
    keep_epochs: bool = False  # also keep every epoch's evaluated weights as epoch-NNN.safetensors
    # A corrections CSV (data/corrections.py): the train and val labels it judges wrong are replaced
    # by its corrected values before training. Stored as an absolute path so --resume finds it.
    label_corrections: str | None = None

    def __post_init__(self) -> None:
        self._check_types()
        self.attributes = resolve_attributes(self.attributes)
        self._check_aux_attributes()
        if self.augment_preset not in AUGMENT_PRESETS:
            raise ConfigError(f"augment_preset must be one of {AUGMENT_PRESETS}, got {self.augment_preset!r}")
        if self.pos_weight not in POS_WEIGHT_MODES:
            raise ConfigError(f"pos_weight must be one of {POS_WEIGHT_MODES}, got {self.pos_weight!r}")
        for name in ("epochs", "batch_size", "image_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be zero or a positive number, got {self.weight_decay}")
        if self.data_on_device not in DATA_ON_DEVICE_MODES:
            raise ConfigError(f"data_on_device must be one of {DATA_ON_DEVICE_MODES}, got {self.data_on_device!r}")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ConfigError(f"ema must be between 0 and 1 (for example 0.998), got {self.ema}")
        for name in ("max_train_images", "patience"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ConfigError(f"workers must be 0 or more, got {self.workers}")
        self._check_groups()
        self._check_regularization()
        if self.label_corrections:
            self.label_corrections = str(Path(self.label_corrections).expanduser().resolve())

    def _check_aux_attributes(self) -> None:
        """Canonical names; "all" is every CelebA attribute not predicted; none may also be predicted."""
        if [a.lower() for a in self.aux_attributes] == ["all"]:
            self.aux_attributes = [a for a in CELEBA_ATTRIBUTES if a not in self.attributes]
            return
        self.aux_attributes = resolve_attributes(self.aux_attributes) if self.aux_attributes else []
        both = [a for a in self.aux_attributes if a in self.attributes]
        if both:
            raise ConfigError(f"aux_attributes cannot repeat predicted attributes: {', '.join(both)}")

    def _check_regularization(self) -> None:
        if not (math.isfinite(self.label_smoothing) and 0 <= self.label_smoothing < 1):
            raise ConfigError(f"label_smoothing must be at least 0 and under 1 (for example 0.1), got {self.label_smoothing}")
        if not (math.isfinite(self.random_erase) and 0 <= self.random_erase <= 1):
            raise ConfigError(f"random_erase is a probability between 0 and 1, got {self.random_erase}")
        if self.mix not in MIX_MODES:
            raise ConfigError(f"mix must be one of {MIX_MODES}, got {self.mix!r}")
        if not (math.isfinite(self.mix_alpha) and self.mix_alpha > 0):
            raise ConfigError(f"mix_alpha must be a positive number (for example 0.2), got {self.mix_alpha}")
        if not (math.isfinite(self.distill_weight) and 0 < self.distill_weight <= 1):
            raise ConfigError(f"distill_weight must be over 0 and at most 1, got {self.distill_weight}")
        if self.teacher:
            teacher = Path(self.teacher).expanduser().resolve()
            if not teacher.is_file():
                raise ConfigError(f"teacher checkpoint {teacher} does not exist")
            self.teacher = str(teacher)

    @property
    def trained_attributes(self) -> list[str]:
        """The model's outputs while it trains: the predicted attributes first, then the auxiliary ones."""
        return self.attributes + self.aux_attributes

    def _check_groups(self) -> None:
        """The group options, resolved to canonical names: they need each other in set ways."""
        needs = [name for name in ("group_balance", "group_dro") if getattr(self, name)]
        needs += ["select worst-group"] if self.select == "worst-group" else []
        needs += ["group_target"] if self.group_target is not None and not self.jtt else []  # JTT's target
        if self.group_by is None and needs:
            raise ConfigError(f"{', '.join(needs)} needs group_by (the grouping attributes, e.g. Male)")
        if self.group_by is not None:
            if not self.group_by:
                raise ConfigError("group_by needs at least one attribute, e.g. Male")
            self.group_by = resolve_attributes(self.group_by)
        if self.group_by is not None or self.group_target is not None:
            target = self.attributes[0] if self.group_target is None else resolve_attributes([self.group_target])[0]
            if target not in self.attributes:
                raise ConfigError(f"group_target {target} is not one of the trained attributes "
                                  f"({', '.join(self.attributes)})")
            if target in (self.group_by or []):
                raise ConfigError(f"group_by cannot hold the group target {target}: the cells are target x group")
            self.group_target = target
        if not (math.isfinite(self.dro_step) and self.dro_step > 0):
            raise ConfigError(f"dro_step must be a positive number, got {self.dro_step}")
        if self.select not in SELECT_MODES:
            raise ConfigError(f"select must be one of {SELECT_MODES}, got {self.select!r}")
        if self.jtt:
            if self.group_balance or self.group_dro:
                raise ConfigError("jtt trains without group labels (it upweights its first run's mistakes); it "
                                  "cannot be combined with group_balance or group_dro")
            if not 1 <= self.jtt_epochs < self.epochs:
                raise ConfigError(f"jtt_epochs must be at least 1 and fewer than epochs ({self.epochs}), "
                                  f"got {self.jtt_epochs}")
            if not (math.isfinite(self.jtt_upweight) and self.jtt_upweight >= 1):
                raise ConfigError(f"jtt_upweight must be a number of at least 1, got {self.jtt_upweight}")

    def _check_types(self) -> None:
        """Settings come from the command line and from config.json files a user may have edited:
        a value of the wrong type gets a message naming the setting, not a traceback later."""
        expected = {
            "data_roots": list, "out": str, "arch": str, "attributes": (list, tuple), "epochs": int,
            "batch_size": int, "lr": (int, float), "weight_decay": (int, float), "seed": int, "split_seed": int,
            "image_size": int, "color": str, "pos_weight": str, "augment": bool, "ema": (int, float, type(None)),
            "max_train_images": (int, type(None)), "patience": (int, type(None)), "model_config": dict,
            "workers": int, "device": str, "data_on_device": str, "cache_dir": (str, type(None)),
            "eval_batch_size": (int, type(None)), "progress": bool, "group_by": (list, tuple, type(None)),
            "group_target": (str, type(None)), "group_balance": bool, "group_dro": bool, "dro_step": (int, float),
            "jtt": bool, "jtt_epochs": int, "jtt_upweight": (int, float), "select": str, "keep_epochs": bool,
            "label_corrections": (str, type(None)), "aux_attributes": (list, tuple), "augment_preset": str,
            "label_smoothing": (int, float), "random_erase": (int, float), "mix": str, "mix_alpha": (int, float),
            "teacher": (str, type(None)), "distill_weight": (int, float),
        }
        for name, types in expected.items():
            value = getattr(self, name)
            wrong_bool = isinstance(value, bool) and types is not bool and bool not in (types if isinstance(types, tuple) else (types,))
            if not isinstance(value, types) or wrong_bool:
                example = "a JSON object such as '{\"fc_hidden\": 256}'" if name == "model_config" else None
                raise ConfigError(f"{name} must be {example or _type_names(types)}, got {value!r}")
        if not all(isinstance(r, str) for r in self.data_roots):
            raise ConfigError(f"data_roots must be a list of folder names, got {self.data_roots!r}")
        if self.group_by is not None and not all(isinstance(a, str) for a in self.group_by):
            raise ConfigError(f"group_by must be a list of attribute names, got {self.group_by!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def _type_names(types: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
             tuple: "a list", dict: "a JSON object", type(None): "null"}
    types = types if isinstance(types, tuple) else (types,)
    listed = dict.fromkeys(names[t] for t in types if not (t is int and float in types))  # "a number" covers both
    return " or ".join(listed)


def read_run_config(out: str | Path) -> dict:
    """The settings a run in ``out`` was started with (for ``--resume``)."""
    out = Path(out)
    path = out / "config.json"
    if not path.is_file():
        raise TrainingError(f"Nothing to resume in {out}: it has no config.json from an earlier run")
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TrainingError(f"{path} is damaged ({err}); it cannot be resumed. Start a new run in another --out") from err
    if not isinstance(saved, dict):
        raise TrainingError(f"{path} is damaged (a JSON {type(saved).__name__}, not an object); it cannot be resumed")
    return saved


def check_resumable(config: TrainConfig, out: str | Path) -> None:
    """Raise TrainingError unless the run in ``out`` was started with the same LOCKED_ON_RESUME settings."""
    saved_config = read_run_config(out)
    # A setting a run's config.json lacks is older than the setting: that run trained with its default.
    defaults = {f.name: None if f.default is MISSING else f.default for f in fields(TrainConfig)}
    differences = [
        f"{name}: run has {saved_config.get(name, defaults.get(name))!r}, asked for {getattr(config, name)!r}"
        for name in LOCKED_ON_RESUME
        # compare as saved in JSON
        if saved_config.get(name, defaults.get(name)) != json.loads(json.dumps(getattr(config, name)))
    ]
    if differences:
        raise TrainingError(f"Cannot resume {out} with different settings:\n  " + "\n  ".join(differences))
