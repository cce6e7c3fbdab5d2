"""Faults in the data folder and the cache folder: broken links, killed builds, a full disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from celeba_model.cli import main
from celeba_model.data.cache import CacheWarning, load_or_build_cache
from celeba_model.data.index import CelebAWarning, load_index
from celeba_model.data.transforms import PreprocessConfig

REPO = Path(__file__).resolve().parents[1]
DEMO_CHECKPOINT = REPO / "checkpoints" / "demo" / "paper.safetensors"


def _break_links(root: Path) -> list[str]:
    """Add broken entries to the image folder: loops and dangling links, listed and unlisted names."""
    images = root / "img_align_celeba"
    (images / "loop.jpg").symlink_to("loop.jpg")  # ln -s loop.jpg loop.jpg
    (images / "dangling.png").symlink_to("nowhere/000001.png")
    (images / "000007.jpg").unlink()
    (images / "000007.jpg").symlink_to("000007.jpg")  # a listed image that is a loop
    (images / "000009.jpg").unlink()
    (images / "000009.jpg").symlink_to("gone.jpg")  # a listed image that is a dangling link
    (images / "a.jpg").symlink_to("b.jpg")
    (images / "b.jpg").symlink_to("a.jpg")  # a loop of two
    return ["000007.jpg", "000009.jpg", "a.jpg", "b.jpg", "dangling.png", "loop.jpg"]


def _messages(record) -> str:
    return "\n".join(str(w.message) for w in record)


def test_broken_links_are_skipped_counted_and_named(celeba_factory):
    root = celeba_factory(n=30)
    broken = _break_links(root)
    with pytest.warns(CelebAWarning) as record:
        index = load_index([root])
    assert len(index) == 28 and "000007.jpg" not in index.files and "000009.jpg" not in index.files
    assert index.missing_on_disk == 2 and index.broken_entries == 6
    text = _messages(record)
    assert "6 entries" in text and "symlink loop" in text
    named = [name for name in broken if name in text]
    assert len(named) == 5 and "and 1 more" in text  # up to 5 names
    assert index.summary()["broken_links_skipped"] == 6


def test_info_with_broken_links_warns_without_a_traceback(celeba_factory, capsys):
    root = celeba_factory(n=30)
    _break_links(root)
    with pytest.warns(CelebAWarning) as record:
        assert main(["info", "--data-root", str(root)]) == 0
    assert "symlink loop" in _messages(record)
    captured = capsys.readouterr()
    assert '"images": 28' in captured.out and "Traceback" not in captured.err


def test_evaluate_and_train_with_broken_links_succeed(celeba_factory, tmp_path, capsys):
    root = celeba_factory(n=30, size=(89, 109))
    _break_links(root)
    with pytest.warns(CelebAWarning) as record:
        code = main(["evaluate", "--checkpoint", str(DEMO_CHECKPOINT), "--data-root", str(root), "--split", "all",
                     "--out", str(tmp_path / "eval"), "--cache-dir", str(tmp_path / "cache"), "--no-progress",
                     "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert "28 images" in capsys.readouterr().out and "symlink loop" in _messages(record)
    with pytest.warns(CelebAWarning) as record:
        code = main(["train", "--data-root", str(root), "--epochs", "1", "--image-size", "32", "--out",
                     str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err and "symlink loop" in _messages(record)
    assert (tmp_path / "run" / "best.safetensors").is_file()


def test_a_path_that_breaks_after_indexing_is_left_out_of_the_cache(celeba_factory, cache_dir):
    # The folder changes between the scan and the cache build: the image is unreadable, not a crash.
    index = load_index([celeba_factory(n=6)])
    index.paths[2].unlink()
    index.paths[2].symlink_to(index.paths[2].name)
    index.paths[4].unlink()
    with pytest.warns(CacheWarning, match="2 of 6 images could not be read"):
        cache = load_or_build_cache(index.paths, PreprocessConfig(image_size=16), cache_dir, workers=1, progress=False)
    assert cache.valid.tolist() == [True, True, False, True, False, True]
