"""From patient-level predictions to every number and curve of the report.

The recalibration map and the threshold are both fitted on the validation split and
applied unchanged to test, so the test sensitivity, specificity and calibration are
honest estimates of a rule fixed in advance. On validation they are in-sample and
labelled so. Discrimination (AUC, ROC and PR curves) is that of the model's own score:
a monotone recalibration cannot change it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline import metrics as M
from pipeline.calibration import Calibrator, intercept_and_slope
from pipeline.config import EvaluateConfig
from pipeline.errors import PipelineInputError
from pipeline.report.operating_point import CHOSEN_ON, DecisionRule, OperatingPointError, operating_point
from pipeline.report.predictions import PatientTable, PredictionsError, subgroup_columns
from pipeline.report.readers import ReaderCurve, compare_reader
from pipeline.schema import (
    CalibrationFit,
    Confusion,
    MetricsRecord,
    ModelComparison,
    ReaderComparison,
    SplitMetrics,
    SubgroupLevel,
)
from pipeline.schema.tables import SCORED_PARTS

LEVEL = M.CI_LEVEL


class EvaluationError(PipelineInputError):
    """The predictions cannot be evaluated as asked; the message says why and what to do."""


@dataclass(frozen=True)
class SplitCurves:
    """Curves of one split, arrays of equal length within each curve.

    Attributes:
        roc: ``fpr``, ``tpr``, ``threshold`` (first threshold ``inf``).
        pr: ``precision``, ``recall``, ``threshold``.
        calibration: reliability curve of the calibrated probabilities (see
            :func:`pipeline.metrics.reliability_curve`); ``None`` when they are not
            probabilities.
        actual: labels, shape ``(P,)``; ``predicted``: 0/1 at the chosen threshold.
        score: calibrated patient scores, shape ``(P,)`` (for the score histogram).
        calibration_before: reliability curve of the model's own scores, ``None``
            when they are not probabilities.
        readers: reader column -> the reader's ROC on the patients they rated.
    """

    roc: dict[str, np.ndarray]
    pr: dict[str, np.ndarray]
    calibration: dict[str, np.ndarray] | None
    actual: np.ndarray
    predicted: np.ndarray
    score: np.ndarray
    calibration_before: dict[str, np.ndarray] | None = None
    readers: dict[str, ReaderCurve] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation:
    """Everything the writers need.

    Attributes:
        metrics: the content of ``metrics.json``.
        curves: split -> :class:`SplitCurves`.
        table: the aggregated patients (for the cohort table; identifiers never written).
        subgroups: subgroup columns reported.
        subgroups_skipped: column -> reason it is not reported.
        settings: the evaluation settings used, shown in the report.
        operating_point: the recalibration map and threshold chosen on val
            (``reports/threshold.json``; external sites are called positive by it too).
    """

    metrics: MetricsRecord
    curves: dict[str, SplitCurves]
    table: PatientTable
    subgroups: list[str]
    subgroups_skipped: dict[str, str]
    settings: dict[str, object]
    operating_point: DecisionRule


def _check_split(table: PatientTable, split: str) -> None:
    part = table.select(split)
    n = int(part.label.size)
    n_pos = int(part.label.sum())
    if n == 0:
        raise EvaluationError(
            f"split {split!r} must have patients; got none. predictions.csv needs rows for both "
            f"{list(SCORED_PARTS)}: the threshold is chosen on 'val' and reported on 'test'."
        )
    if n_pos in (0, n):
        only = "negative (label 0)" if n_pos == 0 else "positive (label 1)"
        raise EvaluationError(
            f"split {split!r} must contain both classes; got {n} patient(s), all {only}. AUC, sensitivity and "
            "specificity are undefined with one class: re-split so each part has positives and negatives."
        )
    if min(n_pos, n - n_pos) < 2:
        raise EvaluationError(
            f"split {split!r} must have at least 2 positive and 2 negative patients for an AUC interval; got "
            f"{n_pos} positive and {n - n_pos} negative. Re-split so each part has at least two of each."
        )


def _probability_block(
    y: np.ndarray, p: np.ndarray, reason: str | None, *, bins: int, suffix: str
) -> tuple[dict[str, object], dict[str, np.ndarray] | None]:
    """Brier, ECE, calibration intercept and slope of ``p``, or ``None`` each with ``reason``."""
    keys = ("brier", "ece", "calibration_intercept", "calibration_slope")
    if reason is not None:
        return {k + suffix: None for k in keys} | {"reason": reason}, None
    out: dict[str, object] = {
        "brier" + suffix: M.brier_score(y, p),
        "ece" + suffix: M.expected_calibration_error(y, p, n_bins=bins),
    }
    fitted = intercept_and_slope(y, p)
    out["calibration_intercept" + suffix] = fitted["calibration_intercept"]
    out["calibration_slope" + suffix] = fitted["calibration_slope"]
    out["reason"] = fitted["calibration_slope_reason"]
    return out, M.reliability_curve(y, p, n_bins=bins)


def _calibration_metrics(
    y: np.ndarray, s: np.ndarray, c: np.ndarray, *, raw_reason: str | None, method: str, bins: int, split: str
) -> tuple[dict[str, object], dict[str, np.ndarray] | None, dict[str, np.ndarray] | None]:
    """Calibration before and after recalibration; reasons for what does not apply."""
    not_applicable: dict[str, str] = {}
    after_reason = raw_reason if method == "none" else None
    after, curve_after = _probability_block(y, c, after_reason, bins=bins, suffix="")
    before, curve_before = _probability_block(y, s, raw_reason, bins=bins, suffix="_uncalibrated")
    for block, names in ((after, ("brier", "ece", "calibration_slope")),
                         (before, ("brier_uncalibrated", "ece_uncalibrated", "calibration_slope_uncalibrated"))):
        reason = block.pop("reason")
        for name in names:
            if block[name] is None and reason:
                not_applicable[name] = reason
    out: dict[str, object] = {
        "calibration_method": method,
        "calibration_fitted_on": "none" if method == "none" else (
            "val" if split != "val" else "val (in-sample: fitted on these patients, so optimistic)"
        ),
        **after,
        **before,
        "not_applicable": not_applicable,
    }
    return out, curve_after, curve_before


def _pair(values: object) -> tuple[float, float] | None:
    """An interval as a tuple (the metrics functions give lists), ``None`` kept."""
    return None if values is None else (values[0], values[1])


def _subgroup(
    y: np.ndarray, s: np.ndarray, c: np.ndarray, groups: np.ndarray, threshold: float, config: EvaluateConfig
) -> dict[str, SubgroupLevel]:
    """AUC per level from the model's score (as the headline AUC), sensitivity and specificity from the calibrated one."""
    out = M.subgroup_auc(y, s, groups, method=config.ci_method, level=LEVEL, n_boot=config.n_boot, seed=config.seed)
    levels = {}
    for level, row in out.items():
        mask = groups == level
        at = M.threshold_metrics(y[mask], c[mask], threshold, level=LEVEL)
        levels[level] = SubgroupLevel(
            **{**row, "auc_ci95": _pair(row["auc_ci95"])}, sensitivity=at["sensitivity"], specificity=at["specificity"]
        )
    return levels


