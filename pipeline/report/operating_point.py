"""The operating point: the recalibration map and the threshold, both chosen on the internal validation split.

One function, :func:`operating_point`, makes the choice, and everything that calls a case
positive applies what it returns: evaluate on the validation and test splits, the
external-validation stage on another site's patients, ``reports/threshold.json`` for
``predict``. None of them fits anything again, so a site's sensitivity is that of the
rule fixed before its data were seen (TRIPOD+AI: an external validation evaluates the
model as it is, never re-tuned on the new data).

The threshold is chosen on the calibrated score (``evaluate.calibration``) by the rule
``evaluate.threshold``; :attr:`DecisionRule.threshold_score` is the same cut on the
model's own score scale, the number to compare with a raw ``score``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline import metrics as M
from pipeline.calibration import CalibrationError, Calibrator, fit_calibrator
from pipeline.config import EvaluateConfig
from pipeline.errors import PipelineInputError
from pipeline.report.predictions import PatientTable
from pipeline.schema import CalibrationMap, ThresholdRecord

#: The split the operating point is chosen on.
CHOSEN_ON = "val"


class OperatingPointError(PipelineInputError):
    """No operating point can be chosen on these validation patients; the message says why and what to do."""


@dataclass(frozen=True)
class DecisionRule:
    """The decision rule fixed on the internal validation patients.

    A patient is called positive when ``calibrator.apply(score) >= threshold``
    (:meth:`positive`); with a monotone map that is ``score >= threshold_score``.

    Attributes:
        threshold: the cut on the calibrated scale (the model's scale when
            ``calibrator.method`` is ``none``), one of the calibrated validation scores.
        threshold_score: the same cut on the model's score scale: the smallest validation
            score called positive; ``-inf`` when every score is (an isotonic map flat below
            the validation range); ``None`` when the map is not monotone (no such cut).
        rule: ``youden`` or ``sensitivity>=<target>``.
        calibrator: the recalibration map fitted on the same patients.
        n_patients, n_positive: the validation patients it was chosen on.
        aggregate: how a patient's series scores were combined (``max`` or ``mean``).
    """

    threshold: float
    threshold_score: float | None
    rule: str
    calibrator: Calibrator
    n_patients: int
    n_positive: int
    aggregate: str

    @property
    def scale(self) -> str:
        """What :attr:`threshold` is measured on, as metrics.json states it."""
        method = self.calibrator.method
        return "score" if method == "none" else f"calibrated probability ({method})"

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        """Patient scores, shape ``(P,)``, on the threshold's scale."""
        return self.calibrator.apply(scores)

    def positive(self, scores: np.ndarray) -> np.ndarray:
        """Which patients the rule calls positive, shape ``(P,)`` bool."""
        return self.calibrated(scores) >= self.threshold


def operating_point(table: PatientTable, config: EvaluateConfig) -> DecisionRule:
    """Fit the recalibration map and choose the threshold on the validation patients of ``table``.

    Args:
        table: the aggregated patients of a predictions file (``read_predictions``), both
            splits: whether the scores are probabilities (the map then works on their
            logit) is decided on the whole file, as one score scale cannot be a
            probability on one split only. Only the validation patients are fitted on.
        config: the ``evaluate`` settings (``calibration``, ``threshold``,
            ``target_sensitivity``).

    Raises:
        OperatingPointError: the validation split lacks a class, or the map cannot be fitted.
    """
    val = table.select(CHOSEN_ON)
    n, n_pos = int(val.label.size), int(val.label.sum())
    if n_pos in (0, n):
        raise OperatingPointError(
            f"the operating point must be chosen on {CHOSEN_ON!r} patients of both classes; got {n} patient(s), "
            f"{n_pos} positive. Re-split so the validation split has positives and negatives."
        )
    probabilities = M.probability_reason(table.score) is None
    try:
        calibrator = fit_calibrator(config.calibration, val.label, val.score, probabilities=probabilities)
    except CalibrationError as err:
        raise OperatingPointError(str(err)) from err
    threshold = M.choose_threshold(
        val.label, calibrator.apply(val.score), rule=config.threshold, target_sensitivity=config.target_sensitivity
    )
    return DecisionRule(
        threshold=threshold,
        threshold_score=calibrator.score_cut(threshold, val.score),
        rule=config.threshold if config.threshold == "youden" else f"sensitivity>={config.target_sensitivity}",
        calibrator=calibrator,
        n_patients=n,
        n_positive=n_pos,
        aggregate=table.aggregate,
    )


