"""The published numbers of Gómez & Valderrama, for side-by-side comparison.

Their per-attribute table lists "Accuracy (TP)" as TP/positives (that is, recall), precision,
recall and F-measure on the official CelebA test split (19,962 images). Its "AVG." row is the mean
per-attribute precision (.878) and recall (.539) and F = 2PR/(P+R) of those two means (.668); the
mean of its per-attribute F values would be .594.

The table is not fully consistent: Young's TP 14,843 at precision .571 implies 11,152 false
positives, more than the 4,848 test images without the attribute.
"""

from __future__ import annotations

PAPER_TEST_IMAGES = 19_962

# attribute: (TP, positives, precision, recall, F-measure)
PAPER_TABLE: dict[str, tuple[int, int, float, float, float]] = {
    "Eyeglasses": (1153, 1289, 0.991, 0.894, 0.940),
    "Bangs": (1812, 3109, 0.972, 0.583, 0.729),
    "Black_Hair": (2327, 5422, 0.825, 0.429, 0.564),
    "Blond_Hair": (504, 2660, 0.980, 0.189, 0.317),
    "Brown_Hair": (327, 3587, 0.707, 0.091, 0.161),
    "Gray_Hair": (115, 636, 0.975, 0.182, 0.307),
    "Male": (7073, 7715, 0.932, 0.917, 0.924),
    "Pale_Skin": (204, 840, 0.933, 0.243, 0.386),
    "Smiling": (8804, 9987, 0.893, 0.882, 0.887),
    "Young": (14843, 15114, 0.571, 0.982, 0.722),
}

PAPER_AVERAGE = {"precision": 0.878, "recall": 0.539, "f": 0.668}

# The paper's ablation table: macro precision, recall and F (same averaging as above).
PAPER_ABLATIONS: dict[str, dict[str, float]] = {
    "paper": {"precision": 0.878, "recall": 0.539, "f": 0.668},
    "no_conv3": {"precision": 0.823, "recall": 0.502, "f": 0.624},
    "no_conv3_no_fc1": {"precision": 0.830, "recall": 0.523, "f": 0.642},
}
