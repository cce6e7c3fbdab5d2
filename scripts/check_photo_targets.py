"""The photo-path targets, measured as a user meets the model: `predict` over real photos with the
default checkpoint at its shipped thresholds, its CSV scored against the photos' CelebA labels.

    python scripts/check_photo_targets.py --photos ../shared/celeba_wild_val/faces --labels-root ../shared/celeba

Runs `python -m celeba_model predict PHOTOS --csv ...` (a subprocess: exactly the command), then prints
macro-F1 with a 95% interval over people, mean accuracy, each attribute's recall and F1, and each
target (macro-F1 >= .85, mean accuracy >= 94%, no recall under .6) as met or missed. Upload latency
is bench/bench_upload.py's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from celeba_model.metrics.bootstrap import bootstrap_ci
from celeba_model.metrics.counts import attribute_metrics, summarize
from celeba_model.photo.evaluate import photo_labels

TARGETS = {"macro_f1": 0.85, "mean_accuracy": 0.94, "lowest_recall": 0.6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", required=True)
    parser.add_argument("--labels-root", required=True)
    parser.add_argument("--checkpoint", help="default: predict's own default (the Upload page's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "predict.csv"
        command = [sys.executable, "-m", "celeba_model", "predict", args.photos, "--csv", str(csv), "-v"]
        command += ["--checkpoint", args.checkpoint] if args.checkpoint else []
        print("$ " + " ".join(command[1:]), flush=True)
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        print("\n".join(line for line in done.stderr.splitlines() if "checkpoint" in line.lower()
                        or "threshold" in line.lower() or "image(s)" in line))
        table = pd.read_csv(csv)
    failed = table["error"].notna()
    attributes = [c[: -len("_present")] for c in table.columns if c.endswith("_present")]
    table = table[~failed]
    files = [Path(p).name for p in table["image"]]
    labels, people, missing = photo_labels(args.labels_root, files)
    keep = np.array([f not in set(missing) for f in files])
    from celeba_model.attributes import CELEBA_ATTRIBUTES

    columns = [CELEBA_ATTRIBUTES.index(a) for a in attributes]
    truth = labels[keep][:, columns]
    decisions = table[[f"{a}_present" for a in attributes]].to_numpy()[keep].astype(float)
    # Decisions are 0/1: scored at 0.5 they are exactly the shipped thresholds' decisions.
    per = attribute_metrics(truth, decisions, 0.5)
    summary = summarize(per)
    ci = bootstrap_ci(truth, decisions, 0.5, groups=people[keep], n_boot=1000)
    print(f"{int(keep.sum()):,} photos of {len(np.unique(people[keep]))} people ({int(failed.sum())} failed)")
    for i, a in enumerate(attributes):
        print(f"  {a:11s} precision {per['precision'][i]:.3f}  recall {per['recall'][i]:.3f}  F1 {per['f1'][i]:.3f}  "
              f"accuracy {per['accuracy'][i]:.3f}")
    lowest = int(np.argmin(per["recall"]))
    figures = {"macro_f1": summary["macro_f1"], "mean_accuracy": summary["macro_accuracy"],
               "lowest_recall": float(per["recall"][lowest])}
    print(f"macro-F1 {figures['macro_f1']:.3f} [{ci['macro_f1'][0]:.3f}-{ci['macro_f1'][1]:.3f}], "
          f"mean accuracy {100 * figures['mean_accuracy']:.1f}%, lowest recall {attributes[lowest]} "
          f"{figures['lowest_recall']:.3f}")
    for name, target in TARGETS.items():
        print(f"  target {name} >= {target}: {'met' if figures[name] >= target else 'MISSED'} ({figures[name]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
