"""A synthetic CelebA: procedural faces written in the official on-disk layout (see ``write``)."""

from .write import (
    ATTR_FILE,
    GENERATOR_VERSION,
    HAIR_COLORS,
    IDENTITY_FILE,
    IMAGE_DIR,
    INFO_FILE,
    PARTITION_FILE,
    DemoSummary,
    FaceTraits,
    ImagePlan,
    make_demo_dataset,
    plan_demo,
    render_face,
)

__all__ = [
    "ATTR_FILE",
    "GENERATOR_VERSION",
    "HAIR_COLORS",
    "IDENTITY_FILE",
    "IMAGE_DIR",
    "INFO_FILE",
    "PARTITION_FILE",
    "DemoSummary",
    "FaceTraits",
    "ImagePlan",
    "make_demo_dataset",
    "plan_demo",
    "render_face",
]
