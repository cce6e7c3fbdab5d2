"""Running under torchrun: process group set-up, sharding and gathering, one writer.

`torchrun --nproc_per_node=N -m celeba_model train ...` starts N processes with RANK, WORLD_SIZE and
LOCAL_RANK in their environment. Each trains on its shard of every epoch (DistributedDataParallel
averages the gradients), evaluates its share of the validation images, and rank 0 alone writes
checkpoints, metrics and artifacts. Without those variables everything runs as one process and
none of this code does anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank among world_size, and its device's index on the machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun set up (NCCL on GPUs, Gloo on CPU); a no-op outside torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(rank=int(os.environ["RANK"]), world_size=world_size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def is_main_process() -> bool:
    """True outside torchrun and on rank 0 (for what only one process should print)."""
    return int(os.environ.get("RANK", "0")) == 0


def shutdown() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def main_first(info: DistInfo, work: Callable[[], object]) -> object:
    """Run ``work`` on rank 0 first (for example building the image cache), then on the others,
    which then find its result on disk instead of redoing it."""
    if info.is_main:
        result = work()
        barrier(info)
        return result
    barrier(info)
    return work()


def shard(rows: np.ndarray, info: DistInfo) -> np.ndarray:
    """This rank's contiguous share of ``rows`` (contiguous, so gathering in rank order restores the order)."""
    return np.array_split(rows, info.world_size)[info.rank] if info.enabled else rows


def predict_shard(predict: Callable[[np.ndarray], np.ndarray], rows: np.ndarray, info: DistInfo, width: int) -> np.ndarray:
    """``predict`` this rank's share of ``rows`` and gather all shares: on every rank, the same array a
    single process would have computed, in the same order."""
    mine = shard(rows, info)
    values = predict(mine) if len(mine) else np.zeros((0, width), dtype=np.float32)
    return gather_rows(values, info)


def gather_rows(values: np.ndarray, info: DistInfo) -> np.ndarray:
    """Concatenate every rank's ``values`` in rank order (on every rank)."""
    if not info.enabled:
        return values
    parts: list[np.ndarray | None] = [None] * info.world_size
    dist.all_gather_object(parts, values)
    return np.concatenate(parts)


def mean_over_ranks(total: float, count: int, info: DistInfo) -> float:
    """The mean of a quantity summed as ``total`` over ``count`` items on each rank."""
    if not info.enabled:
        return total / max(count, 1)
    pair = torch.tensor([total, float(count)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        pair = pair.cuda()
    dist.all_reduce(pair)
    return float(pair[0] / max(pair[1], 1.0))
