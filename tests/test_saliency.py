"""Grad-CAM: it points at the features that raise an attribute's score, for every architecture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from celeba_model.data.images import open_image
from celeba_model.data.index import load_index
from celeba_model.models.registry import create_model, model_spec
from celeba_model.photo.predictor import Predictor
from celeba_model.photo.saliency import band_shares, grad_cam, overlay

REPO = Path(__file__).resolve().parents[1]


class OneFeature(nn.Module):
    """logit = sign * mean(ReLU(x)): one feature map, globally pooled."""

    def __init__(self, sign: float) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU())
        self.head = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            self.features[0].weight.fill_(1.0)
            self.head.weight.fill_(sign)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def _patch_image():
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 2:10, 3:11] = 1.0
    return x


def test_map_lights_up_the_evidence_for_the_attribute():
    cam = grad_cam(OneFeature(+1.0), _patch_image(), 0)
    assert cam.shape == (32, 32) and cam.max() == pytest.approx(1.0)
    assert cam[2:10, 3:11].mean() > 0.9 and cam[16:, 16:].max() < 0.05


def test_evidence_against_the_attribute_gives_an_empty_map():
    assert grad_cam(OneFeature(-1.0), _patch_image(), 0).max() == 0.0


@pytest.mark.parametrize("arch", ["paper", "no_conv3", "no_conv3_no_fc1", "cnn4", "attrnet"])
def test_every_architecture_can_be_explained(arch):
    model = create_model(model_spec(arch, 3, 10, 64)).eval()
    cam = grad_cam(model, torch.randn(1, 3, 64, 64), attribute=3)
    assert cam.shape == (64, 64) and 0.0 <= cam.min() and cam.max() <= 1.0
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def test_an_ensembles_map_is_the_mean_of_its_members_maps():
    torch.manual_seed(0)
    members = [{"arch": "cnn4", "config": {}}, {"arch": "paper", "config": {}}]
    ensemble = create_model(model_spec("ensemble", 3, 10, 64, {"members": members})).eval()
    x = torch.randn(1, 3, 64, 64)
    cam = grad_cam(ensemble, x, attribute=2)
    expected = np.mean([grad_cam(m, x, attribute=2) for m in ensemble.members], axis=0)
    assert np.allclose(cam, expected / expected.max(), atol=1e-6) and cam.max() == pytest.approx(1.0)
    assert all(p.grad is None for p in ensemble.parameters())


def test_overlay_keeps_the_face_visible():
    from PIL import Image

    face = Image.new("RGB", (64, 64), (200, 150, 120))
    out = overlay(face, np.zeros((64, 64)), size=128)
    assert out.size == (128, 128)


def test_demo_model_looks_at_the_eyes_for_eyeglasses(demo_root):
    predictor = Predictor(REPO / "checkpoints" / "demo" / "paper_rgb.safetensors")
    index = load_index([demo_root])
    rows = index.split_indices("all")
    with_glasses = rows[index.attribute_labels(["Eyeglasses"], rows)[:, 0] == 1][:12]
    cams = np.mean([predictor.explain(open_image(index.paths[i]), "Eyeglasses") for i in with_glasses], axis=0)
    # In the 64x64 crop the eyes sit at row ~31 and the mouth at row ~49.
    assert cams[26:36].mean() > cams[44:54].mean()


def test_band_shares_split_a_map_into_top_middle_and_bottom_thirds():
    heatmap = np.zeros((64, 64))
    heatmap[50:60, 10:20] = 1.0  # all of it in the bottom third (rows 43-63)
    assert band_shares(heatmap) == pytest.approx([0.0, 0.0, 1.0])
    heatmap[0:5, :] = 1.0  # 320 more in the top third beside the 100 below
    assert band_shares(heatmap) == pytest.approx([320 / 420, 0.0, 100 / 420])
    assert band_shares(np.zeros((64, 64))) == pytest.approx([0.0, 0.0, 0.0])  # an empty map has no shares
