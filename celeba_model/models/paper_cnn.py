"""The paper's CNN and its two ablations, registered as ``paper``, ``no_conv3`` and ``no_conv3_no_fc1``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .blocks import conv_bn_relu
from .registry import register


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
      convolutions keep ReLU. The model returns logits; training uses BCE-with-logits, and
      prediction applies the sigmoid (``evaluation.batched.sigmoid_probabilities``, for whole
      splits and for photos alike).
    - Ablations: ``no_conv3`` removes conv3 (conv4 then up-samples 8 -> 16); ``no_conv3_no_fc1``
      also removes fc1, so conv4's flattened output feeds the 10 outputs directly.
    """

    def __init__(self, in_channels: int, num_outputs: int, image_size: int, config: PaperCNNConfig) -> None:
        super().__init__()
        if image_size % 16 != 0:
            raise ConfigError(f"The paper model needs an image size divisible by 16, got {image_size}")
        w1, w2, w3, w4 = config.widths
        d2, d3, d4 = config.conv_dropout
        layers: list[nn.Module] = [*conv_bn_relu(in_channels, w1, stride=2), nn.MaxPool2d(2)]
        layers += [*conv_bn_relu(w1, w2, stride=2), nn.Dropout2d(d2)]
        side = image_size // 8
        c = w2
        if config.use_conv3:
            layers += [*conv_bn_relu(c, w3, upsample=True), nn.Dropout2d(d3)]
            side, c = side * 2, w3
        layers += [*conv_bn_relu(c, w4, upsample=True), nn.Dropout2d(d4)]
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


register("paper", PaperCNN, PaperCNNConfig(), "The paper's 4-conv + 2-FC CNN")
register("no_conv3", PaperCNN, PaperCNNConfig(use_conv3=False), "Paper ablation: without conv3")
register(
    "no_conv3_no_fc1", PaperCNN, PaperCNNConfig(use_conv3=False, use_fc1=False), "Paper ablation: without conv3 and fc1"
)
