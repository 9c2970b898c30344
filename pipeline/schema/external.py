"""The external stage's outputs: one folder per declared site under its output folder, and an index.

The stage gets its output folder from ``dvc.yaml`` (``reports/external``) and writes::

    index.json               ExternalIndexRecord: the sites, in the order params declares them
    <name>/metrics.json      ExternalMetricsRecord: the site at the internal operating point
    <name>/predictions.csv   PREDICTION_COLUMNS, one row per series (pseudonymised, as ingest keys them)
    <name>/ledger.csv        ingest's ledger of the site's files (paths as keyed tokens)

With no site declared the folder holds ``index.json`` alone, listing none, so that the
stage and its outputs in ``dvc.yaml`` stay the same whatever ``external`` holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pipeline.schema import tables
from pipeline.schema.evaluate import SplitMetrics
from pipeline.schema.json_records import JsonFile
from pipeline.schema.threshold import ThresholdRecord

INDEX_FILE = "index.json"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
LEDGER_FILE = tables.LEDGER_FILE  # ingest's ledger of the site's files, copied as written
#: The files of one site's folder.
SITE_FILES: tuple[str, ...] = (METRICS_FILE, PREDICTIONS_FILE, LEDGER_FILE)
#: ``predictions.csv`` of a site: the train stage's columns without ``split``, and the
#: reason a series was not scored (empty ``score`` then).
PREDICTION_COLUMNS: tuple[str, ...] = (*(c for c in tables.PREDICTION_COLUMNS if c != "split"), "reason")


@dataclass(frozen=True)
class SitePaths:
    """The files of one site under the stage's output folder."""

    folder: Path
    metrics: Path
    predictions: Path
    ledger: Path

    @classmethod
    def of(cls, out_dir: str | Path, name: str) -> "SitePaths":
        folder = Path(out_dir) / name
        return cls(folder, folder / METRICS_FILE, folder / PREDICTIONS_FILE, folder / LEDGER_FILE)


@dataclass(frozen=True)
class SiteEntry:
    """One site of the index: its name and its files, relative to the index's folder."""

    name: str
    metrics: str
    predictions: str
    ledger: str


@dataclass(frozen=True)
class ExternalIndexRecord(JsonFile):
    """``index.json``: every declared site (none when ``external`` is empty)."""

    WHAT: ClassVar[str] = "external-validation index"
    FIX: ClassVar[str] = "It is written by the external stage: run it again (dvc repro external)."

    sites: tuple[SiteEntry, ...]


@dataclass(frozen=True)
class SiteData:
    """What was read: the manifest and the raw files, by content.

    Attributes:
        manifest_sha256: SHA-256 of the manifest file.
        raw_files: files under the raw folder; ``raw_bytes`` their size.
        raw_sha256: SHA-256 over every file's path relative to the raw folder and its
            content's SHA-256, in path order: it changes when any file does (DVC does not
            watch these folders; see the README).
        ledger: files per ingest status, adding up to ``raw_files``.
    """

    manifest_sha256: str
    raw_files: int
    raw_bytes: int
    raw_sha256: str
    ledger: Mapping[str, int]


@dataclass(frozen=True)
class SiteScoring:
    """Series and patients scored, and those not, with the reasons (counts per reason).

    Attributes:
        n_series: series rows in ``predictions.csv``; ``n_series_scored`` of them have a score.
        n_patients: patients in the manifest's rows ingest kept; ``n_patients_scored`` of
            them have at least one scored series and are evaluated.
        not_scored: reason -> series without a score.
    """

    n_series: int
    n_series_scored: int
    n_patients: int
    n_patients_scored: int
    not_scored: Mapping[str, int]


@dataclass(frozen=True)
class ExternalMetricsRecord(JsonFile):
    """``<name>/metrics.json``: one external site evaluated at the internal operating point.

    Attributes:
        site: the site's name.
        metrics: the same block as a split of evaluate's ``metrics.json``: AUC with CI,
            sensitivity, specificity, PPV, NPV at the internal threshold, calibration with
            the internal map (``calibration_fitted_on`` says so).
        operating_point: the rule applied, as ``threshold.json`` records it, chosen on the
            internal validation patients of ``predictions_sha256``; never fitted here.
        model_digest: the sealed digest of the model file that scored the site.
        data: the files read.
        scoring: what was scored and what was not.
    """

    WHAT: ClassVar[str] = "external site metrics"
    FIX: ClassVar[str] = "It is written by the external stage: run it again (dvc repro external)."

    site: str
    metrics: SplitMetrics
    operating_point: ThresholdRecord
    model_digest: str
    data: SiteData
    scoring: SiteScoring
