"""The area under the ROC curve: DeLong variance and covariance, intervals, the paired test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from pipeline.errors import ConfigError
from pipeline.metrics.inputs import CI_LEVEL, check_binary, require_both_classes
from pipeline.rules import CI_METHODS, check_choice

# Bootstrap resamples are ranked in blocks of at most this many values so memory stays
# bounded (about 16 MB of float64) whatever the cohort size.
_BOOT_BLOCK_VALUES = 2_000_000


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
    m, n = require_both_classes(y.astype(np.int8), "the cases", minimum=2)
    ordered = np.concatenate([s[:, y], s[:, ~y]], axis=1)
    rank_all = stats.rankdata(ordered, method="average", axis=1)
    rank_pos = stats.rankdata(ordered[:, :m], method="average", axis=1)
    rank_neg = stats.rankdata(ordered[:, m:], method="average", axis=1)
    auc = auc_from_ranks(rank_all[:, :m], m, n)
    v10 = (rank_all[:, :m] - rank_pos) / n
    v01 = 1.0 - (rank_all[:, m:] - rank_neg) / m
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return auc, cov


def auc_from_ranks(positive_ranks: np.ndarray, m: int, n: int) -> np.ndarray | float:
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
        out[start : start + b] = auc_from_ranks(ranks[:, :m], m, n)
    return out


def roc_auc_ci(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    method: str,
    level: float = CI_LEVEL,
    n_boot: int | None = None,
    seed: int | None = None,
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
        n_boot: bootstrap resamples; required with ``method="bootstrap"``, unused otherwise.
        seed: bootstrap seed; required with ``method="bootstrap"``, unused otherwise.

    Returns:
        ``(auc, lo, hi)`` as floats, ``0 <= lo <= auc <= hi <= 1``.

    Raises:
        UndefinedMetricError: fewer than two positives or two negatives.
        MetricInputError: bad labels or scores.
        ConfigError: an unknown ``method``, a ``level`` outside (0, 1), or a bootstrap
            without a positive ``n_boot`` and a ``seed``.
    """
    check_interval_settings(method, level=level, n_boot=n_boot, seed=seed)
    y, s = check_binary(y_true, y_score)
    auc, cov = delong_auc_covariance(y, s)
    auc_value = float(auc[0])
    if method == "delong":
        half = stats.norm.ppf(0.5 + level / 2.0) * np.sqrt(max(float(cov[0, 0]), 0.0))
        lo, hi = auc_value - half, auc_value + half
    else:
        boots = _bootstrap_aucs(y, s, int(n_boot), seed)
        lo, hi = np.quantile(boots, [0.5 - level / 2.0, 0.5 + level / 2.0])
    return auc_value, float(np.clip(lo, 0.0, auc_value)), float(np.clip(hi, auc_value, 1.0))


def check_interval_settings(method: str, *, level: float, n_boot: int | None, seed: int | None) -> None:
    """The interval settings of :func:`roc_auc_ci`, checked before any data is touched."""
    check_choice("method", method, CI_METHODS)
    if not 0.0 < level < 1.0:
        raise ConfigError(f"'level' must be in (0, 1); got {level!r}.")
    if method != "bootstrap":
        return
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ConfigError(f"'n_boot' must be a positive integer with method='bootstrap'; got {n_boot!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"'seed' must be an integer with method='bootstrap'; got {seed!r}. Pass base.seed.")


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
    y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, *, level: float = CI_LEVEL
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
