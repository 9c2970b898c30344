"""Backbones and their weights: :func:`build_backbone` is the entry point."""

from __future__ import annotations

from pipeline.models.backbones import Backbone, backbone_parameters, build_backbone, head_parameters
from pipeline.models.weights import (
    DOWNLOAD_TIMEOUT_ENV,
    WEIGHT_SOURCES,
    Normalization,
    Provenance,
    WeightsError,
    WeightsNotFoundError,
    WeightSource,
)

__all__ = [
    "DOWNLOAD_TIMEOUT_ENV",
    "WEIGHT_SOURCES",
    "Backbone",
    "Normalization",
    "Provenance",
    "WeightSource",
    "WeightsError",
    "WeightsNotFoundError",
    "backbone_parameters",
    "build_backbone",
    "head_parameters",
]
