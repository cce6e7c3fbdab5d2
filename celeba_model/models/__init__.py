"""The networks, building them by name, and their checkpoint files.

- ``registry``: ``ModelSpec`` (what a checkpoint records to rebuild its model) and building a model
  from an architecture name and config (``model_spec``, ``create_model``);
- ``blocks``: the conv-BN-ReLU block the architectures share;
- ``paper_cnn``: the paper's CNN and its two ablations (``paper``, ``no_conv3``, ``no_conv3_no_fc1``);
- ``convnets``: the VGG-style baseline ``cnn4`` and our ``attrnet``;
- ``checkpoint``: one safetensors file per model (weights + JSON metadata), never pickle;
- ``summary``: the JSON summary shipped beside checkpoints: how each model was trained and scored;
- ``thresholds``: the decision thresholds kept with a checkpoint (or the workspace's override), read when used.
"""

# Importing the architecture modules registers them, so every name below can build every model.
from . import convnets, paper_cnn  # noqa: F401
from .checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointHeader,
    load_checkpoint,
    read_checkpoint_meta,
    recorded_weights_digest,
    save_checkpoint,
    update_checkpoint_meta,
)
from .convnets import ConvNet, ConvNetConfig
from .paper_cnn import PaperCNN, PaperCNNConfig
from .registry import ModelSpec, available_models, count_parameters, create_model, model_spec, register
from .summary import ModelRecord, ModelSummary, OperatingPoint, TuningCheck, read_summary, write_summary
from .thresholds import StoredThresholds, default_thresholds, store_thresholds, stored_thresholds, thresholds_for

__all__ = [
    "Checkpoint", "CheckpointError", "CheckpointHeader", "ConvNet", "ConvNetConfig", "ModelRecord", "ModelSpec", "ModelSummary",
    "OperatingPoint", "PaperCNN", "PaperCNNConfig", "TuningCheck", "available_models", "count_parameters",
    "create_model", "load_checkpoint", "model_spec", "read_checkpoint_meta", "read_summary",
    "recorded_weights_digest", "register", "save_checkpoint", "update_checkpoint_meta", "write_summary",
    "StoredThresholds", "default_thresholds", "store_thresholds", "stored_thresholds", "thresholds_for",
]