def _at_operating_point(y: np.ndarray, c: np.ndarray, op: DecisionRule) -> dict[str, object]:
    """The threshold chosen on val, and the confusion and proportions it gives here (calibrated score ``c``)."""
    at = M.threshold_metrics(y, c, op.threshold, level=LEVEL)
    names = ("sensitivity", "specificity", "ppv", "npv")
    return {
        "threshold": op.threshold,
        "threshold_scale": op.scale,
        "threshold_score": op.threshold_score,
        "threshold_rule": op.rule,
        "threshold_source": CHOSEN_ON,
        **{name: at[name] for name in names},
        **{f"{name}_ci95": _pair(at[f"{name}_ci95"]) for name in names},
        "confusion": Confusion(tp=at["tp"], fp=at["fp"], tn=at["tn"], fn=at["fn"]),
        "undefined": at["undefined"],
    }


def _readers(part: PatientTable, config: EvaluateConfig) -> tuple[dict[str, ReaderComparison], dict[str, ReaderCurve]]:
    rows, curves = {}, {}
    for column in config.reader_columns:
        rows[column], curve = compare_reader(
            part, column, ci_method=config.ci_method, n_boot=config.n_boot, seed=config.seed, level=LEVEL
        )
        if curve is not None:
            curves[column] = curve
    return rows, curves


