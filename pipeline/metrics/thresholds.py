"""The operating threshold chosen on validation, and what it does: confusion and proportions."""

from __future__ import annotations

import numpy as np
from scipy import stats

from pipeline.metrics.curves import roc_curve
from pipeline.errors import ConfigError
from pipeline.metrics.inputs import CI_LEVEL, MetricInputError, UndefinedMetricError, check_binary
from pipeline.rules import THRESHOLD_RULES, check_choice


def choose_threshold(
    y_true: np.ndarray, y_score: np.ndarray, *, rule: str, target_sensitivity: float | None = None
) -> float:
    """Pick the operating threshold on validation data, to be applied unchanged to test.

    Args:
        y_true: validation labels, shape ``(N,)``.
        y_score: validation scores, shape ``(N,)``.
        rule: ``"youden"`` maximises sensitivity + specificity - 1; among equal values
            the highest threshold (fewest false positives) wins. ``"sensitivity"`` takes
            the highest threshold whose sensitivity reaches ``target_sensitivity``,
            the usual choice for a screening or triage tool.
        target_sensitivity: in (0, 1]; required with ``rule="sensitivity"``, unused otherwise.

    Returns:
        A threshold equal to one of the observed scores; cases with ``score >= threshold``
        are called positive.

    Raises:
        ConfigError: an unknown ``rule``, or ``rule="sensitivity"`` without a target in (0, 1].
    """
    check_choice("rule", rule, THRESHOLD_RULES)
    if rule == "sensitivity" and (target_sensitivity is None or not 0.0 < target_sensitivity <= 1.0):
        raise ConfigError(f"'target_sensitivity' must be in (0, 1] with rule='sensitivity'; got {target_sensitivity!r}.")
    fpr, tpr, thr = roc_curve(y_true, y_score)
    fpr, tpr, thr = fpr[1:], tpr[1:], thr[1:]
    if rule == "youden":
        return float(thr[int(np.argmax(tpr - fpr))])
    return float(thr[int(np.argmax(tpr >= target_sensitivity - 1e-12))])


def wilson_ci(successes: int, total: int, *, level: float = CI_LEVEL) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Raises:
        UndefinedMetricError: ``total == 0`` (the proportion itself is undefined).
        MetricInputError: ``successes`` outside ``[0, total]``.
    """
    if total <= 0:
        raise UndefinedMetricError(f"'total' must be positive for a proportion; got {total!r}.")
    if not 0 <= successes <= total:
        raise MetricInputError(f"'successes' must be in [0, {total}]; got {successes!r}.")
    z = stats.norm.ppf(0.5 + level / 2.0)
    p = successes / total
    denom = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def threshold_metrics(
    y_true: np.ndarray, y_score: np.ndarray, threshold: float, *, level: float = CI_LEVEL
) -> dict[str, object]:
    """Confusion matrix and the four proportions, with Wilson intervals, at one threshold.

    Args:
        y_true: labels, shape ``(N,)``.
        y_score: scores, shape ``(N,)``.
        threshold: cases with ``score >= threshold`` are called positive.
        level: interval coverage; keys are suffixed ``_ci95`` for the default 0.95.

    Returns:
        ``{"tp", "fp", "tn", "fn", "sensitivity", "sensitivity_ci95", "specificity", ...,
        "ppv", "npv", "undefined"}``. A proportion with an empty denominator (e.g. PPV
        when nobody is called positive) is ``None`` and ``undefined`` says why.
    """
    y, s = check_binary(y_true, y_score)
    pred = s >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    tn = int(np.sum(~pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    suffix = f"_ci{round(level * 100)}"
    out: dict[str, object] = {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    undefined: dict[str, str] = {}
    for name, k, total, why in (
        ("sensitivity", tp, tp + fn, "no positive cases"),
        ("specificity", tn, tn + fp, "no negative cases"),
        ("ppv", tp, tp + fp, f"no case called positive at threshold {threshold:.4g}"),
        ("npv", tn, tn + fn, f"no case called negative at threshold {threshold:.4g}"),
    ):
        if total == 0:
            out[name], out[name + suffix] = None, None
            undefined[name] = why
        else:
            out[name] = k / total
            out[name + suffix] = list(wilson_ci(k, total, level=level))
    out["undefined"] = undefined
    return out
