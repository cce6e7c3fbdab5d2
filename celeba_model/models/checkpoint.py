"""Checkpoints as one safetensors file: tensors plus JSON metadata, never pickle.

Layout of a checkpoint file:
- tensors ``model.<name>``: the model's state dict;
- tensors ``optim.<param index>.<key>``: optimizer state, only in the ``last`` checkpoint of a run;
- tensors ``state.<name>``: other training state to resume (the weight average, when used);
- header metadata ``format``, ``meta`` (JSON: architecture and config, attribute names,
  preprocessing, training config and history, tuned thresholds) and ``tensors_sha256``
  (a digest of every tensor, so a file altered after saving is refused).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from ..attributes import resolve_attributes
from ..data.transforms import PreprocessConfig
from ..errors import CelebAModelError
from ..utils.fileio import atomic_write_bytes
from .header import (  # noqa: F401 - the header's names stay importable from here
    FORMAT,
    CheckpointError,
    CheckpointHeader,
    _looks_like_pickle,
    _read_file_header_metadata,
    _read_header_metadata,
    _refuse_pickle,
    read_checkpoint_meta,
    recorded_weights_digest,
)
from .registry import ModelSpec, create_model

@dataclass
class Checkpoint:
    """A loaded checkpoint: the model ready for inference and everything recorded with it."""

    model: nn.Module
    meta: dict
    path: Path
    weights_sha256: str
    optimizer_state: dict | None = None
    training_state: dict[str, torch.Tensor] | None = None

    @property
    def attributes(self) -> list[str]:
        return list(self.meta["attributes"])

    @property
    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self.meta["preprocess"])

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(**self.meta["model"])

    @property
    def thresholds(self) -> dict[str, float] | None:
        return self.meta.get("thresholds")


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into tensors and a JSON part."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], json_part: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, values in json_part.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": json_part["param_groups"]}


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    meta: dict,
    optimizer_state: dict | None = None,
    training_state: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write model weights (and optionally optimizer state) with ``meta`` atomically to ``path``.

    ``meta`` must hold ``model`` (a ModelSpec dict), ``attributes`` and ``preprocess``.
    """
    for key in ("model", "attributes", "preprocess"):
        if key not in meta:
            raise ValueError(f"checkpoint metadata needs {key!r}")
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = dict(meta)
    if optimizer_state is not None:
        optim_tensors, meta["optimizer"] = _flatten_optimizer(optimizer_state)
        tensors.update(optim_tensors)
    else:
        meta.pop("optimizer", None)
    for name, value in (training_state or {}).items():
        tensors[f"state.{name}"] = value.detach().cpu().contiguous()
    header = {"format": FORMAT, "meta": json.dumps(meta), "tensors_sha256": _digest(tensors)}
    atomic_write_bytes(path, save_safetensors(tensors, metadata=header))


def read_checkpoint_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict, str]:
    """Read and verify a checkpoint: its tensors, metadata and the SHA-256 digest of its tensors.

    The digest identifies the weights; it does not change when metadata such as thresholds does.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    data = path.read_bytes()
    _refuse_pickle(path, data)
    try:
        tensors = load_safetensors(data)
        with_meta = _read_header_metadata(data)
    except (SafetensorError, ValueError, OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not a valid safetensors checkpoint (truncated or corrupt): {err}") from err
    if with_meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: a safetensors file, but not a celeba_model checkpoint (format {with_meta.get('format')!r}, "
            f"expected {FORMAT!r})"
        )
    if _digest(tensors) != with_meta.get("tensors_sha256"):
        raise CheckpointError(f"{path}: the weights do not match the digest recorded when saving (file altered or damaged)")
    try:
        meta = json.loads(with_meta["meta"])
    except (KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: the metadata is not valid JSON ({err})") from err
    return tensors, meta, with_meta["tensors_sha256"]


# The metadata every checkpoint needs, with the JSON type each must have.
_REQUIRED_META = {"model": dict, "attributes": list, "preprocess": dict}


def _validated_meta(path: str | Path, meta: dict) -> dict:
    """Check the required metadata before anything indexes it; attribute names come back canonical."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: the metadata is not a JSON object")
    for key, kind in _REQUIRED_META.items():
        if key not in meta:
            raise CheckpointError(f"{path}: the metadata lacks {key!r}; this file cannot be used as a checkpoint")
        if not isinstance(meta[key], kind):
            raise CheckpointError(
                f"{path}: metadata {key!r} must be a JSON {'object' if kind is dict else 'list'}, "
                f"found {type(meta[key]).__name__}"
            )
    names = meta["attributes"]
    # An empty list would mean "the paper's 10" to resolve_attributes; here it is simply wrong.
    if not names or not all(isinstance(name, str) for name in names):
        raise CheckpointError(f"{path}: metadata 'attributes' must be a non-empty list of attribute names")
    try:
        return {**meta, "attributes": resolve_attributes(names)}
    except CelebAModelError as err:
        raise CheckpointError(f"{path}: metadata 'attributes': {err}") from err


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", with_optimizer: bool = False) -> Checkpoint:
    """Load a checkpoint into a freshly built model in eval mode; refuses files that do not match."""
    tensors, meta, digest = read_checkpoint_file(path)
    meta = _validated_meta(path, meta)
    try:
        spec = ModelSpec(**meta["model"])
        model = create_model(spec)
        PreprocessConfig.from_dict(meta["preprocess"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: the metadata does not describe a model this version can build ({err})") from err
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(
            f"{path}: the weights do not fit architecture {spec.arch!r} with its recorded config: "
            f"{' '.join(first[:3])[:400]}"
        ) from err
    if len(meta["attributes"]) != spec.num_outputs:
        raise CheckpointError(f"{path}: {len(meta['attributes'])} attribute names for {spec.num_outputs} outputs")
    model.to(device).eval()
    optimizer_state = training_state = None
    if with_optimizer and "optimizer" in meta:
        optimizer_state = _unflatten_optimizer({k: v for k, v in tensors.items() if k.startswith("optim.")}, meta["optimizer"])
        training_state = {k[len("state."):]: v for k, v in tensors.items() if k.startswith("state.")}
    return Checkpoint(model=model, meta=meta, path=Path(path), weights_sha256=digest, optimizer_state=optimizer_state,
                      training_state=training_state)


def update_checkpoint_meta(path: str | Path, updates: dict) -> None:
    """Change metadata entries (for example tuned thresholds) keeping the tensors, atomically."""
    tensors, meta, _ = read_checkpoint_file(path)
    meta.update(updates)
    header = {"format": FORMAT, "meta": json.dumps(meta), "tensors_sha256": _digest(tensors)}
    atomic_write_bytes(path, save_safetensors(tensors, metadata=header))
