"""Ensemble checkpoints: one file whose prediction is the mean of its members' probabilities, usable by
evaluation and prediction like any checkpoint, refused when the members do not share their input."""

from __future__ import annotations

import pytest
import torch

from celeba_model.cli import main
from celeba_model.data.index import load_index
from celeba_model.errors import ConfigError
from celeba_model.evaluation.evaluate import EvalConfig, evaluate_checkpoint
from celeba_model.models.checkpoint import load_checkpoint, save_checkpoint
from celeba_model.models.ensemble import build_ensemble


def test_an_ensemble_predicts_the_mean_probability_and_evaluates_like_any_checkpoint(trained_runs, demo_root, tmp_path):
    members = [trained_runs[arch] / "best.safetensors" for arch in ("paper", "no_conv3", "no_conv3_no_fc1")]
    assert main(["ensemble", *map(str, members), "--out", str(tmp_path / "ens.safetensors")]) == 0
    ensemble = load_checkpoint(tmp_path / "ens.safetensors")
    assert ensemble.meta["model"]["arch"] == "ensemble" and len(ensemble.meta["ensemble"]) == 3
    models = [load_checkpoint(m).model.eval() for m in members]
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        expected = torch.stack([torch.sigmoid(m(x)) for m in models]).mean(dim=0)
        assert torch.allclose(torch.sigmoid(ensemble.model.eval()(x)), expected, atol=1e-6)

    run = evaluate_checkpoint(tmp_path / "ens.safetensors", load_index([demo_root]), tmp_path / "run",
                              EvalConfig(split="val", cache_dir=str(tmp_path / "cache"), progress=False))
    assert run.probabilities.shape == (len(run), len(ensemble.attributes))
    assert main(["ensemble", *map(str, members), "--out", str(tmp_path / "ens.safetensors")]) != 0  # exists


def test_members_must_share_input_and_attributes(trained_runs, tmp_path):
    member = load_checkpoint(trained_runs["paper"] / "best.safetensors")
    gray = {**member.meta, "preprocess": {**member.meta["preprocess"], "color": "gray"}}
    fewer = {**member.meta, "attributes": member.attributes[:9],
             "model": {**member.meta["model"], "num_outputs": 9}}
    save_checkpoint(tmp_path / "gray.safetensors", member.model, gray)
    with pytest.raises(ConfigError, match="members must share their input"):
        build_ensemble([trained_runs["paper"] / "best.safetensors", tmp_path / "gray.safetensors"], tmp_path / "e")
    head = member.model.classifier[-1]
    head.weight.data, head.bias.data = head.weight.data[:9], head.bias.data[:9]
    head.out_features = 9
    save_checkpoint(tmp_path / "fewer.safetensors", member.model, fewer)
    with pytest.raises(ConfigError, match="predicts"):
        build_ensemble([trained_runs["paper"] / "best.safetensors", tmp_path / "fewer.safetensors"], tmp_path / "e")
    with pytest.raises(ConfigError, match="at least two"):
        build_ensemble([trained_runs["paper"] / "best.safetensors"], tmp_path / "e")
    assert not (tmp_path / "e").exists()
