"""Binary-classification metrics a clinical reviewer asks for, from scores alone (numpy, scipy).

Everything here takes patient-level arrays: ``y_true`` of shape ``(N,)`` holding 0/1 and
``y_score`` of shape ``(N,)`` holding finite real scores. Rank-based metrics (AUC, its
intervals, the DeLong test, ROC and PR curves, thresholds) accept any such score: a
probability, a logit, a reader's 1-5 rating. Probability-only metrics (Brier score,
reliability curve, ECE) require scores in [0, 1]; :func:`probability_reason` says why a
score is not one. Nothing here knows about models, files or params, so predictions
from any source can be evaluated.

Conventions, fixed once so every number in a report means the same thing:

* A case is called positive when ``score >= threshold``.
* AUC intervals are two-sided at ``level`` (0.95 by default). DeLong intervals use the
  normal approximation on the AUC scale, clipped to [0, 1], as pROC does.
* Proportions (sensitivity, specificity, PPV, NPV) carry Wilson score intervals, which
  keep their coverage near 0 and 1 where the Wald interval collapses (Brown, Cai &
  DasGupta 2001).
* A metric that is undefined on the data (one class, no predicted positives) raises
  :class:`UndefinedMetricError` or is returned as ``None`` with a reason; never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from pipeline.errors import PipelineInputError

__all__ = [
    "UndefinedMetricError",
    "PairedDelongResult",
    "check_binary",
    "probability_reason",
    "delong_auc_covariance",
    "roc_auc_ci",
    "delong_test",
    "roc_curve",
    "pr_curve",
    "average_precision",
    "choose_threshold",
    "wilson_ci",
    "threshold_metrics",
    "brier_score",
    "reliability_curve",
    "expected_calibration_error",
    "subgroup_auc",
]

# Bootstrap resamples are ranked in blocks of at most this many values so memory stays
# bounded (about 16 MB of float64) whatever the cohort size.
_BOOT_BLOCK_VALUES = 2_000_000


class UndefinedMetricError(PipelineInputError):
    """A metric cannot be computed on these data (for example only one class is present)."""


def check_binary(
    y_true: np.ndarray, y_score: np.ndarray, *, name: str = "y", probability: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert labels and scores.

    Args:
        y_true: labels, shape ``(N,)``, values 0 or 1.
        y_score: scores, shape ``(N,)``, finite; in [0, 1] when ``probability``.
        name: what the arrays describe, used in error messages (e.g. ``"split 'test'"``).
        probability: require probabilities (Brier score, calibration).

    Returns:
        ``(y_true as int8, y_score as float64)``.

    Raises:
        ValueError: shapes differ, labels are not 0/1, scores are NaN or infinite, or
            (``probability``) outside [0, 1]; the message gives the first offending positions.
    """
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=float)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(
            f"{name} labels and scores must be 1-D arrays of equal length; got shapes {y.shape} and {s.shape}."
        )
    bad_label = np.flatnonzero((y != 0) & (y != 1))
    if bad_label.size:
        raise ValueError(
            f"{name} labels must be 0 or 1; got {y[bad_label[:5]].tolist()} at positions {bad_label[:5].tolist()}."
        )
    bad_score = np.flatnonzero(~np.isfinite(s))
    if bad_score.size:
        raise ValueError(
            f"{name} scores must be finite real numbers; got {s[bad_score[:5]].tolist()} at positions "
            f"{bad_score[:5].tolist()}. Remove or fix these cases before evaluation."
        )
    outside = np.flatnonzero((s < 0.0) | (s > 1.0))
    if probability and outside.size:
        raise ValueError(
            f"{name} scores must be probabilities in [0, 1] for this metric; got {s[outside[:5]].tolist()} at "
            f"positions {outside[:5].tolist()}. It does not apply to logits or ratings: recalibrate them into "
            "probabilities first (evaluate.calibration: platt)."
        )
    return y.astype(np.int8), s


def probability_reason(y_score: np.ndarray) -> str | None:
    """Why scores are not probabilities (``None`` when they all lie in [0, 1]).

    The reason is written into metrics.json and the report in place of a Brier score or
    ECE, so a reader of either sees why the number is missing.
    """
    s = np.asarray(y_score, dtype=float)
    if s.size and np.all((s >= 0.0) & (s <= 1.0)):
        return None
    return (
        f"not applicable: the scores range from {s.min():.4g} to {s.max():.4g}, so they are not probabilities in "
        "[0, 1] (logits or ratings); Brier score, ECE and calibration need probabilities"
    )


