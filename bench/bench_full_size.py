"""The package at full CelebA size: fixed cost, cache, evaluation, training, memory and the dashboard.

    python bench/bench_full_size.py [--root data/full_size] [--label after] [--code DIR] [--skip-dashboard]

Generates (or reuses) a synthetic dataset of full CelebA size (202,599 images, `make-demo --workers 2`,
about 9 minutes and 2.1 GB the first time) and a 20,000-image one for comparison, then measures, each
command in its own process (wall time, peak RSS from wait4, and the process's heap, sampled from /proc):

- fixed cost per command: `info` twice (cold, then with everything reusable), and inside one process
  the index load and the image-cache check that every data command pays before it works;
- `evaluate --split test` on a fresh image cache (what it decodes, the whole time, its last line, the
  rates its progress bar shows) and again on the warm cache;
- a 20,000-image training epoch (`--max-train-images 20000`) on the full dataset and on the 20k one:
  images/s and peak memory (the 20k dataset shows what the same training costs on a small dataset);
- `info --attributes all`, and where each path puts the image cache (`CELEBA_MODEL_CACHE`);
- the dashboard in Chromium: the first page of a fresh clone (from the server's start), the run it opens
  with `--data-root`, and the bytes sent to the browser per threshold-slider move on a 202,599-image run.

`--code DIR` measures another checkout of the package (a `git worktree` of an older commit) on the same
data and with this same script: every command runs with PYTHONPATH=DIR and DIR's dashboard. Results go
to data/full_size_bench/<label>.json (git-ignored). Timings share this machine's cores with whatever else
runs; compare figures taken in the same session.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # dashboard.server's chromium helper, run as `python bench/bench_full_size.py`
    sys.path.insert(0, str(REPO))

FULL_SIZE = 202_599
SMALL_SIZE = 20_000
CHECKPOINT = REPO / "checkpoints" / "demo" / "paper_rgb.safetensors"  # 64x64 RGB, the fastest RGB demo model
TRAIN_IMAGES = 20_000


class Bench:
    """Runs commands of one checkout (``code``) against one workspace and cache, recording results."""

    def __init__(self, code: Path, work: Path, log: Path) -> None:
        self.code = code
        self.work = work
        self.cache = work / "cache"
        self.log = log
        self.results: dict = {}

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": str(self.code), "CELEBA_MODEL_CACHE": str(self.cache),
               "CELEBA_WORKSPACE": str(self.work / "workspace"), **extra}
        env.pop("CELEBA_ROOT", None)
        return env

    def run(self, args: list[str], name: str, env: dict[str, str] | None = None, check: bool = True) -> dict:
        """One command in its own process: wall seconds, peak RSS (MB), exit code, output (also logged)."""
        started = time.perf_counter()
        with open(self.log, "a") as log:
            log.write(f"\n$ {' '.join(args)}\n")
            log.flush()
            out_path = self.work / f"{name}.out"
            with open(out_path, "w") as out:
                proc = subprocess.Popen(args, cwd=self.work, env=env or self.env(), stdout=out, stderr=subprocess.STDOUT)
                peaks: dict[str, int] = {}
                sampler = threading.Thread(target=_sample_memory, args=(proc.pid, peaks), daemon=True)
                sampler.start()
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                sampler.join()
            seconds = time.perf_counter() - started
            text = out_path.read_text(errors="replace")
            log.write(text[-4000:])
        # The machine's load as the command ended: other work on these cores slows every figure.
        # Peak RSS (wait4, the process and the children it waited for), and the command process's own peaks
        # of anonymous memory (its heap: Python objects, arrays, torch) and of mapped files (the memory-mapped
        # image cache's pages in the page cache, shared libraries), sampled every 0.1 s.
        result = {"seconds": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024),
                  "peak_heap_mb": peaks.get("RssAnon", 0) // 1024, "peak_mapped_files_mb": peaks.get("RssFile", 0) // 1024,
                  "exit": proc.returncode, "load_1min": round(os.getloadavg()[0], 1), "output": text}
        if check and proc.returncode != 0:
            raise SystemExit(f"{name} failed ({proc.returncode}):\n{text[-3000:]}")
        print(f"  {name}: {seconds:.1f} s, peak RSS {result['peak_rss_mb']:,} MB (heap {result['peak_heap_mb']:,} MB), "
              f"exit {proc.returncode} (load {result['load_1min']})", flush=True)
        return result

    def cli(self, *args: str, name: str, check: bool = True, **env: str) -> dict:
        return self.run([sys.executable, "-m", "celeba_model", *args], name, self.env(**env) if env else None, check)

    def python(self, code: str, name: str) -> dict:
        """A Python snippet in its own process; it prints one JSON object on its last line."""
        result = self.run([sys.executable, "-c", code], name)
        result["json"] = json.loads(result["output"].strip().splitlines()[-1])
        return result


def _sample_memory(pid: int, peaks: dict[str, int]) -> None:
    """Record the highest RssAnon and RssFile (kB) of process ``pid`` until it ends."""
    while True:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return
        if "RssAnon" not in status:  # a zombie: it has ended
            return
        for key, value in re.findall(r"^(RssAnon|RssFile):\s+(\d+)", status, re.M):
            peaks[key] = max(peaks.get(key, 0), int(value))
        time.sleep(0.1)


def ensure_demo(root: Path, num_images: int) -> None:
    """Generate the demo dataset with this checkout's generator unless ``root`` holds it complete."""
    info = root / "demo_info.json"
    if info.is_file() and json.loads(info.read_text()).get("complete") and \
            json.loads(info.read_text()).get("num_images") == num_images:
        return
    print(f"Generating {num_images:,} images into {root} (make-demo --workers 2)...", flush=True)
    subprocess.run([sys.executable, "-m", "celeba_model", "make-demo", "--out", str(root), "--num-images",
                    str(num_images), "--workers", "2"], check=True, cwd=REPO)


