"""The preprocessed image cache: built once, reused, rebuilt when files or settings change."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image

from celeba_model.cache import CacheWarning, load_or_build_cache
from celeba_model.crop import CropBox
from celeba_model.dataset_index import load_index
from celeba_model.images import open_image
from celeba_model.preprocess import PreprocessSpec, image_to_array


def test_cache_holds_the_preprocessed_pixels(celeba_factory, cache_dir):
    index = load_index([celeba_factory(n=6)])
    spec = PreprocessSpec(image_size=32, color="rgb")
    cache = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    assert cache.built and cache.images.shape == (6, 32, 32, 3) and cache.images.dtype == np.uint8
    assert isinstance(cache.images, np.memmap)
    for i in (0, 5):
        assert np.array_equal(cache.images[i], image_to_array(open_image(index.paths[i]), spec))


def test_cache_is_reused_and_rebuilt_on_changes(celeba_factory, cache_dir):
    index = load_index([celeba_factory(n=5)])
    spec = PreprocessSpec(image_size=32, color="gray")
    first = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    again = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    assert first.built and not again.built and again.folder == first.folder
    assert again.images.shape == (5, 32, 32, 1)

    for changed in (
        PreprocessSpec(image_size=48, color="gray"),
        PreprocessSpec(image_size=32, color="rgb"),
        PreprocessSpec(image_size=32, color="gray", crop=CropBox(0.0, 0.0, 1.0, 1.0)),
    ):
        other = load_or_build_cache(index.paths, changed, cache_dir, workers=1, progress=False)
        assert other.built and other.folder != first.folder

    # Normalisation is applied on tensors later; it does not change cached pixels.
    same = load_or_build_cache(index.paths, PreprocessSpec(image_size=32, color="gray", mean=0.4), cache_dir, workers=1, progress=False)
    assert not same.built

    # A replaced image file (new size or modification time) invalidates the cache.
    path = index.paths[2]
    Image.new("RGB", (178, 218), (10, 200, 30)).save(path)
    future = time.time() + 5
    os.utime(path, (future, future))
    rebuilt = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    assert rebuilt.built and rebuilt.folder != first.folder

    # A different file list is a different cache.
    subset = load_or_build_cache(index.paths[:3], spec, cache_dir, workers=1, progress=False)
    assert subset.built and subset.images.shape[0] == 3


def test_parallel_build_equals_serial_build(celeba_factory, tmp_path):
    index = load_index([celeba_factory(n=600, size=(40, 48))])
    spec = PreprocessSpec(image_size=16, color="rgb")
    serial = load_or_build_cache(index.paths, spec, tmp_path / "a", workers=1, progress=False)
    parallel = load_or_build_cache(index.paths, spec, tmp_path / "b", workers=2, progress=False)
    assert np.array_equal(np.asarray(serial.images), np.asarray(parallel.images))


def test_unreadable_image_is_left_out_with_a_warning(celeba_factory, cache_dir):
    index = load_index([celeba_factory(n=6)])
    index.paths[3].write_bytes(b"not a jpeg at all")
    data = index.paths[4].read_bytes()
    index.paths[4].write_bytes(data[: len(data) // 3])  # truncated JPEG
    spec = PreprocessSpec(image_size=32)
    with pytest.warns(CacheWarning, match="2 of 6 images could not be read"):
        cache = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    assert cache.valid.tolist() == [True, True, True, False, False, True]
    assert "000004.jpg" in cache.errors[3] and "000005.jpg" in cache.errors[4]
    reopened = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    assert not reopened.built and reopened.valid.tolist() == cache.valid.tolist()


def test_damaged_cache_is_rebuilt(celeba_factory, cache_dir):
    index = load_index([celeba_factory(n=4)])
    spec = PreprocessSpec(image_size=32)
    cache = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    (cache.folder / "images.npy").write_bytes(b"garbage")
    with pytest.warns(CacheWarning, match="rebuilding"):
        again = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    assert again.built and again.images.shape == (4, 32, 32, 1)


def test_relative_crop_gives_same_framing_for_resized_copies(tmp_path, cache_dir):
    # A smooth synthetic face-sized picture at full and half resolution must crop to nearly the same pixels.
    y, x = np.mgrid[0:218, 0:178]
    picture = np.stack([x * 255 / 177, y * 255 / 217, (x + y) * 255 / 395], axis=-1).astype(np.uint8)
    full = Image.fromarray(picture)
    half = full.resize((89, 109), Image.Resampling.LANCZOS)
    spec = PreprocessSpec(image_size=32, color="rgb")
    a = image_to_array(full, spec).astype(int)
    b = image_to_array(half, spec).astype(int)
    assert np.abs(a - b).mean() < 3.0
