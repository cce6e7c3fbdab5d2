"""The paper's CNN, its ablations, and a registry that builds any model from its name and config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class PaperCNNConfig:
    """Sizes of the paper's network; the defaults keep it at about 1 M parameters (4 MB)."""

    # conv4 is narrow because its up-sampled 32x32 map is flattened into fc1.
    widths: tuple[int, int, int, int] = (32, 64, 64, 8)
    fc_hidden: int = 128
    # Dropout after conv2, conv3, conv4: the largest at conv3, the down-to-up transition.
    conv_dropout: tuple[float, float, float] = (0.1, 0.3, 0.1)
    fc_dropout: float = 0.3
    use_conv3: bool = True
    use_fc1: bool = True


def _conv_block(c_in: int, c_out: int, *, stride: int = 1, upsample: bool = False) -> list[nn.Module]:
    conv: nn.Module
    if upsample:
        # A stride-2 transposed convolution doubles the resolution, the usual learned up-sampling.
        conv = nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=False)
    else:
        conv = nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)
    return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class PaperCNN(nn.Module):
    """Gómez & Valderrama's 4-conv + 2-FC CNN, with its two ablations as switches.

    Our reading of the paper (section 2.2), layer by layer, for a 64x64 input:

    - "four convolutional layers and two fully connected layers": conv1..conv4, fc1, fc2.
    - "In the first convolutional layer max pooling was performed": conv1 is followed by 2x2
      max pooling.
    - "downsampling in the first two layers and up sampling in the last two": we read this
      spatially. conv1 (stride 2, then the max pool) and conv2 (stride 2) shrink 64 -> 16 -> 8;
      conv3 and conv4 are stride-2 transposed convolutions that grow 8 -> 16 -> 32.
    - "Each batch was normalized": batch normalization after every convolution.
    - "a dropout was applied to convolutional layers 2, 3 and 4 ... in the layer where max
      pooling is passed from down-sampling to up-sampling a greater dropout": dropout after
      conv2, conv3, conv4, the largest (0.3) after conv3, the first up-sampling layer.
    - "nonlinear layers were not used within the network architecture but a sigmoid ... at the
      output": we read this as "no softmax", since the task is multi-label: one sigmoid per
      attribute. A network with no nonlinearity at all would collapse to a linear model, so the
      convolutions keep ReLU. The model returns logits; training uses BCE-with-logits and
      prediction applies the sigmoid (``predict_proba``).
    - Ablations: ``no_conv3`` removes conv3 (conv4 then up-samples 8 -> 16); ``no_conv3_no_fc1``
      also removes fc1, so conv4's flattened output feeds the 10 outputs directly.
    """

    def __init__(self, in_channels: int, num_outputs: int, image_size: int, config: PaperCNNConfig) -> None:
        super().__init__()
        if image_size % 16 != 0:
            raise ConfigError(f"The paper model needs an image size divisible by 16, got {image_size}")
        w1, w2, w3, w4 = config.widths
        d2, d3, d4 = config.conv_dropout
        layers: list[nn.Module] = [*_conv_block(in_channels, w1, stride=2), nn.MaxPool2d(2)]
        layers += [*_conv_block(w1, w2, stride=2), nn.Dropout2d(d2)]
        side = image_size // 8
        c = w2
        if config.use_conv3:
            layers += [*_conv_block(c, w3, upsample=True), nn.Dropout2d(d3)]
            side, c = side * 2, w3
        layers += [*_conv_block(c, w4, upsample=True), nn.Dropout2d(d4)]
        side *= 2
        self.features = nn.Sequential(*layers)
        flat = w4 * side * side
        head: list[nn.Module] = [nn.Flatten()]
        if config.use_fc1:
            head += [nn.Linear(flat, config.fc_hidden), nn.ReLU(inplace=True), nn.Dropout(config.fc_dropout)]
            flat = config.fc_hidden
        head.append(nn.Linear(flat, num_outputs))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@dataclass(frozen=True)
class ConvNetConfig:
    """A plain VGG-style network: stages of (conv3x3-BN-ReLU) x n then 2x2 max pooling, global pooling,
    dropout and one linear layer."""

    widths: tuple[int, ...] = (32, 64, 128, 256)
    convs_per_stage: tuple[int, ...] = (1, 1, 1, 1)
    pooling: str = "avg"  # "avg", or "avgmax": average and max pooling concatenated
    dropout: float = 0.0


class ConvNet(nn.Module):
    """Stages of convolutions, each halving the resolution; see ``ConvNetConfig``."""

    def __init__(self, in_channels: int, num_outputs: int, image_size: int, config: ConvNetConfig) -> None:
        super().__init__()
        if len(config.widths) != len(config.convs_per_stage):
            raise ConfigError("ConvNetConfig needs one entry of convs_per_stage per width")
        if image_size % 2 ** len(config.widths) != 0:
            raise ConfigError(f"Image size {image_size} must be divisible by {2 ** len(config.widths)} for "
                              f"{len(config.widths)} stages")
        if config.pooling not in ("avg", "avgmax"):
            raise ConfigError(f"pooling must be 'avg' or 'avgmax', got {config.pooling!r}")
        layers: list[nn.Module] = []
        c = in_channels
        for width, convs in zip(config.widths, config.convs_per_stage):
            for _ in range(convs):
                layers += _conv_block(c, width)
                c = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pooling = config.pooling
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(c * (2 if config.pooling == "avgmax" else 1), num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        pooled = x.mean(dim=(2, 3))
        if self.pooling == "avgmax":
            pooled = torch.cat([pooled, x.amax(dim=(2, 3))], dim=1)
        return self.classifier(self.dropout(pooled))


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


def available_models() -> dict[str, str]:
    """Registered architecture names with a one-line description."""
    return {name: entry.description for name, entry in _REGISTRY.items()}


def _lookup(arch: str) -> _Entry:
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


register("paper", PaperCNN, PaperCNNConfig(), "The paper's 4-conv + 2-FC CNN")
register("no_conv3", PaperCNN, PaperCNNConfig(use_conv3=False), "Paper ablation: without conv3")
register(
    "no_conv3_no_fc1", PaperCNN, PaperCNNConfig(use_conv3=False, use_fc1=False), "Paper ablation: without conv3 and fc1"
)


register("cnn4", ConvNet, ConvNetConfig(),
         "Baseline: 4 blocks of conv-BN-ReLU-maxpool (32 to 256 channels), global average pooling, one linear layer")
# Ours: one more block (384 channels at 4x4, cheap), average and max pooling (a small patch such as
# glasses or gray strands should not be averaged away), and dropout before the classifier.
register("attrnet", ConvNet, ConvNetConfig(widths=(32, 64, 128, 256, 384), convs_per_stage=(1, 1, 1, 1, 1),
                                           pooling="avgmax", dropout=0.2),
         "Ours: 5 blocks (32 to 384 channels), average+max pooling, dropout 0.2, one linear layer")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