def du_mb(folder: Path) -> float:
    """Disk blocks actually used under ``folder`` (a sparse file counts what is written)."""
    total = 0
    for path in folder.rglob("*"):
        if path.is_file():
            total += path.stat().st_blocks * 512
    return round(total / 2**20, 1)


# Inside one process: what loading the index and checking the test split's cache cost. Works with either
# version of the package (the cache of a whole index, or one filled on demand with `rows`).
FIXED_COST = r"""
import inspect, json, sys, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
from celeba_model.data.cache import load_or_build_cache
from celeba_model.data.index import load_index
from celeba_model.data.transforms import PreprocessConfig
from celeba_model.models.checkpoint import read_checkpoint_meta
t1 = time.perf_counter()
index = load_index([sys.argv[1]])
t2 = time.perf_counter()
spec = PreprocessConfig.from_dict(read_checkpoint_meta(sys.argv[2]).meta["preprocess"])
rows = index.split_indices("test")
if "rows" in inspect.signature(load_or_build_cache).parameters:
    cache = load_or_build_cache(index.paths, spec, rows=rows, progress=False)
else:
    cache = load_or_build_cache(index.paths, spec, progress=False)
t3 = time.perf_counter()
print(json.dumps({"imports_s": round(t1 - t0, 3), "load_index_s": round(t2 - t1, 3),
                  "cache_check_s": round(t3 - t2, 3), "cache_built": bool(cache.built), "images": len(index)}))
"""

# Where the dashboard and the CLI put the image cache, given CELEBA_MODEL_CACHE.
CACHE_RULE = r"""
import json, os
from pathlib import Path
from celeba_model.data.cache import default_cache_dir
from celeba_model.workspace import Workspace
print(json.dumps({"cli": str(default_cache_dir()), "dashboard": str(Workspace(Path(os.environ["CELEBA_WORKSPACE"])).cache_dir),
                  "same": Path(default_cache_dir()) == Path(Workspace(Path(os.environ["CELEBA_WORKSPACE"])).cache_dir)}))
"""


