"""One prepared run that proves the GPU path, with every figure in one JSON file and one Markdown table.

    bash bench/gpu_suite.sh                        # on a machine with a CUDA GPU: full size, under 8 minutes
    bash bench/gpu_suite.sh --device cpu --small   # the same code paths on 600 images (tests/test_gpu_suite.py)

Steps, each guarded (a failure is recorded and the rest still run) inside one time budget:

- environment: the GPU, torch / CUDA / cuDNN versions, CPU cores;
- dataset: `python -m celeba_model make-demo` of 202,599 synthetic images on all cores, seen through a
  folder whose partition file has CelebA's split sizes (162,770 / 19,867 / 19,962), and its uint8 caches;
- train_throughput: training images/s of the paper model and attrnet, each as it was trained for the
  shipped checkpoint (color, augmentation, loss, batch size), through training/loop.py's train_one_epoch
  (bf16 autocast and channels_last on a GPU), fed three ways: the naive per-image PIL DataLoader a user
  writes first, the package's memory-mapped cache, and the cache held on the device;
- epoch: one full epoch of attrnet with train(), as `python -m celeba_model train` runs it;
- evaluation: images/s of the shipped attrnet checkpoint on the test split, and its agreement with a CPU
  evaluation on a subset (also with the GPU in full fp32, to tell bf16's share);
- torchrun_2gpu: one epoch under torchrun on 2 GPUs, skipped with a note on fewer.

Each step also records its peak GPU memory (torch.cuda.max_memory_allocated, reset between steps).
Writes gpu_suite.json and gpu_suite.md into --out-dir ($OUT when set, else artifacts/gpu_suite/).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from celeba_model.data.cache import ImageCache, load_or_build_cache
from celeba_model.data.index import CelebAIndex, load_index
from celeba_model.data.transforms import AugmentConfig, PreprocessConfig, to_model_input
from celeba_model.evaluation.batched import predict_probabilities, sigmoid_probabilities
from celeba_model.models.checkpoint import load_checkpoint, read_checkpoint_meta
from celeba_model.models.registry import create_model, model_spec
from celeba_model.training.batches import (
    CachedBatches, ResidentBatches, batch_loader, epoch_batches, keep_data_on_device,
)
from celeba_model.training.config import TrainConfig
from celeba_model.training.loop import compute_pos_weight, train_one_epoch
from celeba_model.training.train import train
from celeba_model.utils.devices import default_eval_batch_size, resolve_device
from celeba_model.utils.distributed import shutdown
from celeba_model.utils.fileio import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
STEPS = ("environment", "dataset", "train_throughput", "epoch", "evaluation", "torchrun_2gpu")
CELEBA_SPLITS = {"train": 162_770, "val": 19_867, "test": 19_962}  # the official partition; 202,599 in all
FULL_IMAGES = sum(CELEBA_SPLITS.values())
# The shipped checkpoints: their training settings define each model's run, attrnet's weights are evaluated.
MODELS = {"paper": "checkpoints/celeba/paper.safetensors", "attrnet": "checkpoints/celeba/attrnet.safetensors"}
DEFAULT_MODEL = "attrnet"
# The settings taken from a shipped checkpoint's training config (the rest are this suite's).
RUN_SETTINGS = ("arch", "attributes", "batch_size", "lr", "weight_decay", "image_size", "color", "pos_weight",
                "augment", "model_config", "ema")
TARGETS = {"resident_over_naive": 10.0, "epoch_seconds": 10.0, "max_prob_diff": 1e-3}
REPORT_RESERVE_S = 5  # kept back from a step's time limit to write the reports
# The most one step may take, so that one stuck step (a hung loader, say) leaves time for the others.
STEP_LIMITS_S = {"environment": 60, "dataset": 240, "train_throughput": 150, "epoch": 120, "evaluation": 60,
                 "torchrun_2gpu": 120}

log = logging.getLogger("gpu_suite")


@dataclass(frozen=True)
class Plan:
    """How big the run is: the full-size GPU run, or the small one that checks the same code on a CPU."""

    num_images: int
    steps: int  # timed training steps per pipeline, after warm-up
    warmup: int  # warm-up steps (the naive loader adds its workers' prefetched batches)
    batch_size: int | None  # None: each shipped model's own (100)
    cpu_eval_images: int  # test images also evaluated on the CPU, for the agreement check
    budget_s: float


FULL = Plan(num_images=FULL_IMAGES, steps=500, warmup=10, batch_size=None, cpu_eval_images=4096, budget_s=420)
SMALL = Plan(num_images=600, steps=4, warmup=2, batch_size=16, cpu_eval_images=4096, budget_s=150)


class Skip(Exception):
    """A step that does not apply here; its message is the recorded reason."""


class StepTimeout(Exception):
    """A step that ran into its share of the time budget."""


@dataclass
class Suite:
    """The run's settings, what steps hand on to later steps, and the report being filled."""

    args: argparse.Namespace
    plan: Plan
    device: torch.device
    out_dir: Path
    work: Path
    deadline: float
    report: dict
    root: Path | None = None  # the dataset as training sees it (CelebA's split sizes)
    index: CelebAIndex | None = None
    caches: dict[PreprocessConfig, ImageCache] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def cache_dir(self) -> Path:
        return self.work / "cache"

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def data(self) -> tuple[Path, CelebAIndex]:
        if self.root is None or self.index is None:
            raise Skip("no dataset: the dataset step did not finish")
        return self.root, self.index

    def cache(self, spec: PreprocessConfig) -> ImageCache:
        key = PreprocessConfig(spec.image_size, spec.color, spec.crop)  # normalization is not part of the pixels
        if key not in self.caches:
            _, index = self.data()
            self.caches[key] = load_or_build_cache(index.paths, key, self.cache_dir, workers=os.cpu_count(),
                                                   progress=False)
        return self.caches[key]


