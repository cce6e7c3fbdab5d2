"""The shipped model-selection figures (checkpoints/celeba/photo_selection.json) describe what ships.

The model card's experiments table is printed from that file by ``scripts/select_on_photos.py
--table`` on a clone without ``runs/``; if the file and the shipped default drifted apart, the card
would report a model nobody gets.
"""
from __future__ import annotations

import importlib.util
import json

import pytest

from celeba_model.models.checkpoint import load_checkpoint
from celeba_model.workspace import REPO_ROOT

SHIPPED = REPO_ROOT / "checkpoints" / "celeba"


def _script():
    spec = importlib.util.spec_from_file_location("select_on_photos", REPO_ROOT / "scripts" / "select_on_photos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return json.loads((SHIPPED / "photo_selection.json").read_text())["models"]


def test_the_default_is_among_the_shipped_candidates_with_its_figures(records):
    choice = json.loads((SHIPPED / "default.json").read_text())
    name = choice["checkpoint"].removesuffix(".safetensors")
    record = next((r for r in records if r["name"] == name), None)
    assert record is not None, f"the default {name} has no figures in photo_selection.json"
    assert record["at_0.5"]["macro_f1"] == pytest.approx(choice["macro_f1_at_0.5"])
    # The shipped thresholds are the ones tuned on the photos (the figures at "the shipped thresholds").
    shipped = load_checkpoint(SHIPPED / choice["checkpoint"])
    assert shipped.thresholds == pytest.approx(record["tuned_thresholds"])


def test_every_candidate_has_an_interval_and_per_attribute_figures(records):
    assert len({r["name"] for r in records}) == len(records)
    for r in records:
        low, high = r["at_0.5"]["macro_f1_ci"]
        assert low <= r["at_0.5"]["macro_f1"] <= high, r["name"]
        assert len(r["per_attribute_0.5"]) == 10, r["name"]
        assert r["images"] == 5763 and r["people"] == 326, r["name"]


def test_table_prints_every_candidate_from_the_shipped_file(records, tmp_path, monkeypatch, capsys):
    script = _script()
    monkeypatch.setattr(script, "OUT", tmp_path)  # a clone without runs/: the shipped figures
    monkeypatch.setattr("sys.argv", ["select_on_photos.py", "--table"])
    script.main()
    table = capsys.readouterr().out
    for r in records:
        assert f"| {r['name']} | {r['what']} |" in table
    attrnet = next(r for r in records if r["name"] == "attrnet")
    assert f"{attrnet['at_0.5']['macro_f1']:.3f} [" in table


def test_publish_without_figures_says_what_is_missing(tmp_path, monkeypatch, capsys):
    script = _script()
    monkeypatch.setattr(script, "OUT", tmp_path)
    monkeypatch.setattr(script, "SHIPPED", tmp_path / "shipped")  # never touch the real shipped file
    monkeypatch.setattr("sys.argv", ["select_on_photos.py", "--publish"])
    with pytest.raises(SystemExit):
        script.main()
    assert "summary.json is missing" in capsys.readouterr().err