def split_metrics(
    part: PatientTable,
    op: DecisionRule,
    *,
    raw_reason: str | None,
    config: EvaluateConfig,
    subgroups: list[str],
    subgroups_skipped: dict[str, str],
) -> tuple[SplitMetrics, SplitCurves]:
    """Every metric and curve of one group of patients at the operating point ``op`` chosen on val.

    Args:
        part: the patients (one split, or an external site's cohort).
        op: the recalibration map and threshold of :func:`operating_point`, applied unchanged.
        raw_reason: why the model's scores are not probabilities (``None`` when they are).
        config: the ``evaluate`` settings (CI method, resamples, bins, readers, seed).
        subgroups, subgroups_skipped: the subgroup columns reported, and why the others are not.
    """
    y, s = part.label, part.score
    calibrator = op.calibrator
    c = op.calibrated(s)
    threshold = op.threshold
    try:
        auc, lo, hi = M.roc_auc_ci(y, s, method=config.ci_method, level=LEVEL, n_boot=config.n_boot, seed=config.seed)
    except M.UndefinedMetricError as err:  # class counts were checked up front; this is anything else
        raise EvaluationError(f"split {part.split[0]!r}: {err}") from err
    calibration, curve_after, curve_before = _calibration_metrics(
        y, s, c, raw_reason=raw_reason, method=calibrator.method, bins=config.calibration_bins,
        split=str(part.split[0]),
    )
    readers, reader_curves = _readers(part, config)
    metrics = SplitMetrics(
        # Scalars too: `dvc metrics show/diff` leave lists out.
        auc=auc, auc_ci95=(lo, hi), auc_ci95_low=lo, auc_ci95_high=hi, auc_ci_method=config.ci_method,
        # Isotonic steps tie patients the model ranked apart; ties count one half. The
        # point estimate is the same whatever the interval method.
        auc_calibrated=M.roc_auc_ci(y, c, method="delong")[0],
        **_at_operating_point(y, c, op),
        **calibration,
        average_precision=M.average_precision(y, s),
        n_patients=int(y.size), n_positive=int(y.sum()), n_negative=int(y.size - y.sum()),
        n_series=int(part.n_series.sum()),
        subgroups={col: _subgroup(y, s, c, part.attributes[col].astype(str), threshold, config) for col in subgroups},
        readers=readers,
        subgroups_skipped=dict(subgroups_skipped),
    )
    fpr, tpr, roc_thr = M.roc_curve(y, s)
    precision, recall, pr_thr = M.pr_curve(y, s)
    curves = SplitCurves(
        roc={"fpr": fpr, "tpr": tpr, "threshold": roc_thr},
        pr={"precision": precision, "recall": recall, "threshold": pr_thr},
        calibration=curve_after,
        actual=y.astype(int),
        predicted=op.positive(s).astype(int),
        score=c,
        calibration_before=curve_before,
        readers=reader_curves,
    )
    return metrics, curves


def compare_tables(table: PatientTable, other: PatientTable, *, split: str = "test") -> ModelComparison:
    """Paired DeLong test of this model (A) against another model's predictions (B).

    Patients are matched by pseudonymised identifier within ``split``; both files must
    hold the same patients with the same labels, otherwise the comparison is not paired.

    Returns:
        The ``comparison`` block of ``metrics.json``.

    Raises:
        EvaluationError: patients or labels differ between the files.
    """
    a, b = table.select(split), other.select(split)
    ids_a, ids_b = set(a.patient_id.tolist()), set(b.patient_id.tolist())
    if ids_a != ids_b:
        only_a, only_b = sorted(ids_a - ids_b), sorted(ids_b - ids_a)
        raise EvaluationError(
            f"the compared predictions must hold the same {split!r} patients; got {len(only_a)} only in this file "
            f"{only_a[:5]} and {len(only_b)} only in the other {only_b[:5]}. Compare runs made on the same split."
        )
    position = {pid: i for i, pid in enumerate(b.patient_id.tolist())}
    pick = np.asarray([position[pid] for pid in a.patient_id.tolist()], dtype=int)
    differ = np.flatnonzero(a.label != b.label[pick])
    if differ.size:
        raise EvaluationError(
            f"the compared predictions must give each patient the same label; got {differ.size} patient(s) with "
            f"different labels, e.g. {a.patient_id[differ[:5]].tolist()}. Compare runs made on the same manifest."
        )
    result = M.delong_test(a.label, a.score, b.score[pick], level=LEVEL)
    return ModelComparison(
        split=split, method="paired DeLong test", n_patients=result.n, n_positive=result.n_positive,
        auc=result.auc_a, auc_other=result.auc_b, auc_difference=result.difference,
        auc_difference_ci95=result.difference_ci, z=result.z, p_value=result.p_value,
    )


