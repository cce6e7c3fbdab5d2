"""The preprocessed image cache: built once, reused, rebuilt when files or settings change."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celeba_model.cli import main
from celeba_model.data.cache import CacheWarning, load_or_build_cache
from celeba_model.data.crop import CropBox
from celeba_model.data.images import open_image
from celeba_model.data.index import load_index
from celeba_model.data.transforms import PreprocessConfig, image_to_array
from celeba_model.errors import CelebAModelError


def test_cache_holds_the_preprocessed_pixels(celeba_factory, cache_dir):
    index = load_index([celeba_factory(n=6)])
    spec = PreprocessConfig(image_size=32, color="rgb")
    cache = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    assert cache.built and cache.images.shape == (6, 32, 32, 3) and cache.images.dtype == np.uint8
    assert isinstance(cache.images, np.memmap)
    for i in (0, 5):
        assert np.array_equal(cache.images[i], image_to_array(open_image(index.paths[i]), spec))


def test_cache_is_reused_and_rebuilt_on_changes(celeba_factory, cache_dir):
    index = load_index([celeba_factory(n=5)])
    spec = PreprocessConfig(image_size=32, color="gray")
    first = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    again = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    assert first.built and not again.built and again.folder == first.folder
    assert again.images.shape == (5, 32, 32, 1)

    for changed in (
        PreprocessConfig(image_size=48, color="gray"),
        PreprocessConfig(image_size=32, color="rgb"),
        PreprocessConfig(image_size=32, color="gray", crop=CropBox(0.0, 0.0, 1.0, 1.0)),
    ):
        other = load_or_build_cache(index.paths, changed, cache_dir, workers=1, progress=False)
        assert other.built and other.folder != first.folder

    # Normalization is applied on tensors later; it does not change cached pixels.
    same = load_or_build_cache(index.paths, PreprocessConfig(image_size=32, color="gray", mean=0.4), cache_dir, workers=1, progress=False)
    assert not same.built

    # A replaced image file (new size or modification time) is decoded again, and only it.
    path = index.paths[2]
    Image.new("RGB", (178, 218), (10, 200, 30)).save(path)
    future = time.time() + 5
    os.utime(path, (future, future))
    rebuilt = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    assert rebuilt.built and rebuilt.decoded == 1 and rebuilt.folder == first.folder
    assert np.array_equal(rebuilt.images[2], image_to_array(open_image(path), spec))

    # A different file list is a different cache.
    subset = load_or_build_cache(index.paths[:3], spec, cache_dir, workers=1, progress=False)
    assert subset.built and subset.images.shape[0] == 3


def test_only_the_rows_asked_for_are_decoded_and_later_calls_add_theirs(celeba_factory, cache_dir):
    index = load_index([celeba_factory(n=8)])
    spec = PreprocessConfig(image_size=16, color="rgb")
    test = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False, rows=np.array([6, 7]))
    assert test.decoded == 2 and test.valid.tolist() == [False] * 6 + [True, True]
    assert not test.images[:6].any()  # never decoded: not even on disk (a sparse file)
    more = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False, rows=[7, 0, 1, 1])
    assert more.folder == test.folder and more.decoded == 2 and np.flatnonzero(more.valid).tolist() == [0, 1, 7]
    everything = load_or_build_cache(index.paths, spec, cache_dir, workers=2, progress=False)
    assert everything.decoded == 4 and everything.valid.all()
    assert not load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False).built
    for i in range(8):
        assert np.array_equal(everything.images[i], image_to_array(open_image(index.paths[i]), spec))
    with pytest.raises(IndexError):
        load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False, rows=[8])


def test_a_list_of_paths_and_the_compact_paths_share_one_cache(celeba_factory, cache_dir):
    index = load_index([celeba_factory(n=4)])
    spec = PreprocessConfig(image_size=16)
    compact = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    listed = load_or_build_cache([str(p) for p in index.paths], spec, cache_dir, workers=1, progress=False)
    assert listed.folder == compact.folder and not listed.built


def test_a_second_process_waits_for_a_fill_and_reuses_it(celeba_factory, cache_dir):
    from celeba_model.data.cache import FILL_LOCK, cache_key

    index = load_index([celeba_factory(n=6)])
    spec = PreprocessConfig(image_size=16)
    load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False, rows=[0])
    folder = cache_dir / cache_key(index.paths, spec)
    # Another process holds the fill lock for a moment; this call waits, then fills what is still missing.
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'w'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(1.5)",
                               str(folder / FILL_LOCK)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        cache = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
        assert time.monotonic() - started > 0.5 and cache.decoded == 5 and cache.valid.all()
    finally:
        holder.wait()
        holder.stdout.close()


def test_parallel_build_equals_serial_build(celeba_factory, tmp_path):
    index = load_index([celeba_factory(n=600, size=(40, 48))])
    spec = PreprocessConfig(image_size=16, color="rgb")
    serial = load_or_build_cache(index.paths, spec, tmp_path / "a", workers=1, progress=False)
    parallel = load_or_build_cache(index.paths, spec, tmp_path / "b", workers=2, progress=False)
    assert np.array_equal(np.asarray(serial.images), np.asarray(parallel.images))


def test_unreadable_image_is_left_out_with_a_warning(celeba_factory, cache_dir):
    index = load_index([celeba_factory(n=6)])
    index.paths[3].write_bytes(b"not a jpeg at all")
    data = index.paths[4].read_bytes()
    index.paths[4].write_bytes(data[: len(data) // 3])  # truncated JPEG
    spec = PreprocessConfig(image_size=32)
    with pytest.warns(CacheWarning, match="2 of 6 images could not be read"):
        cache = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    assert cache.valid.tolist() == [True, True, True, False, False, True]
    assert "000004.jpg" in cache.errors[3] and "000005.jpg" in cache.errors[4]
    reopened = load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    assert not reopened.built and reopened.valid.tolist() == cache.valid.tolist()


def test_damaged_cache_is_rebuilt(celeba_factory, cache_dir):
    index = load_index([celeba_factory(n=4)])
    spec = PreprocessConfig(image_size=32)
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
    spec = PreprocessConfig(image_size=32, color="rgb")
    a = image_to_array(full, spec).astype(int)
    b = image_to_array(half, spec).astype(int)
    assert np.abs(a - b).mean() < 3.0


REPO = Path(__file__).resolve().parents[1]


def _process_state(pid: int) -> str | None:
    """The state letter of a process (R, S, Z, ...), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (scans /proc: task/*/children needs CONFIG_PROC_CHILDREN)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    return _process_state(pid) not in (None, "Z", "X")


def _slow_dataset(celeba_factory) -> Path:
    """600 listed images, all hard links to one large noise picture: a cache build of a few seconds."""
    root = celeba_factory(n=600, on_disk=set())
    images = root / "img_align_celeba"
    big = root / "big.jpg"
    pixels = np.random.default_rng(0).integers(0, 255, size=(980, 800, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(big, quality=90)
    for i in range(600):
        os.link(big, images / f"{i + 1:06d}.jpg")
    return root


@pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
                    reason="needs /proc and at least two cache workers")
def test_a_killed_build_leaves_no_workers_and_the_next_run_completes_the_cache(celeba_factory, tmp_path, capsys):
    root = _slow_dataset(celeba_factory)
    cache = tmp_path / "cache"
    args = ["evaluate", "--checkpoint", str(REPO / "checkpoints" / "demo" / "paper.safetensors"),
            "--data-root", str(root), "--split", "all", "--cache-dir", str(cache), "--no-progress", "--device", "cpu"]
    proc = subprocess.Popen([sys.executable, "-m", "celeba_model", *args, "--out", str(tmp_path / "first")],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while time.monotonic() < deadline and len(workers) < 2 and proc.poll() is None:
            if list(cache.glob("*/rows.npz")):  # the cache folder exists: its fill is starting
                workers = _children(proc.pid)
            time.sleep(0.02)
        assert len(workers) >= 2, f"the build never started its workers: {proc.stderr.read().decode()[-2000:]}"
        proc.kill()  # SIGKILL: no handler, no finally, no atexit runs in the parent
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.05)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # do not leave them behind for the next test
        os.kill(pid, signal.SIGKILL)
    assert not survivors, "cache workers outlived their killed parent"

    # The killed fill left its lock (released by the kernel) and rows it never recorded: this run decodes
    # what is missing and reads nothing the killed one left half-written.
    assert main([*args, "--out", str(tmp_path / "second")]) == 0
    assert "600 images" in capsys.readouterr().out
    assert not list(cache.glob(".*.tmp"))


