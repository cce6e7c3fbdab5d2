"""A plain VGG-style network, registered as the baseline ``cnn4`` and as ours, ``attrnet``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .blocks import conv_bn_relu
from .registry import register


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
                layers += conv_bn_relu(c, width)
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


register("cnn4", ConvNet, ConvNetConfig(),
         "Baseline: 4 blocks of conv-BN-ReLU-maxpool (32 to 256 channels), global average pooling, one linear layer")
# Ours: one more block (384 channels at 4x4, cheap), average and max pooling (a small patch such as
# glasses or gray strands should not be averaged away), and dropout before the classifier.
register("attrnet", ConvNet, ConvNetConfig(widths=(32, 64, 128, 256, 384), convs_per_stage=(1, 1, 1, 1, 1),
                                           pooling="avgmax", dropout=0.2),
         "Ours: 5 blocks (32 to 384 channels), average+max pooling, dropout 0.2, one linear layer")
