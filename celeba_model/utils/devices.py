"""Choosing the device and the matching precision: CUDA with mixed precision when present, CPU otherwise."""

from __future__ import annotations

import contextlib

import torch

from ..errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when available; 'cuda' without a GPU is an error rather than a silent fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU on this machine")
    return device


def default_eval_batch_size(device: torch.device) -> int:
    """Images per inference batch. On a GPU, large batches fill it. On a CPU, batches of a few hundred
    images allocate tensors over glibc's 32 MB mmap threshold, which are mapped and page-faulted afresh
    every batch: at 1,000 images evaluation ran at half the speed of 128 (bench/bench_evaluate.py)."""
    return 4096 if device.type == "cuda" else 128


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA (no loss scaling needed); full precision on CPU, where it is faster."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
