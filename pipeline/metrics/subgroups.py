"""The AUC within each level of a subgroup (site, scanner, sex), kept even where it is undefined."""

from __future__ import annotations

import numpy as np
from scipy import stats

from pipeline.metrics.auc import auc_from_ranks, check_interval_settings, roc_auc_ci
from pipeline.metrics.inputs import CI_LEVEL, MetricInputError, check_binary
from pipeline.metrics.thresholds import threshold_metrics


def subgroup_auc(
    y_true: np.ndarray,
    y_score: np.ndarray,
    groups: np.ndarray,
    *,
    method: str,
    threshold: float | None = None,
    level: float = CI_LEVEL,
    n_boot: int | None = None,
    seed: int | None = None,
) -> dict[str, dict[str, object]]:
    """AUC with interval (and optionally sensitivity/specificity) for each level of a subgroup.

    A level where the AUC or its interval cannot be computed is kept, with ``auc`` or
    ``auc_ci95`` set to ``None`` and ``reason`` saying why, so a reader sees that the
    site or scanner exists and why it has no number.

    Args:
        y_true: labels, shape ``(N,)``.
        y_score: scores, shape ``(N,)``.
        groups: level of each case, shape ``(N,)``, compared as strings.
        method, level, n_boot, seed: as in :func:`pipeline.metrics.roc_auc_ci`.
        threshold: when given, sensitivity and specificity at this threshold are added.

    Returns:
        ``{level: {"n_patients", "n_positive", "n_negative", "auc", "auc_ci95", "reason", ...}}``
        with levels sorted.

    Raises:
        MetricInputError: bad labels or scores, or ``groups`` of another shape.
        ConfigError: interval settings :func:`pipeline.metrics.roc_auc_ci` refuses.
    """
    check_interval_settings(method, level=level, n_boot=n_boot, seed=seed)
    y, s = check_binary(y_true, y_score)
    g = np.asarray(groups).astype(str)
    if g.shape != y.shape:
        raise MetricInputError(f"'groups' must have shape {y.shape}; got {g.shape}.")
    out: dict[str, dict[str, object]] = {}
    for value in sorted(set(g.tolist())):
        mask = g == value
        row = _level_row(y[mask], s[mask], method=method, level=level, n_boot=n_boot, seed=seed)
        if threshold is not None:
            at = threshold_metrics(y[mask], s[mask], threshold, level=level)
            row["sensitivity"], row["specificity"] = at["sensitivity"], at["specificity"]
        out[value] = row
    return out


def _level_row(
    y: np.ndarray, s: np.ndarray, *, method: str, level: float, n_boot: int | None, seed: int | None
) -> dict[str, object]:
    """Counts, AUC and interval of one level's cases, or ``None`` for what is undefined, with the reason."""
    suffix = f"_ci{round(level * 100)}"
    n, n_pos = int(y.size), int(y.sum())
    row: dict[str, object] = {
        "n_patients": n, "n_positive": n_pos, "n_negative": n - n_pos, "auc": None, "auc" + suffix: None,
        "reason": None,
    }
    if n_pos in (0, n):
        row["reason"] = (
            f"AUC undefined: only {'negative' if n_pos == 0 else 'positive'} cases ({n} patient(s)); both classes "
            "are needed."
        )
    elif min(n_pos, n - n_pos) < 2:
        ranks = stats.rankdata(np.r_[s[y == 1], s[y == 0]])
        row["auc"] = float(auc_from_ranks(ranks[:n_pos], n_pos, n - n_pos))
        row["reason"] = "interval undefined: fewer than 2 cases of a class."
    else:
        auc, lo, hi = roc_auc_ci(y, s, method=method, level=level, n_boot=n_boot, seed=seed)
        row["auc"], row["auc" + suffix] = auc, [lo, hi]
    return row
