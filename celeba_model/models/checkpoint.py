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
from .registry import ModelSpec, create_model

FORMAT = "celeba_model/checkpoint-v1"


class CheckpointError(CelebAModelError, ValueError):
    """A checkpoint that cannot be loaded safely, with the reason."""


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


def recorded_weights_digest(path: str | Path) -> str | None:
    """The weights digest stored in a checkpoint's header, read without loading or verifying tensors.

    Cheap enough to ask on every dashboard start whether saved predictions are still current.
    """
    try:
        return _read_file_header_metadata(Path(path)).get("tensors_sha256")
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class CheckpointHeader:
    """What a checkpoint file says about itself without loading its tensors."""

    meta: dict  # architecture, attributes, preprocessing, training history, thresholds, ...
    weights_sha256: str | None  # the digest recorded for its tensors: which weights these are


def read_checkpoint_meta(path: str | Path) -> CheckpointHeader:
    """A checkpoint's metadata and recorded weights digest, from the safetensors header only.

    No tensor is read or verified, so this is cheap enough for every dashboard rerun; use
    ``load_checkpoint`` when the weights matter.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        with open(path, "rb") as f:
            _refuse_pickle(path, f.read(16))
        with_meta = _read_file_header_metadata(path)
    except (OSError, ValueError) as err:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"{path}: not a valid safetensors checkpoint (truncated or corrupt): {err}") from err
    if with_meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: a safetensors file, but not a celeba_model checkpoint (format {with_meta.get('format')!r}, "
            f"expected {FORMAT!r})"
        )
    try:
        meta = json.loads(with_meta["meta"])
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: the metadata is not a JSON object ({err})") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: the metadata is not a JSON object (found {type(meta).__name__})")
    return CheckpointHeader(meta=meta, weights_sha256=with_meta.get("tensors_sha256"))


def _read_file_header_metadata(path: Path) -> dict:
    """The ``__metadata__`` of a safetensors file, reading only its header bytes."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError("file is shorter than a safetensors header")
        n = int.from_bytes(head, "little")
        if n > path.stat().st_size - 8:  # also stops a text or pickle file from asking for a huge read
            raise ValueError("header length exceeds the file size")
        return _read_header_metadata(head + f.read(n))


def _refuse_pickle(path: Path, head: bytes) -> None:
    if _looks_like_pickle(head):
        raise CheckpointError(
            f"{path}: this is a pickle-based PyTorch file (torch.save). It is refused, never loaded, because "
            "unpickling can run arbitrary code. Checkpoints of this tool are safetensors files."
        )


def _looks_like_pickle(data: bytes) -> bool:
    """torch.save writes a zip ('PK') or a raw pickle (0x80, protocol 2-5). A safetensors file starts with
    an 8-byte header length and then '{', and its first byte can be 0x80 too, so check that first."""
    if len(data) >= 9 and data[8:9] == b"{":
        return False
    return data[:4] == b"PK\x03\x04" or (len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5)


def _read_header_metadata(data: bytes) -> dict:
    if len(data) < 8:
        raise ValueError("file is shorter than a safetensors header")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError("header length exceeds the file size")
    header = json.loads(data[8 : 8 + n])
    if not isinstance(header, dict):
        raise ValueError("the safetensors header is not a JSON object")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise ValueError("the safetensors metadata is not a JSON object")
    return metadata


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
