"""The model against the readers who rated the same patients (paired DeLong test).

A reader column of predictions.csv holds one rating per patient (a 1-5 suspicion score,
BI-RADS as a number, a 0/1 call), higher meaning more suspicious. Only ranks matter to
the AUC, so a rating needs no conversion; ties between equal ratings count one half,
as in the Mann-Whitney statistic. The model and the reader are compared on exactly the
patients the reader rated; patients without a numeric rating are counted, not dropped
silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline import metrics as M
from pipeline.report.predictions import PatientTable
from pipeline.schema import OperatingPoint, ReaderComparison

# A rating with at most this many distinct values has its operating points listed in
# metrics.json; a continuous reader score is drawn as a curve only.
MAX_LISTED_CUTS = 20


@dataclass(frozen=True)
class ReaderCurve:
    """A reader's empirical ROC on the patients they rated: ``fpr``, ``tpr``, ``cut`` (first cut ``inf``)."""

    fpr: np.ndarray
    tpr: np.ndarray
    cut: np.ndarray


def _parse(values: np.ndarray) -> np.ndarray:
    """Ratings as floats; NaN where the cell is empty, not a number, or the series disagree (``3+4``)."""
    out = np.full(values.size, np.nan)
    for i, text in enumerate(values.tolist()):
        try:
            number = float(text)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[i] = number
    return out


def compare_reader(
    part: PatientTable, column: str, *, ci_method: str, n_boot: int, seed: int, level: float
) -> tuple[ReaderComparison, ReaderCurve | None]:
    """One reader against the model on one split.

    Returns:
        ``(row, curve)``: ``row`` counts the patients rated (``n``, ``n_positive``,
        ``n_missing``) and gives the reader's AUC with its interval, the model's AUC on
        the same patients, the paired DeLong difference (reader minus model) with its
        interval and two-sided p-value, the operating points of a rating with few
        levels, and ``reason`` why values are ``None``; ``curve`` is ``None`` when the
        AUC is undefined.
    """
    rating = _parse(part.attributes[column])
    rated = np.isfinite(rating)
    y, r, s = part.label[rated], rating[rated], part.score[rated]
    n_pos, n_missing = int(y.sum()), int((~rated).sum())
    counts = {
        "n": int(rated.sum()), "n_positive": n_pos, "n_missing": n_missing,
        "missing_reason": (
            f"{n_missing} patient(s) without a numeric rating (empty, not a number, or series rated differently) "
            "are left out of this comparison, for the model too"
        ) if n_missing else None,
    }
    if min(n_pos, y.size - n_pos) < 2:
        reason = (
            f"undefined: the rated patients include {n_pos} positive and {y.size - n_pos} negative; the AUC "
            "interval and the paired test need at least 2 of each"
        )
        return ReaderComparison(
            **counts, auc=None, auc_ci95=None, model_auc=None, delta_auc_vs_model=None, delta_auc_ci95=None,
            p_value=None, operating_points=None, reason=reason,
        ), None
    auc, lo, hi = M.roc_auc_ci(y, r, method=ci_method, level=level, n_boot=n_boot, seed=seed)
    paired = M.delong_test(y, r, s, level=level)
    fpr, tpr, cut = M.roc_curve(y, r)
    points = None
    if cut.size - 1 <= MAX_LISTED_CUTS:
        points = tuple(
            OperatingPoint(cut=float(c), sensitivity=float(t), specificity=float(1 - f))
            for f, t, c in zip(fpr[1:], tpr[1:], cut[1:])
        )
    row = ReaderComparison(
        **counts, auc=auc, auc_ci95=(lo, hi), model_auc=paired.auc_b, delta_auc_vs_model=paired.difference,
        delta_auc_ci95=paired.difference_ci, p_value=paired.p_value, operating_points=points, reason=None,
    )
    return row, ReaderCurve(fpr=fpr, tpr=tpr, cut=cut)
