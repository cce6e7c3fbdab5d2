"""Ensembles as one checkpoint: several trained models of one input format whose probabilities are averaged.

Registered as the architecture ``ensemble``; its config lists each member's architecture and config,
and its state dict holds theirs under ``members.K.``. The forward pass returns the logit of the mean
of the members' probabilities, so every consumer of a checkpoint (evaluation, ``predict``, the
Upload page, thresholds, flip averaging) treats an ensemble as any other model. The members share
the checkpoint's preprocessing (size, color, crop) and attributes: ``build_ensemble`` refuses others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from .registry import ModelSpec, create_model, register

# Probabilities are clamped this far from 0 and 1 before the logit, so it stays finite.
EPSILON = 1e-7


@dataclass(frozen=True)
class EnsembleConfig:
    members: tuple[dict, ...] = ()  # each {"arch": name, "config": that architecture's config}


class Ensemble(nn.Module):
    def __init__(self, in_channels: int, num_outputs: int, image_size: int, config: EnsembleConfig) -> None:
        super().__init__()
        if len(config.members) < 2:
            raise ConfigError("an ensemble needs at least two members")
        self.members = nn.ModuleList(
            create_model(ModelSpec(m["arch"], in_channels, num_outputs, image_size, dict(m.get("config", {}))))
            for m in config.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probabilities = torch.stack([torch.sigmoid(member(x).float()) for member in self.members]).mean(dim=0)
        return torch.logit(probabilities.clamp(EPSILON, 1 - EPSILON))


register("ensemble", Ensemble, EnsembleConfig(),
         "Several trained models of one input format; the mean of their probabilities (build with `ensemble`)")


def build_ensemble(members: list[str | Path], out: str | Path) -> Path:
    """Write one checkpoint holding ``members`` (checkpoint files) as an ensemble; returns its path.

    Thresholds are not carried over (each member's were chosen for its own scores): the ensemble
    starts at 0.5 until tuned (``tune --save-to-checkpoint``). Flip averaging is kept when every
    member asks for it.
    """
    from .checkpoint import load_checkpoint, save_checkpoint

    if len(members) < 2:
        raise ConfigError("an ensemble needs at least two member checkpoints")
    loaded = [load_checkpoint(m) for m in members]
    first = loaded[0]
    for path, checkpoint in zip(members[1:], loaded[1:]):
        if checkpoint.attributes != first.attributes:
            raise ConfigError(f"{path} predicts {', '.join(checkpoint.attributes)}, not the first member's "
                              f"{', '.join(first.attributes)}")
        if checkpoint.preprocess != first.preprocess:
            raise ConfigError(f"{path} reads {checkpoint.preprocess.to_dict()}, not the first member's "
                              f"{first.preprocess.to_dict()}: members must share their input")
    spec = first.meta["model"]
    config = {"members": [{"arch": c.meta["model"]["arch"], "config": c.meta["model"]["config"]} for c in loaded]}
    model = Ensemble(spec["in_channels"], spec["num_outputs"], spec["image_size"],
                     EnsembleConfig(members=tuple(config["members"])))
    for member, checkpoint in zip(model.members, loaded):
        member.load_state_dict(checkpoint.model.state_dict())
    meta = {
        "model": {"arch": "ensemble", "in_channels": spec["in_channels"], "num_outputs": spec["num_outputs"],
                  "image_size": spec["image_size"], "config": config},
        "attributes": first.attributes,
        "preprocess": first.meta["preprocess"],
        "ensemble": [{"checkpoint": Path(str(m)).name, "weights_sha256": c.weights_sha256,
                      "best_epoch": c.meta.get("training", {}).get("best_epoch")} for m, c in zip(members, loaded)],
    }
    if all(c.meta.get("inference", {}).get("flip_tta") for c in loaded):
        meta["inference"] = {"flip_tta": True}
    save_checkpoint(out, model.eval(), meta)
    return Path(out)
