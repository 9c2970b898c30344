"""Reading a checkpoint and fitting it to a network: unwrapping, stem channels, inflation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.models import WeightsError
from pipeline.models.adapt import (
    FileLayout,
    adapt_input_channels,
    file_layout,
    fit_state_dict,
    inflate_kernel,
    load_state_dict,
)


def test_medicalnet_wrapping_and_module_prefix_are_removed(tmp_path):
    path = tmp_path / "resnet_10.pth"
    inner = {"module.conv1.weight": torch.ones(2, 1, 7, 7, 7), "module.bn1.bias": torch.zeros(2)}
    torch.save({"state_dict": inner, "epoch": 3}, path)

    state = load_state_dict(path, state_dict_key="state_dict", key_prefix="module.")

    assert sorted(state) == ["bn1.bias", "conv1.weight"]
    assert torch.equal(state["conv1.weight"], torch.ones(2, 1, 7, 7, 7))


def test_a_model_object_instead_of_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.ones(1)], path)
    with pytest.raises(WeightsError, match="must hold a mapping of parameter names to tensors; got list"):
        load_state_dict(path)


def test_grey_stem_gives_the_rgb_response_to_a_grey_image():
    kernel = torch.randn(8, 3, 7, 7)
    grey = torch.rand(1, 1, 20, 20)

    summed, how = adapt_input_channels(kernel, 1)

    assert how == "sum" and summed.shape == (8, 1, 7, 7)
    torch.testing.assert_close(F.conv2d(grey, summed), F.conv2d(grey.repeat(1, 3, 1, 1), kernel))


def test_inflated_kernel_sums_to_the_2d_kernel_over_depth():
    kernel = torch.randn(4, 2, 3, 3)
    inflated = inflate_kernel(kernel, 5)
    assert inflated.shape == (4, 2, 3, 3, 5)
    torch.testing.assert_close(inflated.sum(-1), kernel)
    torch.testing.assert_close(inflated[..., 0], inflated[..., 4])


def test_a_user_file_s_keys_tell_its_layout():
    plain = {"conv1.weight": torch.zeros(64, 1, 7, 7, 3)}
    assert file_layout(plain, 3, (7, 7, 5), "a.pt") == FileLayout("A", False, (7, 7, 3))  # 3D stem sets the kernel
    shortcut = {"conv1.weight": torch.zeros(64, 3, 7, 7), "layer2.0.downsample.0.weight": torch.zeros(1),
                "layer2.0.downsample.0.bias": torch.zeros(1)}
    assert file_layout(shortcut, 3, (7, 7, 5), "b.pt") == FileLayout("B", True, (7, 7, 5))  # 2D stem is inflated to it
    with pytest.raises(WeightsError, match=r"checkpoint 'c.pt' must hold a ResNet state dict with 'conv1.weight'"):
        file_layout({"fc.weight": torch.zeros(1)}, 2, (7, 7), "c.pt")
    with pytest.raises(WeightsError, match=r"must be 2D or 2D; got a 3D stem .* Set model spatial_dims to 3"):
        file_layout(plain, 2, (7, 7), "d.pt")


def test_the_fit_keeps_a_matching_head_fills_counters_and_casts_to_the_model():
    target = {"conv1.weight": torch.zeros(4, 1, 3, 3, 2), "bn1.num_batches_tracked": torch.tensor(0),
              "fc.weight": torch.zeros(2, 4), "fc.bias": torch.zeros(2)}
    checkpoint = {"conv1.weight": torch.ones(4, 3, 3, 3, dtype=torch.float64),
                  "fc.weight": torch.ones(2, 4), "fc.bias": torch.ones(2)}

    fitted = fit_state_dict(checkpoint, target, head_prefixes=("fc.",), origin="x.pt")

    assert (fitted.channel_adaptation, fitted.inflated, fitted.head) == ("sum", True, "pretrained")
    assert fitted.state["conv1.weight"].shape == (4, 1, 3, 3, 2) and fitted.state["conv1.weight"].dtype == torch.float32
    torch.testing.assert_close(fitted.state["conv1.weight"].sum(-1), torch.full((4, 1, 3, 3), 3.0))
    assert fitted.state["bn1.num_batches_tracked"] is target["bn1.num_batches_tracked"]
    assert torch.equal(fitted.state["fc.weight"], torch.ones(2, 4))


def test_a_head_of_another_size_is_replaced_and_a_stray_key_refused():
    target = {"conv1.weight": torch.zeros(4, 3, 3, 3), "fc.weight": torch.zeros(2, 4), "fc.bias": torch.zeros(2)}
    other_head = {"conv1.weight": torch.ones(4, 3, 3, 3), "fc.weight": torch.ones(1000, 4), "fc.bias": torch.ones(1000)}
    fitted = fit_state_dict(other_head, target, head_prefixes=("fc.",), origin="x.pt")
    assert fitted.head == "new" and fitted.state["fc.weight"] is target["fc.weight"]
    with pytest.raises(WeightsError, match=r"'x.pt' must match .* 1 unexpected \['layer9.weight'\]"):
        fit_state_dict({**other_head, "layer9.weight": torch.ones(1)}, target, head_prefixes=("fc.",), origin="x.pt")