def test_only_temporary_folders_of_dead_processes_are_removed(celeba_factory, cache_dir):
    from celeba_model.data.cache import _host_tag

    index = load_index([celeba_factory(n=3)])
    spec = PreprocessConfig(image_size=16)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    dead_folder = cache_dir / f".{'a' * 24}.{_host_tag()}.{dead_pid}.0123abcd.tmp"
    live_folder = cache_dir / f".{'b' * 24}.{_host_tag()}.{os.getpid()}.0123abcd.tmp"
    other_host = cache_dir / f".{'c' * 24}.0000ffff.{dead_pid}.0123abcd.tmp"  # a build on another machine sharing the folder
    for folder in (dead_folder, live_folder, other_host):
        (folder / "x").mkdir(parents=True)
    load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    assert not dead_folder.exists() and live_folder.is_dir() and other_host.is_dir()


@pytest.mark.parametrize("where", ["images", "meta"])
def test_a_full_disk_fails_at_once_with_a_clear_error_and_no_temporary_folder(celeba_factory, cache_dir, monkeypatch, where):
    index = load_index([celeba_factory(n=4)])
    spec = PreprocessConfig(image_size=32)

    from celeba_model.data.cache import CacheDiskFullError

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "images":
        monkeypatch.setattr("celeba_model.data.cache.os.posix_fallocate", full, raising=False)
    else:
        write_text = Path.write_text
        monkeypatch.setattr(Path, "write_text",
                            lambda self, *a, **k: full() if self.name == "meta.json" else write_text(self, *a, **k))
    expected = r"disk full: need \d+ MB in "
    with pytest.raises(CacheDiskFullError, match=expected + re.escape(str(cache_dir))) as info:
        load_or_build_cache(index.paths, spec, cache_dir, workers=1, progress=False)
    assert isinstance(info.value, CelebAModelError)
    assert list(cache_dir.iterdir()) == []
