"""The parsed index kept beside the image cache: reused while nothing changed, never stale, compact."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celeba_model.data import celeba_files, index_cache
from celeba_model.data.image_paths import ImagePaths
from celeba_model.data.index import CelebAWarning, load_index


@pytest.fixture
def settled(monkeypatch):
    """Store indexes at once (a test cannot wait for its files to settle: utime sets the change time)."""
    monkeypatch.setattr(index_cache, "SETTLE_S", 0.0)


@pytest.fixture
def parses(monkeypatch):
    """Counts how often the attribute file is parsed."""
    calls = []
    original = celeba_files.read_attribute_file

    def counting(path):
        calls.append(Path(path))
        return original(path)

    monkeypatch.setattr("celeba_model.data.index.read_attribute_file", counting)
    return calls


def _same(a, b) -> None:
    assert a.files.tolist() == b.files.tolist()
    assert [str(p) for p in a.paths] == [str(p) for p in b.paths]
    for name in ("labels", "partition", "identity"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert (a.missing_on_disk, a.duplicates, a.notes) == (b.missing_on_disk, b.duplicates, b.notes)


def test_an_unchanged_root_is_parsed_once(celeba_factory, cache_dir, settled, parses):
    root = celeba_factory(n=10)
    first = load_index([root], cache_dir=cache_dir)
    again = load_index([root], cache_dir=cache_dir)
    assert len(parses) == 1 and len(list((cache_dir / "index").glob("*.npz"))) == 1
    _same(first, again)
    assert again.roots == [str(root)]


def test_an_edited_list_file_is_noticed(celeba_factory, cache_dir, settled, parses):
    root = celeba_factory(n=10)
    before = load_index([root], cache_dir=cache_dir)
    attributes = root / "list_attr_celeba.txt"
    lines = attributes.read_text().splitlines()
    name, *values = lines[2].split()
    lines[2] = " ".join([name, "1" if values[0] == "-1" else "-1", *values[1:]])
    attributes.write_text("\n".join(lines) + "\n")
    after = load_index([root], cache_dir=cache_dir)
    assert len(parses) == 2
    assert after.labels[0, 0] != before.labels[0, 0]
    (root / "list_eval_partition.txt").write_text("".join(f"{f} 2\n" for f in before.files))
    assert (load_index([root], cache_dir=cache_dir).partition == 2).all() and len(parses) == 3


def test_images_added_or_removed_on_disk_are_noticed(celeba_factory, cache_dir, settled, parses):
    root = celeba_factory(n=8, on_disk={0, 1, 2, 3, 4, 5})
    with pytest.warns(CelebAWarning, match="2 are not on disk"):
        assert len(load_index([root], cache_dir=cache_dir)) == 6
    with pytest.warns(CelebAWarning, match="2 are not on disk"):  # the cached index warns as the parse did
        assert len(load_index([root], cache_dir=cache_dir)) == 6
    assert len(parses) == 1
    Image.new("RGB", (178, 218)).save(root / "img_align_celeba" / "000007.jpg")
    with pytest.warns(CelebAWarning, match="1 are not on disk"):
        index = load_index([root], cache_dir=cache_dir)
    assert "000007.jpg" in index.files.tolist() and len(parses) == 2
    (root / "img_align_celeba" / "000001.jpg").unlink()
    with pytest.warns(CelebAWarning, match="2 are not on disk"):
        index = load_index([root], cache_dir=cache_dir)
    assert "000001.jpg" not in index.files.tolist() and len(parses) == 3


def test_another_split_seed_or_root_list_is_another_index(celeba_factory, cache_dir, settled, parses):
    a, b = celeba_factory(n=6, partition=False), celeba_factory(n=6, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CelebAWarning)
        load_index([a], split_seed=0, cache_dir=cache_dir)
        load_index([a], split_seed=1, cache_dir=cache_dir)
        load_index([a, b], cache_dir=cache_dir)
    assert len(parses) == 4  # two roots: two attribute files


def test_files_just_written_are_not_kept(celeba_factory, cache_dir, parses):
    # Written within SETTLE_S: another edit in the same clock tick could leave the same times.
    root = celeba_factory(n=6)
    load_index([root], cache_dir=cache_dir)
    load_index([root], cache_dir=cache_dir)
    assert len(parses) == 2 and not list((cache_dir / "index").glob("*.npz"))


def test_a_damaged_kept_index_is_parsed_again(celeba_factory, cache_dir, settled, parses):
    root = celeba_factory(n=6)
    first = load_index([root], cache_dir=cache_dir)
    (stored,) = (cache_dir / "index").glob("*.npz")
    stored.write_bytes(b"not an npz")
    _same(load_index([root], cache_dir=cache_dir), first)
    assert len(parses) == 2


def test_the_index_is_held_in_compact_arrays(celeba_factory, cache_dir):
    root = celeba_factory(n=6)
    index = load_index([root], cache_dir=cache_dir)
    assert isinstance(index.files, np.ndarray) and isinstance(index.paths, ImagePaths)
    assert index.paths[0] == root.resolve() / "img_align_celeba" / "000001.jpg" or \
        index.paths[0] == Path(str(root)).absolute() / "img_align_celeba" / "000001.jpg"
    rows = index.split_indices("test")
    subset = index.paths[rows]
    assert isinstance(subset, ImagePaths) and [p.name for p in subset] == index.files[rows].tolist()
    assert [p.name for p in index.paths[1:3]] == ["000002.jpg", "000003.jpg"]
    assert index.paths.strings()[2].endswith("/img_align_celeba/000003.jpg")
    size, mtime = index.paths.stat_stamps()
    assert (size > 0).all() and (mtime > 0).all()
