"""The localise stage's check, read back for the report and checked against this evaluation.

A check made at another operating point, from other predictions, or with another model
than the evaluation it is shown beside is refused (a stale output of an earlier run),
as :func:`pipeline.report.gallery.read_gallery` refuses a stale gallery.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import PipelineInputError
from pipeline.report.operating_point import DecisionRule, stale_reasons
from pipeline.schema.localisation import LocalisationRecord


class LocalisationResultsError(PipelineInputError):
    """The localisation check does not belong beside this evaluation."""


def read_localisation(
    path: str | Path, rule: DecisionRule, *, predictions_sha256: str, model_digest: str | None
) -> LocalisationRecord:
    """Read ``localisation.json``, checked against this evaluation.

    Args:
        path: ``reports/localisation.json``.
        rule: this evaluation's operating point.
        predictions_sha256: SHA-256 of this evaluation's predictions file.
        model_digest: the model those predictions came from (``train_summary.json``);
            ``None`` when unknown (not checked then).

    Raises:
        ArtifactError: the file missing or lacking a key.
        LocalisationResultsError: made at another operating point, from other predictions or by another model.
    """
    record = LocalisationRecord.read(Path(path))
    stale = stale_reasons(record.operating_point, rule, predictions_sha256=predictions_sha256,
                          made_by=record.model_digest, model_digest=model_digest, verb="mapped")
    if stale:
        raise LocalisationResultsError(
            f"the localisation check {str(path)!r} must be made at this evaluation's operating point; it was not: "
            f"{'; '.join(stale)}. It is stale: run the localise stage again (dvc repro localise)."
        )
    return record