def progress_rates(output: str) -> int:
    """How many rates the evaluation progress bar's last line shows."""
    lines = [line for line in re.split(r"[\r\n]", output) if line.startswith("Evaluating")]
    return len(re.findall(r"img/s|img_s", lines[-1])) if lines else 0


def measure_cli(bench: Bench, root: Path, small: Path) -> None:
    results = bench.results
    if bench.cache.exists():
        shutil.rmtree(bench.cache)  # a fresh cache: the first evaluation pays what a new user pays
    print("Fixed cost per command", flush=True)
    first = bench.cli("info", "--data-root", str(root), name="info_first")
    again = bench.cli("info", "--data-root", str(root), name="info_again")
    results["info"] = {"first_s": first["seconds"], "again_s": again["seconds"], "peak_rss_mb": again["peak_rss_mb"],
                       "peak_heap_mb": again["peak_heap_mb"], "load_1min": again["load_1min"]}
    bench.cli("info", "--data-root", str(small), name="info_small")
    tiny = bench.cli("info", "--data-root", str(small), name="info_small_again")
    results["info"]["small_dataset_s"] = tiny["seconds"]

    print("evaluate --split test on a fresh cache", flush=True)
    out = bench.work / "workspace" / "runs"
    cold = bench.cli("evaluate", "--checkpoint", str(CHECKPOINT), "--data-root", str(root), "--split", "test",
                     "--out", str(out / "paper_rgb" / "test"), "--overwrite", "--device", "cpu", name="evaluate_cold")
    last = [line for line in cold["output"].replace("\r", "\n").splitlines()
            if line.strip() and not line.startswith(("Evaluating", "Caching"))][-1]
    meta = json.loads((out / "paper_rgb" / "test" / "meta.json").read_text())
    results["evaluate_test"] = {
        "seconds": cold["seconds"], "peak_rss_mb": cold["peak_rss_mb"], "peak_heap_mb": cold["peak_heap_mb"],
        "last_line": last.strip(),
        "images": meta["counts"]["images"], "predict_seconds": round(meta["timing"]["seconds"], 2),
        "cache_mb_on_disk": du_mb(bench.cache), "progress_rates_shown": progress_rates(cold["output"]),
        "load_1min": cold["load_1min"],
    }
    warm = bench.cli("evaluate", "--checkpoint", str(CHECKPOINT), "--data-root", str(root), "--split", "test",
                     "--out", str(out / "paper_rgb" / "test"), "--overwrite", "--device", "cpu", "--no-progress",
                     name="evaluate_warm")
    results["evaluate_test"]["warm_seconds"] = warm["seconds"]
    bench.run([sys.executable, "-c", FIXED_COST, str(root), str(CHECKPOINT)], "fixed_cost")
    fixed = bench.run([sys.executable, "-c", FIXED_COST, str(root), str(CHECKPOINT)], "fixed_cost_again")
    results["fixed_cost"] = {**json.loads(fixed["output"].strip().splitlines()[-1]), "process_s": fixed["seconds"],
                             "load_1min": fixed["load_1min"]}

    print(f"Training {TRAIN_IMAGES:,} images for one epoch", flush=True)
    for name, data in (("full", root), ("small", small)):
        runs = []
        for attempt in ("first", "again"):
            folder = bench.work / f"train_{name}_{attempt}"
            shutil.rmtree(folder, ignore_errors=True)
            run = bench.cli("train", "--data-root", str(data), "--arch", "paper", "--color", "rgb", "--epochs", "1",
                            "--max-train-images", str(TRAIN_IMAGES), "--out", str(folder), "--no-progress",
                            "--device", "cpu", name=f"train_{name}_{attempt}")
            record = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
            runs.append({"seconds": run["seconds"], "peak_rss_mb": run["peak_rss_mb"], "peak_heap_mb": run["peak_heap_mb"],
                         "peak_mapped_files_mb": run["peak_mapped_files_mb"],
                         "train_images_per_s": round(record["train_images_per_s"]), "load_1min": run["load_1min"]})
        results[f"train_{name}"] = {"first": runs[0], "again": runs[1]}
    results["cache_mb_on_disk_after_training"] = du_mb(bench.cache)

    attributes = bench.cli("info", "--data-root", str(small), "--attributes", "all", name="attributes_all", check=False)
    results["attributes_all"] = {"exit": attributes["exit"], "last_line": attributes["output"].strip().splitlines()[-1]}
    rule = bench.python(CACHE_RULE, "cache_rule")
    results["cache_location"] = rule["json"]

    print("evaluate --split all (the run for the dashboard's 202,599-point curves)", flush=True)
    everything = bench.cli("evaluate", "--checkpoint", str(CHECKPOINT), "--data-root", str(root), "--split", "all",
                           "--out", str(out / "paper_rgb" / "all"), "--overwrite", "--device", "cpu", "--no-progress",
                           name="evaluate_all")
    results["evaluate_all"] = {"seconds": everything["seconds"], "peak_rss_mb": everything["peak_rss_mb"],
                               "peak_heap_mb": everything["peak_heap_mb"],
                               "cache_mb_on_disk": du_mb(bench.cache), "load_1min": everything["load_1min"]}


