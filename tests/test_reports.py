"""The experiments and seed-spread tables (model card and Ablations page) from a results summary."""

from __future__ import annotations

import numpy as np
import pytest

from celeba_model.analysis.reports import experiment_rows, seed_spread
from celeba_model.models.summary import ModelRecord, OperatingPoint, TuningCheck


def _figures(macro_f1: float, recalls: dict[str, float]) -> OperatingPoint:
    return OperatingPoint(
        summary={"macro_f1": macro_f1, "macro_accuracy": 0.9, "paper_f": macro_f1 + 0.01},
        summary_ci={"macro_f1": [macro_f1 - 0.03, macro_f1 + 0.02]},
        per_attribute={a: {"precision": 0.8, "recall": r, "f1": r - 0.05, "accuracy": 0.9} for a, r in recalls.items()},
    )


def _result(f: float, gain: float | None = None, name: str = "run") -> ModelRecord:
    recalls = {"Bangs": 0.9, "Gray_Hair": 0.4 + f / 10}
    return ModelRecord(
        name=name, checkpoint=None, arch="paper", options={}, best_epoch=1, best_val_macro_f1=f + 0.05,
        description="a change", train_seconds=120.0,
        test={"0.5": _figures(f, recalls), "0.5-flip": _figures(f + 0.02, recalls),
              "tuned": _figures(f - 0.01, recalls), "tuned-flip": _figures(f + 0.01, recalls)},
        tuning_check=None if gain is None else TuningCheck(mean_gain=gain, std_gain=0.01, share_improved=0.3,
                                                             comparisons=100),
    )


def test_experiment_rows_report_the_shipped_operating_point_and_the_weakest_recall():
    rows = experiment_rows([_result(0.70, gain=-0.02, name="base"), _result(0.80, name="better")])
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
    results = [_result(f, name=f"ablation_paper_s{s}") for s, f in enumerate((0.70, 0.72, 0.74))]
    results.append(_result(0.65, name="ablation_no_conv3_s0"))
    results.append(_result(0.9, name="cnn4"))  # not an ablation run: left out
    rows = {r["arch"]: r for r in seed_spread(results)}
    assert set(rows) == {"paper", "no_conv3"}
    paper = rows["paper"]
    assert paper["seeds"] == 3
    assert paper["F mean"] == pytest.approx(0.73) and paper["F std"] == pytest.approx(0.02)
    assert (paper["F min"], paper["F max"]) == pytest.approx((0.71, 0.75))
    assert paper["published F"] == pytest.approx(0.668)
    assert rows["no_conv3"]["F std"] == 0.0  # one seed has no spread to report


def test_the_displayed_table_holds_each_attribute_with_its_intervals_and_calibration():
    from celeba_model.analysis.reports import attribute_report, report_table
    from celeba_model.evaluation.predictions import Predictions

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(200, 3)).astype(np.uint8)
    scores = np.clip(labels * 0.6 + rng.random((200, 3)) * 0.5, 0, 1).astype(np.float32)
    predictions = Predictions(scores, labels, np.arange(200).astype(str), np.arange(200).astype(str),
                              np.arange(200) // 4, {"attributes": ["Bangs", "Male", "Young"], "split": "test"})
    report = attribute_report(predictions, np.full(3, 0.5), n_boot=20)
    table = report_table(report)
    assert table["attribute"].tolist() == ["Bangs", "Male", "Young"]
    row, first = table.iloc[0], report["attributes"][0]
    assert row["TP/positives"] == f"{first['tp']}/{first['positives']}"
    assert row["F1 95% CI"] == f"{first['f1_ci'][0]:.2f}-{first['f1_ci'][1]:.2f}"
    assert row["ECE"] == pytest.approx(first["ece"]) and row["F1"] == pytest.approx(first["f1"])
