"""Choosing the device and the matching precision: CUDA with mixed precision when present, CPU otherwise."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """float32 with TF32 off on CUDA, for predictions: bfloat16 autocast moved GPU probabilities up to
    1.8e-2 from the CPU's and flipped 40 of 40,960 decisions at 0.5 (bench/gpu_suite.sh on an H200);
    in full precision they agree to about 1e-6. Evaluation is far from the bottleneck either way."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA (no loss scaling needed); full precision on CPU, where it is faster."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