def _require_both_classes(y: np.ndarray, name: str, minimum: int = 1) -> tuple[int, int]:
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos < minimum or n_neg < minimum:
        what = "one class only" if min(n_pos, n_neg) == 0 else f"fewer than {minimum} cases of a class"
        raise UndefinedMetricError(
            f"{name} must contain at least {minimum} positive and {minimum} negative case(s); got {n_pos} positive "
            f"and {n_neg} negative ({what}). The AUC and its interval are undefined here."
        )
    return n_pos, n_neg


def delong_auc_covariance(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of ``K`` score vectors on the same cases and their DeLong covariance matrix.

    Uses the midrank formulation of Sun & Xu (2014, IEEE SPL 21:1389): the placement
    values (structural components) of DeLong et al. (1988) are differences of midranks,
    so the whole computation is three rankings, ``O(K N log N)`` instead of the
    ``O(K m n)`` pairwise comparison. Ties count one half, as in the Mann-Whitney
    statistic.

    Args:
        y_true: labels, shape ``(N,)``, 0/1, with at least two cases of each class
            (the variance of the placement values needs two).
        scores: shape ``(N,)`` or ``(K, N)``.

    Returns:
        ``(auc, cov)``: ``auc`` of shape ``(K,)``, ``cov`` of shape ``(K, K)``.

    Raises:
        UndefinedMetricError: fewer than two positives or two negatives.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    m, n = _require_both_classes(y.astype(np.int8), "the cases", minimum=2)
    ordered = np.concatenate([s[:, y], s[:, ~y]], axis=1)
    rank_all = stats.rankdata(ordered, method="average", axis=1)
    rank_pos = stats.rankdata(ordered[:, :m], method="average", axis=1)
    rank_neg = stats.rankdata(ordered[:, m:], method="average", axis=1)
    auc = _auc_from_ranks(rank_all[:, :m], m, n)
    v10 = (rank_all[:, :m] - rank_pos) / n
    v01 = 1.0 - (rank_all[:, m:] - rank_neg) / m
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return auc, cov


def _auc_from_ranks(positive_ranks: np.ndarray, m: int, n: int) -> np.ndarray | float:
    """Mann-Whitney AUC from the positives' midranks among all ``m + n`` cases (last axis)."""
    return (positive_ranks.sum(axis=-1) - m * (m + 1) / 2.0) / (m * n)


def _bootstrap_aucs(y: np.ndarray, s: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """AUCs of ``n_boot`` stratified resamples; shape ``(n_boot,)``.

    Positives and negatives are resampled separately so every replicate keeps the
    observed class counts and the AUC is always defined (Carpenter & Bithell 2000).
    """
    pos, neg = s[y == 1], s[y == 0]
    m, n = pos.size, neg.size
    rng = np.random.default_rng(seed)
    block = max(1, _BOOT_BLOCK_VALUES // (m + n))
    out = np.empty(n_boot)
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        sample = np.concatenate(
            [pos[rng.integers(0, m, size=(b, m))], neg[rng.integers(0, n, size=(b, n))]], axis=1
        )
        ranks = stats.rankdata(sample, method="average", axis=1)
        out[start : start + b] = _auc_from_ranks(ranks[:, :m], m, n)
    return out


def roc_auc_ci(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    method: str = "delong",
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Area under the ROC curve with a two-sided confidence interval.

    Args:
        y_true: labels, shape ``(N,)``, 0/1.
        y_score: scores, shape ``(N,)``, any finite real numbers (only their ranks
            matter; ties count one half).
        method: ``"delong"`` (normal approximation with the DeLong variance; the
            interval reviewers ask for by name) or ``"bootstrap"`` (stratified
            percentile bootstrap; preferable for small or extreme samples).
        level: coverage of the interval, in (0, 1).
        n_boot: bootstrap resamples (``method="bootstrap"`` only).
        seed: bootstrap seed (``method="bootstrap"`` only).

    Returns:
        ``(auc, lo, hi)`` as floats, ``0 <= lo <= auc <= hi <= 1``.

    Raises:
        UndefinedMetricError: fewer than two positives or two negatives.
        ValueError: bad labels/scores or an unknown ``method``.
    """
    if method not in ("delong", "bootstrap"):
        raise ValueError(f"'method' must be one of ['delong', 'bootstrap']; got {method!r}.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"'level' must be in (0, 1); got {level!r}.")
    y, s = check_binary(y_true, y_score)
    auc, cov = delong_auc_covariance(y, s)
    auc_value = float(auc[0])
    if method == "delong":
        half = stats.norm.ppf(0.5 + level / 2.0) * np.sqrt(max(float(cov[0, 0]), 0.0))
        lo, hi = auc_value - half, auc_value + half
    else:
        if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
            raise ValueError(f"'n_boot' must be a positive integer; got {n_boot!r}.")
        boots = _bootstrap_aucs(y, s, int(n_boot), seed)
        lo, hi = np.quantile(boots, [0.5 - level / 2.0, 0.5 + level / 2.0])
    return auc_value, float(np.clip(lo, 0.0, auc_value)), float(np.clip(hi, auc_value, 1.0))


@dataclass(frozen=True)
class PairedDelongResult:
    """Paired DeLong comparison of two scores on the same cases (DeLong et al. 1988).

    Attributes:
        auc_a: AUC of the first score.
        auc_b: AUC of the second score.
        difference: ``auc_a - auc_b``.
        difference_ci: two-sided interval of the difference at the requested level.
        z: test statistic; ``None`` when both scores rank every pair identically (the
            variance of the difference is zero).
        p_value: two-sided p-value for ``auc_a == auc_b``.
        n: number of cases; ``n_positive`` of them positive.
    """

    auc_a: float
    auc_b: float
    difference: float
    difference_ci: tuple[float, float]
    z: float | None
    p_value: float
    n: int
    n_positive: int


def delong_test(
    y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, *, level: float = 0.95
) -> PairedDelongResult:
    """Test whether two scores on the *same* cases have equal AUC (paired DeLong test).

    The two AUCs are correlated because they share cases; ignoring that (comparing two
    separate intervals) is conservative and a common error in papers. The variance of
    the difference is ``var_a + var_b - 2 cov_ab`` from :func:`delong_auc_covariance`.

    Args:
        y_true: labels, shape ``(N,)``.
        score_a: first model's (or reader's) scores, shape ``(N,)``, aligned with
            ``y_true``; any finite real numbers, on any scale.
        score_b: second scores, shape ``(N,)``, same order; its scale need not match ``score_a``.
        level: coverage of the interval of the difference.

    Returns:
        A :class:`PairedDelongResult`.
    """
    y, a = check_binary(y_true, score_a, name="score_a")
    _, b = check_binary(y_true, score_b, name="score_b")
    auc, cov = delong_auc_covariance(y, np.stack([a, b]))
    diff = float(auc[0] - auc[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    sd = np.sqrt(max(var, 0.0))
    half = stats.norm.ppf(0.5 + level / 2.0) * sd
    if sd > 1e-12:
        z: float | None = diff / sd
        p = float(2.0 * stats.norm.sf(abs(z)))
    else:
        z, p = None, 1.0 if abs(diff) < 1e-12 else 0.0
    return PairedDelongResult(
        auc_a=float(auc[0]),
        auc_b=float(auc[1]),
        difference=diff,
        difference_ci=(float(diff - half), float(diff + half)),
        z=None if z is None else float(z),
        p_value=p,
        n=int(y.size),
        n_positive=int(y.sum()),
    )


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
    n_pos, n_neg = _require_both_classes(y, "the cases")
    tps, fps, thr = _counts_by_threshold(y, s)
    return np.r_[0.0, fps / n_neg], np.r_[0.0, tps / n_pos], np.r_[np.inf, thr]


def pr_curve(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision-recall points at every distinct score, highest threshold first.

    Returns:
        ``(precision, recall, thresholds)``, each of shape ``(T,)``.
    """
    y, s = check_binary(y_true, y_score)
    n_pos, _ = _require_both_classes(y, "the cases")
    tps, fps, thr = _counts_by_threshold(y, s)
    return tps / (tps + fps), tps / n_pos, thr


def average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Step-wise area under the precision-recall curve, ``sum_k (R_k - R_{k-1}) P_k``."""
    precision, recall, _ = pr_curve(y_true, y_score)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def choose_threshold(
    y_true: np.ndarray, y_score: np.ndarray, *, rule: str = "youden", target_sensitivity: float = 0.9
) -> float:
    """Pick the operating threshold on validation data, to be applied unchanged to test.

    Args:
        y_true: validation labels, shape ``(N,)``.
        y_score: validation scores, shape ``(N,)``.
        rule: ``"youden"`` maximises sensitivity + specificity - 1; among equal values
            the highest threshold (fewest false positives) wins. ``"sensitivity"`` takes
            the highest threshold whose sensitivity reaches ``target_sensitivity``,
            the usual choice for a screening or triage tool.
        target_sensitivity: in (0, 1], used by ``rule="sensitivity"``.

    Returns:
        A threshold equal to one of the observed scores; cases with ``score >= threshold``
        are called positive.
    """
    if rule not in ("youden", "sensitivity"):
        raise ValueError(f"'rule' must be one of ['youden', 'sensitivity']; got {rule!r}.")
    fpr, tpr, thr = roc_curve(y_true, y_score)
    fpr, tpr, thr = fpr[1:], tpr[1:], thr[1:]
    if rule == "youden":
        return float(thr[int(np.argmax(tpr - fpr))])
    if not 0.0 < target_sensitivity <= 1.0:
        raise ValueError(f"'target_sensitivity' must be in (0, 1]; got {target_sensitivity!r}.")
    return float(thr[int(np.argmax(tpr >= target_sensitivity - 1e-12))])


def wilson_ci(successes: int, total: int, *, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Raises:
        UndefinedMetricError: ``total == 0`` (the proportion itself is undefined).
    """
    if total <= 0:
        raise UndefinedMetricError(f"'total' must be positive for a proportion; got {total!r}.")
    if not 0 <= successes <= total:
        raise ValueError(f"'successes' must be in [0, {total}]; got {successes!r}.")
    z = stats.norm.ppf(0.5 + level / 2.0)
    p = successes / total
    denom = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def threshold_metrics(
    y_true: np.ndarray, y_score: np.ndarray, threshold: float, *, level: float = 0.95
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


def brier_score(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean squared difference between probability and outcome; 0 is perfect, 0.25 is a coin."""
    y, s = check_binary(y_true, y_score, probability=True)
    return float(np.mean((s - y) ** 2))


def reliability_curve(y_true: np.ndarray, y_score: np.ndarray, *, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Observed event rate against mean predicted probability in equal-width bins.

    Bins are ``[0, 1/B), [1/B, 2/B), ..., [(B-1)/B, 1]``; empty bins are left out.

    Returns:
        Arrays of shape ``(B',)`` for the ``B'`` non-empty bins: ``bin_lower``,
        ``bin_upper``, ``mean_predicted``, ``fraction_positive``, ``count``.
    """
    y, s = check_binary(y_true, y_score, probability=True)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"'n_bins' must be a positive integer; got {n_bins!r}.")
    index = np.minimum((s * n_bins).astype(int), n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    sum_pred = np.bincount(index, weights=s, minlength=n_bins)
    sum_pos = np.bincount(index, weights=y.astype(float), minlength=n_bins)
    keep = count > 0
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return {
        "bin_lower": edges[:-1][keep],
        "bin_upper": edges[1:][keep],
        "mean_predicted": sum_pred[keep] / count[keep],
        "fraction_positive": sum_pos[keep] / count[keep],
        "count": count[keep],
    }


def expected_calibration_error(y_true: np.ndarray, y_score: np.ndarray, *, n_bins: int = 10) -> float:
    """ECE: bin-size-weighted mean of ``|observed rate - mean predicted|`` over equal-width bins."""
    curve = reliability_curve(y_true, y_score, n_bins=n_bins)
    weights = curve["count"] / curve["count"].sum()
    return float(np.sum(weights * np.abs(curve["fraction_positive"] - curve["mean_predicted"])))


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
            row["auc"] = float(_auc_from_ranks(ranks[:n_pos], n_pos, int(mask.sum()) - n_pos))
            row["reason"] = "interval undefined: fewer than 2 cases of a class."
        else:
            auc, lo, hi = roc_auc_ci(yv, sv, method=method, level=level, n_boot=n_boot, seed=seed)
            row["auc"], row["auc" + suffix] = auc, [lo, hi]
        if threshold is not None:
            at = threshold_metrics(yv, sv, threshold, level=level)
            row["sensitivity"], row["specificity"] = at["sensitivity"], at["specificity"]
        out[value] = row
    return out