def _check_columns(table: PatientTable, config: EvaluateConfig) -> tuple[list[str], dict[str, str]]:
    """Both splits usable, reader columns present; the subgroup columns used and those skipped."""
    for split in SCORED_PARTS:
        _check_split(table, split)
    missing = [c for c in config.reader_columns if c not in table.attributes]
    if missing:
        raise EvaluationError(
            f"'evaluate.reader_columns' must name columns of the predictions file; got unknown {missing}, available "
            f"{sorted(table.attributes)}. Add the rating to the manifest (ingest carries its columns to predictions)."
        )
    try:
        return subgroup_columns(table, requested=config.subgroups, readers=config.reader_columns)
    except PredictionsError as err:
        raise EvaluationError(str(err)) from err


def _calibration_fit(calibrator: Calibrator) -> CalibrationFit:
    platt, isotonic = calibrator.method == "platt", calibrator.method == "isotonic"
    return CalibrationFit(
        method=calibrator.method,
        regressor=calibrator.feature,
        n_fitted=calibrator.n_fitted,
        intercept=calibrator.intercept if platt else None,
        slope=calibrator.slope if platt else None,
        estimator="Firth penalised likelihood" if platt else None,
        steps=len(set(calibrator.knots_y)) if isotonic else None,
        fitted_on="val",
        note=None if calibrator.monotone() else (
            "the fitted slope is not positive: the model ranks the validation patients no better than chance or "
            "the wrong way round, and the calibrated score does not keep its order"
        ),
    )


def evaluate_table(
    table: PatientTable,
    config: EvaluateConfig,
    *,
    other: PatientTable | None = None,
) -> Evaluation:
    """Compute the metrics and curves of both splits.

    Args:
        table: aggregated patients from :func:`pipeline.report.predictions.read_predictions`.
        config: the ``evaluate`` settings (threshold rule, CI method, bins, subgroups, seed);
            an empty ``subgroups`` means detect (see
            :func:`pipeline.report.predictions.subgroup_columns`).
        other: another model's predictions for a paired comparison on test.

    Raises:
        EvaluationError: a split is missing or has one class, or the comparison is not paired.
    """
    used, skipped = _check_columns(table, config)
    # One verdict for the whole file: a score scale cannot be a probability on one split only.
    raw_reason = M.probability_reason(table.score)
    try:
        op = operating_point(table, config)
    except OperatingPointError as err:
        raise EvaluationError(str(err)) from err
    blocks: dict[str, SplitMetrics] = {}
    curves: dict[str, SplitCurves] = {}
    for split in ("test", "val"):
        blocks[split], curves[split] = split_metrics(
            table.select(split), op, raw_reason=raw_reason, config=config, subgroups=used, subgroups_skipped=skipped,
        )
    metrics = MetricsRecord(
        test=blocks["test"], val=blocks["val"], calibration=_calibration_fit(op.calibrator),
        comparison=None if other is None else compare_tables(table, other), cv=None,
    )
    settings = {
        "aggregate": table.aggregate,
        "threshold_rule": config.threshold,
        "target_sensitivity": config.target_sensitivity,
        "ci_method": config.ci_method,
        "n_boot": config.n_boot,
        "calibration": config.calibration,
        "calibration_bins": config.calibration_bins,
        "reader_columns": list(config.reader_columns),
        "seed": config.seed,
        "ci_level": LEVEL,
    }
    return Evaluation(
        metrics=metrics, curves=curves, table=table, subgroups=used, subgroups_skipped=skipped, settings=settings,
        operating_point=op,
    )
