"""The networks, building them by name, and their checkpoint files.

- ``registry``: ``ModelSpec`` (what a checkpoint records to rebuild its model) and building a model
  from an architecture name and config (``model_spec``, ``create_model``);
- ``blocks``: the conv-BN-ReLU block the architectures share;
- ``paper_cnn``: the paper's CNN and its two ablations (``paper``, ``no_conv3``, ``no_conv3_no_fc1``);
- ``convnets``: the VGG-style baseline ``cnn4`` and our ``attrnet``;
- ``checkpoint``: one safetensors file per model (weights + JSON metadata), never pickle; ``header``: its
  metadata and weights digest, read without torch;
- ``summary``: the JSON summary shipped beside checkpoints: how each model was trained and scored;
- ``thresholds``: the decision thresholds kept with a checkpoint (or the workspace's override), read when used;
- ``features``: the input of any architecture's classifier head, the features of the embedding map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_package

# Public name -> its module, imported on first use: importing the package costs nothing (reading a
# checkpoint's header needs no torch). The architectures register themselves when registry first looks one up.
_NAMES = {
    "Checkpoint": ".checkpoint", "load_checkpoint": ".checkpoint", "save_checkpoint": ".checkpoint",
    "update_checkpoint_meta": ".checkpoint",
    "CheckpointError": ".header", "CheckpointHeader": ".header", "read_checkpoint_meta": ".header",
    "recorded_weights_digest": ".header",
    "ConvNet": ".convnets", "ConvNetConfig": ".convnets", "PaperCNN": ".paper_cnn", "PaperCNNConfig": ".paper_cnn",
    "ModelSpec": ".registry", "available_models": ".registry", "count_parameters": ".registry",
    "create_model": ".registry", "model_spec": ".registry", "register": ".registry",
    "ModelRecord": ".summary", "ModelSummary": ".summary", "OperatingPoint": ".summary", "TuningCheck": ".summary",
    "read_summary": ".summary", "write_summary": ".summary",
    "StoredThresholds": ".thresholds", "default_thresholds": ".thresholds", "store_thresholds": ".thresholds",
    "stored_thresholds": ".thresholds", "thresholds_for": ".thresholds",
}
lazy_package(__name__, _NAMES)
__all__ = sorted(_NAMES)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load on first use
    from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint, update_checkpoint_meta  # noqa: F401
    from .convnets import ConvNet, ConvNetConfig  # noqa: F401
    from .header import CheckpointError, CheckpointHeader, read_checkpoint_meta, recorded_weights_digest  # noqa: F401
    from .paper_cnn import PaperCNN, PaperCNNConfig  # noqa: F401
    from .registry import ModelSpec, available_models, count_parameters, create_model, model_spec, register  # noqa: F401
    from .summary import ModelRecord, ModelSummary, OperatingPoint, TuningCheck, read_summary, write_summary  # noqa: F401
    from .thresholds import StoredThresholds, default_thresholds, store_thresholds, stored_thresholds, thresholds_for  # noqa: F401
