"""A checkpoint's header, read without torch: its JSON metadata and recorded weights digest.

``checkpoint`` reads and writes whole checkpoint files (with torch); this module reads only the
safetensors header, which is all the dashboard's first page and the threshold files need, so they
do not wait for torch to import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import CelebAModelError

FORMAT = "celeba_model/checkpoint-v1"


class CheckpointError(CelebAModelError, ValueError):
    """A checkpoint that cannot be loaded safely, with the reason."""


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
