"""Evaluation outputs from ``predictions.csv`` alone: metrics, DVC plots, figures, HTML report.

Nothing here imports the model, the data module or the Lightning system, so predictions
from any model (ours, a vendor's, a radiologist's scores) can be evaluated the same way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from pipeline.config import EvaluateConfig
from pipeline.report.crossval import CrossValidationError, CrossValidationResults, read_cross_validation
from pipeline.report.evaluation import Evaluation, EvaluationError, compare_tables, evaluate_table
from pipeline.report.external import ExternalError, ExternalResults, read_external
from pipeline.report.gallery import GalleryResults, GalleryResultsError, read_gallery
from pipeline.report.localisation import LocalisationResultsError, read_localisation
from pipeline.report.methods import ledger_counts
from pipeline.report.operating_point import DecisionRule, OperatingPointError, operating_point
from pipeline.report.predictions import PatientTable, PredictionsError, read_predictions, subgroup_columns
from pipeline.report.provenance import EvaluationProvenance, ProvenanceError, collect_provenance
from pipeline.report.writers import write_outputs
from pipeline.schema import EvaluateOutputs

__all__ = [
    "CrossValidationError",
    "CrossValidationResults",
    "DecisionRule",
    "Evaluation",
    "EvaluationError",
    "OperatingPointError",
    "PatientTable",
    "PredictionsError",
    "EvaluationProvenance",
    "ExternalError",
    "ExternalResults",
    "GalleryResults",
    "GalleryResultsError",
    "LocalisationResultsError",
    "ProvenanceError",
    "collect_provenance",
    "compare_tables",
    "evaluate_table",
    "operating_point",
    "read_predictions",
    "run_evaluation",
    "subgroup_columns",
    "write_outputs",
]


def run_evaluation(
    predictions: str | Path,
    outputs: EvaluateOutputs,
    config: EvaluateConfig,
    *,
    compare: str | Path | None = None,
    train_summary: str | Path | None = None,
    params: Mapping[str, Any] | None = None,
    params_file: str | Path | None = None,
    lock: str | Path | None = None,
    ledger: str | Path | None = None,
    external: str | Path | None = None,
    cv: str | Path | None = None,
    gallery: str | Path | None = None,
    localisation: str | Path | None = None,
) -> Evaluation:
    """Read predictions, compute every metric, and write all outputs to the paths of ``outputs``.

    Args:
        predictions: ``predictions.csv`` (one row per series; see
            :func:`pipeline.report.predictions.read_predictions`).
        outputs: where each output goes (the stage's command line in ``dvc.yaml``).
        config: the ``evaluate`` settings.
        compare: another predictions file on the same patients for a paired DeLong test.
        train_summary, params, params_file, lock: provenance shown in the report;
            ``None`` is stated in the report as not given. The lock's entry of the stage
            that writes ``outputs`` (this one, from its previous run) is not shown.
        ledger: ingest's ``ledger.csv``, for the file counts of the methods paragraph.
        external: the external stage's ``index.json``: its sites are shown beside the test
            split, after checking they were evaluated at this evaluation's operating point.
        cv: the crossval stage's ``cv.json``: with cross-validation on, its block becomes
            ``metrics.json``'s ``cv`` and the report gains a section (the stage's own
            figure beside it).
        gallery: the explain stage's ``gallery.json``: its Grad-CAM overlays go in the
            report, after checking they were chosen at this evaluation's operating point.
        localisation: the localise stage's ``localisation.json``: its check of the
            Grad-CAM peaks goes in the report, after the same check.

    Returns:
        The :class:`Evaluation` that was written.

    Raises:
        PredictionsError, EvaluationError, ProvenanceError, ExternalError, ArtifactError,
            CrossValidationError, GalleryResultsError, LocalisationResultsError: bad inputs, with the
            rule broken and the fix in the message.
    """
    table = read_predictions(predictions, aggregate=config.aggregate)
    other = read_predictions(compare, aggregate=config.aggregate) if compare is not None else None
    evaluation = evaluate_table(table, config, other=other)
    folds = read_cross_validation(cv) if cv is not None else None
    if folds is not None and folds.cv is not None:
        evaluation = dataclasses.replace(evaluation, metrics=dataclasses.replace(evaluation.metrics, cv=folds.cv))
    provenance = collect_provenance(
        predictions, params=params, params_file=params_file, train_summary=train_summary, lock=lock,
        own_outputs=tuple(outputs.paths().values()), compare=compare,
    )
    counts = ledger_counts(ledger) if ledger is not None else None
    summary = provenance.train_summary
    model_digest = None if summary is None else summary.model_digest
    sites = None if external is None else read_external(
        external, evaluation.operating_point, predictions_sha256=provenance.predictions_sha256, model_digest=model_digest)
    overlays = None if gallery is None else read_gallery(
        gallery, evaluation.operating_point, predictions_sha256=provenance.predictions_sha256, model_digest=model_digest)
    peaks = None if localisation is None else read_localisation(
        localisation, evaluation.operating_point, predictions_sha256=provenance.predictions_sha256,
        model_digest=model_digest)
    write_outputs(evaluation, provenance, outputs, ledger=counts, external=sites, cv=folds, gallery=overlays,
                  localisation=peaks)
    return evaluation
