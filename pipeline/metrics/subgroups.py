"""The AUC within each level of a subgroup (site, scanner, sex), kept even where it is undefined."""

from __future__ import annotations

import numpy as np
from scipy import stats

from pipeline.metrics.auc import auc_from_ranks, roc_auc_ci
from pipeline.metrics.inputs import check_binary
from pipeline.metrics.thresholds import threshold_metrics


def subgroup_auc(
    y_true: np.ndarray,
    y_score: np.ndarray,
    groups: np.ndarray,
    *,
    threshold: float | None = None,
    method: str = "delong",
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, dict[str, object]]:
    """AUC with interval (and optionally sensitivity/specificity) for each level of a subgroup.

    A level where the AUC or its interval cannot be computed is kept, with ``auc`` or
    ``auc_ci95`` set to ``None`` and ``reason`` saying why, so a reader sees that the
    site or scanner exists and why it has no number.

    Args:
        y_true: labels, shape ``(N,)``.
        y_score: scores, shape ``(N,)``.
        groups: level of each case, shape ``(N,)``, compared as strings.
        threshold: when given, sensitivity and specificity at this threshold are added.
        method, level, n_boot, seed: as in :func:`roc_auc_ci`.

    Returns:
        ``{level: {"n_patients", "n_positive", "n_negative", "auc", "auc_ci95", "reason", ...}}``
        with levels sorted.
    """
    y, s = check_binary(y_true, y_score)
    g = np.asarray(groups).astype(str)
    if g.shape != y.shape:
        raise ValueError(f"'groups' must have shape {y.shape}; got {g.shape}.")
    suffix = f"_ci{round(level * 100)}"
    out: dict[str, dict[str, object]] = {}
    for value in sorted(set(g.tolist())):
        mask = g == value
        yv, sv = y[mask], s[mask]
        n_pos = int(yv.sum())
        row: dict[str, object] = {
            "n_patients": int(mask.sum()),
            "n_positive": n_pos,
            "n_negative": int(mask.sum()) - n_pos,
            "auc": None,
            "auc" + suffix: None,
            "reason": None,
        }
        if n_pos == 0 or n_pos == mask.sum():
            row["reason"] = (
                f"AUC undefined: only {'negative' if n_pos == 0 else 'positive'} cases "
                f"({int(mask.sum())} patient(s)); both classes are needed."
            )
        elif min(n_pos, int(mask.sum()) - n_pos) < 2:
            ranks = stats.rankdata(np.r_[sv[yv == 1], sv[yv == 0]])
            row["auc"] = float(auc_from_ranks(ranks[:n_pos], n_pos, int(mask.sum()) - n_pos))
            row["reason"] = "interval undefined: fewer than 2 cases of a class."
        else:
            auc, lo, hi = roc_auc_ci(yv, sv, method=method, level=level, n_boot=n_boot, seed=seed)
            row["auc"], row["auc" + suffix] = auc, [lo, hi]
        if threshold is not None:
            at = threshold_metrics(yv, sv, threshold, level=level)
            row["sensitivity"], row["specificity"] = at["sensitivity"], at["specificity"]
        out[value] = row
    return out
