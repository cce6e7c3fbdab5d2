"""Layers shared by the architectures."""

from __future__ import annotations

from torch import nn


def conv_bn_relu(c_in: int, c_out: int, *, stride: int = 1, upsample: bool = False) -> list[nn.Module]:
    """A 3x3 convolution (or a 2x up-sampling transposed one), batch norm and ReLU.

    Returned as a list, not a Sequential, so that callers splice it into their own Sequential and
    the parameter names (``features.0.weight``, ...) stay those of the shipped checkpoints.
    """
    conv: nn.Module
    if upsample:
        # A stride-2 transposed convolution doubles the resolution, the usual learned up-sampling.
        conv = nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=False)
    else:
        conv = nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)
    # No conv bias: the batch norm's shift replaces it.
    return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