# Steps ---------------------------------------------------------------------------------------------------


def step_environment(suite: Suite) -> dict:
    figures = {
        "device": str(suite.device),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "numpy": np.__version__,
        "pillow": Image.__version__,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
    }
    if suite.cuda:
        props = torch.cuda.get_device_properties(suite.device)
        figures |= {
            "gpu_name": props.name,
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "compute_capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count,
            "driver": _nvidia_smi("driver_version"),
        }
    else:
        figures["gpu_name"] = None
        figures["note"] = "no CUDA device used: a CPU run of the same code paths"
    return figures


def _nvidia_smi(query: str) -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def step_dataset(suite: Suite) -> dict:
    """make-demo on all cores (reused when complete), a view with CelebA's split sizes, and its caches."""
    demo = suite.work / "demo"
    cores = os.cpu_count() or 1
    reused = _finished_demo(demo, suite.plan.num_images)
    started = time.perf_counter()
    _run_logged([sys.executable, "-m", "celeba_model", "make-demo", "--out", str(demo), "--num-images",
                 str(suite.plan.num_images), "--workers", str(cores)], suite.work / "make_demo.log", suite)
    demo_seconds = time.perf_counter() - started
    info = json.loads((demo / "demo_info.json").read_text())
    suite.root = _celeba_sized_view(demo, suite.work / "celeba", suite.plan.num_images)
    started = time.perf_counter()
    suite.index = load_index([suite.root])
    index_seconds = time.perf_counter() - started
    splits = {name: int(len(suite.index.split_indices(name))) for name in CELEBA_SPLITS}
    caches = {}
    for name in MODELS:
        config = _run_config(suite, name, suite.work / "unused")
        spec = PreprocessConfig(config.image_size, config.color)
        started = time.perf_counter()
        cache = suite.cache(spec)
        seconds = time.perf_counter() - started
        caches[f"{config.color}_{config.image_size}"] = {
            "built": cache.built, "seconds": round(seconds, 2), "gib": round(cache.images.nbytes / 2**30, 2),
            "images_per_s": round(len(cache.images) / seconds) if cache.built else None,
            "unreadable": len(cache.errors),
        }
    return {
        "images": info["num_images"],
        "make_demo_seconds": round(demo_seconds, 1),
        "make_demo_images_per_s": None if reused else round(suite.plan.num_images / demo_seconds),
        "make_demo_workers": cores,
        "splits": splits,
        "index_seconds": round(index_seconds, 2),
        "caches": caches,
        "folder": str(suite.root),
        "note": "partition rewritten to CelebA's split sizes in image order (people straddle splits; a speed run)",
    }


def _finished_demo(demo: Path, num_images: int) -> bool:
    """Whether make-demo will reuse ``demo`` (a rerun on a machine that is still warm)."""
    try:
        info = json.loads((demo / "demo_info.json").read_text())
    except (OSError, ValueError):
        return False
    return info.get("complete") is True and info.get("num_images") == num_images


