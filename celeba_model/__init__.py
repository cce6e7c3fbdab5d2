"""celeba_model: train, evaluate and understand face-attribute CNNs on CelebA.

The public API, for scripts (see README "Python API")::

    import celeba_model as cm

    checkpoint = cm.load_checkpoint("checkpoints/celeba/attrnet.safetensors")
    run = cm.evaluate("checkpoints/celeba/attrnet.safetensors", ["/data/celeba"], split="val")
    report = cm.attribute_report(run, thresholds=[0.5] * len(run.attributes))
    results = cm.predict_photos(["photo.jpg"])

Where things live (each folder's ``__init__`` says more):

- ``data/``: CelebA folders and list files, the image cache, crops and transforms, the demo dataset;
- ``models/``: the architectures, their registry, checkpoints;
- ``metrics/``: pure numpy metrics, threshold sweeps, curves, bootstrap intervals, the paper's table;
- ``evaluation/``: batched prediction over splits into predictions artifacts;
- ``training/``: the training loop, its configuration and resume; cross-fitting (out-of-sample train predictions);
- ``analysis/``: thresholds, reports and error selection, read from artifacts;
- ``photo/``: real photos: face detection, framing, single and batched prediction, Grad-CAM;
- ``workspace``, ``catalogue``: where files go; the shipped models and the built-in demo;
- ``cli``: ``python -m celeba_model``.

Names are imported on first use, so ``import celeba_model`` itself costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_API: dict[str, str] = {
    # data
    "load_index": "celeba_model.data", "CelebAIndex": "celeba_model.data", "PreprocessConfig": "celeba_model.data",
    "open_image": "celeba_model.data", "make_demo_dataset": "celeba_model.data.demo",
    # models
    "create_model": "celeba_model.models", "available_models": "celeba_model.models", "model_spec": "celeba_model.models",
    "load_checkpoint": "celeba_model.models", "save_checkpoint": "celeba_model.models", "Checkpoint": "celeba_model.models",
    # training
    "TrainConfig": "celeba_model.training", "train": "celeba_model.training",
    "CrossfitConfig": "celeba_model.training", "crossfit": "celeba_model.training",
    # evaluation
    "EvalConfig": "celeba_model.evaluation", "evaluate": "celeba_model.evaluation",
    "evaluate_checkpoints": "celeba_model.evaluation", "Predictions": "celeba_model.evaluation",
    "load_predictions": "celeba_model.evaluation", "import_predictions": "celeba_model.evaluation",
    "export_predictions_csv": "celeba_model.evaluation",
    # metrics
    "attribute_metrics": "celeba_model.metrics", "summarize": "celeba_model.metrics", "f1_scores": "celeba_model.metrics",
    "bootstrap_ci": "celeba_model.metrics", "average_precision": "celeba_model.metrics", "roc_auc": "celeba_model.metrics",
    "ThresholdSweep": "celeba_model.metrics", "tune_thresholds": "celeba_model.metrics",
    # analysis
    "attribute_report": "celeba_model.analysis", "compare_runs": "celeba_model.analysis", "tune_run": "celeba_model.analysis",
    "map_for": "celeba_model.analysis.embedding_map", "point_colors": "celeba_model.analysis.embedding_map",
    "thresholds_for": "celeba_model.models", "stored_thresholds": "celeba_model.models",
    # photos
    "Predictor": "celeba_model.photo", "FaceDetector": "celeba_model.photo", "open_photo": "celeba_model.photo",
    "predict_photo": "celeba_model.photo", "embed_run": "celeba_model.photo.embeddings",
    # where things are
    "Workspace": "celeba_model.workspace", "Catalogue": "celeba_model.catalogue",
    "CelebAModelError": "celeba_model.errors",
}

__all__ = sorted([*_API, "predict_photos"])


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'celeba_model' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


def predict_photos(
    images: Iterable[str | Path],
    checkpoint: str | Path | None = None,
    thresholds: str | float | None = None,
    workspace: str | Path | None = None,
    whole_image_if_no_face: bool = False,
) -> list:
    """Predict the face in each photo (files, folders, glob patterns), as ``python -m celeba_model predict``.

    ``checkpoint`` defaults to the workspace's default model (``Catalogue.default_model``, the
    Upload page's); ``thresholds`` to the ones stored for it, else 0.5. Returns one
    ``PhotoResult`` per input, in order; a photo that cannot be used has ``error`` set.
    """
    from .catalogue import Catalogue
    from .errors import ConfigError
    from .photo import predict_photos as predict_with
    from .workspace import Workspace, default_workspace_root

    root = default_workspace_root(workspace)
    checkpoint = checkpoint or Catalogue(Workspace(root)).default_model()
    if checkpoint is None:
        raise ConfigError(f"no checkpoint found in the workspace {root}; pass checkpoint= or workspace=")
    return list(predict_with(images, checkpoint, thresholds=thresholds, workspace=root,
                             whole_image_if_no_face=whole_image_if_no_face))


if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load on first use
    from .analysis import attribute_report, compare_runs, tune_run
    from .analysis.embedding_map import map_for, point_colors
    from .catalogue import Catalogue
    from .data import CelebAIndex, PreprocessConfig, load_index, open_image
    from .data.demo import make_demo_dataset
    from .errors import CelebAModelError
    from .evaluation import (
        EvalConfig,
        Predictions,
        evaluate,
        evaluate_checkpoints,
        export_predictions_csv,
        import_predictions,
        load_predictions,
    )
    from .metrics import (
        ThresholdSweep,
        attribute_metrics,
        average_precision,
        bootstrap_ci,
        f1_scores,
        roc_auc,
        summarize,
        tune_thresholds,
    )
    from .models import (
        Checkpoint,
        available_models,
        create_model,
        load_checkpoint,
        model_spec,
        save_checkpoint,
        stored_thresholds,
        thresholds_for,
    )
    from .photo import FaceDetector, Predictor, open_photo, predict_photo
    from .photo.embeddings import embed_run
    from .training import CrossfitConfig, TrainConfig, crossfit, train
    from .workspace import Workspace
