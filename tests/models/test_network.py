"""The bare network: one MONAI constructor per rule-listed arch, torchvision's layout, head split."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pipeline.modelfile import NETWORK_KEYS
from pipeline.models.network import (
    CONSTRUCTORS,
    NetworkLayout,
    backbone_parameters,
    build_network,
    head_parameters,
    stem_shape,
)
from pipeline.rules import ARCHS


def test_every_arch_of_the_rules_has_a_constructor_and_no_other():
    assert tuple(CONSTRUCTORS) == ARCHS
    assert all(CONSTRUCTORS[arch].__name__ == arch for arch in ARCHS)


def test_the_layout_is_what_the_model_file_records():
    assert tuple(f.name for f in dataclasses.fields(NetworkLayout)) == NETWORK_KEYS


def test_stem_depth_settings_apply_in_3d_only():
    assert stem_shape(2, 3, 1, 2) == ((7, 7), (2, 2))
    assert stem_shape(3, 3, 1, 2) == ((7, 7, 3), (2, 2, 1))


def test_the_in_plane_stem_stride_applies_in_2d_and_3d():
    assert stem_shape(2, 7, 2, 1) == ((7, 7), (1, 1))
    assert stem_shape(3, 7, 1, 1) == ((7, 7, 7), (1, 1, 1))


@pytest.mark.parametrize(("shortcut", "bias"), [("B", False), ("B", True), ("A", False)])
def test_the_network_has_torchvision_s_stem_and_the_asked_shortcut(shortcut, bias):
    layout = NetworkLayout("resnet18", 3, 2, 5, (7, 7, 3), (2, 2, 1), shortcut, bias)
    model = build_network(layout)
    assert model.conv1.weight.shape == (64, 2, 7, 7, 3) and model.conv1.stride == (2, 2, 1)
    assert model.conv1.padding == (3, 3, 1) and not isinstance(model.maxpool, torch.nn.Identity)
    keys = model.state_dict().keys()
    assert ("layer2.0.downsample.0.weight" in keys) == (shortcut == "B")
    assert ("layer2.0.downsample.0.bias" in keys) == bias
    assert model.fc.out_features == 5
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 2, 32, 32, 8)).shape == (1, 5)


def test_head_and_backbone_parameters_partition_the_model():
    model = build_network(NetworkLayout("resnet34", 2, 1, 3, (7, 7), (2, 2), "B", False))
    head, rest = head_parameters(model), backbone_parameters(model)
    assert {id(p) for p in head} == {id(model.fc.weight), id(model.fc.bias)}
    assert len(head) + len(rest) == len(list(model.parameters()))
    assert not {id(p) for p in head} & {id(p) for p in rest}
