"""Where does the model look? Grad-CAM mass per face region and attribute, over aligned images.

    python scripts/saliency_check.py --data-root ../shared/celeba --checkpoint checkpoints/celeba/attrnet.safetensors \
        [--split val] [--images 200]

For each attribute, the share of the Grad-CAM map that falls in three horizontal bands of the
training crop: the top third (hair, forehead, bangs), the middle (eyes, glasses, nose, cheeks) and
the bottom third (mouth, chin). A model that reads Blond_Hair from the hair and Smiling from the
mouth puts most of those maps in the top and the bottom band respectively; maps spread evenly would
say it relies on something else (background, overall tone).
"""

from __future__ import annotations

import argparse

import numpy as np

from celeba_model.data.images import open_image
from celeba_model.data.index import load_index
from celeba_model.photo.predictor import Predictor
from celeba_model.photo.saliency import band_shares

BANDS = ("top third", "middle third", "bottom third")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", dest="data_roots", action="append", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    predictor = Predictor(args.checkpoint)
    index = load_index(args.data_roots)
    rows = index.split_indices(args.split)[: args.images]
    labels = index.attribute_labels(predictor.attributes, rows)
    print(f"{args.checkpoint}: Grad-CAM over {len(rows)} {args.split} images, maps of images where the attribute "
          "is present")
    print(f"| attribute | images | {' | '.join(BANDS)} |")
    print("|---|---|---|---|---|")
    images = {row: open_image(index.paths[row]) for row in rows}
    for a, attribute in enumerate(predictor.attributes):
        present = [row for row, label in zip(rows, labels[:, a]) if label]
        if not present:
            continue
        shares = np.mean([band_shares(predictor.explain(images[row], attribute)) for row in present], axis=0)
        print(f"| {attribute} | {len(present)} | " + " | ".join(f"{s:.0%}" for s in shares) + " |")


if __name__ == "__main__":
    main()
