"""``train.precision: auto`` picks what the hardware computes fast, and says why."""

from __future__ import annotations

import pytest

from pipeline.config import ConfigError
from pipeline.precision import cpu_capability, cpu_has_native_bf16, resolve_precision
from tests.training.tiny_run import tiny_configs


def test_auto_on_a_cpu_is_bf16_only_where_the_cpu_computes_it():
    precision, why = resolve_precision("auto", "cpu")
    assert precision == ("bf16-mixed" if cpu_has_native_bf16() else "32")
    assert cpu_capability() in why
    if precision == "32":
        assert "emulated" in why


def test_a_precision_set_by_hand_is_kept():
    assert resolve_precision("16-mixed", "cpu") == ("16-mixed", "set by train.precision")


def test_auto_is_a_valid_setting_and_nonsense_is_not():
    assert tiny_configs(precision="auto")[1].precision == "auto"
    with pytest.raises(ConfigError, match=r"train.precision.*'fp8'"):
        tiny_configs(precision="fp8")