def _celeba_sized_view(demo: Path, view: Path, num_images: int) -> Path:
    """A root that shows the demo's images and labels with CelebA's split sizes (scaled for a small demo):
    the demo splits by person, which gives 161,950 train images instead of CelebA's 162,770."""
    view.mkdir(parents=True, exist_ok=True)
    for name in ("img_align_celeba", "list_attr_celeba.txt", "identity_CelebA.txt"):
        link = view / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to((demo / name).resolve())
    train = round(num_images * CELEBA_SPLITS["train"] / FULL_IMAGES)
    val = round(num_images * CELEBA_SPLITS["val"] / FULL_IMAGES)
    parts = [0] * train + [1] * val + [2] * (num_images - train - val)
    (view / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg {p}\n" for i, p in enumerate(parts)))
    return view


def _run_logged(command: list[str], log_path: Path, suite: Suite, env: dict | None = None) -> None:
    """Run a command with its output in ``log_path``, inside the time budget; raise with its tail if it fails."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), **(env or {})}
    with open(log_path, "w") as out:
        # Its own process group, so a timeout stops its workers too.
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=max(1.0, suite.remaining() - REPORT_RESERVE_S))  # the step's alarm may come first
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    if code != 0:
        tail = log_path.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"{' '.join(command[:6])} ... exited with {code}:\n{tail}")


def step_train_throughput(suite: Suite) -> dict:
    """Per model: the naive PIL DataLoader, the memory-mapped cache and the device-resident cache."""
    _, index = suite.data()
    figures: dict = {}
    workers = os.cpu_count() or 1
    for name in MODELS:
        config = _run_config(suite, name, suite.work / "unused")
        spec = PreprocessConfig(config.image_size, config.color)
        cache = suite.cache(spec)
        labels = index.attribute_labels(config.attributes).astype(np.float32)
        rows = index.split_indices("train")
        rows = rows[cache.valid[rows]]
        naive_warmup = suite.plan.warmup + 2 * workers  # the workers' first prefetched batches come free
        batches = epoch_batches(rows, config.batch_size, shuffle_seed=0)
        batches = [b for b in batches if len(b) == config.batch_size]
        steps = min(suite.plan.steps, len(batches) - naive_warmup)
        if steps < 1:
            raise RuntimeError(f"{len(batches)} batches of {config.batch_size} are too few for {naive_warmup} "
                               "warm-up steps")
        naive = DataLoader(
            NaiveFaces([index.paths[r] for r in rows], labels[rows], spec), batch_size=config.batch_size,
            shuffle=True, drop_last=True, num_workers=workers, pin_memory=suite.cuda,
            generator=torch.Generator().manual_seed(0),
        )
        cached = batch_loader(CachedBatches(cache.folder / "images.npy", labels), batches, config.workers,
                              suite.device, seed=0)
        model_figures = {"batch_size": config.batch_size, "steps": steps, "naive_workers": workers,
                         "cached_workers": config.workers, "color": config.color, "augment": config.augment}
        model_figures["naive"] = _train_rate(suite, config, spec, labels[rows], iter(naive), naive_warmup, steps)
        model_figures["cached"] = _train_rate(suite, config, spec, labels[rows], iter(cached), suite.plan.warmup, steps)
        resident = ResidentBatches(cache.images, labels, suite.device)
        model_figures["resident"] = _train_rate(suite, config, spec, labels[rows], (resident[b] for b in batches),
                                                suite.plan.warmup, steps)
        del resident
        _free(suite)
        naive_rate = model_figures["naive"]["images_per_s"]
        model_figures["cached_over_naive"] = round(model_figures["cached"]["images_per_s"] / naive_rate, 2)
        model_figures["resident_over_naive"] = round(model_figures["resident"]["images_per_s"] / naive_rate, 2)
        figures[name] = model_figures
        log.info(f"  {name}: naive {naive_rate:,.0f}, cached {model_figures['cached']['images_per_s']:,.0f}, "
                 f"resident {model_figures['resident']['images_per_s']:,.0f} img/s")
    return figures


class NaiveFaces(Dataset):
    """The baseline a user writes first, torchvision-style: each item opens its JPEG with PIL, crops the face,
    resizes it and makes a tensor, every epoch, in DataLoader workers. It returns uint8 HWC (a quarter of
    ToTensor's float bytes to move), so the same training step serves all three pipelines."""

    def __init__(self, paths: list[Path], labels: np.ndarray, spec: PreprocessConfig) -> None:
        self.paths, self.labels, self.spec = paths, labels, spec

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        with Image.open(self.paths[i]) as image:
            image = image.convert("RGB" if self.spec.color == "rgb" else "L")
            face = image.crop(self.spec.crop.to_pixels(*image.size))
            face = face.resize((self.spec.image_size, self.spec.image_size), Image.Resampling.BILINEAR)
        pixels = np.array(face, dtype=np.uint8).reshape(self.spec.image_size, self.spec.image_size, -1)
        return torch.from_numpy(pixels), torch.from_numpy(self.labels[i])


def _train_rate(suite: Suite, config: TrainConfig, spec: PreprocessConfig, train_labels: np.ndarray,
                batches: Iterator, warmup: int, steps: int) -> dict:
    """Images/s of the package's training loop (train_one_epoch) over ``steps`` batches after ``warmup``."""
    device = suite.device
    torch.manual_seed(config.seed)
    model = create_model(model_spec(config.arch, spec.channels, len(config.attributes), spec.image_size,
                                    config.model_config))
    model = model.to(device).to(memory_format=torch.channels_last)  # as train() does
    pos_weight = compute_pos_weight(train_labels, config.pos_weight)
    criterion = nn.BCEWithLogitsLoss(
        pos_weight=None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float32, device=device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=warmup + steps)
    generator = torch.Generator(device=device).manual_seed(0)
    augment = AugmentConfig() if config.augment else None
    _reset_peak(suite)

    def run(n: int):
        return train_one_epoch(model, criterion, optimizer, scheduler, islice(batches, n), device, spec, augment,
                               generator, progress=False)

    run(warmup)  # cuDNN autotuning, the allocator, the loader's workers
    _sync(suite)
    started = time.perf_counter()
    stats = run(steps)  # its loss.item() every step waits for the GPU
    _sync(suite)
    seconds = time.perf_counter() - started
    if stats.images != steps * config.batch_size:
        raise RuntimeError(f"the loader ran dry: {stats.images} of {steps * config.batch_size} images")
    return {"images_per_s": round(stats.images / seconds, 1), "seconds": round(seconds, 3),
            "peak_gpu_mib": _peak(suite)}


def step_epoch(suite: Suite) -> dict:
    """One epoch of the default model with train(), as `python -m celeba_model train --epochs 1` runs it."""
    suite.data()
    out = suite.work / "epoch_run"
    shutil.rmtree(out, ignore_errors=True)
    config = _run_config(suite, DEFAULT_MODEL, out)
    started = time.perf_counter()
    train(config)
    wall = time.perf_counter() - started
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    images = round(record["train_images_per_s"] * record["train_seconds"])
    rate = record["train_images_per_s"]
    cache = suite.cache(PreprocessConfig(config.image_size, config.color))
    return {
        "model": DEFAULT_MODEL,
        "batch_size": config.batch_size,
        "train_images": images,
        "train_seconds": round(record["train_seconds"], 2),
        "train_images_per_s": round(rate, 1),
        # The target is a 162,770-image epoch; a small run's epoch is scaled to that size.
        "full_epoch_seconds": round(CELEBA_SPLITS["train"] / rate, 2),
        "full_epoch_extrapolated": images != CELEBA_SPLITS["train"],
        "wall_seconds": round(wall, 2),  # with setup, validation and the checkpoint
        "val_macro_f1": round(record["val_macro_f1"], 4),
        "data_on_device": keep_data_on_device(config.data_on_device, suite.device, cache.images.nbytes),
    }


def step_evaluation(suite: Suite) -> dict:
    """The shipped attrnet on the test split: images/s, then agreement with the CPU on a subset."""
    _, index = suite.data()
    path = REPO / MODELS[DEFAULT_MODEL]
    checkpoint = load_checkpoint(path, device=suite.device)
    model = checkpoint.model.to(memory_format=torch.channels_last)
    spec = checkpoint.preprocess
    cache = suite.cache(spec)
    rows = index.split_indices("test")
    rows = rows[cache.valid[rows]]
    flip_tta = bool((checkpoint.meta.get("inference") or {}).get("flip_tta", False))
    batch = default_eval_batch_size(suite.device)
    if suite.cuda:
        torch.backends.cudnn.benchmark = True  # as training leaves it; evaluation alone runs without

    def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
        _sync(suite)
        started = time.perf_counter()
        result = fn()  # ends with a copy to the host, which waits for the GPU
        return result, time.perf_counter() - started

    evaluate = lambda: predict_probabilities(model, cache.images, rows, spec, suite.device, batch, flip_tta)  # noqa: E731
    _, cold = timed(evaluate)
    probs, warm = timed(evaluate)
    subset = rows[: suite.plan.cpu_eval_images]
    cpu_model = load_checkpoint(path, device="cpu").model.to(memory_format=torch.channels_last)
    cpu = torch.device("cpu")
    cpu_probs, cpu_seconds = timed(lambda: predict_probabilities(
        cpu_model, cache.images, subset, spec, cpu, default_eval_batch_size(cpu), flip_tta))
    fp32_probs = _predict_fp32(model, cache.images, subset, spec, suite.device, batch, flip_tta)
    device_subset = probs[: len(subset)]
    return {
        "checkpoint": MODELS[DEFAULT_MODEL],
        "images": int(len(rows)),
        "batch_size": batch,
        "flip_tta": flip_tta,
        "images_per_s": round(len(rows) / warm, 1),
        "first_pass_images_per_s": round(len(rows) / cold, 1),
        "cpu_images": int(len(subset)),
        "cpu_images_per_s": round(len(subset) / cpu_seconds, 1),
        "cpu_threads": torch.get_num_threads(),
        "agreement": _agreement(device_subset, cpu_probs),  # the package's path: bf16 autocast on a GPU
        "agreement_fp32": _agreement(fp32_probs, cpu_probs),  # the same weights in fp32 (TF32 off)
    }


def _agreement(device_probs: np.ndarray, cpu_probs: np.ndarray) -> dict:
    differ = (device_probs >= 0.5) != (cpu_probs >= 0.5)  # decisions at 0.5, as metrics/counts.py takes them
    return {"max_abs_diff": float(np.abs(device_probs - cpu_probs).max()),
            "mean_abs_diff": float(np.abs(device_probs - cpu_probs).mean()),
            "decisions_differing": int(differ.sum()), "decisions": int(differ.size)}


@torch.inference_mode()
def _predict_fp32(model: nn.Module, images: np.ndarray, rows: np.ndarray, spec: PreprocessConfig,
                  device: torch.device, batch: int, flip_tta: bool) -> np.ndarray:
    """predict_probabilities without autocast and with TF32 off: how close the GPU gets in full precision."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        outputs = []
        for begin in range(0, len(rows), batch):
            x = to_model_input(torch.from_numpy(np.ascontiguousarray(images[rows[begin : begin + batch]])).to(device),
                               spec)
            outputs.append(sigmoid_probabilities(model, x, flip_tta))
        return torch.cat(outputs).cpu().numpy()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def step_torchrun(suite: Suite) -> dict:
    """One epoch of the default model on 2 GPUs under torchrun (NCCL), against the 1-GPU epoch."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not suite.cuda and not suite.args.torchrun_cpu:
        raise Skip("CPU run: the 2-GPU torchrun step needs two CUDA GPUs (tests/test_distributed.py runs "
                   "torchrun with 2 Gloo processes on CPU)")
    if suite.cuda and gpus < 2:
        raise Skip(f"{gpus} CUDA GPU on this machine; the torchrun step needs 2")
    suite.data()
    out = suite.work / "ddp_run"
    shutil.rmtree(out, ignore_errors=True)
    for old in suite.work.glob("ddp_peak_rank*.json"):
        old.unlink()
    config = _run_config(suite, DEFAULT_MODEL, out)
    config_path = suite.work / "ddp_config.json"
    config_path.write_text(json.dumps(config.to_dict()))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(Path(__file__).resolve()), "--torchrun-worker", str(config_path)]
    started = time.perf_counter()
    _run_logged(command, suite.work / "torchrun.log", suite, env={"OMP_NUM_THREADS": "1"} if not suite.cuda else None)
    wall = time.perf_counter() - started
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    peaks = [json.loads(p.read_text()) for p in sorted(suite.work.glob("ddp_peak_rank*.json"))]
    figures = {
        "processes": 2,
        "backend": "nccl" if suite.cuda else "gloo",
        "batch_size_per_process": config.batch_size,
        "train_seconds": round(record["train_seconds"], 2),
        "train_images_per_s": round(record["train_images_per_s"], 1),  # over both processes
        "wall_seconds": round(wall, 2),
        "val_macro_f1": round(record["val_macro_f1"], 4),
        "peak_gpu_mib_per_rank": [p["peak_gpu_mib"] for p in peaks],
    }
    one = suite.report["steps"].get("epoch", {}).get("figures", {}).get("train_images_per_s")
    if one:
        figures["speedup_over_1_process"] = round(record["train_images_per_s"] / one, 2)
    return figures


def torchrun_worker(config_path: str) -> None:
    """Inside torchrun: train the given config, then leave this rank's peak GPU memory beside the run."""
    logging.basicConfig(level=logging.WARNING)
    config = TrainConfig.from_dict(json.loads(Path(config_path).read_text()))
    device = resolve_device(config.device)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    train(config)
    rank = int(os.environ.get("RANK", "0"))
    peak = round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else None
    (Path(config_path).parent / f"ddp_peak_rank{rank}.json").write_text(json.dumps({"rank": rank, "peak_gpu_mib": peak}))
    shutdown()


STEP_FUNCTIONS: dict[str, Callable[[Suite], dict]] = {
    "environment": step_environment, "dataset": step_dataset, "train_throughput": step_train_throughput,
    "epoch": step_epoch, "evaluation": step_evaluation, "torchrun_2gpu": step_torchrun,
}


# Shared pieces -------------------------------------------------------------------------------------------


def _run_config(suite: Suite, name: str, out: Path) -> TrainConfig:
    """The shipped checkpoint's training settings, for one epoch on this suite's data and device."""
    saved = read_checkpoint_meta(REPO / MODELS[name]).meta["training"]["config"]
    settings = {k: saved[k] for k in RUN_SETTINGS if k in saved}
    if suite.plan.batch_size is not None:
        settings["batch_size"] = suite.plan.batch_size
    root, _ = suite.data()
    return TrainConfig(data_roots=[str(root)], out=str(out), epochs=1, device=str(suite.device),
                       data_on_device="auto", cache_dir=str(suite.cache_dir), progress=False, **settings)


def _sync(suite: Suite) -> None:
    if suite.cuda:
        torch.cuda.synchronize(suite.device)  # GPU work is asynchronous: time what has finished


def _reset_peak(suite: Suite) -> None:
    if suite.cuda:
        torch.cuda.reset_peak_memory_stats(suite.device)


def _peak(suite: Suite) -> float | None:
    return round(torch.cuda.max_memory_allocated(suite.device) / 2**20, 1) if suite.cuda else None


def _free(suite: Suite) -> None:
    gc.collect()
    if suite.cuda:
        torch.cuda.empty_cache()


def _on_alarm(signum, frame) -> None:
    raise StepTimeout("the step ran past its time limit (STEP_LIMITS_S) or the run's budget")


def run_step(suite: Suite, name: str) -> None:
    """Run one step inside what is left of the budget; record its figures, its skip reason or its error."""
    entry: dict = {"status": "skipped"}
    if suite.args.only and name not in suite.args.only and name not in ("environment", "dataset"):
        entry["reason"] = "not selected (--only)"
    elif suite.report["steps"].get("environment", {}).get("status") == "failed":
        entry["reason"] = "the environment step failed"
    elif suite.remaining() < 2 * REPORT_RESERVE_S:
        entry["reason"] = f"time budget of {suite.plan.budget_s:.0f} s spent"
    else:
        log.info(f"[{name}] ({suite.remaining():.0f} s of the budget left)")
        _reset_peak(suite)
        started = time.perf_counter()
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(max(1, int(min(STEP_LIMITS_S[name], suite.remaining() - REPORT_RESERVE_S))))
        try:
            entry = {"status": "ok", "figures": STEP_FUNCTIONS[name](suite)}
        except Skip as reason:
            entry = {"status": "skipped", "reason": str(reason)}
        except Exception as err:  # noqa: BLE001 - one step's failure is a result; the others still run
            entry = {"status": "failed", "error": f"{type(err).__name__}: {err}"[:2000],
                     "traceback": traceback.format_exc()[-3000:]}
        finally:
            signal.alarm(0)
        entry["seconds"] = round(time.perf_counter() - started, 2)
        entry["peak_gpu_mib"] = _peak(suite)
        _free(suite)
        log.info(f"[{name}] {entry['status']} in {entry['seconds']} s"
                 + (f": {entry.get('reason') or entry.get('error')}" if entry["status"] != "ok" else ""))
    suite.report["steps"][name] = entry
    write_reports(suite)


# Reports -------------------------------------------------------------------------------------------------


def check_targets(report: dict) -> list[dict]:
    """The issue's targets against what was measured (None where the step gave no figure)."""
    steps = report["steps"]
    checks = []
    throughput = steps.get("train_throughput", {}).get("figures", {})
    for name in MODELS:
        ratio = throughput.get(name, {}).get("resident_over_naive")
        checks.append({"target": f"device-resident cache >= {TARGETS['resident_over_naive']:g}x the naive "
                                 f"PIL DataLoader ({name})",
                       "measured": None if ratio is None else f"{ratio:.2f}x",
                       "met": None if ratio is None else ratio >= TARGETS["resident_over_naive"]})
    epoch = steps.get("epoch", {}).get("figures", {})
    seconds = epoch.get("full_epoch_seconds")
    checks.append({"target": f"a full 162,770-image epoch of {DEFAULT_MODEL} < {TARGETS['epoch_seconds']:g} s "
                             "(H100-class GPU)",
                   "measured": None if seconds is None else
                   f"{seconds:.2f} s" + (" (extrapolated from a small epoch)" if epoch.get("full_epoch_extrapolated") else ""),
                   "met": None if seconds is None else seconds < TARGETS["epoch_seconds"]})
    agreement = steps.get("evaluation", {}).get("figures", {}).get("agreement")
    checks.append({"target": f"GPU and CPU probabilities agree to {TARGETS['max_prob_diff']:g} (package path)",
                   "measured": None if agreement is None else
                   f"max |diff| {agreement['max_abs_diff']:.2e}; {agreement['decisions_differing']} of "
                   f"{agreement['decisions']:,} decisions at 0.5 differ",
                   "met": None if agreement is None else agreement["max_abs_diff"] <= TARGETS["max_prob_diff"]})
    return checks


def write_reports(suite: Suite) -> None:
    report = suite.report
    report["elapsed_s"] = round(time.monotonic() - (suite.deadline - suite.plan.budget_s), 1)
    report["targets"] = check_targets(report)
    suite.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(suite.out_dir / "gpu_suite.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(suite.out_dir / "gpu_suite.md", markdown(report))


def _num(value, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(report: dict) -> str:
    steps = report["steps"]
    env = steps.get("environment", {}).get("figures", {})
    gpu = env.get("gpu_name") or "no GPU (CPU run)"
    lines = [
        f"# GPU suite: {gpu}",
        "",
        f"{report['started']}, mode {report['mode']}, device {report['device']}; torch {env.get('torch', '?')}, "
        f"CUDA {env.get('torch_cuda') or '-'}, cuDNN {env.get('cudnn') or '-'}, driver {env.get('driver') or '-'}, "
        f"Python {env.get('python', '?')}, {env.get('cpu_cores', '?')} CPU cores; "
        f"{report['elapsed_s']:.0f} s of a {report['budget_s']:.0f} s budget.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    gpu_run = report["device"].startswith("cuda")
    for check in report["targets"]:
        met = "-" if check["met"] is None else ("yes" if check["met"] else "**no**")
        if not gpu_run and check["met"] is not None:
            met += " (CPU run; the target is for a GPU)"
        lines.append(f"| {check['target']} | {check['measured'] or '-'} | {met} |")
    throughput = steps.get("train_throughput", {}).get("figures")
    if throughput:
        lines += ["", "## Training images/s (train_one_epoch, same batches and steps per model)", "",
                  "| model | batch | naive PIL DataLoader | memory-mapped cache | device-resident cache | cached / naive "
                  "| resident / naive | peak GPU MiB (naive / cached / resident) |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, f in throughput.items():
            peaks = " / ".join(_num(f[p]["peak_gpu_mib"]) for p in ("naive", "cached", "resident"))
            lines.append(f"| {name} ({f['color']}{', augmented' if f['augment'] else ''}) | {f['batch_size']} | "
                         f"{_num(f['naive']['images_per_s'])} ({f['naive_workers']} workers) | "
                         f"{_num(f['cached']['images_per_s'])} | {_num(f['resident']['images_per_s'])} | "
                         f"{f['cached_over_naive']:.2f}x | {f['resident_over_naive']:.2f}x | {peaks} |")
    lines += ["", "## Steps", "", "| step | status | seconds | peak GPU MiB | figures or reason |", "|---|---|---|---|---|"]
    for name in STEPS:
        entry = steps.get(name, {"status": "not run"})
        lines.append(f"| {name} | {entry['status']} | {_num(entry.get('seconds'), 1)} | "
                     f"{_num(entry.get('peak_gpu_mib'))} | {_summary(name, entry)} |")
    return "\n".join(lines) + "\n"


def _summary(name: str, entry: dict) -> str:
    """One table cell: the step's main figures, or why it has none."""
    if entry["status"] != "ok":
        text = entry.get("reason") or entry.get("error") or ""
        return text.splitlines()[0][:300].replace("|", "/") if text else ""
    f = entry["figures"]
    if name == "environment":
        return (f"{f.get('gpu_name') or 'CPU'}"
                + (f", {f['gpu_memory_gib']} GiB, sm {f['compute_capability']}" if f.get("gpu_name") else "")
                + f", {f['cuda_devices']} CUDA device(s)")
    if name == "dataset":
        caches = ", ".join(f"{k} cache {'built' if c['built'] else 'reused'} in {c['seconds']:.1f} s"
                           + (f" ({c['images_per_s']:,} img/s)" if c["images_per_s"] else "") for k, c in f["caches"].items())
        made = f" ({f['make_demo_images_per_s']:,} img/s)" if f["make_demo_images_per_s"] else " (reused)"
        splits = " / ".join(f"{v:,}" for v in f["splits"].values())
        return (f"{f['images']:,} images by make-demo in {f['make_demo_seconds']:.0f} s{made} on "
                f"{f['make_demo_workers']} workers; splits {splits}; {caches}")
    if name == "train_throughput":
        return "; ".join(f"{m}: resident {v['resident_over_naive']:.1f}x, cached {v['cached_over_naive']:.1f}x naive"
                         for m, v in f.items())
    if name == "epoch":
        return (f"{f['model']}: {f['train_images']:,} images in {f['train_seconds']:.2f} s "
                f"({f['train_images_per_s']:,.0f} img/s, data on device: {f['data_on_device']}); "
                f"{f['wall_seconds']:.1f} s with setup, validation and checkpoint")
    if name == "evaluation":
        a, b = f["agreement"], f["agreement_fp32"]
        return (f"{f['images']:,} test images at {f['images_per_s']:,.0f} img/s (first pass "
                f"{f['first_pass_images_per_s']:,.0f}; flip TTA {'on' if f['flip_tta'] else 'off'}); CPU "
                f"{f['cpu_images_per_s']:,.0f} img/s; on {f['cpu_images']:,} images max |diff| vs CPU "
                f"{a['max_abs_diff']:.1e} ({a['decisions_differing']} decisions differ), fp32 "
                f"{b['max_abs_diff']:.1e} ({b['decisions_differing']})")
    if name == "torchrun_2gpu":
        speedup = f", {f['speedup_over_1_process']:.2f}x one process" if "speedup_over_1_process" in f else ""
        return (f"{f['processes']} processes ({f['backend']}): {f['train_images_per_s']:,.0f} img/s, epoch "
                f"{f['train_seconds']:.2f} s{speedup}")
    return ""


# Entry point ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--small", action="store_true", help="600 images and a few steps: the code paths, not figures")
    parser.add_argument("--out-dir", default=None, help="where gpu_suite.json and .md go (default: $OUT, else "
                        "artifacts/gpu_suite)")
    parser.add_argument("--work-dir", default=None, help="dataset, caches and runs (default: artifacts/gpu_suite_work, "
                        "git-ignored, which the device tool keeps between calls; a finished dataset there is reused)")
    parser.add_argument("--budget-s", type=float, default=None, help="time budget of the whole run in seconds "
                        f"(default: {FULL.budget_s:.0f}, {SMALL.budget_s:.0f} with --small)")
    parser.add_argument("--only", nargs="+", choices=STEPS, default=None,
                        help="run only these steps (environment and dataset always run; a finished dataset is reused)")
    parser.add_argument("--torchrun-cpu", action="store_true", help="on CPU, run the torchrun step with 2 Gloo processes")
    parser.add_argument("--torchrun-worker", default=None, help=argparse.SUPPRESS)  # the suite's own torchrun call
    args = parser.parse_args(argv)
    if args.torchrun_worker:
        torchrun_worker(args.torchrun_worker)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    plan = SMALL if args.small else FULL
    if args.budget_s is not None:
        plan = replace(plan, budget_s=args.budget_s)
    out_dir = Path(args.out_dir or os.environ.get("OUT") or REPO / "artifacts" / "gpu_suite")
    work = Path(args.work_dir or REPO / "artifacts" / "gpu_suite_work") / ("small" if args.small else "full")
    work.mkdir(parents=True, exist_ok=True)
    report = {"suite": "bench/gpu_suite.py", "mode": "small" if args.small else "full", "device": args.device,
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "budget_s": plan.budget_s,
              "targets": [], "steps": {}}
    device_error = None
    try:
        device = resolve_device(args.device)
    except Exception as err:  # noqa: BLE001 - recorded as the environment step's failure, with the versions
        device, device_error = torch.device("cpu"), f"{type(err).__name__}: {err}"
    suite = Suite(args, plan, device, out_dir, work, time.monotonic() + plan.budget_s, report)
    if suite.cuda:
        torch.backends.cudnn.benchmark = True  # as train() sets it
    for name in STEPS:
        run_step(suite, name)
        if name == "environment" and device_error:
            report["steps"]["environment"] |= {"status": "failed", "error": device_error}
    log.info(f"wrote {out_dir / 'gpu_suite.json'} and {out_dir / 'gpu_suite.md'}\n\n" + markdown(report))
    return 1 if any(s["status"] == "failed" for s in report["steps"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
