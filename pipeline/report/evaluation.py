"""From patient-level predictions to every number and curve of the report.

The threshold is chosen on the validation split and applied unchanged to test, so the
test sensitivity and specificity are honest estimates of a rule fixed in advance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline import metrics as M
from pipeline.config import EvaluateConfig
from pipeline.errors import PipelineInputError
from pipeline.report.predictions import (
    SPLITS,
    PatientTable,
    PredictionsError,
    subgroup_columns,
)

LEVEL = 0.95


class EvaluationError(PipelineInputError):
    """The predictions cannot be evaluated as asked; the message says why and what to do."""


@dataclass(frozen=True)
class SplitCurves:
    """Curves of one split, arrays of equal length within each curve.

    Attributes:
        roc: ``fpr``, ``tpr``, ``threshold`` (first threshold ``inf``).
        pr: ``precision``, ``recall``, ``threshold``.
        calibration: see :func:`pipeline.metrics.reliability_curve`.
        actual: labels, shape ``(P,)``; ``predicted``: 0/1 at the chosen threshold.
        score: patient scores, shape ``(P,)`` (for the score histogram).
    """

    roc: dict[str, np.ndarray]
    pr: dict[str, np.ndarray]
    calibration: dict[str, np.ndarray]
    actual: np.ndarray
    predicted: np.ndarray
    score: np.ndarray


@dataclass(frozen=True)
class Evaluation:
    """Everything the writers need.

    Attributes:
        metrics: the content of ``metrics.json`` (``{"val": ..., "test": ..., ["comparison"]}``).
        curves: split -> :class:`SplitCurves`.
        table: the aggregated patients (for the cohort table; identifiers never written).
        subgroups: subgroup columns reported.
        subgroups_skipped: column -> reason it is not reported.
        settings: the evaluation settings used, shown in the report.
    """

    metrics: dict[str, object]
    curves: dict[str, SplitCurves]
    table: PatientTable
    subgroups: list[str]
    subgroups_skipped: dict[str, str]
    settings: dict[str, object] = field(default_factory=dict)


def _check_split(table: PatientTable, split: str) -> None:
    part = table.select(split)
    n = int(part.label.size)
    n_pos = int(part.label.sum())
    if n == 0:
        raise EvaluationError(
            f"split {split!r} must have patients; got none. predictions.csv needs rows for both "
            f"{list(SPLITS)}: the threshold is chosen on 'val' and reported on 'test'."
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


def _split_metrics(
    part: PatientTable,
    *,
    threshold: float,
    threshold_rule: str,
    ci_method: str,
    n_boot: int,
    calibration_bins: int,
    subgroups: list[str],
    subgroups_skipped: dict[str, str],
    seed: int,
) -> tuple[dict[str, object], SplitCurves]:
    y, s = part.label, part.score
    try:
        auc, lo, hi = M.roc_auc_ci(y, s, method=ci_method, level=LEVEL, n_boot=n_boot, seed=seed)
    except M.UndefinedMetricError as err:  # class counts were checked up front; this is anything else
        raise EvaluationError(f"split {part.split[0]!r}: {err}") from err
    at = M.threshold_metrics(y, s, threshold, level=LEVEL)
    undefined = at.pop("undefined")
    fpr, tpr, roc_thr = M.roc_curve(y, s)
    precision, recall, pr_thr = M.pr_curve(y, s)
    out: dict[str, object] = {
        "auc": auc,
        "auc_ci95": [lo, hi],
        # Scalars too: `dvc metrics show/diff` leave lists out.
        "auc_ci95_low": lo,
        "auc_ci95_high": hi,
        "auc_ci_method": ci_method,
        "threshold": threshold,
        "threshold_rule": threshold_rule,
        "threshold_source": "val",
        **{k: at[k] for k in ("sensitivity", "sensitivity_ci95", "specificity", "specificity_ci95")},
        **{k: at[k] for k in ("ppv", "ppv_ci95", "npv", "npv_ci95")},
        "confusion": {k: at[k] for k in ("tp", "fp", "tn", "fn")},
        "brier": M.brier_score(y, s),
        "ece": M.expected_calibration_error(y, s, n_bins=calibration_bins),
        "average_precision": M.average_precision(y, s),
        "n_patients": int(y.size),
        "n_positive": int(y.sum()),
        "n_negative": int(y.size - y.sum()),
        "n_series": int(part.n_series.sum()),
        "subgroups": {
            column: M.subgroup_auc(
                y, s, part.attributes[column].astype(str), threshold=threshold, method=ci_method,
                level=LEVEL, n_boot=n_boot, seed=seed,
            )
            for column in subgroups
        },
    }
    if subgroups_skipped:
        out["subgroups_skipped"] = dict(subgroups_skipped)
    if undefined:
        out["undefined"] = undefined
    curves = SplitCurves(
        roc={"fpr": fpr, "tpr": tpr, "threshold": roc_thr},
        pr={"precision": precision, "recall": recall, "threshold": pr_thr},
        calibration=M.reliability_curve(y, s, n_bins=calibration_bins),
        actual=y.astype(int),
        predicted=(s >= threshold).astype(int),
        score=s,
    )
    return out, curves


def compare_tables(table: PatientTable, other: PatientTable, *, split: str = "test") -> dict[str, object]:
    """Paired DeLong test of this model (A) against another model's predictions (B).

    Patients are matched by pseudonymised identifier within ``split``; both files must
    hold the same patients with the same labels, otherwise the comparison is not paired.

    Returns:
        The ``"comparison"`` block of ``metrics.json``.

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
    return {
        "split": split,
        "method": "paired DeLong test",
        "n_patients": result.n,
        "n_positive": result.n_positive,
        "auc": result.auc_a,
        "auc_other": result.auc_b,
        "auc_difference": result.difference,
        "auc_difference_ci95": list(result.difference_ci),
        "z": result.z,
        "p_value": result.p_value,
    }


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
    for split in SPLITS:
        _check_split(table, split)
    try:
        used, skipped = subgroup_columns(table, config.subgroups)
    except PredictionsError as err:
        raise EvaluationError(str(err)) from err
    val = table.select("val")
    rule = config.threshold
    threshold = M.choose_threshold(val.label, val.score, rule=rule, target_sensitivity=config.target_sensitivity)
    results: dict[str, object] = {}
    curves: dict[str, SplitCurves] = {}
    for split in ("test", "val"):
        results[split], curves[split] = _split_metrics(
            table.select(split),
            threshold=threshold,
            threshold_rule=rule if rule == "youden" else f"sensitivity>={config.target_sensitivity}",
            ci_method=config.ci_method,
            n_boot=config.n_boot,
            calibration_bins=config.calibration_bins,
            subgroups=used,
            subgroups_skipped=skipped,
            seed=config.seed,
        )
    if other is not None:
        results["comparison"] = compare_tables(table, other)
    settings = {
        "aggregate": table.aggregate,
        "threshold_rule": rule,
        "target_sensitivity": config.target_sensitivity,
        "ci_method": config.ci_method,
        "n_boot": config.n_boot,
        "calibration_bins": config.calibration_bins,
        "seed": config.seed,
        "ci_level": LEVEL,
    }
    return Evaluation(
        metrics=results, curves=curves, table=table, subgroups=used, subgroups_skipped=skipped, settings=settings
    )