def start_dashboard(bench: Bench, workspace: Path, port: int, cache: Path, extra: list[str], log: Path
                    ) -> subprocess.Popen:
    env = bench.env(CELEBA_WORKSPACE=str(workspace), CELEBA_MODEL_CACHE=str(cache))
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(bench.code / "dashboard" / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--", *extra],
        cwd=bench.code, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def stop_dashboard(process: subprocess.Popen) -> None:
    process.terminate()  # our own server, by its PID
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _run_shown(page) -> str:  # noqa: ANN001 - a playwright Page
    """The run the sidebar's Run selector shows."""
    return page.get_by_test_id("stSidebar").get_by_role("combobox", name="Run", exact=True).input_value()


def first_page(bench: Bench, browser, workspace: Path, cache: Path, extra: list[str], name: str) -> dict:
    """Seconds from starting the server to the Overview's numbers in Chromium, and the run it opened on."""
    from dashboard.server import free_port

    port = free_port()
    started = time.perf_counter()
    process = start_dashboard(bench, workspace, port, cache, extra, bench.work / f"{name}.log")
    try:
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.set_default_timeout(300_000)
        while True:
            try:
                page.goto(f"http://127.0.0.1:{port}")
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if process.poll() is not None:
                    raise SystemExit(f"the dashboard stopped: {(bench.work / f'{name}.log').read_text()[-2000:]}")
                time.sleep(0.1)
        page.get_by_text("Macro precision").first.wait_for()
        seconds = time.perf_counter() - started
        run = _run_shown(page)
        page.close()
    finally:
        stop_dashboard(process)
    print(f"  {name}: first page in {seconds:.1f} s, opened on {run.strip()!r}", flush=True)
    return {"seconds": round(seconds, 2), "run": run.strip()}


def slider_bytes(bench: Bench, browser, cache: Path) -> dict:
    """Bytes the server sends per move of the shown attribute's slider on the Thresholds page."""
    from dashboard.server import free_port

    workspace = bench.work / "workspace"
    port = free_port()
    process = start_dashboard(bench, workspace, port, cache, [], bench.work / "dashboard_slider.log")
    received: list[int] = []
    try:
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.set_default_timeout(300_000)
        page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: received.append(
            len(frame) if isinstance(frame, (bytes, str)) else 0)))
        for _ in range(600):
            try:
                page.goto(f"http://127.0.0.1:{port}")
                break
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.1)
        page.get_by_text("Macro precision").first.wait_for()
        run = _run_shown(page)
        page.get_by_test_id("stSidebarNav").get_by_text("Thresholds", exact=True).click()
        page.locator(".js-plotly-plot").first.wait_for()
        page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for()
        page.wait_for_timeout(1500)
        shown = page.get_by_role("combobox", name="Precision-recall curve of", exact=True).input_value().strip()
        slider = page.get_by_test_id("stSlider").filter(has_text=shown).get_by_role("slider").first
        moves = []
        for _ in range(3):
            slider.focus()
            before = len(received)
            t0 = time.perf_counter()
            page.keyboard.press("ArrowRight")
            page.wait_for_timeout(300)
            page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for()
            seconds = time.perf_counter() - t0
            page.wait_for_timeout(1000)  # late frames of the same rerun
            moves.append({"bytes": sum(received[before:]), "seconds_until_done": round(seconds, 2)})
        page.close()
    finally:
        stop_dashboard(process)
    result = {"run": run.strip(), "attribute": shown, "moves": moves,
              "mean_bytes": round(sum(m["bytes"] for m in moves) / len(moves))}
    print(f"  slider moves on {result['run']!r} ({shown}): {result['mean_bytes']:,} bytes per move", flush=True)
    return result


