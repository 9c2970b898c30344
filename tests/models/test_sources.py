"""Weight rows and the input normalisation each source was trained with."""

from __future__ import annotations

import pytest
import torch

from pipeline.errors import PipelineInputError
from pipeline.models import WEIGHT_SOURCES
from pipeline.models.sources import NAMED_SOURCES, Normalization, row_for_file_name, weight_source
from pipeline.rules import ARCHS, NAMED_WEIGHTS


def test_every_arch_has_one_imagenet_and_one_medicalnet_row():
    pairs = [(row.source, row.arch) for row in WEIGHT_SOURCES]
    assert len(pairs) == len(set(pairs))
    for arch in ("resnet18", "resnet34", "resnet50"):
        imagenet = weight_source("imagenet", arch)
        assert imagenet.url.endswith("/" + imagenet.file_name)
        assert imagenet.file_name == f"{arch}-{imagenet.sha256_prefix}.pth"
        assert imagenet.normalization.kind == "mean_std" and imagenet.spatial_dims == 2
        medicalnet = weight_source("medicalnet", arch)
        assert medicalnet.spatial_dims == 3 and medicalnet.in_channels == 1
        assert medicalnet.url.endswith("/" + medicalnet.file_name)
    with pytest.raises(ValueError, match=r"must be one of \[.*'imagenet/resnet18'.*\]; got imagenet/resnet101"):
        weight_source("imagenet", "resnet101")


def test_normalization_adapts_to_channels_and_applies():
    rgb = Normalization("mean_std", (0.4, 0.5, 0.6), (0.1, 0.2, 0.3))
    grey = rgb.adapted(1)
    assert grey.mean == pytest.approx((0.5,)) and grey.std == pytest.approx((0.2,))
    assert rgb.adapted(4).mean == (0.4, 0.5, 0.6, 0.4)
    torch.testing.assert_close(grey.apply(torch.full((2, 1, 3, 3), 0.7)), torch.ones(2, 1, 3, 3))

    volume = torch.zeros(1, 1, 8, 8, 8)
    volume[..., 2:6, 2:6, 2:6] = torch.rand(4, 4, 4) + 1.0
    out = Normalization("volume_zscore").apply(volume)
    inside = out[volume > 0]
    assert inside.mean().abs() < 1e-5 and (inside.std(unbiased=False) - 1).abs() < 1e-4
    with pytest.raises(ValueError, match="'kind' must be 'mean_std' or 'volume_zscore'; got 'minmax'"):
        Normalization("minmax")


def test_the_named_sources_are_the_rule_s_names_that_are_files():
    assert NAMED_SOURCES == ("imagenet", "medicalnet")
    assert set(NAMED_WEIGHTS) == {"none", "auto", *NAMED_SOURCES}
    assert {row.arch for row in WEIGHT_SOURCES} == set(ARCHS)


def test_a_published_file_name_finds_its_row_for_that_arch_only():
    assert row_for_file_name("resnet34-b627a593.pth", "resnet34") == weight_source("imagenet", "resnet34")
    assert row_for_file_name("resnet34-b627a593.pth", "resnet18") is None
    assert row_for_file_name("mine.pt", "resnet18") is None


def test_a_bad_normalization_is_a_bug_not_an_input_error():
    """Rows and sealed model files build these, never a user: the stage must show a traceback."""
    try:
        Normalization("mean_std", (0.5,), ())
    except ValueError as error:
        assert not isinstance(error, PipelineInputError)
        assert "one value per channel" in str(error)
    else:
        raise AssertionError("a mean without a std was accepted")
