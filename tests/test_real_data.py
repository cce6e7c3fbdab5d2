"""The real-data path on the CelebA sample in ../shared (skipped where that folder is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from celeba_model.data.images import open_image
from celeba_model.data.index import CelebAWarning, load_index
from celeba_model.data.transforms import PreprocessConfig, image_to_array

from .conftest import shared_root


@pytest.fixture(scope="module")
def real_index():
    full, half = shared_root("celeba"), shared_root("celeba_half")
    with pytest.warns(CelebAWarning, match="not on disk"):
        return load_index([full, half])


def test_official_partition_and_subset_counts(real_index):
    summary = real_index.summary()
    # 6,000 full-resolution images (4,560 / 780 / 660) plus the half-resolution ones not already present.
    assert summary["splits"]["val"] == 780 and summary["splits"]["test"] == 660
    assert summary["splits"]["train"] == 4560 + 10000 - summary["duplicates_skipped"]
    assert summary["duplicates_skipped"] > 0
    # Splits are by person: nobody is in two partitions.
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert not set(real_index.identity[real_index.partition == a]) & set(real_index.identity[real_index.partition == b])


def test_half_resolution_copy_gives_the_same_crop(real_index):
    full, half = shared_root("celeba"), shared_root("celeba_half")
    names = sorted({p.name for p in (half / "img_align_celeba").iterdir()} & {p.name for p in (full / "img_align_celeba").iterdir()})[:20]
    assert names, "the two samples share images"
    spec = PreprocessConfig(image_size=64, color="rgb")
    diffs = []
    for name in names:
        a = image_to_array(open_image(full / "img_align_celeba" / name), spec).astype(float)
        b = image_to_array(open_image(half / "img_align_celeba" / name), spec).astype(float)
        assert open_image(half / "img_align_celeba" / name).size == (89, 109)
        diffs.append(np.abs(a - b).mean())
    # Same framing: only resampling differences remain (~4; a crop shifted by 2% of the image gives ~22).
    assert np.mean(diffs) < 6.0, diffs
