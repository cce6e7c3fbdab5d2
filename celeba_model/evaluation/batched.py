"""Batched inference over cached images: the same code on CPU and GPU."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..data.transforms import PreprocessConfig, to_model_input
from ..errors import ConfigError
from ..utils.devices import default_eval_batch_size, full_precision
from ..utils.memory import TRIM_EVERY, release_free_memory


def sigmoid_probabilities(model: nn.Module, x: torch.Tensor, flip_tta: bool = False) -> torch.Tensor:
    """Sigmoid probabilities (N, A) float32 for a normalized batch ``x`` (N, C, H, W).

    With ``flip_tta`` each image's probabilities are averaged with its mirror image's. The one
    place flip averaging is done: split evaluation and photo prediction both call it, so they agree.
    """
    probs = torch.sigmoid(model(x).float())
    if flip_tta:
        probs = (probs + torch.sigmoid(model(torch.flip(x, dims=[3])).float())) / 2
    return probs


@torch.inference_mode()
def predict_probabilities(
    model: nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    spec: PreprocessConfig,
    device: torch.device,
    batch_size: int | None = None,
    flip_tta: bool = False,
    progress: bool = False,
    desc: str = "Evaluating",
    on_batch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Sigmoid probabilities (len(rows), A) float32 for ``images[rows]`` (NHWC uint8, e.g. the cache).

    With ``flip_tta`` the probabilities of each image and its mirror image are averaged.
    ``on_batch(done, total)`` is called after each batch (the dashboard's progress bar).
    """
    rows = np.asarray(rows)
    if len(rows) == 0:
        raise ConfigError("No images to evaluate: the selection is empty")
    model.eval()
    batch_size = batch_size or default_eval_batch_size(device)
    # Outputs stay on the device until the end: one transfer instead of a sync per batch.
    outputs: list[torch.Tensor] = []
    pin = device.type == "cuda"
    # One rate, the average since the start (smoothing 0): the figure the command prints at the end.
    bar = tqdm(total=len(rows), desc=desc, unit="img", disable=not progress, leave=False, smoothing=0)
    for begin in range(0, len(rows), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[rows[begin : begin + batch_size]]))
        if pin:
            # Pinned host memory lets the copy overlap with the previous batch's compute.
            batch = batch.pin_memory()
        x = to_model_input(batch.to(device, non_blocking=True), spec)
        with full_precision(device):  # agrees with the CPU's probabilities (bf16 did not, to 1e-3)
            probs = sigmoid_probabilities(model, x, flip_tta)
        outputs.append(probs)
        done = begin + len(batch)
        bar.update(len(batch))
        if on_batch is not None:
            on_batch(done, len(rows))
        if device.type == "cpu" and (begin // batch_size) % TRIM_EVERY == TRIM_EVERY - 1:
            release_free_memory()  # or the heap grows with the images predicted (utils.memory)
    bar.close()
    return torch.cat(outputs).cpu().numpy().astype(np.float32, copy=False)
