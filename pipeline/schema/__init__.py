"""The contract between stages: each artifact's file names, columns and typed records, once.

A stage receives its paths from ``dvc.yaml`` (its ``cmd``) and hands them down as one of
the records here; no library function chooses a file name. Readers and writers of a
JSON artifact share one record (:mod:`pipeline.schema.json_records`), so a key cannot be
written under one name and read under another. Nothing here imports torch or any part
of the pipeline but the error base: every stage, and any tool reading the outputs, may
import it. One module per stage's artifacts:

* :mod:`pipeline.schema.evaluate`: the evaluate stage's output paths and ``metrics.json``;
* :mod:`pipeline.schema.threshold`: ``threshold.json``, the operating point evaluate chose;
* :mod:`pipeline.schema.external`: the external stage's folder: an index and one folder per site;
* :mod:`pipeline.schema.train_summary`: ``train_summary.json`` of the train stage;
* :mod:`pipeline.schema.crossval`: the train_fold stages' folders and the crossval stage's.
"""

from __future__ import annotations

from pipeline.schema.evaluate import (
    HEADLINE_SPLIT,
    PLOT_KINDS,
    CalibrationFit,
    Confusion,
    CrossValidation,
    EvaluateOutputs,
    FoldAuc,
    MetricsRecord,
    ModelComparison,
    OperatingPoint,
    ReaderComparison,
    SplitMetrics,
    SubgroupLevel,
)
from pipeline.schema.external import (
    ExternalIndexRecord,
    ExternalMetricsRecord,
    SiteData,
    SiteEntry,
    SitePaths,
    SiteScoring,
)
from pipeline.schema.json_records import ArtifactError, read_json_object, record_to_json
from pipeline.schema.threshold import CalibrationMap, ThresholdRecord
from pipeline.schema.train_summary import (
    ModelRecord,
    RunConfigRecord,
    TrainSettingsRecord,
    TrainSummaryRecord,
    WeightsRecord,
)

__all__ = [
    "ArtifactError",
    "CrossValidation",
    "FoldAuc",
    "CalibrationFit",
    "CalibrationMap",
    "Confusion",
    "EvaluateOutputs",
    "ExternalIndexRecord",
    "ExternalMetricsRecord",
    "HEADLINE_SPLIT",
    "MetricsRecord",
    "ModelComparison",
    "ModelRecord",
    "OperatingPoint",
    "PLOT_KINDS",
    "ReaderComparison",
    "RunConfigRecord",
    "SiteData",
    "SiteEntry",
    "SitePaths",
    "SiteScoring",
    "SplitMetrics",
    "SubgroupLevel",
    "ThresholdRecord",
    "TrainSettingsRecord",
    "TrainSummaryRecord",
    "WeightsRecord",
    "read_json_object",
    "record_to_json",
]
