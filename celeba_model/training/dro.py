"""Group DRO (Sagawa et al. 2020, algorithm 1): minimize the loss of the worst cell, not the average.

Each step, every cell's mean loss on the batch raises that cell's weight by exponentiated gradient,
``q_g <- q_g * exp(step * loss_g)``, normalized to sum to 1, and the training loss is the q-weighted
sum of the cell losses, so a cell the model keeps failing comes to dominate the gradient. As in the
authors' code, a cell absent from a batch has loss 0 there. The weights q are training state: they go
into last.safetensors and come back on --resume, so a resumed run stays bit-identical.

The paper found strong L2 regularization necessary for the worst group to generalize (their CelebA
runs: weight decay 0.1 with SGD); here --weight-decay sets it.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..utils.distributed import DistInfo

STATE_KEY = "dro.q"  # the weights' tensor name in last.safetensors (under "state.")


class GroupDRO:
    """The Group DRO objective over ``num_cells`` cells, called like a loss: ``(logits, targets, cells)``."""

    def __init__(
        self, num_cells: int, step: float, pos_weight: torch.Tensor | None = None, device: torch.device | None = None,
        info: DistInfo = DistInfo(),
    ) -> None:
        self.step = step
        self.pos_weight = pos_weight
        self.info = info
        self.q = torch.full((num_cells,), 1.0 / num_cells, dtype=torch.float32, device=device)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        # Each image's loss is its mean over the attributes, as in the plain loss (BCEWithLogitsLoss).
        per_image = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight, reduction="none")
        return self.loss(per_image.mean(dim=1), cells)

    def loss(self, per_image: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """Update q from this batch's cell losses and return the q-weighted sum of them."""
        # A one-hot product rather than index_add_: deterministic on GPUs too.
        one_hot = F.one_hot(cells, len(self.q)).to(per_image.dtype)
        sums = one_hot.T @ per_image
        counts = one_hot.sum(dim=0)
        if not self.info.enabled:
            cell_loss = sums / counts.clamp(min=1.0)
            self._update(cell_loss.detach())
            return (self.q * cell_loss).sum()
        # Under torchrun every rank updates q from the whole batch's cell losses, so q stays the same
        # everywhere. DistributedDataParallel averages the ranks' gradients, so each rank's own images
        # count world_size times; the value returned is the whole batch's loss.
        total = torch.cat([sums.detach(), counts])
        dist.all_reduce(total)
        global_sums, counts = total.split(len(self.q))
        self._update(global_sums / counts.clamp(min=1.0))
        mine = (self.q * sums / counts.clamp(min=1.0)).sum() * self.info.world_size
        return mine + ((self.q * global_sums / counts.clamp(min=1.0)).sum() - mine).detach()

    def _update(self, cell_loss: torch.Tensor) -> None:
        """The exponentiated-gradient step on q."""
        with torch.no_grad():
            q = self.q * torch.exp(self.step * cell_loss)
            self.q = q / q.sum()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {STATE_KEY: self.q.detach().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.q = state[STATE_KEY].to(self.q.device, self.q.dtype).clone()
