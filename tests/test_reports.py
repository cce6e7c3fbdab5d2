"""The experiments and seed-spread tables (model card and Ablations page) from a results summary."""

from __future__ import annotations

import numpy as np
import pytest

from celeba_model.analysis.reports import experiment_rows, seed_spread


def _figures(macro_f1: float, recalls: dict[str, float]) -> dict:
    return {
        "summary": {"macro_f1": macro_f1, "macro_accuracy": 0.9, "paper_f": macro_f1 + 0.01},
        "macro_f1_ci": [macro_f1 - 0.03, macro_f1 + 0.02],
        "per_attribute": {a: {"precision": 0.8, "recall": r, "f1": r - 0.05, "accuracy": 0.9} for a, r in recalls.items()},
    }


def _result(f: float, gain: float | None = None) -> dict:
    recalls = {"Bangs": 0.9, "Gray_Hair": 0.4 + f / 10}
    result = {
        "description": "a change", "train_seconds": 120.0, "best_val_macro_f1": f + 0.05,
        "test": {"0.5": _figures(f, recalls), "0.5-flip": _figures(f + 0.02, recalls),
                 "tuned": _figures(f - 0.01, recalls), "tuned-flip": _figures(f + 0.01, recalls)},
    }
    if gain is not None:
        result["tuning_check"] = {"mean_gain": gain}
    return result


def test_experiment_rows_report_the_shipped_operating_point_and_the_weakest_recall():
    rows = experiment_rows({"base": _result(0.70, gain=-0.02), "better": _result(0.80)})
    assert [r["experiment"] for r in rows] == ["base", "better"]
    base = rows[0]
    assert base["train minutes"] == pytest.approx(2.0)
    assert base["macro-F1 @0.5"] == pytest.approx(0.70) and base["macro-F1 @0.5+flip"] == pytest.approx(0.72)
    assert base["95% CI @0.5+flip"] == pytest.approx([0.69, 0.74])
    assert base["lowest recall @0.5+flip"] == "Gray_Hair 0.47"
    assert base["F1 @0.5+flip"] == pytest.approx({"Bangs": 0.85, "Gray_Hair": 0.42})
    assert base["tuning gain on held-out val"] == pytest.approx(-0.02)
    assert np.isnan(rows[1]["tuning gain on held-out val"])  # an older summary without the check


def test_seed_spread_groups_seeds_by_architecture_beside_the_paper():
    results = {f"ablation_paper_s{s}": _result(f) for s, f in enumerate((0.70, 0.72, 0.74))}
    results["ablation_no_conv3_s0"] = _result(0.65)
    results["cnn4"] = _result(0.9)  # not an ablation run: left out
    rows = {r["arch"]: r for r in seed_spread(results)}
    assert set(rows) == {"paper", "no_conv3"}
    paper = rows["paper"]
    assert paper["seeds"] == 3
    assert paper["F mean"] == pytest.approx(0.73) and paper["F std"] == pytest.approx(0.02)
    assert (paper["F min"], paper["F max"]) == pytest.approx((0.71, 0.75))
    assert paper["published F"] == pytest.approx(0.668)
    assert rows["no_conv3"]["F std"] == 0.0  # one seed has no spread to report
