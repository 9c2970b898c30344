"""Backbones and their weights: :func:`build_backbone` is the entry point.

One job per module:

- :mod:`~pipeline.models.sources`: the published weight sources as rows, and the input
  normalisation each was trained with;
- :mod:`~pipeline.models.fetch`: find a source's file (path, hub cache, download) and
  verify its checksum;
- :mod:`~pipeline.models.adapt`: read a checkpoint and fit it to a network (stem
  channels, 3D inflation, strict key check);
- :mod:`~pipeline.models.network`: the bare MONAI ResNet in the layout weights need;
- :mod:`~pipeline.models.provenance`: the record of where the weights came from;
- :mod:`~pipeline.models.backbones`: :func:`build_backbone`, resolve -> build -> transfer;
- :mod:`~pipeline.models.errors`: the checked errors.
"""

from __future__ import annotations

from pipeline.models.backbones import Backbone, build_backbone
from pipeline.models.errors import WeightsError, WeightsNotFoundError
from pipeline.models.fetch import DOWNLOAD_TIMEOUT_ENV
from pipeline.models.network import backbone_parameters, head_parameters
from pipeline.models.provenance import WeightsProvenance
from pipeline.models.sources import WEIGHT_SOURCES, Normalization, WeightSource

__all__ = [
    "DOWNLOAD_TIMEOUT_ENV",
    "WEIGHT_SOURCES",
    "Backbone",
    "Normalization",
    "WeightSource",
    "WeightsError",
    "WeightsNotFoundError",
    "WeightsProvenance",
    "backbone_parameters",
    "build_backbone",
    "head_parameters",
]
