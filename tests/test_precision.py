"""``train.precision: auto`` picks what the hardware computes fast, and says why."""

from __future__ import annotations

import pytest

from pipeline.config import ConfigError
from pipeline.precision import conv_dims, cpu_capability, cpu_has_native_bf16, resolve_precision
from tests.training.tiny_run import tiny_configs


def test_auto_on_a_cpu_is_bf16_for_2d_only_where_the_cpu_computes_it():
    precision, why = resolve_precision("auto", "cpu", spatial_dims=2)
    assert precision == ("bf16-mixed" if cpu_has_native_bf16() else "32")
    assert cpu_capability() in why
    if precision == "32":
        assert "emulated" in why


def test_auto_on_a_cpu_trains_3d_in_fp32_whatever_the_cpu_and_says_why():
    precision, why = resolve_precision("auto", "cpu", spatial_dims=3)
    assert precision == "32"
    assert ("non-finite" if cpu_has_native_bf16() else "emulated") in why


def test_conv_dims_tells_a_volume_model_from_an_image_model():
    import torch

    assert conv_dims(torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3))) == 3
    assert conv_dims(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Linear(2, 1))) == 2


def test_a_precision_set_by_hand_is_kept():
    assert resolve_precision("16-mixed", "cpu", spatial_dims=3) == ("16-mixed", "set by train.precision")


def test_auto_is_a_valid_setting_and_nonsense_is_not():
    assert tiny_configs(precision="auto")[1].precision == "auto"
    with pytest.raises(ConfigError, match=r"train.precision.*'fp8'"):
        tiny_configs(precision="fp8")
