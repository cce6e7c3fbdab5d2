"""Training: ``train(TrainConfig(...))`` trains a run into its folder, validating every epoch.

- ``config``: TrainConfig, its checks, and the settings a run was saved with;
- ``batches``: the run's train and val rows of the image cache, and each epoch's batches;
- ``loop``: one epoch of optimization (train_one_epoch) and validation (validate);
- ``run_folder``: the checks before writing a run folder, and its checkpoints and metrics;
- ``history``: a run's per-epoch history as a table, from its metrics.jsonl or a checkpoint's metadata;
- ``background``: training in a background process, found again from its run folder: start, status, stop, resume;
- ``seeds``: the per-epoch seeds that make a resumed run equal the uninterrupted one;
- ``groups``: cells (target value x group values) and each cell's accuracy, for --group-by;
- ``sampling``: each epoch's draw when it is not a plain shuffle: balanced cells, upweighted images;
- ``dro``: the Group DRO loss and its cell weights;
- ``jtt``: Just Train Twice's first run and its error set;
- ``crossfit``: out-of-sample probabilities for a whole split (train by default), one model per fold of
  people trained on the others, for finding wrong labels (``crossfit(CrossfitConfig(...))``);
- ``train``: train(), the loop over epochs that ties them together.
"""

from .config import TrainConfig, TrainingError, read_run_config
from .crossfit import CrossfitConfig, crossfit
from .train import TrainResult, train

__all__ = ["CrossfitConfig", "TrainConfig", "TrainResult", "TrainingError", "crossfit", "read_run_config", "train"]
