"""``train_summary.json``: written by the train stage, read by the evaluate stage's report.

The layout is that of ``pipeline/training.py``. The report reads the fields typed here;
objects that are dumps of other records (the weights' provenance, the settings) keep
every key they were written with in ``as_written``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pipeline.schema.json_records import JsonFile


@dataclass(frozen=True)
class WeightsRecord:
    """Where the backbone's weights came from (``WeightsProvenance.to_dict()`` of pipeline.models).

    The report reads the fields below; ``as_written`` keeps every other key of the object.
    ``source`` is ``imagenet``, ``medicalnet``, ``file`` or ``none`` (random initialisation).
    """

    source: str
    file: str | None
    sha256: str | None
    url: str | None
    licence: str | None
    warning: str | None
    as_written: Mapping[str, Any]


@dataclass(frozen=True)
class ModelRecord:
    """The network trained: architecture, dimensions, input channels and outputs."""

    arch: str
    spatial_dims: int
    in_channels: int
    num_classes: int


@dataclass(frozen=True)
class TrainSettingsRecord:
    """The ``train`` settings of the run the methods paragraph states; ``as_written`` keeps them all."""

    max_epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    precision: str
    augment: bool
    as_written: Mapping[str, Any]


@dataclass(frozen=True)
class RunConfigRecord:
    """The run's settings: ``model`` (as written) and ``train``."""

    model: Mapping[str, Any]
    train: TrainSettingsRecord


@dataclass(frozen=True)
class TrainSummaryRecord(JsonFile):
    """``train_summary.json``: weights provenance, model, best epoch, settings and the cache used.

    ``model_digest`` is the sealed digest of ``best.ckpt`` (:mod:`pipeline.modelfile`), the
    model whose scores ``predictions.csv`` holds; ``None`` in a summary written before it was recorded.
    """

    OMIT_WHEN_EMPTY: ClassVar[frozenset[str]] = frozenset({"model_digest"})
    WHAT: ClassVar[str] = "train summary"
    FIX: ClassVar[str] = (
        "It is written by the train stage: run it again (dvc repro train), or leave --train-summary out."
    )

    weights: WeightsRecord
    model: ModelRecord
    model_digest: str | None
    best_epoch: int
    best_val_auc: float
    resumed_from_epoch: int | None
    seconds: float
    config: RunConfigRecord
    cache: Mapping[str, Any]