def threshold_record(rule: DecisionRule, *, model_digest: str | None, predictions_sha256: str) -> ThresholdRecord:
    """The record of ``threshold.json`` for ``rule``.

    Args:
        rule: what :func:`operating_point` chose.
        model_digest: the sealed digest of the model whose scores ``rule`` was chosen on
            (``train_summary.json``); ``None`` when unknown.
        predictions_sha256: SHA-256 of the predictions file it was chosen from.
    """
    c = rule.calibrator
    cut, reason = rule.threshold_score, None
    if cut is None:
        reason = ("the recalibration map fitted on val is not monotone (its slope is not positive), so no cut on "
                  "the model's score gives the same calls; apply the map and threshold instead")
    elif cut == float("-inf"):
        cut, reason = None, ("every score is called positive: the isotonic map fitted on val is flat below the "
                             "validation range at the threshold's value")
    return ThresholdRecord(
        threshold_score=cut,
        threshold_score_reason=reason,
        threshold=rule.threshold,
        threshold_scale=rule.scale,
        rule=rule.rule,
        chosen_on=CHOSEN_ON,
        n_patients=rule.n_patients,
        n_positive=rule.n_positive,
        aggregate=rule.aggregate,
        calibration=CalibrationMap(
            method=c.method, regressor=c.feature, n_fitted=c.n_fitted, intercept=c.intercept, slope=c.slope,
            knots_x=tuple(c.knots_x), knots_y=tuple(c.knots_y),
        ),
        model_digest=model_digest,
        predictions_sha256=predictions_sha256,
    )


def rule_of_record(record: ThresholdRecord) -> DecisionRule:
    """The :class:`DecisionRule` a ``threshold.json`` holds, its map rebuilt from the recorded parameters."""
    m = record.calibration
    calibrator = Calibrator(
        m.method, m.regressor, intercept=m.intercept, slope=m.slope, knots_x=tuple(m.knots_x),
        knots_y=tuple(m.knots_y), n_fitted=m.n_fitted,
    )
    cut = record.threshold_score
    if cut is None and calibrator.monotone():  # the one monotone case without a cut: every score positive
        cut = float("-inf")
    return DecisionRule(
        threshold=record.threshold, threshold_score=cut, rule=record.rule, calibrator=calibrator,
        n_patients=record.n_patients, n_positive=record.n_positive, aggregate=record.aggregate,
    )


def stale_reasons(
    used: ThresholdRecord, rule: DecisionRule, *, predictions_sha256: str, made_by: str, model_digest: str | None,
    verb: str,
) -> list[str]:
    """How a stage's output made at the operating point ``used`` by model ``made_by`` differs from this evaluation.

    Empty when it belongs beside it: chosen on the same predictions, the same threshold,
    rule and recalibration as ``rule``, and by the model of ``model_digest`` (not checked
    when ``None``). ``verb`` says what the model did to the output (``scored``, ``drawn``).
    """
    stale = []
    if used.predictions_sha256 != predictions_sha256:
        stale.append(f"chosen on predictions {used.predictions_sha256[:12]}..., these are {predictions_sha256[:12]}...")
    if (used.threshold, used.rule, used.calibration.method) != (rule.threshold, rule.rule, rule.calibrator.method):
        stale.append(f"threshold {used.threshold!r} ({used.rule}, {used.calibration.method}), this evaluation's "
                     f"{rule.threshold!r} ({rule.rule}, {rule.calibrator.method})")
    if model_digest is not None and made_by != model_digest:
        stale.append(f"{verb} by model {made_by[:12]}..., these predictions are model {model_digest[:12]}...'s")
    return stale
