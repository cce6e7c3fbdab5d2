"""Contact sheets of a run's cleanlab label suspects, for auditing labels outside the dashboard.

    python scripts/label_audit_sheets.py --run checkpoints/celeba/runs/attrnet/test \
        --attribute Gray_Hair --top 40 --out runs/label_audit

Writes OUT/<run>-<attribute>.png (numbered tiles: file, dataset label, probability) and a CSV of the
same suspects, to record decisions with `celeba_model.data.corrections.record_decisions` or in the
Labels page. Suspects are cleanlab's flagged labels, then (with --top larger than that) the next
lowest label-quality ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from celeba_model.analysis.label_issues import find_label_issues, suspects  # noqa: E402
from celeba_model.data.images import open_image  # noqa: E402
from celeba_model.evaluation.predictions import load_predictions  # noqa: E402

TILE = 150
COLUMNS = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True)
    parser.add_argument("--attribute", required=True)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--data-root", default=None, help="where to find images the artifact's paths miss")
    parser.add_argument("--out", default="runs/label_audit")
    args = parser.parse_args()

    predictions = load_predictions(args.run)
    table = suspects(predictions, find_label_issues(predictions), args.attribute, flagged_only=False).head(args.top)
    rows = (len(table) + COLUMNS - 1) // COLUMNS
    sheet = Image.new("RGB", (COLUMNS * TILE, max(rows, 1) * (TILE + 40)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, item in enumerate(table.itertuples(index=False)):
        x, y = (k % COLUMNS) * TILE, (k // COLUMNS) * (TILE + 40)
        path = predictions.image_path(int(item.row), data_root=args.data_root)
        if path is not None:
            image = open_image(path).convert("RGB")
            image.thumbnail((TILE, TILE))
            sheet.paste(image, (x + (TILE - image.width) // 2, y))
        flag = "*" if item.flagged else ""
        draw.text((x + 2, y + TILE + 2), f"{k}{flag} {item.file}", fill="black")
        draw.text((x + 2, y + TILE + 16), f"label {item.label}  p={item.probability:.2f}", fill="black")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{predictions.name.replace('/', '-')}-{args.attribute}"
    sheet.save(out / f"{stem}.png")
    table.to_csv(out / f"{stem}.csv", index=False)
    print(f"{out / stem}.png: {len(table)} suspects, {int(table['flagged'].sum())} flagged by cleanlab")


if __name__ == "__main__":
    main()
