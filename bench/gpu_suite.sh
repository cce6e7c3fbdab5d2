#!/usr/bin/env bash
# The GPU suite in one call: bench/gpu_suite.py's steps, figures in gpu_suite.json and gpu_suite.md.
#
#   bash bench/gpu_suite.sh                        # on a CUDA machine: full size, inside a 420 s budget
#   bash bench/gpu_suite.sh --device cpu --small   # the same code paths on 600 images (tests/test_gpu_suite.py)
#
# Results go to $OUT when it is set (the device tool's folder that comes back), else artifacts/gpu_suite/.
# Python: $PYTHON, else the checkout's .venv, else python3 (on the lent GPU machines, python3 already holds
# torch, numpy, pillow, safetensors, tqdm, scikit-learn and pandas; nothing can be installed there).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

python=${PYTHON:-}
if [ -z "$python" ]; then
    if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

# What the package imports on the paths the suite runs; report all that is missing at once.
missing=$("$python" -c '
import importlib.util
needed = ["torch", "numpy", "PIL", "safetensors", "tqdm", "sklearn", "pandas"]
print(" ".join(n for n in needed if importlib.util.find_spec(n) is None))
') || { echo "gpu_suite: $python does not run" >&2; exit 3; }
if [ -n "$missing" ]; then
    echo "gpu_suite: $python lacks: $missing. Carry them as wheels (see docs/speed.md, GPU suite)." >&2
    exit 3
fi

out_dir=${OUT:-$repo/artifacts/gpu_suite}
prev=""
for arg in "$@"; do  # an --out-dir given on the command line takes the log too
    if [ "$prev" = "--out-dir" ]; then out_dir=$arg; fi
    prev=$arg
done
mkdir -p "$out_dir"
# The suite keeps to its own budget (--budget-s, 420 s); this outer limit only stops a step stuck in native code.
timeout --kill-after=10 "${GPU_SUITE_HARD_LIMIT_S:-460}" "$python" bench/gpu_suite.py --out-dir "$out_dir" "$@" 2>&1 \
    | tee "$out_dir/gpu_suite.log"
