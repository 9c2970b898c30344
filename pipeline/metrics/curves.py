"""ROC and precision-recall curves at every distinct score, and the average precision."""

from __future__ import annotations

import numpy as np

from pipeline.metrics.inputs import check_binary, require_both_classes


def _counts_by_threshold(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True/false positives when calling ``score >= t`` for each distinct score ``t``, high to low."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last_of_value]
    fps = (last_of_value + 1) - tps
    return tps.astype(float), fps.astype(float), s_sorted[last_of_value]


def roc_curve(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve at every distinct score, starting at (0, 0).

    Returns:
        ``(fpr, tpr, thresholds)``, each of shape ``(T + 1,)`` for ``T`` distinct scores;
        ``thresholds`` is decreasing and its first entry is ``inf`` (nobody called
        positive).

    Raises:
        UndefinedMetricError: one class only.
    """
    y, s = check_binary(y_true, y_score)
    n_pos, n_neg = require_both_classes(y, "the cases")
    tps, fps, thr = _counts_by_threshold(y, s)
    return np.r_[0.0, fps / n_neg], np.r_[0.0, tps / n_pos], np.r_[np.inf, thr]


def pr_curve(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision-recall points at every distinct score, highest threshold first.

    Returns:
        ``(precision, recall, thresholds)``, each of shape ``(T,)``.
    """
    y, s = check_binary(y_true, y_score)
    n_pos, _ = require_both_classes(y, "the cases")
    tps, fps, thr = _counts_by_threshold(y, s)
    return tps / (tps + fps), tps / n_pos, thr


def average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Step-wise area under the precision-recall curve, ``sum_k (R_k - R_{k-1}) P_k``."""
    precision, recall, _ = pr_curve(y_true, y_score)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
