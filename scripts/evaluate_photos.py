"""Score checkpoints on real, unaligned photos through the upload path, beside their aligned versions.

    python scripts/evaluate_photos.py --photos ../shared/celeba_wild/faces --data-root ../shared/celeba \
        --checkpoint checkpoints/celeba/attrnet.safetensors [--checkpoint ...] [--json out.json]

Every photo goes through what the Upload page does: decode (EXIF, any mode), detect the face with
mediapipe, reframe it to the training crop, predict (with the checkpoint's flip averaging and tuned
thresholds). Photos are matched by file name to the labels of the data root (the loose crops of
celeba_wild are CelebA test images), and the aligned versions of the same images are scored with the
fixed training crop for comparison. Prints macro-F1, mean accuracy and per-attribute recall and F1
with 95% bootstrap intervals over people, and the time per photo.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from celeba_model.data.images import open_image
from celeba_model.data.index import load_index
from celeba_model.metrics.bootstrap import bootstrap_ci
from celeba_model.metrics.counts import attribute_metrics, summarize
from celeba_model.models.thresholds import default_thresholds
from celeba_model.photo.detection import FaceDetector
from celeba_model.photo.pipeline import open_photo, predict_photo
from celeba_model.photo.predictor import Predictor


def score(labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray, groups: np.ndarray, attributes: list[str]) -> dict:
    per = attribute_metrics(labels, probs, thresholds)
    summary = summarize(per)
    ci = bootstrap_ci(labels, probs, thresholds, groups=groups, n_boot=1000)
    return {
        "macro_f1": float(summary["macro_f1"]), "macro_f1_ci": [float(v) for v in ci["macro_f1"]],
        "mean_accuracy": float(summary["macro_accuracy"]),
        "per_attribute": {a: {"recall": float(per["recall"][i]), "recall_ci": [float(v) for v in ci["recall"][i]],
                              "f1": float(per["f1"][i]), "f1_ci": [float(v) for v in ci["f1"][i]],
                              "positives": int(per["support"][i])}
                          for i, a in enumerate(attributes)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", required=True, help="folder of photos named like CelebA images")
    parser.add_argument("--data-root", dest="data_roots", action="append", required=True)
    parser.add_argument("--checkpoint", dest="checkpoints", action="append", required=True)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    index = load_index(args.data_roots)
    rows = {name: i for i, name in enumerate(index.files)}
    photos = sorted(p for p in Path(args.photos).iterdir() if p.name in rows)
    picked = np.array([rows[p.name] for p in photos])
    detector = FaceDetector()
    results = {}
    for checkpoint in args.checkpoints:
        predictor = Predictor(checkpoint)
        thresholds = default_thresholds(predictor.checkpoint.path, predictor.attributes)[0]
        labels = index.attribute_labels(predictor.attributes, picked)
        groups = index.identity[picked]
        photo_probs, aligned_probs, seconds, faces = [], [], [], 0
        for photo, row in zip(photos, picked):
            started = time.perf_counter()
            result = predict_photo(open_photo(photo), predictor, detector, whole_image_if_no_face=True)
            seconds.append(time.perf_counter() - started)
            faces += result.face is not None
            photo_probs.append(result.prediction.probabilities)
            aligned_probs.append(predictor.predict(open_image(index.paths[row])).probabilities)
        entry = {
            "photos": len(photos), "people": int(len(np.unique(groups))), "faces_found": faces,
            "ms_per_photo_median": 1000 * float(np.median(seconds)), "ms_per_photo_p95": 1000 * float(np.percentile(seconds, 95)),
            "flip_tta": predictor.flip_tta,
            "photos_upload_path": score(labels, np.array(photo_probs), thresholds, groups, predictor.attributes),
            "aligned_fixed_crop": score(labels, np.array(aligned_probs), thresholds, groups, predictor.attributes),
        }
        results[str(checkpoint)] = entry
        for name in ("photos_upload_path", "aligned_fixed_crop"):
            s = entry[name]
            low = min(s["per_attribute"], key=lambda a: s["per_attribute"][a]["recall"])
            print(f"{checkpoint} {name}: macro-F1 {s['macro_f1']:.3f} [{s['macro_f1_ci'][0]:.3f}-{s['macro_f1_ci'][1]:.3f}], "
                  f"mean accuracy {s['mean_accuracy']:.3f}, lowest recall {low} {s['per_attribute'][low]['recall']:.2f}")
        print(f"  {len(photos)} photos of {entry['people']} people, faces found in {faces}; "
              f"{entry['ms_per_photo_median']:.1f} ms per photo (p95 {entry['ms_per_photo_p95']:.1f})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
