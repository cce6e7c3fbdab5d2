"""CelebA on disk and what the model sees of it.

- ``celeba_files``: finding a CelebA folder (standard or torchvision layout) and parsing its list files;
- ``index``: the images of one or more data roots with labels, splits and people (``load_index``);
- ``images``: opening any image file safely, upright and in RGB;
- ``crop``: face crop boxes in relative coordinates (resized copies get the same framing);
- ``transforms``: the preprocessing recorded in checkpoints, the evaluation preset and the training
  preset with augmentation;
- ``cache``: every image decoded and cropped once into a memory-mapped array;
- ``demo``: the synthetic demo dataset in CelebA's layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_package

# Public name -> its module, imported on first use: importing the package costs nothing (the dashboard's
# first page needs a few of these modules, not torch).
_NAMES = {
    "ImageCache": ".cache", "load_or_build_cache": ".cache",
    "CelebALayout": ".celeba_files", "find_layout": ".celeba_files",
    "ALIGNED_FACE_CROP": ".crop", "CropBox": ".crop", "crop_and_resize": ".crop",
    "ImageReadError": ".images", "open_image": ".images",
    "CelebAIndex": ".index", "CelebAWarning": ".index", "load_index": ".index",
    "AugmentConfig": ".transforms", "PreprocessConfig": ".transforms", "image_to_array": ".transforms",
    "to_model_input": ".transforms", "to_training_input": ".transforms",
}
lazy_package(__name__, _NAMES)
__all__ = sorted(_NAMES)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load on first use
    from .cache import ImageCache, load_or_build_cache  # noqa: F401
    from .celeba_files import CelebALayout, find_layout  # noqa: F401
    from .crop import ALIGNED_FACE_CROP, CropBox, crop_and_resize  # noqa: F401
    from .images import ImageReadError, open_image  # noqa: F401
    from .index import CelebAIndex, CelebAWarning, load_index  # noqa: F401
    from .transforms import AugmentConfig, PreprocessConfig, image_to_array, to_model_input, to_training_input  # noqa: F401