def measure_dashboard(bench: Bench, root: Path) -> None:
    from dashboard.server import chromium

    results = bench.results
    with chromium() as browser, tempfile.TemporaryDirectory() as folder:
        clone = Path(folder) / "clone"
        shutil.copytree(REPO / "checkpoints", clone / "checkpoints")
        # A fresh clone's first start: its own empty cache folder, as on a new machine.
        results["dashboard_first_page_fresh_clone"] = first_page(bench, browser, clone, Path(folder) / "cache", [],
                                                                 "dashboard_fresh")
        # A workspace with the shipped runs and runs of the full-size folder, started on that folder.
        mixed = Path(folder) / "mixed"
        shutil.copytree(REPO / "checkpoints", mixed / "checkpoints", ignore=shutil.ignore_patterns("demo"))
        shutil.copytree(bench.work / "workspace" / "runs", mixed / "runs")
        results["dashboard_with_data_root"] = first_page(bench, browser, mixed, bench.cache,
                                                         ["--data-root", str(root)], "dashboard_data_root")
        results["dashboard_slider"] = slider_bytes(bench, browser, bench.cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO / "data" / "full_size", help="the full-size demo folder")
    parser.add_argument("--small-root", type=Path, default=REPO / "data" / "full_size_20k",
                        help="the 20,000-image demo folder for comparison")
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout of the package to measure")
    parser.add_argument("--label", default="after", help="name of this measurement (results file and work folder)")
    parser.add_argument("--results", type=Path, default=REPO / "data" / "full_size_bench")
    parser.add_argument("--skip-cli", action="store_true", help="reuse the work folder's runs, measure the dashboard")
    parser.add_argument("--skip-dashboard", action="store_true")
    args = parser.parse_args()
    ensure_demo(args.root, FULL_SIZE)
    ensure_demo(args.small_root, SMALL_SIZE)
    work = args.results / args.label
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(args.code.resolve(), work, work / "commands.log")
    out = args.results / f"{args.label}.json"
    if out.is_file():
        bench.results = json.loads(out.read_text())
    bench.results.update({"code": str(bench.code), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M")})
    if not args.skip_cli:
        measure_cli(bench, args.root, args.small_root)
        out.write_text(json.dumps(bench.results, indent=2))
    if not args.skip_dashboard:
        print("Dashboard in Chromium", flush=True)
        measure_dashboard(bench, args.root)
    out.write_text(json.dumps(bench.results, indent=2))
    print(json.dumps(bench.results, indent=2))
    print(f"Wrote {out}")


if __name__ == "__main__":
    main()
