"""A synthetic CelebA: procedural faces written in the official on-disk layout.

The demo dataset lets the product (and every test) run offline. It mimics aligned CelebA closely
enough that the same code path, crop box and attribute columns work for real and demo data:

* ``img_align_celeba/000001.jpg ...``: 178x218 RGB JPEGs with the eyes, nose, mouth and chin where
  aligned CelebA has them, so ``ALIGNED_FACE_CROP`` frames demo faces the way it frames real ones.
* ``list_attr_celeba.txt``, ``list_eval_partition.txt`` and ``identity_CelebA.txt`` in the official
  formats, with CelebA-like base rates and about 2% label noise on the paper's 10 attributes.

Each of the paper's attributes is drawn visibly. Hair color and Pale_Skin are chosen so that they
differ mainly in hue and saturation, not in luma (blond ~ gray, brown ~ auburn, pale ~ normal skin),
so a color model can learn them and a grayscale model mostly cannot, as in the paper.

Generation is deterministic: labels come from one serial plan seeded by ``seed`` and each image is
drawn with ``np.random.default_rng([seed, index])``, so the number of workers never changes a byte.
Any change to the output must bump ``GENERATOR_VERSION``.

Where each part lives:

* ``traits``: ``FaceTraits`` (what one face shows) and the standard hair and skin colors.
* ``plan``: ``plan_demo``, the people, their traits, the splits and the noisy labels (``ImagePlan``).
* ``spurious``: ``SpuriousCorrelation``, an optional target tied to a group in the train split only
  (blond mostly women, as in CelebA), with balanced cells in val and test.
* ``render``: ``render_face``, which draws one face from its traits: ``nuisance`` (label-free
  variation), ``canvas`` (landmarks and a pen in face coordinates), ``parts`` (one function per
  part of the picture) and ``camera`` (exposure, noise, blur, compression).
* ``render_pool``: drawing and saving every planned image, in-process or over worker processes.
* ``summary``: ``DemoSummary``, the split sizes and positive rates of a written dataset.
* ``write``: ``make_demo_dataset``, the dataset folder, its list files and ``demo_info.json``.
"""

from .plan import LABEL_NOISE, ImagePlan, plan_demo
from .render import render_face
from .spurious import SpuriousCorrelation
from .summary import DemoSummary
from .traits import HAIR_COLORS, FaceTraits
from .write import (
    ATTR_FILE,
    GENERATOR_VERSION,
    IDENTITY_FILE,
    IMAGE_DIR,
    INFO_FILE,
    PARTITION_FILE,
    make_demo_dataset,
)

__all__ = [
    "ATTR_FILE",
    "GENERATOR_VERSION",
    "HAIR_COLORS",
    "IDENTITY_FILE",
    "IMAGE_DIR",
    "INFO_FILE",
    "LABEL_NOISE",
    "PARTITION_FILE",
    "DemoSummary",
    "FaceTraits",
    "ImagePlan",
    "SpuriousCorrelation",
    "make_demo_dataset",
    "plan_demo",
    "render_face",
]
