"""The paper model, its ablations and the registry."""

from __future__ import annotations

import pytest
import torch

from celeba_model.errors import ConfigError
from celeba_model.models import PaperCNN, available_models, count_parameters, create_model, model_spec


@pytest.mark.parametrize("arch", ["paper", "no_conv3", "no_conv3_no_fc1", "cnn4", "attrnet"])
@pytest.mark.parametrize("channels", [1, 3])
def test_each_variant_maps_a_batch_to_one_logit_per_attribute(arch, channels):
    model = create_model(model_spec(arch, channels, 10, 64)).eval()
    out = model(torch.randn(5, channels, 64, 64))
    assert out.shape == (5, 10)
    assert torch.isfinite(out).all()


def test_ablations_remove_the_layers_they_name():
    paper, no3, no3_nofc1 = (create_model(model_spec(a, 1, 10, 64)) for a in ("paper", "no_conv3", "no_conv3_no_fc1"))
    convs = lambda m: [l for l in m.features if isinstance(l, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]  # noqa: E731
    linears = lambda m: [l for l in m.classifier if isinstance(l, torch.nn.Linear)]  # noqa: E731
    assert (len(convs(paper)), len(linears(paper))) == (4, 2)
    assert (len(convs(no3)), len(linears(no3))) == (3, 2)
    assert (len(convs(no3_nofc1)), len(linears(no3_nofc1))) == (3, 1)
    # Batch norm after every convolution; max pooling only after conv1.
    assert sum(isinstance(l, torch.nn.BatchNorm2d) for l in paper.features) == 4
    pools = [i for i, l in enumerate(paper.features) if isinstance(l, torch.nn.MaxPool2d)]
    assert pools == [3]


def test_parameter_counts_stay_small():
    counts = {a: count_parameters(create_model(model_spec(a, 1, 10, 64))) for a in ("paper", "no_conv3", "no_conv3_no_fc1")}
    assert counts == {"paper": 1_142_778, "no_conv3": 290_682, "no_conv3_no_fc1": 47_610}
    assert counts["paper"] * 4 < 5_000_000  # a few MB of float32 weights


def test_paper_model_down_then_up_samples():
    model = create_model(model_spec("paper", 1, 10, 64))
    sizes = []
    x = torch.randn(1, 1, 64, 64)
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, torch.nn.ReLU):
            sizes.append(x.shape[-1])
    assert sizes == [32, 8, 16, 32]  # conv1 (then max pool to 16), conv2 down; conv3, conv4 up


def test_registry_builds_by_name_and_validates_options():
    assert {"paper", "no_conv3", "no_conv3_no_fc1"} <= set(available_models())
    spec = model_spec("paper", 3, 4, 64, {"fc_hidden": 32})
    model = create_model(spec)
    assert isinstance(model, PaperCNN) and spec.config["fc_hidden"] == 32
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 4)
    with pytest.raises(ConfigError, match="Unknown architecture 'resnet9000'"):
        model_spec("resnet9000", 1, 10, 64)
    with pytest.raises(ConfigError, match="Unknown PaperCNNConfig option"):
        model_spec("paper", 1, 10, 64, {"depth": 3})
    with pytest.raises(ConfigError, match="divisible by 16"):
        create_model(model_spec("paper", 1, 10, 50))


def test_baseline_and_our_network_have_the_documented_shape():
    cnn4 = create_model(model_spec("cnn4", 3, 10, 64))
    convs = [m for m in cnn4.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256]
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in cnn4.features) == 4
    ours = create_model(model_spec("attrnet", 3, 10, 64))
    assert [c.out_channels for c in ours.features if isinstance(c, torch.nn.Conv2d)] == [32, 64, 128, 256, 384]
    assert ours.classifier.in_features == 2 * 384  # average and max pooling
    assert count_parameters(cnn4) == 391_466 and count_parameters(ours) == 1_282_090
    with pytest.raises(ConfigError, match="divisible by 32"):
        create_model(model_spec("attrnet", 3, 10, 48))
