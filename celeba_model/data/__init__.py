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

from .cache import ImageCache, load_or_build_cache
from .celeba_files import CelebALayout, find_layout
from .crop import ALIGNED_FACE_CROP, CropBox, crop_and_resize
from .images import ImageReadError, open_image
from .index import CelebAIndex, CelebAWarning, load_index
from .transforms import AugmentConfig, PreprocessConfig, image_to_array, to_model_input, to_training_input

__all__ = [
    "ALIGNED_FACE_CROP", "AugmentConfig", "CelebAIndex", "CelebALayout", "CelebAWarning", "CropBox", "ImageCache",
    "ImageReadError", "PreprocessConfig", "crop_and_resize", "find_layout", "image_to_array", "load_index",
    "load_or_build_cache", "open_image", "to_model_input", "to_training_input",
]
