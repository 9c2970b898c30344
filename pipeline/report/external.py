"""An external site's patients at the internal operating point, and those results read back for the report.

:func:`evaluate_site` computes a site's block with the very :func:`split_metrics` that
gives evaluate's test block, at the :class:`DecisionRule` chosen on the internal
validation split: the same recalibration map, the same threshold, nothing fitted on the
site. :func:`read_external` reads the external stage's results for the report and refuses
results computed at another operating point, from other predictions, or by another model
than the evaluation they are shown beside (stale outputs of an earlier run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline import metrics as M
from pipeline.config import EvaluateConfig
from pipeline.errors import PipelineInputError
from pipeline.report.evaluation import split_metrics
from pipeline.report.operating_point import DecisionRule, stale_reasons
from pipeline.report.predictions import PatientTable
from pipeline.schema import ExternalIndexRecord, ExternalMetricsRecord, SplitMetrics


class ExternalError(PipelineInputError):
    """An external site cannot be evaluated, or its results do not belong beside this evaluation."""


def evaluate_site(table: PatientTable, rule: DecisionRule, config: EvaluateConfig, *, site: str) -> SplitMetrics:
    """The site's metrics at ``rule``: AUC with CI of the model's score, proportions at the internal threshold,
    calibration before and after the internal map.

    Args:
        table: the site's scored patients (:func:`pipeline.report.predictions.patients_of`).
        rule: the operating point chosen on the internal validation split, applied unchanged.
        config: the ``evaluate`` settings (CI method, resamples, bins, seed) used for internal test too.
        site: its name, for messages.

    Raises:
        ExternalError: fewer than 2 scored patients of a class (the AUC interval is undefined).
    """
    n, n_pos = int(table.label.size), int(table.label.sum())
    if min(n_pos, n - n_pos) < 2:
        raise ExternalError(
            f"external site {site!r} must have at least 2 positive and 2 negative scored patients for an AUC with "
            f"its interval; got {n_pos} positive and {n - n_pos} negative of {n}. Check its manifest's labels and "
            f"the series not scored (reports/external/{site}/predictions.csv, column reason)."
        )
    metrics, _ = split_metrics(
        table, rule, raw_reason=M.probability_reason(table.score), config=config, subgroups=[], subgroups_skipped={},
    )
    return metrics


@dataclass(frozen=True)
class ExternalResults:
    """The external stage's results, as the report shows them.

    Attributes:
        index_file: the index read (as given).
        sites: each declared site's record, in the order declared.
    """

    index_file: str
    sites: tuple[ExternalMetricsRecord, ...]


def read_external(
    index: str | Path, rule: DecisionRule, *, predictions_sha256: str, model_digest: str | None
) -> ExternalResults:
    """Read every site of the external stage's ``index.json``, checked against this evaluation.

    Args:
        index: ``reports/external/index.json``.
        rule: this evaluation's operating point.
        predictions_sha256: SHA-256 of this evaluation's predictions file.
        model_digest: the model those predictions came from (``train_summary.json``); ``None``
            when unknown (not checked then).

    Raises:
        ArtifactError: a file missing or lacking a key.
        ExternalError: a site evaluated at another operating point, from other internal
            predictions, or scored by another model.
    """
    index = Path(index)
    entries = ExternalIndexRecord.read(index).sites
    sites = []
    for entry in entries:
        record = ExternalMetricsRecord.read(index.parent / entry.metrics)
        stale = stale_reasons(record.operating_point, rule, predictions_sha256=predictions_sha256,
                              made_by=record.model_digest, model_digest=model_digest, verb="scored")
        if stale:
            raise ExternalError(
                f"external site {entry.name!r} ({str(index.parent / entry.metrics)!r}) must be evaluated at this "
                f"evaluation's operating point; it was not: {'; '.join(stale)}. Its results are stale: run the "
                "external stage again (dvc repro external)."
            )
        sites.append(record)
    return ExternalResults(index_file=str(index), sites=tuple(sites))
