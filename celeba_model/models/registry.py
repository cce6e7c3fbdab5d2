"""The registry of architectures: build any model from its name and config (a ``ModelSpec``).

The architectures register themselves when their modules are imported (``paper_cnn``, ``convnets``);
the first lookup imports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """What a checkpoint records to rebuild its model."""

    arch: str
    in_channels: int
    num_outputs: int
    image_size: int
    config: dict

    def to_dict(self) -> dict:
        return asdict(self)


Builder = Callable[[int, int, int, object], nn.Module]


@dataclass(frozen=True)
class _Entry:
    builder: Builder  # (in_channels, num_outputs, image_size, config object) -> model
    default: object  # the default config dataclass instance
    description: str


_REGISTRY: dict[str, _Entry] = {}


def register(name: str, builder: Builder, default: object, description: str) -> None:
    """Add an architecture: ``builder`` makes the model from a config like ``default``."""
    _REGISTRY[name] = _Entry(builder, default, description)


def _load_architectures() -> None:
    """Import the shipped architecture modules, which register themselves (once; later calls are free)."""
    from . import convnets, ensemble, paper_cnn  # noqa: F401


def available_models() -> dict[str, str]:
    """Registered architecture names with a one-line description."""
    _load_architectures()
    return {name: entry.description for name, entry in _REGISTRY.items()}


def _lookup(arch: str) -> _Entry:
    _load_architectures()
    if arch not in _REGISTRY:
        raise ConfigError(f"Unknown architecture {arch!r}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[arch]


def _to_jsonable(values: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _config_from_dict(default: object, values: dict) -> object:
    """The config dataclass for JSON ``values``, rejecting unknown keys with a clear message."""
    names = {f.name for f in fields(default)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"Unknown {type(default).__name__} option(s): {', '.join(sorted(unknown))}")
    return type(default)(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def model_spec(arch: str, in_channels: int, num_outputs: int, image_size: int, overrides: dict | None = None) -> ModelSpec:
    """A complete ``ModelSpec``: the architecture's defaults with ``overrides`` applied."""
    entry = _lookup(arch)
    config = _config_from_dict(entry.default, {**_to_jsonable(asdict(entry.default)), **(overrides or {})})
    return ModelSpec(arch, in_channels, num_outputs, image_size, _to_jsonable(asdict(config)))


def create_model(spec: ModelSpec) -> nn.Module:
    """Build the model a ``ModelSpec`` describes (weights freshly initialized)."""
    entry = _lookup(spec.arch)
    return entry.builder(spec.in_channels, spec.num_outputs, spec.image_size, _config_from_dict(entry.default, spec.config))


def count_parameters(model: nn.Module) -> int:
    """The number of parameter values (trainable or not) of a model."""
    return sum(p.numel() for p in model.parameters())
