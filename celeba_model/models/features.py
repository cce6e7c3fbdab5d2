"""Penultimate-layer features: what the classifier head of any registered architecture sees.

Every architecture ends in one ``nn.Linear`` (``classifier`` of ``cnn4`` and ``attrnet``, the last
layer of ``classifier`` for the paper's CNN and its ablations), so its input is the feature vector
an embedding map is drawn from: pooled channels for the VGG-style networks (256 for ``cnn4``, 768
for ``attrnet``'s average+max pooling), fc1's 128 units for ``paper`` and ``no_conv3``, and the
flattened conv4 map for ``no_conv3_no_fc1``. A forward pre-hook reads it, so the model's own
forward pass (and its logits) are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


def head_layer(model: nn.Module) -> str:
    """The name of the model's classifier head: its last ``nn.Linear`` module (e.g. ``classifier.3``)."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ConfigError(f"{type(model).__name__} has no linear classifier head to take features from")
    return names[-1]


def features_and_logits(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, D), logits (N, A)) for a batch: the head's input, flattened, and the model's output."""
    head = dict(model.named_modules())[head_layer(model)]
    seen: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _module, inputs: seen.append(inputs[0]))
    try:
        logits = model(x)
    finally:
        handle.remove()
    return seen[-1].flatten(1), logits
